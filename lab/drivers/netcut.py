"""The lab cuts the DUT off the network, and puts it back (5.9-1-2, 5.9-3-2).

Two disturbances, both on the lab PC's side of the bench network and both undone when their
`with` block ends, whatever happens:

- `link_cut`: the bench interface goes down, so the DUT loses its link (carrier) as when its
  cable is pulled. Its connected route goes with it, so a blackhole route for the DUT's address
  holds meanwhile: nothing the lab PC sends to the DUT can follow the default route off the lab.
- `refuse_peer`: the DUT's new connections to one peer port are refused (TCP reset; ICMP port
  unreachable for UDP) as a peer that is down would refuse them: an nftables table of its own per
  bench interface, matching only packets that come in on that interface from the DUT's address,
  in the input and forward hooks (the peer on the lab PC, or beyond it). Its SYNs are still
  captured on the interface: a packet capture sees them before the filter.

Both need root and iproute2 (`ip`); `refuse_peer` also nftables (`nft`). A missing tool or a
refused command is a lab fault (INCONCLUSIVE), never the DUT's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from lab.errors import NetworkFault

Run = Callable[[Sequence[str], str | None], subprocess.CompletedProcess]
LINK_RESTORE_S = 10.0  # the lab's own interface must carry the DUT's route again within this
_IFNAME = re.compile(r"[A-Za-z0-9_.:-]{1,15}")


def _run(args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=10)


def _check(interface: str, address: str) -> None:
    if not _IFNAME.fullmatch(interface):
        raise NetworkFault(f"interface name {interface!r} cannot be used in a link or filter command")
    ipaddress.IPv4Address(address)


def _must(run: Run, args: Sequence[str], what: str, stdin: str | None = None) -> None:
    try:
        done = run(args, stdin)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetworkFault(f"{what}: `{' '.join(args)}` could not run ({exc})") from None
    if done.returncode != 0:
        raise NetworkFault(f"{what}: `{' '.join(args)}` failed: {(done.stderr or '').strip()[:300]}")


@dataclass
class LinkCut:
    """When the link went down and came back (time.monotonic())."""

    interface: str
    down_at: float
    up_at: float | None = None


def _route_dev(run: Run, address: str) -> str | None:
    done = run(["ip", "-o", "route", "get", address], None)
    match = re.search(r"\bdev (\S+)", done.stdout or "") if done.returncode == 0 else None
    return match.group(1) if match else None


@contextlib.contextmanager
def link_cut(interface: str, address: str, *, run: Run = _run, sleep: Callable[[float], None] = time.sleep,
             restore_timeout: float = LINK_RESTORE_S) -> Iterator[LinkCut]:
    """Take the bench interface down for the block (the DUT loses its link); bring it back after."""
    _check(interface, address)
    if run is _run and shutil.which("ip") is None:
        raise NetworkFault("the `ip` command (iproute2) is missing on the lab PC; the lab cannot cut the link")
    blackhole = ["ip", "route", "replace", "blackhole", f"{address}/32"]
    _must(run, blackhole, "holding the DUT's route during the link cut")
    try:
        _must(run, ["ip", "link", "set", "dev", interface, "down"], "cutting the DUT's link")
        cut = LinkCut(interface, time.monotonic())
        yield cut
    finally:
        problems = []
        for args in (["ip", "link", "set", "dev", interface, "up"], ["ip", "route", "del", "blackhole", f"{address}/32"]):
            try:
                _must(run, args, "restoring the DUT's link")
            except NetworkFault as exc:
                problems.append(str(exc))
        steps = max(1, int(restore_timeout / 0.1))
        for _ in range(steps):
            if _route_dev(run, address) == interface:
                break
            sleep(0.1)
        else:
            problems.append(f"the route to {address} did not return to {interface} within {restore_timeout:g} s")
        if problems:
            raise NetworkFault("; ".join(problems) + f" (check `ip link show {interface}` and `ip route get {address}`)")
    cut.up_at = time.monotonic()


def refuse_table(interface: str) -> str:
    return "certlab_refuse_" + re.sub(r"[^A-Za-z0-9_]", "_", interface)


def refuse_ruleset(interface: str, address: str, port: int, transport: str = "tcp") -> str:
    """The nftables table that refuses the DUT's new connections to `port` coming in on `interface`."""
    _check(interface, address)
    if transport not in ("tcp", "udp") or not 1 <= int(port) <= 65535:
        raise NetworkFault(f"cannot refuse {transport}/{port}: a tcp or udp port 1-65535 is needed")
    verdict = "reject with tcp reset" if transport == "tcp" else "reject"
    rule = f'    iifname "{interface}" ip saddr {address} {transport} dport {int(port)} {verdict}\n'
    chains = "".join(f"  chain {hook} {{\n    type filter hook {hook} priority filter - 10; policy accept;\n{rule}  }}\n"
                     for hook in ("input", "forward"))
    return f"table ip {refuse_table(interface)} {{\n{chains}}}\n"


@contextlib.contextmanager
def refuse_peer(interface: str, address: str, port: int, transport: str = "tcp", *, run: Run = _run) -> Iterator[str]:
    """Refuse the DUT's new connections to `port` while the block runs; yields the ruleset (evidence)."""
    if run is _run and shutil.which("nft") is None:
        raise NetworkFault("the `nft` command (nftables) is missing on the lab PC; install nftables "
                           "(system-packages.txt) so the lab can refuse the DUT's connections")
    rules = refuse_ruleset(interface, address, port, transport)
    table = refuse_table(interface)
    run(["nft", "delete", "table", "ip", table], None)  # a leftover of a crashed run; absent is fine
    try:
        _must(run, ["nft", "-f", "-"], "refusing the DUT's connections", stdin=rules)
        yield rules
    finally:
        removed = run(["nft", "delete", "table", "ip", table], None)
        if removed.returncode != 0 and "No such file" not in (removed.stderr or ""):
            raise NetworkFault(f"the refusal table {table} could not be removed: {(removed.stderr or '').strip()[:300]}; "
                               f"remove it with `nft delete table ip {table}`")
