"""How a simulated lab wires the `command` and `http-pdu` power backends to its simulated relays.

A `command` bench's on/off/status commands call one program under the lab's runtime folder,
e.g. `/tmp/certlab-sim/<lab>/relays/ctl0 on 3`: `certlab lab up` writes that program (a wrapper
around `python -m lab.sim.relayctl --socket <program>.sock`) and starts a relay of kind `ctl`
listening on the socket. An `http-pdu` bench's URL names a loopback host:port: `lab up` starts a
relay of kind `netio` there, speaking the NETIO JSON API with the inventory's user and password.
Pure planning here (lab/sim/lab.py starts the processes), so a bad inventory is refused first.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from lab.drivers.power_command import CommandPowerConfig
from lab.drivers.power_http import HttpPduConfig
from lab.errors import InventoryError
from lab.inventory import BenchConfig, Inventory


def command_program(inv: Inventory, bench: BenchConfig, lab_dir: Path) -> Path:
    """The simulated relay's control program every command of the bench runs (argv[0])."""
    power = bench.power
    assert isinstance(power, CommandPowerConfig)
    firsts = set()
    for which in ("on", "off", "status"):
        argv = power.argv(which)  # type: ignore[arg-type]
        words = shlex.split(argv) if isinstance(argv, str) else argv
        firsts.add(str(inv.resolve_path(words[0])) if words else "")
    program = Path(firsts.pop()) if len(firsts) == 1 else None
    if program is None or lab_dir.resolve() not in program.resolve().parents:
        raise InventoryError(
            f"{inv.path}: bench {bench.name!r}, field 'certlab.power.on': a simulated command bench runs its simulated "
            f"relay's control program in the lab's folder; write on/off/status as [{lab_dir}/relays/ctl0, on|off|status, "
            "'{channel}']")
    return program


def pdu_address(inv: Inventory, bench: BenchConfig) -> tuple[str, int]:
    """The loopback host:port of the simulated PDU an `http-pdu` bench names."""
    power = bench.power
    assert isinstance(power, HttpPduConfig)
    parts = urllib.parse.urlsplit(power.url)
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback or parts.path != "/netio.json":
        raise InventoryError(f"{inv.path}: bench {bench.name!r}, field 'certlab.power.url': a simulated PDU answers on "
                             "loopback over plain HTTP; write http://127.0.0.1:<port>/netio.json")
    return host, parts.port or 80


def pdu_auth(inv: Inventory, benches: Iterable[BenchConfig]) -> tuple[str, str] | None:
    """The one user and password a simulated PDU accepts: every bench on it must give the same."""
    found: dict[tuple[str, str] | None, str] = {}
    for bench in benches:
        power = bench.power
        assert isinstance(power, HttpPduConfig)
        auth = None if power.user is None or power.password is None else \
            (power.user, inv.resolve_secret(power.password, field=f"bench {bench.name!r} power.password"))
        found.setdefault(auth, bench.name)
    if len(found) > 1:
        raise InventoryError(f"{inv.path}: benches {', '.join(sorted(found.values()))} share one simulated PDU with "
                             "different power.user/power.password; give them the same")
    return next(iter(found))


def write_program(program: Path, socket: Path) -> None:
    """The control program an inventory names: `<program> on|off|status <channel>`."""
    program.parent.mkdir(parents=True, exist_ok=True)
    tmp = program.with_name(f".{program.name}.tmp")
    tmp.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m lab.sim.relayctl "
                   f"--socket {shlex.quote(str(socket))} \"$@\"\n", encoding="utf-8")
    os.chmod(tmp, 0o755)
    os.replace(tmp, program)
