"""Bring a simulated lab up and down: relays, bench hosts, namespaces, the DUTs' files.

`SimLab(inventory).up()` starts the simulated parts of an inventory as detached processes and
returns once every endpoint the real drivers will open exists; `down()` removes every process,
pty link, socket and namespace it made, killing by recorded process groups and then checking
/proc, because a lab that leaks processes poisons the next run. Runtime files live in
/tmp/certlab-sim/<lab>/ (docs/architecture.md).

`SimLab(inventory, labhost="rack-a")` is the part of the lab that hangs off one lab host: only the
benches whose `labhost` is rack-a, with that host's own fork server, relays and state in
/tmp/certlab-sim/<lab>/labhost-rack-a/, so two hosts of one inventory (two network namespaces on
one machine, docs/lab-hosts.md) come up and go down without touching each other. The bench folders,
the firmware releases and the lab CA stay at the lab's level, where the inventory points.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import resources
from lab.errors import CertlabError, InventoryError, LabFault, NetworkFault
from lab.drivers.power_command import CommandPowerConfig
from lab.drivers.power_http import HttpPduConfig
from lab.inventory import BenchConfig, Inventory, ScpiPowerConfig
from lab.sim import cloud, netns, power_sim, vm_kernel

RUNTIME_ROOT = Path("/tmp/certlab-sim")
RELAY_FAULTS = frozenset({"relay_unresponsive", "bench_dies_midrun"})
DEFAULT_DIE_AFTER = 4
VM_TAP = "vmtap0"  # the tap a VM DUT's NIC uses, inside its bench's namespace
NETNS_DEBUG_PORT = 2323
LOOPBACK_DEBUG_OFFSET = 100
_SCPI_SOCKET = re.compile(r"TCPIP\d*::([^:]+)::(\d+)::SOCKET", re.IGNORECASE)


@dataclass(frozen=True)
class RelayPlan:
    """One simulated instrument and the benches wired to its channels."""

    id: str
    kind: str  # "scpi" | "lcus" | "ctl" | "netio" (lab/sim/power_sim.py)
    channels: dict[int, str]  # channel -> bench name
    faults: frozenset[str]
    host: str = ""
    port: int = 0
    pty_link: Path | None = None
    program: Path | None = None  # ctl: the control program the inventory's commands run; its socket is <program>.sock
    auth: tuple[str, str] | None = None  # netio: the user and password the simulated PDU accepts

    @property
    def endpoint(self) -> str:
        if self.kind == "ctl":
            return str(self.program)
        return f"{self.host}:{self.port}" if self.kind in ("scpi", "netio") else str(self.pty_link)

    @property
    def size(self) -> int:
        top = max(self.channels)
        return 8 if self.kind == "scpi" else next(n for n in (2, 4, 8, 16, top) if n >= top)


# --- processes (by pid, checked against /proc so a reused pid is never killed) -------------


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _running(pid: int | None, marker: str) -> bool:
    """True if pid is a live (non-zombie) process whose command line mentions `marker`."""
    if not pid:
        return False
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and marker.encode() in cmdline


def processes_mentioning(marker: str) -> list[int]:
    """Every live process whose command line mentions marker (except this one); proves `down` left none."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _running(int(entry.name), marker):
            found.append(int(entry.name))
    return found


def _kill(pid: int) -> None:
    """SIGKILL pid's whole group when pid leads one we started, else just pid."""
    try:
        pgid = os.getpgid(pid)
        if pgid == pid and pgid != os.getpgrp():
            os.killpg(pgid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _start(cmd: list[str], log: Path, pid_file: Path) -> subprocess.Popen[bytes]:
    """Start a detached process (own session, stdio to its log) and record its pid = pgid.

    The caller keeps the handle while the process starts: just after exec, /proc/<pid>/cmdline can
    still be empty, so `_running` would call a healthy newcomer dead.
    """
    path = os.pathsep.join(filter(None, [str(resources.import_root()), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=log.parent, env=env)
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


# --- the lab --------------------------------------------------------------------------------


class SimLab:
    """The simulated part of one inventory (benches with a `sim:` block); real benches are left alone."""

    def __init__(self, inventory: Inventory, *, root: Path = RUNTIME_ROOT,
                 dut_command: list[str] | None = None, relay_die_after: int = DEFAULT_DIE_AFTER,
                 start_timeout: float = 15.0, labhost: str | None = None):
        self.inv = inventory
        self.dir = root / inventory.lab
        self.labhost = labhost
        # what one lab host runs for its benches (fork server, relays, state); the lab's own folder without --labhost
        self.host_dir = self.dir if labhost is None else self.dir / f"labhost-{labhost}"
        self._explicit_dut_command = dut_command
        self.dut_command = dut_command or [sys.executable, "-m", "lab.sim.dut"]
        self.relay_die_after = relay_die_after
        self.start_timeout = start_timeout
        # every simulated bench of the inventory: ports, firmware and the CA are the same whichever host starts first
        self.all_benches = {n: b for n, b in inventory.benches.items() if b.sim is not None}
        self.benches = {n: b for n, b in self.all_benches.items() if labhost is None or b.labhost == labhost}
        if labhost is not None and not self.benches:
            hosts = sorted({b.labhost for b in self.all_benches.values() if b.labhost})
            raise InventoryError(f"{inventory.path}: no simulated bench has labhost {labhost!r} (field 'certlab.labhost'); "
                                 f"give one of {', '.join(hosts) or 'none: set certlab.labhost on the benches first'}")

    @property
    def root(self) -> Path:
        """The lab's runtime folder, /tmp/certlab-sim/<lab>."""
        return self.dir

    @property
    def marker(self) -> str:
        return f"{self.dir}/"

    def bench_dir(self, bench: str) -> Path:
        return self.dir / bench

    @property
    def forkserver_socket(self) -> Path:
        """The lab's (or lab host's) pre-imported DUT server (lab.sim.forkserver): power-on forks our device from it."""
        return self.host_dir / "forkserver.sock"

    def _sweep_markers(self) -> list[str]:
        """What the command line of a process of ours mentions: the lab's folder, or one host's folder and benches."""
        if self.labhost is None:
            return [self.marker]
        return [f"{self.host_dir}/", *(f"{self.bench_dir(n)}/" for n in self.benches)]

    def _forked(self, bench: BenchConfig) -> bool:
        """Our own simulated device boots by fork; the off-the-shelf, VM and test stand-in DUTs by exec."""
        return self._explicit_dut_command is None and bench.sim is not None and bench.sim.dut == "certlab"

    def console_link(self, bench: BenchConfig) -> Path:
        if "://" in bench.console.url:
            raise InventoryError(f"{self.inv.path}: bench {bench.name!r}, field 'certlab.console.url': a simulated "
                                 "console is a pty; give a file path such as /tmp/certlab-sim/<lab>/<bench>/console")
        return self.inv.resolve_path(bench.console.url)

    # --- planning (pure: validates the inventory before anything starts) --------------------

    def relay_plans(self) -> dict[str, RelayPlan]:
        """Group benches by instrument: one SCPI host:port, or one relay board port, each."""
        groups: dict[tuple[str, ...], list[BenchConfig]] = {}
        for bench in self.benches.values():
            power = bench.power
            if isinstance(power, ScpiPowerConfig):
                m = _SCPI_SOCKET.fullmatch(power.resource.strip())
                host = m.group(1) if m else ""
                if not m or not (host == "localhost" or _is_loopback(host)):
                    raise InventoryError(
                        f"{self.inv.path}: bench {bench.name!r}, field 'certlab.power.resource': a simulated "
                        "switch listens on loopback; write TCPIP::127.0.0.1::<port>::SOCKET")
                key = ("scpi", "127.0.0.1" if host == "localhost" else host, m.group(2))
            elif isinstance(power, CommandPowerConfig):
                key = ("ctl", str(power_sim.command_program(self.inv, bench, self.dir)))
            elif isinstance(power, HttpPduConfig):
                key = ("netio", *map(str, power_sim.pdu_address(self.inv, bench)))
            else:
                if "://" in power.url:
                    raise InventoryError(f"{self.inv.path}: bench {bench.name!r}, field 'certlab.power.url': a "
                                         "simulated relay board is a pty; give a file path")
                key = ("lcus", str(self.inv.resolve_path(power.url)))
            groups.setdefault(key, []).append(bench)
        plans: dict[str, RelayPlan] = {}
        for key, benches in groups.items():
            channels = {b.power.channel: b.name for b in benches}
            faults = frozenset(f for b in benches for f in b.sim.lab_faults if f in RELAY_FAULTS)  # type: ignore[union-attr]
            if key[0] == "scpi":
                plan = RelayPlan(f"scpi-{key[1]}-{key[2]}", "scpi", channels, faults, host=key[1], port=int(key[2]))
            elif key[0] == "ctl":
                plan = RelayPlan(f"ctl-{Path(key[1]).name}", "ctl", channels, faults, program=Path(key[1]))
            elif key[0] == "netio":
                plan = RelayPlan(f"netio-{key[1]}-{key[2]}", "netio", channels, faults, host=key[1], port=int(key[2]),
                                 auth=power_sim.pdu_auth(self.inv, benches))
            else:
                link = Path(key[1])
                rid = link.name if link.parent == self.dir / "relays" else f"lcus-{link.parent.name}-{link.name}"
                plan = RelayPlan(rid if rid not in plans else f"{rid}-{len(plans)}", "lcus", channels, faults, pty_link=link)
            plans[plan.id] = plan
        return plans

    def _check_ports(self, plans: dict[str, RelayPlan]) -> None:
        """Loopback benches share 127.0.0.1: two listeners on one port would steal each other's clients."""
        used: dict[tuple[str, int], str] = {}

        def claim(host: str, port: int, what: str) -> None:
            if (host, port) in used:
                raise InventoryError(f"{self.inv.path}: {what} and {used[(host, port)]} both listen on "
                                     f"{host}:{port}; give each its own port")
            used[(host, port)] = what

        for plan in plans.values():
            if plan.kind in ("scpi", "netio"):
                claim(plan.host, plan.port, f"relay {plan.id}")
        for bench in self.benches.values():
            host, port = self._cloud_addr(bench)
            claim(host, port, f"bench {bench.name!r} cloud (sim.cloud_port)")
            claim(*self._web_addr(bench), f"bench {bench.name!r} site and app API (sim.web_port)")
            if not bench.network.netns:
                claim(bench.network.address, bench.ssh.port, f"bench {bench.name!r} ssh")
                claim(bench.network.address, self._debug_port(bench), f"bench {bench.name!r} debug port")
            elif not (bench.network.interface and bench.network.gateway):
                raise InventoryError(f"{self.inv.path}: bench {bench.name!r}, field 'certlab.network': a netns "
                                     "bench needs 'interface' and 'gateway' too; add them")

    def _cloud_addr(self, bench: BenchConfig) -> tuple[str, int]:
        """A netns bench's cloud is on its gateway; loopback benches share 127.0.0.1, so the
        second, third ... bench asking for the same sim.cloud_port gets the next port up."""
        assert bench.sim is not None
        if bench.network.netns and bench.network.gateway:
            return bench.network.gateway, bench.sim.cloud_port
        same = [b for b in self.all_benches.values() if not b.network.netns and b.sim and b.sim.cloud_port == bench.sim.cloud_port]
        return "127.0.0.1", bench.sim.cloud_port + [b.name for b in same].index(bench.name)

    def _web_addr(self, bench: BenchConfig) -> tuple[str, int]:
        """The HTTPS site + app API: the cloud's address, `sim.web_port` (offset on loopback like the cloud's)."""
        assert bench.sim is not None
        web_port = bench.sim.web_port
        if bench.network.netns and bench.network.gateway:
            return bench.network.gateway, web_port
        same = [b for b in self.all_benches.values()
                if not b.network.netns and b.sim and b.sim.web_port == web_port]
        return "127.0.0.1", web_port + [b.name for b in same].index(bench.name)

    @staticmethod
    def _debug_port(bench: BenchConfig) -> int:
        """`sim.debug_port` if the inventory has it; else 2323 in a netns, ssh port + 100 on loopback."""
        explicit = getattr(bench.sim, "debug_port", None)
        if explicit:
            return int(explicit)
        return NETNS_DEBUG_PORT if bench.network.netns else bench.ssh.port + LOOPBACK_DEBUG_OFFSET

    # --- files the processes read -------------------------------------------------------------

    def _dut_json(self, bench: BenchConfig, pki: cloud.CloudPki, vendor_pubkey: str | None) -> dict[str, Any]:
        sim, dut = bench.sim, bench.dut
        assert sim is not None
        host, port = self._cloud_addr(bench)
        label = self.inv.resolve_secret(dut.label_password, field=f"bench {bench.name}: dut.label_password") \
            if dut.label_password else None
        return {
            "bench": bench.name, "model": dut.model, "serial": dut.serial, "mac": dut.mac,
            "firmware": dut.firmware, "label_password": label,
            "flaws": list(sim.flaws), "lab_faults": list(sim.lab_faults),
            "boot_seconds": sim.boot_seconds, "address": bench.network.address, "ssh_port": bench.ssh.port,
            "cloud": {"host": host, "port": port, "ca_file": str(pki.ca_file), "hostname": cloud.CLOUD_HOSTNAME},
            "telemetry_interval": sim.telemetry_interval, "vendor_pubkey": vendor_pubkey,
            "lockout_attempts": sim.lockout_attempts, "lockout_seconds": sim.lockout_seconds,
            "dirty_expire_seconds": sim.dirty_expire_seconds, "update_write_seconds": sim.update_write_seconds,
            "ssh_delay_seconds": sim.ssh_delay_seconds,
            "debug_port": self._debug_port(bench), "netns": bench.network.netns,
            "prefix": bench.network.prefix, "gateway": bench.network.gateway,
            "firmware_dir": str(self.dir / "firmware"),
        }

    def _dut_command(self, bench: BenchConfig) -> list[str]:
        """Our simulated device, or the off-the-shelf one (dropbear + busybox) when asked."""
        if self._explicit_dut_command is None and bench.sim and bench.sim.dut == "offtheshelf":
            return [sys.executable, "-m", "lab.sim.ots_dut"]
        if self._explicit_dut_command is None and bench.sim and bench.sim.dut == "vm":
            return [sys.executable, "-m", "lab.sim.vm_dut"]
        return self.dut_command

    def _vm_machines(self) -> dict[str, dict[str, Any]]:
        """Per VM bench: its kernel (fetched with apt on first use), accelerator and tap, for dut.json.

        KVM is probed once per kernel and lab up; `sim.accel` forces one.
        """
        machines: dict[str, dict[str, Any]] = {}
        probed: dict[Path, tuple[str, str]] = {}
        for bench in self.benches.values():
            if not (bench.sim and bench.sim.dut == "vm"):
                continue
            explicit = self.inv.resolve_path(bench.sim.kernel) if bench.sim.kernel else None
            try:
                kernel = vm_kernel.ensure_kernel(explicit)
            except CertlabError as exc:
                if explicit is None:
                    raise
                raise InventoryError(f"{self.inv.path}: bench {bench.name!r}, field 'certlab.sim.kernel': {exc}") from None
            if bench.sim.accel == "auto":
                if kernel.image not in probed:
                    probed[kernel.image] = vm_kernel.choose_accel(kernel)
                accel, why = probed[kernel.image]
            else:
                accel, why = bench.sim.accel, "sim.accel in the inventory"
            machines[bench.name] = {"kernel": str(kernel.image), "modules": str(kernel.modules),
                                    "release": kernel.release, "qemu": vm_kernel.qemu_binary(),
                                    "accel": accel, "accel_reason": why, "tap": VM_TAP}
        return machines

    def _host_json(self, bench: BenchConfig, pki: cloud.CloudPki) -> dict[str, Any]:
        host, port = self._cloud_addr(bench)
        return {
            "bench": bench.name, "console_link": str(self.console_link(bench)), "netns": bench.network.netns,
            "dut_command": self._dut_command(bench), "faults": list(bench.sim.lab_faults),  # type: ignore[union-attr]
            "cloud": {"host": host, "port": port, "ca_file": str(pki.ca_file),
                      "cert_file": str(pki.cert_file), "key_file": str(pki.key_file)},
            "cwd": str(self.dir),  # the lab's runtime folder: nothing runs from the source tree
            "forkserver": str(self.forkserver_socket) if self._forked(bench) else None,
            "web": self._web_json(bench),
        }

    def _web_json(self, bench: BenchConfig) -> dict[str, Any]:
        """The site and app service of this bench: its sample's serial and label pairing code, its flaws."""
        host, port = self._web_addr(bench)
        code_ref = getattr(bench.dut, "pairing_code", None)
        code = self.inv.resolve_secret(code_ref, field=f"bench {bench.name}: dut.pairing_code") if code_ref else None
        return {"host": host, "port": port, "serial": bench.dut.serial, "model": bench.dut.model,
                "pairing_code": code, "flaws": list(bench.sim.flaws)}  # type: ignore[union-attr]

    def _relay_json(self, plan: RelayPlan) -> dict[str, Any]:
        return {"id": plan.id, "kind": plan.kind, "host": plan.host, "port": plan.port,
                "pty_link": str(plan.pty_link) if plan.pty_link else None, "size": plan.size,
                "channels": {str(ch): str(self.bench_dir(b) / "power.sock") for ch, b in plan.channels.items()},
                "faults": sorted(plan.faults), "die_after": self.relay_die_after,
                "socket": f"{plan.program}.sock" if plan.program else None,
                "auth": {"user": plan.auth[0], "password": plan.auth[1]} if plan.auth else None}

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        os.replace(tmp, path)

    def _write_firmware(self) -> str | None:
        """Publish the vendor's releases of every model on the lab; returns the vendor public key.

        `write_releases` writes one model's index; the indexes of all models are merged so
        firmware/releases.json lists every release. None while lab.sim.vendor does not exist.
        """
        if importlib.util.find_spec("lab.sim.vendor") is None:
            return None
        vendor = importlib.import_module("lab.sim.vendor")
        folder = self.dir / "firmware"
        merged: dict[str, Any] = {}
        for model in sorted({b.dut.model for b in self.all_benches.values()}):
            index = json.loads(Path(vendor.write_releases(folder, model)).read_text(encoding="utf-8"))
            merged = {**index, "releases": merged.get("releases", []) + index.get("releases", [])}
        if merged:
            self._write_json(folder / "releases.json", merged)
        return str(vendor.vendor_public_key_hex())

    # --- up -----------------------------------------------------------------------------------

    def up(self) -> dict[str, Any]:
        """Start what is not running yet (idempotent) and wait until every endpoint exists."""
        plans = self.relay_plans()
        self._check_ports(plans)
        for bench in self.benches.values():
            self.console_link(bench)
        spaced = [b for b in self.benches.values() if b.network.netns]
        if spaced and (reason := netns.unavailable_reason()):
            raise NetworkFault(reason, bench=spaced[0].name)
        machines = self._vm_machines()  # a missing qemu or kernel is said before anything starts

        for sub in ("relays", "firmware", "cloud"):  # relays/: where an inventory's relay board links usually are
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.host_dir / "relays").mkdir(parents=True, exist_ok=True)
        ips = sorted({self._cloud_addr(b)[0] for b in self.all_benches.values()})
        pki = cloud.ensure_pki(self.dir / "cloud", self.inv.lab, ips)
        pubkey = self._write_firmware()

        state = self._load_state()
        started: dict[Path, subprocess.Popen[bytes]] = {}  # pid file -> process this call started
        fs_pid = self.host_dir / "forkserver.pid"
        if any(map(self._forked, self.benches.values())) and not _running(_read_pid(fs_pid), self.marker):
            self.forkserver_socket.unlink(missing_ok=True)  # ready = the new server's socket exists
            started[fs_pid] = _start([sys.executable, "-m", "lab.sim.forkserver", "--socket", str(self.forkserver_socket)],
                                     self.host_dir / "forkserver.log", fs_pid)
        for bench in self.benches.values():
            bdir = self.bench_dir(bench.name)
            (bdir / "flash").mkdir(parents=True, exist_ok=True)
            dut_json = self._dut_json(bench, pki, pubkey)
            if bench.name in machines:
                dut_json["vm"] = machines[bench.name]
            self._write_json(bdir / "dut.json", dut_json, mode=0o600)
            self._write_json(bdir / "host.json", self._host_json(bench, pki), mode=0o600)  # the pairing code
            net = bench.network
            if net.netns:
                assert net.interface and net.gateway
                veth = netns.VethSpec(net.netns, net.interface, net.gateway, net.address, net.prefix)
                netns.create(veth)
                if bench.name in machines:
                    netns.attach_tap(veth, VM_TAP)
                netns.set_link(veth, "ssh_unreachable" not in bench.sim.lab_faults)  # type: ignore[union-attr]
            if not _running(_read_pid(bdir / "host.pid"), self.marker):
                started[bdir / "host.pid"] = _start(
                    [sys.executable, "-m", "lab.sim.bench_host", "--bench-dir", str(bdir)],
                    bdir / "host.log", bdir / "host.pid")
        for plan in plans.values():
            cfg = self.host_dir / "relays" / f"{plan.id}.json"
            self._write_json(cfg, self._relay_json(plan), mode=0o600)  # a simulated PDU's password
            if plan.program is not None:
                power_sim.write_program(plan.program, Path(f"{plan.program}.sock"))
            pid_file = self.host_dir / "relays" / f"{plan.id}.pid"
            if not _running(_read_pid(pid_file), self.marker):
                started[pid_file] = _start([sys.executable, "-m", "lab.sim.relay", "--config", str(cfg)],
                                           self.host_dir / "relays" / f"{plan.id}.log", pid_file)
        self._wait_ready(plans, started)
        self._save_state(plans, state)
        return self.status()

    def _wait_ready(self, plans: dict[str, RelayPlan], started: dict[Path, subprocess.Popen[bytes]]) -> None:
        pending: dict[str, tuple[Any, Path, Path]] = {}  # what -> (ready(), pid file, log)
        if any(map(self._forked, self.benches.values())):
            pending["fork server"] = (self.forkserver_socket.exists, self.host_dir / "forkserver.pid",
                                      self.host_dir / "forkserver.log")
        for bench in self.benches.values():
            bdir = self.bench_dir(bench.name)
            link, sock = self.console_link(bench), bdir / "power.sock"
            pending[f"bench {bench.name}"] = (lambda l=link, s=sock: l.exists() and s.exists(),
                                              bdir / "host.pid", bdir / "host.log")
        for plan in plans.values():
            rdir = self.host_dir / "relays"
            ready = (lambda p=plan: _accepts(p.host, p.port)) if plan.kind in ("scpi", "netio") else \
                (lambda p=plan: Path(f"{p.program}.sock").exists()) if plan.kind == "ctl" else \
                (lambda p=plan: p.pty_link is not None and p.pty_link.exists())
            pending[f"relay {plan.id}"] = (ready, rdir / f"{plan.id}.pid", rdir / f"{plan.id}.log")
        deadline = time.monotonic() + self.start_timeout
        while pending:
            for what, (ready, pid_file, log) in list(pending.items()):
                if ready():
                    del pending[what]
                elif (started[pid_file].poll() is not None if pid_file in started
                      else not _running(_read_pid(pid_file), self.marker)):
                    raise LabFault(f"{what} exited while starting: {_tail(log)} (log: {log})")
            if pending and time.monotonic() > deadline:
                raise LabFault(f"{', '.join(pending)} not ready after {self.start_timeout:.0f} s; see their logs in {self.dir}")
            time.sleep(0.05)

    def _load_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.host_dir / "lab.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _save_state(self, plans: dict[str, RelayPlan], previous: dict[str, Any]) -> None:
        netnses = {b.network.netns: b.network.interface for b in self.benches.values() if b.network.netns}
        netnses.update(previous.get("netns", {}))
        links = sorted({str(self.console_link(b)) for b in self.benches.values()}
                       | {str(p.pty_link) for p in plans.values() if p.pty_link} | set(previous.get("links", [])))
        self._write_json(self.host_dir / "lab.json", {
            "lab": self.inv.lab, "labhost": self.labhost, "inventory": str(self.inv.path),
            "benches": {n: {"host_pid": _read_pid(self.bench_dir(n) / "host.pid")} for n in self.benches},
            "relays": {p.id: {"kind": p.kind, "endpoint": p.endpoint, "channels": p.channels,
                              "pid": _read_pid(self.host_dir / "relays" / f"{p.id}.pid")} for p in plans.values()},
            "netns": netnses, "links": links,
        })

    # --- down ---------------------------------------------------------------------------------

    def down(self, *, purge: bool = False, timeout: float = 10.0) -> None:
        """Kill every process, remove links, sockets and namespaces; logs stay unless purge."""
        state = self._load_state()
        if self.labhost is None:
            pid_files = [*self.dir.glob("*/host.pid"), *self.dir.glob("*/dut.pid"), *self.dir.glob("relays/*.pid"),
                         *self.dir.glob("labhost-*/relays/*.pid"), *self.dir.glob("labhost-*/forkserver.pid"),
                         self.dir / "forkserver.pid"]
            for host_state in self.dir.glob("labhost-*/lab.json"):  # the whole lab: every host's namespaces too
                with contextlib.suppress(OSError, ValueError):
                    state.setdefault("netns", {}).update(json.loads(host_state.read_text(encoding="utf-8")).get("netns", {}))
        else:
            pid_files = [*(self.bench_dir(n) / f for n in self.benches for f in ("host.pid", "dut.pid")),
                         *self.host_dir.glob("relays/*.pid"), self.host_dir / "forkserver.pid"]
        recorded = [pid for f in pid_files if (pid := _read_pid(f))]
        markers = self._sweep_markers()
        deadline = time.monotonic() + timeout
        while True:
            alive = [p for p in recorded if _running(p, self.marker)] + [
                p for m in markers for p in processes_mentioning(m)]
            if not alive:
                break
            if time.monotonic() > deadline:
                raise LabFault(f"processes {sorted(set(alive))} of lab {self.inv.lab} survive SIGKILL")
            for pid in dict.fromkeys(alive):
                _kill(pid)
            time.sleep(0.05)

        spaces = dict(state.get("netns", {}))
        spaces.update({b.network.netns: b.network.interface for b in self.benches.values() if b.network.netns})
        if spaces and netns.unavailable_reason() is None:
            for name, host_if in spaces.items():
                netns.delete(name, host_if)
        links = set(state.get("links", []))
        links |= {str(self.console_link(b)) for b in self.benches.values()}
        links |= {str(p.pty_link) for p in self.relay_plans().values() if p.pty_link}
        for link in map(Path, links):
            if link.is_symlink():
                link.unlink()
        mine = [self.dir] if self.labhost is None else [self.host_dir, *map(self.bench_dir, self.benches)]
        if purge:
            for folder in mine:
                shutil.rmtree(folder, ignore_errors=True)
        else:
            for folder in mine:
                if folder.exists():
                    self._remove_runtime_files(folder)
        left = [n for n in spaces if netns.exists(n)]
        if left:
            raise LabFault(f"network namespaces {left} of lab {self.inv.lab} could not be deleted")

    @staticmethod
    def _remove_runtime_files(folder: Path) -> None:
        """Everything but the logs: dut.json holds a resolved secret, flash is per-session state."""
        for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_symlink() or path.is_socket() or (path.is_file() and path.suffix != ".log"):
                path.unlink(missing_ok=True)
            elif path.is_dir() and not path.is_symlink() and path.name in ("flash", "firmware", "cloud"):
                shutil.rmtree(path, ignore_errors=True)

    # --- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What runs, per relay and bench, with each bench's power as its host reports it."""
        relays = {}
        for plan in self.relay_plans().values():
            pid = _read_pid(self.host_dir / "relays" / f"{plan.id}.pid")
            relays[plan.id] = {"kind": plan.kind, "endpoint": plan.endpoint, "pid": pid,
                               "running": _running(pid, self.marker), "faults": sorted(plan.faults),
                               "channels": plan.channels}
        benches = {}
        for name, bench in self.benches.items():
            bdir = self.bench_dir(name)
            pid = _read_pid(bdir / "host.pid")
            running = _running(pid, self.marker)
            dut_pid = _read_pid(bdir / "dut.pid")
            benches[name] = {
                "host_pid": pid, "running": running, "power": power_state(bdir / "power.sock") if running else None,
                "dut_pid": dut_pid if _running(dut_pid, self.marker) else None,
                "console": str(self.console_link(bench)), "netns": bench.network.netns,
                "faults": list(bench.sim.lab_faults),  # type: ignore[union-attr]
            }
        fs_pid = _read_pid(self.host_dir / "forkserver.pid")
        forkserver = {"pid": fs_pid, "running": _running(fs_pid, self.marker)} if fs_pid else None
        return {"lab": self.inv.lab, "labhost": self.labhost, "dir": str(self.dir), "relays": relays, "benches": benches,
                "forkserver": forkserver,
                "up": bool(benches) and all(b["running"] for b in benches.values())
                and all(r["running"] for r in relays.values())}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def power_state(sock_path: Path, timeout: float = 2.0) -> str | None:
    """`ON`/`OFF` as the bench host reports it, None if it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(sock_path))
            sock.sendall(b"STATE\n")
            reply = sock.makefile("rb").readline().decode().strip()
    except OSError:
        return None
    return reply.removeprefix("OK ") if reply.startswith("OK ") else None
