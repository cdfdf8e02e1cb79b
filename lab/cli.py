"""The `certlab` command line.

Every bad input ends in one line naming the file, the field and the fix, with exit status 2;
a user never sees a traceback (set CERTLAB_DEBUG=1 to get one when reporting a bug).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from lab.catalog.cli import catalog
from lab.errors import CertlabError
from lab.inventory import Inventory, load_inventory

ROOT = Path(__file__).resolve().parent.parent
SIM_INVENTORY = ROOT / "inventory" / "sim.yaml"
EXAMPLE_SUITES = ROOT / "testsuites" / "examples"

app = typer.Typer(no_args_is_help=True, add_completion=False, help="certlab: IoT security certification lab orchestrator")
lab_app = typer.Typer(no_args_is_help=True, help="Start, check and stop the lab's benches (simulated parts only for up/down).")
inventory_app = typer.Typer(no_args_is_help=True, help="Inspect and validate lab inventories.")
app.add_typer(lab_app, name="lab")
app.command("catalog", help="List EN 303 645 provisions and TS 103 701 test cases of an edition.")(catalog)
app.add_typer(inventory_app, name="inventory")

out = Console()
err = Console(stderr=True)

InventoryOpt = Annotated[Path, typer.Option("-i", "--inventory", help="lab inventory YAML")]
BenchOpt = Annotated[Optional[list[str]], typer.Option("--bench", "-b", help="only this bench (repeatable)")]

VERDICT_STYLE = {"PASS": "green", "FAIL": "bold red", "INCONCLUSIVE": "yellow", "NOT_APPLICABLE": "dim"}


def _load(path: Path) -> Inventory:
    return load_inventory(path)


def _benches(inv: Inventory, names: list[str] | None) -> list[str]:
    for name in names or []:
        inv.bench(name)
    return list(names) if names else list(inv.benches)


@inventory_app.command("check")
def inventory_check(inventory: InventoryOpt = SIM_INVENTORY) -> None:
    """Validate an inventory and list its benches (secrets are shown only by where they live)."""
    inv = _load(inventory)
    table = Table(title=f"lab {inv.lab} ({inv.path})")
    for col in ("bench", "power", "console", "address", "DUT", "simulated"):
        table.add_column(col)
    for b in inv.benches.values():
        p = b.power
        power = f"{p.driver} {getattr(p, 'resource', None) or getattr(p, 'url', '')} ch {p.channel}"
        sim = ", ".join(b.sim.flaws + b.sim.lab_faults) or "yes" if b.sim else "no"
        table.add_row(b.name, power, b.console.url, b.network.address,
                      f"{b.dut.model} {b.dut.serial} fw {b.dut.firmware}", sim)
    out.print(table)


@lab_app.command("up")
def lab_up(inventory: InventoryOpt = SIM_INVENTORY) -> None:
    """Start the simulated relays, consoles and DUTs of an inventory (idempotent)."""
    inv = _load(inventory)
    from lab.sim.lab import SimLab

    lab = SimLab(inv)
    lab.up()
    out.print(f"[green]simulated lab {inv.lab!r} is up[/green]: {len([b for b in inv.benches.values() if b.simulated])} benches "
              f"(runtime in {lab.root})")


@lab_app.command("down")
def lab_down(inventory: InventoryOpt = SIM_INVENTORY) -> None:
    """Stop every simulated part of an inventory; leaves no process, pty or namespace behind."""
    inv = _load(inventory)
    from lab.sim.lab import SimLab

    SimLab(inv).down()
    out.print(f"simulated lab {inv.lab!r} is down")


@lab_app.command("check")
def lab_check(inventory: InventoryOpt = SIM_INVENTORY, bench: BenchOpt = None) -> None:
    """Toggle power, wait for the console's boot banner and log in over SSH, per bench."""
    inv = _load(inventory)
    from lab.check import check_lab

    results = check_lab(inv, _benches(inv, bench))
    table = Table(title=f"lab check: {inv.lab}")
    for col in ("bench", "power", "console", "boot s", "ssh"):
        table.add_column(col)
    for r in results:
        table.add_row(r.bench, r.power, r.console, f"{r.boot_seconds:.2f}" if r.boot_seconds is not None else "-", r.ssh,
                      style=None if r.ok else "red")
    out.print(table)
    failed = [r.bench for r in results if not r.ok]
    if failed:
        err.print(f"[red]{len(failed)} bench(es) failed the check: {', '.join(failed)}[/red]")
        raise typer.Exit(1)


def _print_verdicts(doc: dict) -> Counter:
    table = Table(title=f"run {doc['run_id']}")
    for col in ("bench", "DUT", "test", "verdict", "reason"):
        table.add_column(col, overflow="fold")
    counts: Counter = Counter()
    for r in sorted(doc["results"], key=lambda r: (r["bench"] or "", r["nodeid"])):
        counts[r["verdict"]] += 1
        style = VERDICT_STYLE.get(r["verdict"], "")
        table.add_row(r["bench"] or "-", f"{r['dut_serial']} fw {r['firmware']}", r["test_case"],
                      f"[{style}]{r['verdict']}[/{style}]", (r["reason"] or "").splitlines()[0][:100] if r["reason"] else "")
    out.print(table)
    out.print("  ".join(f"[{VERDICT_STYLE.get(k, '')}]{k}: {v}[/]" for k, v in sorted(counts.items())))
    return counts


def _suite_options(inv: Inventory, *, edition: str, ics: Path | None, ixit: Path | None, assessments: Path | None,
                   seed: int | None, power_cuts: int | None) -> list[str]:
    """Check the run's inputs before any bench is touched, and turn them into pytest options."""
    from lab.catalog import load_catalog
    from lab.ics import load_ics
    from lab.ixit import load_ixit

    load_catalog(edition)
    extra = ["--edition", edition]
    if ics:
        load_ics(ics, edition)
        extra += ["--ics", str(ics.resolve())]
    if ixit:
        load_ixit(ixit)
        extra += ["--ixit", str(ixit.resolve())]
    if assessments:
        if not assessments.exists():
            raise CertlabError(f"--assessments {assessments}: file not found")
        extra += ["--assessments", str(assessments.resolve())]
    if seed is not None:
        extra += ["--seed", str(seed)]
    if power_cuts is not None:
        if not 1 <= power_cuts <= 10_000:
            raise CertlabError(f"--power-cuts {power_cuts}: give a count from 1 to 10000")
        extra += ["--power-cuts", str(power_cuts)]
    return extra


def _exit_code(counts: Counter) -> int:
    if counts.get("FAIL"):
        return 1
    if counts.get("INCONCLUSIVE") or not counts:
        return 3
    return 0


@app.command("run")
def run(
    inventory: InventoryOpt = SIM_INVENTORY,
    bench: BenchOpt = None,
    suite: Annotated[Optional[list[str]], typer.Option("--suite", "-s", help="test suite folder or file (repeatable)")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="reports folder; the run gets its own directory in it")] = ROOT / "reports",
    edition: Annotated[str, typer.Option("--edition", help="v2 (EN 303 645 V2.1.1) or v3 (V3.1.3)")] = "v2",
    ics: Annotated[Optional[Path], typer.Option("--ics", help="ICS file (default: products/<model>/ics.yaml beside the inventory)")] = None,
    ixit: Annotated[Optional[Path], typer.Option("--ixit", help="IXIT file (default: products/<model>/ixit.yaml)")] = None,
    assessments: Annotated[Optional[Path], typer.Option("--assessments", help="assessor decisions for conceptual cases")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="seed of the random power-cut moments")] = None,
    power_cuts: Annotated[Optional[int], typer.Option("--power-cuts", help="power cuts per resilience test")] = None,
) -> None:
    """Run suites on benches in parallel (one pytest worker per bench); exit 0 / 1 FAIL / 3 INCONCLUSIVE."""
    from lab.runner import new_run_dir, run_benches

    inv = _load(inventory)
    extra = _suite_options(inv, edition=edition, ics=ics, ixit=ixit, assessments=assessments, seed=seed, power_cuts=power_cuts)
    names = _benches(inv, bench)
    suites = [str(Path(s)) for s in (suite or [str(EXAMPLE_SUITES)])]
    for s in suites:
        if not Path(s).exists():
            raise CertlabError(f"--suite {s}: no such file or folder; give a path under testsuites/")
    run_dir = new_run_dir(out_dir)
    out.print(f"run {run_dir.name}: {len(names)} bench(es) in parallel: {', '.join(names)}")
    run_benches(inv, names, suites, run_dir, extra)
    doc = json.loads((run_dir / "verdicts.json").read_text())
    counts = _print_verdicts(doc)
    out.print(f"run directory: {run_dir}")
    raise typer.Exit(_exit_code(counts))


@app.command("demo")
def demo(
    inventory: InventoryOpt = SIM_INVENTORY,
    out_dir: Annotated[Path, typer.Option("--out", help="reports folder")] = ROOT / "reports",
) -> None:
    """Bring up the simulated lab, run the example tests on every bench, print verdicts, stop the lab."""
    from lab.runner import new_run_dir, run_benches
    inv = _load(inventory)
    from lab.sim.lab import SimLab

    lab = SimLab(inv)
    out.print(f"[bold]certlab demo[/bold] on simulated lab {inv.lab!r} ({len(inv.benches)} benches)")
    try:
        with out.status("starting the simulated lab ..."):
            lab.up()
        run_dir = new_run_dir(out_dir)
        with out.status(f"running {EXAMPLE_SUITES.relative_to(ROOT)} on every bench in parallel ..."):
            run_benches(inv, list(inv.benches), [str(EXAMPLE_SUITES)], run_dir)
        doc = json.loads((run_dir / "verdicts.json").read_text())
        counts = _print_verdicts(doc)
        out.print(f"verdicts: {run_dir / 'verdicts.json'}")
        out.print(f"evidence: {run_dir / 'evidence'}")
    finally:
        with out.status("stopping the simulated lab ..."):
            lab.down()
    raise typer.Exit(0 if _exit_code(counts) == 0 else _exit_code(counts))


def main() -> None:
    try:
        code = app(standalone_mode=False)  # click returns the code of a typer.Exit in this mode
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except CertlabError as exc:
        err.print(f"certlab: error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("certlab: interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        if os.environ.get("CERTLAB_DEBUG"):
            traceback.print_exc()
        err.print(f"certlab: internal error: {type(exc).__name__}: {exc} (set CERTLAB_DEBUG=1 for details)")
        sys.exit(70)


if __name__ == "__main__":
    main()
