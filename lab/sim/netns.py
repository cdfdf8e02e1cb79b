"""Network namespaces with a veth pair: a simulated DUT's own, private piece of network.

The DUT side (`eth0`, the bench's address) lives inside the namespace; the host side (the
inventory's `network.interface`, the gateway address) stays in the root namespace, where the
scanner, the SSH driver and the simulated cloud reach it. No default route is installed in the
namespace and nothing is forwarded, so simulated traffic cannot leave the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.errors import NetworkFault

DUT_INTERFACE = "eth0"  # the name the DUT sees inside its namespace
_NETNS_DIR = Path("/var/run/netns")  # where iproute2 mounts named namespaces


@dataclass(frozen=True)
class VethSpec:
    """One bench's namespace and link, as the inventory describes it."""

    netns: str
    host_if: str
    gateway: str
    address: str
    prefix: int


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None when they can): said once, clearly, by `lab up`."""
    if os.geteuid() != 0:
        return "network namespaces need root (run `certlab lab up` as root, or drop network.netns to use loopback)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing; install iproute2 or drop network.netns to use loopback"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise NetworkFault(f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


def exists(netns: str) -> bool:
    return (_NETNS_DIR / netns).exists()


def link_exists(ifname: str) -> bool:
    return Path("/sys/class/net", ifname).exists()


def create(spec: VethSpec) -> None:
    """Make (or complete) the namespace and its veth pair; running it twice changes nothing."""
    reason = unavailable_reason()
    if reason:
        raise NetworkFault(reason)
    if len(spec.host_if) > 15:
        raise NetworkFault(f"interface name {spec.host_if!r} is longer than 15 characters")
    if not exists(spec.netns):
        _ip("netns", "add", spec.netns)
    if not link_exists(spec.host_if):
        _ip("link", "add", spec.host_if, "type", "veth", "peer", "name", DUT_INTERFACE, "netns", spec.netns)
    _ip("addr", "replace", f"{spec.gateway}/{spec.prefix}", "dev", spec.host_if)
    ns = ("-n", spec.netns)
    _ip(*ns, "link", "set", "lo", "up")
    _ip(*ns, "addr", "replace", f"{spec.address}/{spec.prefix}", "dev", DUT_INTERFACE)
    _ip(*ns, "link", "set", DUT_INTERFACE, "up")
    _ip("link", "set", spec.host_if, "up")


def set_link(spec: VethSpec, up: bool) -> None:
    """Plug or unplug the bench's cable at the DUT's end (the `ssh_unreachable` lab fault unplugs it).

    The host side stays up on purpose: taking it down would drop the connected route, and packets
    for the bench would then follow the host's default route off the machine. With only the
    DUT's end down, the route still points into the dead veth and the packets go nowhere.
    """
    _ip("-n", spec.netns, "link", "set", DUT_INTERFACE, "up" if up else "down")
    _ip("link", "set", spec.host_if, "up")


def attach_tap(spec: VethSpec, tap: str, bridge: str = "br0") -> None:
    """For a virtual machine DUT: a tap device bridged to the veth end, and the address moved off.

    The guest's own kernel then holds the bench address behind the tap (the namespace has none),
    so it answers every port itself. Idempotent; the tap is persistent (it outlives qemu across
    power cycles) and goes with the namespace.
    """
    ns = ("-n", spec.netns)
    if not link_exists_in(spec.netns, bridge):
        _ip(*ns, "link", "add", bridge, "type", "bridge")
    if not link_exists_in(spec.netns, tap):
        _ip(*ns, "tuntap", "add", "dev", tap, "mode", "tap")
    for port in (DUT_INTERFACE, tap):
        _ip(*ns, "link", "set", port, "master", bridge)
    _ip(*ns, "addr", "flush", "dev", DUT_INTERFACE)
    for link in (tap, bridge, DUT_INTERFACE):
        _ip(*ns, "link", "set", link, "up")


def link_exists_in(netns: str, ifname: str) -> bool:
    return _ip("-n", netns, "link", "show", "dev", ifname, check=False).returncode == 0


def delete(netns: str, host_if: str | None) -> None:
    """Remove the pair and the namespace if present; missing pieces are not an error."""
    if host_if and link_exists(host_if):
        _ip("link", "del", host_if, check=False)
    if host_if and shutil.which("nft"):  # an interception a killed test run left (lab.drivers.intercept's table)
        table = "certlab_mitm_" + re.sub(r"[^A-Za-z0-9_]", "_", host_if)
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True, timeout=10)
    if exists(netns):
        _ip("netns", "del", netns)


def exec_prefix(netns: str | None) -> list[str]:
    """The command prefix that runs a program inside the namespace (empty for loopback benches)."""
    return ["ip", "netns", "exec", netns] if netns else []
