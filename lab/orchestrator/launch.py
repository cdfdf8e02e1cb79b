"""Start or resume a run: the glue between the command line and the orchestrator."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lab.errors import CertlabError
from lab.inventory import Inventory, load_inventory
from lab.labhost.broker import BROKER_ENV, BrokerSettings
from lab.orchestrator.executor import Executor, LocalExecutor
from lab.orchestrator.orchestrator import Orchestrator, RunOutcome
from lab.orchestrator.inputs import record_inputs
from lab.orchestrator.rundir import RunSpec, create_run_dir, load_spec, new_run_id
from lab.store import Store, open_store


def start_run(inventory: Inventory, *, benches: list[str], suites: list[str], options: list[str], edition: str,
              reports_dir: Path, console: Console, campaign: str | None = None) -> RunOutcome:
    check_labhosts(inventory, benches)
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


def check_labhosts(inventory: Inventory, benches: list[str] | tuple[str, ...]) -> None:
    """With a broker, every bench of the run must say which lab host it hangs off (CertlabError)."""
    if BrokerSettings.from_env() is None:
        return
    missing = [b for b in benches if inventory.bench(b).labhost is None]
    if missing:
        raise CertlabError(f"{inventory.path}: bench {missing[0]} has no labhost, and {BROKER_ENV} sends work to lab "
                           f"hosts; fix: add `labhost: NAME` to its certlab: block (docs/lab-hosts.md), or unset "
                           f"{BROKER_ENV} to run on this machine")


def make_executor(run_dir: Path, inventory: Inventory, store: Store, *, max_workers: int) -> Executor:
    """The local process pool, or the lab hosts behind the broker when CERTLAB_BROKER_URL is set."""
    settings = BrokerSettings.from_env()
    if settings is None:
        return LocalExecutor(run_dir, max_workers=max_workers, inventory=inventory)
    from lab.labhost.executor import RemoteExecutor

    return RemoteExecutor(run_dir, inventory, store, settings)


def _execute(spec: RunSpec, run_dir: Path, inventory: Inventory, store: Store, console: Console, *, resume: bool) -> RunOutcome:
    check_labhosts(inventory, spec.benches)
    executor = make_executor(run_dir, inventory, store, max_workers=len(inventory.benches))
    try:
        return Orchestrator(spec, run_dir, inventory, store, executor=executor, console=console, resume=resume).run()
    finally:
        executor.close()
