"""Start or resume a run: the glue between the command line and the orchestrator."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lab.inventory import Inventory, load_inventory
from lab.orchestrator.executor import LocalExecutor
from lab.orchestrator.orchestrator import Orchestrator, RunOutcome
from lab.orchestrator.inputs import record_inputs
from lab.orchestrator.rundir import RunSpec, create_run_dir, load_spec, new_run_id
from lab.store import Store, open_store


def start_run(inventory: Inventory, *, benches: list[str], suites: list[str], options: list[str], edition: str,
              reports_dir: Path, console: Console, campaign: str | None = None) -> RunOutcome:
    with open_store() as store:  # before the run directory: a store that cannot open leaves nothing behind
        spec = RunSpec(run_id=new_run_id(), inventory=str(Path(inventory.path).resolve()), benches=tuple(benches),
                       suites=tuple(suites), options=tuple(options), edition=edition, campaign=campaign,
                       store=store.url)
        run_dir = create_run_dir(reports_dir, spec)
        record_inputs(run_dir, inventory, benches=spec.benches, edition=spec.edition, options=spec.options)
        console.print(f"run {spec.run_id}: {len(benches)} bench(es) in parallel: {', '.join(benches)}", highlight=False)
        return _execute(spec, run_dir, inventory, store, console, resume=False)


def resume_run(run_dir: Path, *, console: Console) -> tuple[RunSpec, RunOutcome]:
    spec = load_spec(run_dir)
    inventory = load_inventory(spec.inventory)
    with open_store() as store:
        console.print(f"resuming run {spec.run_id} on {', '.join(spec.benches)}", highlight=False)
        return spec, _execute(spec, run_dir, inventory, store, console, resume=True)


def _execute(spec: RunSpec, run_dir: Path, inventory: Inventory, store: Store, console: Console, *, resume: bool) -> RunOutcome:
    executor = LocalExecutor(run_dir, max_workers=len(inventory.benches))
    return Orchestrator(spec, run_dir, inventory, store, executor=executor, console=console, resume=resume).run()
