"""`certlab labhost serve|list`: run a lab host's workers; see which hosts are alive."""

from __future__ import annotations

import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from lab.errors import CertlabError

labhost_app = typer.Typer(no_args_is_help=True, help="Lab hosts: machines whose benches take work from the broker.")
out = Console()

InventoryEnvOpt = Annotated[Optional[Path], typer.Option("-i", "--inventory", envvar="CERTLAB_INVENTORY",
                                                         help="lab inventory YAML (default: $CERTLAB_INVENTORY)")]


def _settings():
    from lab.labhost.broker import BROKER_ENV, BrokerSettings

    settings = BrokerSettings.from_env()
    if settings is None:
        raise CertlabError(f"{BROKER_ENV} is not set; fix: export {BROKER_ENV}=redis://[:PASSWORD@]BROKER:6379/0 "
                           f"(docs/lab-hosts.md)")
    return settings


@labhost_app.command("serve")
def serve(
    name: Annotated[str, typer.Option("--name", help="this lab host's name, as the inventory's benches give it")],
    inventory: InventoryEnvOpt = None,
    spool: Annotated[Optional[Path], typer.Option("--spool", help="where items run before their files go back "
                                                                   "(default: $CERTLAB_DATA_DIR/spool/NAME)")] = None,
) -> None:
    """Take work for this host's benches from the broker until SIGTERM or Ctrl-C."""
    from lab.inventory import load_inventory
    from lab.labhost.serve import LabHost
    from lab.store.db import default_data_dir

    if inventory is None:
        raise CertlabError("no inventory: pass -i FILE or set CERTLAB_INVENTORY")
    host = LabHost(load_inventory(inventory), name, (spool or default_data_dir() / "spool" / name).resolve(), _settings(), out)

    def stop(signum: int, frame: object) -> None:
        host.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    raise typer.Exit(host.run())


@labhost_app.command("list")
def list_hosts(inventory: InventoryEnvOpt = None) -> None:
    """Lab hosts (of this inventory's lab, or all) with their benches and last heartbeat."""
    from lab.labhost.beats import read_beats
    from lab.labhost.broker import redis_client

    settings = _settings()
    lab = None
    expected: dict[str, list[str]] = {}
    if inventory is not None:
        from lab.inventory import load_inventory

        inv = load_inventory(inventory)
        lab = inv.lab
        for b in inv.benches.values():
            if b.labhost:
                expected.setdefault(b.labhost, []).append(b.name)
    client = redis_client(settings)
    try:
        beats = read_beats(client, lab)
    except Exception as exc:  # noqa: BLE001
        raise CertlabError(f"cannot read the broker {settings.shown}: {exc}; fix: check CERTLAB_BROKER_URL") from None
    table = Table(title=f"lab hosts ({settings.shown})")
    for col in ("lab", "host", "state", "last heartbeat", "serving", "not serving", "version"):
        table.add_column(col, overflow="fold")
    seen = set()
    for (blab, host), beat in sorted(beats.items()):
        seen.add(host)
        when = datetime.fromtimestamp(beat.at, timezone.utc).strftime("%H:%M:%S")
        state = "lost" if beat.lost() else beat.state
        idle = [f"{b}: {why}" for b, why in sorted(beat.unhealthy.items())]
        table.add_row(blab, host, state, f"{when} ({beat.age():.0f} s ago)", ", ".join(beat.serving) or "-",
                      "; ".join(idle) or "-", beat.version, style="red" if beat.lost() else None)
    for host in sorted(set(expected) - seen):
        table.add_row(lab or "", host, "never seen", "-", "-", ", ".join(sorted(expected[host])), "", style="red")
    out.print(table)
    if not beats and not expected:
        out.print("no lab host has sent a heartbeat", highlight=False)
