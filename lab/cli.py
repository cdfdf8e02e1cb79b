"""The `certlab` command line.

Every bad input ends in one line naming the file, the field and the fix, with exit status 2;
a user never sees a traceback (set CERTLAB_DEBUG=1 to get one when reporting a bug).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from lab import resources
from lab.catalog import Catalogs
from lab.catalog.cli import catalog
from lab.api.cli import serve, users_app
from lab.labhost.cli import labhost_app
from lab.reports.cli import keys_app, print_report_paths, report_app, sign, verify
from lab.records.cli import record_app, verify_record
from lab.sim.cli import sim_app
from lab.errors import CertlabError
from lab.inventory import Inventory, load_inventory

DEFAULT_REPORTS = Path("reports")  # runs go to ./reports of the current folder, or $CERTLAB_REPORTS_DIR, or --out

app = typer.Typer(no_args_is_help=True, add_completion=False, help="certlab: IoT security certification lab orchestrator")
lab_app = typer.Typer(no_args_is_help=True, help="Start, check and stop the lab's benches (simulated parts only for up/down).")
inventory_app = typer.Typer(no_args_is_help=True, help="Inspect and validate lab inventories.")
app.add_typer(lab_app, name="lab")
app.command("catalog", help="List EN 303 645 provisions and TS 103 701 test cases of an edition.")(catalog)
app.add_typer(inventory_app, name="inventory")
queue_app = typer.Typer(invoke_without_command=True, help="The queue of pending runs: show it, add to it, serve it.")
app.add_typer(queue_app, name="queue")
bench_app = typer.Typer(no_args_is_help=True, help="Benches in the result store: state, faults, quarantine.")
app.add_typer(bench_app, name="bench")
app.add_typer(keys_app, name="keys")
app.add_typer(report_app, name="report")
app.add_typer(users_app, name="users")
product_app = typer.Typer(no_args_is_help=True, help="A product's ICS and IXIT: check them, list the facts the suites need.")
app.add_typer(product_app, name="product")
assess_app = typer.Typer(no_args_is_help=True, help="The assessor's record of a product: decisions and hand-performed cases.")
app.add_typer(assess_app, name="assess")
app.add_typer(labhost_app, name="labhost")
app.add_typer(record_app, name="record")
app.add_typer(sim_app, name="sim")
app.command("verify-record")(verify_record)
app.command("serve")(serve)
app.command("sign")(sign)
app.command("verify")(verify)

out = Console()
err = Console(stderr=True)

InventoryOpt = Annotated[Optional[Path], typer.Option("-i", "--inventory", envvar=resources.INVENTORY_ENV,
                                                      show_envvar=False, help="lab inventory YAML (default: $CERTLAB_INVENTORY)")]
OutOpt = typer.Option("--out", envvar=resources.REPORTS_ENV, show_envvar=False,
                      help="reports folder; the run gets its own directory in it (default: ./reports or $CERTLAB_REPORTS_DIR)")
BenchOpt = Annotated[Optional[list[str]], typer.Option("--bench", "-b", help="only this bench (repeatable)")]

DEFAULT_CAMPAIGN_SEED = 303645
DEFAULT_CAMPAIGN_CUTS = 10
VERDICT_STYLE = {"PASS": "green", "FAIL": "bold red", "INCONCLUSIVE": "yellow", "NOT_APPLICABLE": "dim"}


def _load(path: Path | None) -> Inventory:
    """-i, else $CERTLAB_INVENTORY; neither: exit 2 saying so (never a silent default)."""
    return load_inventory(resources.inventory_path(path))


def _benches(inv: Inventory, names: list[str] | None) -> list[str]:
    for name in names or []:
        inv.bench(name)
    return list(names) if names else list(inv.benches)


@inventory_app.command("check")
def inventory_check(inventory: InventoryOpt = None) -> None:
    """Validate an inventory and list its benches (secrets are shown only by where they live)."""
    from lab.preflight import check_lab_profile

    inv = _load(inventory)
    check_lab_profile(inv)
    table = Table(title=f"lab {inv.lab} ({inv.path})")
    for col in ("bench", "power", "console", "address", "DUT", "simulated"):
        table.add_column(col)
    for b in inv.benches.values():
        p = b.power
        power = f"{p.driver} {p.endpoint} ch {p.channel}"
        sim = ", ".join(b.sim.flaws + b.sim.lab_faults) or "yes" if b.sim else "no"
        table.add_row(b.name, power, b.console.url, b.network.address,
                      f"{b.dut.model} {b.dut.serial} fw {b.dut.firmware}", sim)
    out.print(table)


LabhostOpt = Annotated[Optional[str], typer.Option(
    "--labhost", help="only the benches of this lab host (inventory certlab.labhost), e.g. inside its network namespace")]


@lab_app.command("up")
def lab_up(inventory: InventoryOpt = None, labhost: LabhostOpt = None) -> None:
    """Start the simulated relays, consoles and DUTs of an inventory (idempotent)."""
    inv = _load(inventory)
    from lab.sim.lab import SimLab

    lab = SimLab(inv, labhost=labhost)
    lab.up()
    where = f" of lab host {labhost!r}" if labhost else ""
    out.print(f"[green]simulated lab {inv.lab!r}{where} is up[/green]: {len(lab.benches)} benches "
              f"(runtime in {lab.host_dir})")


@lab_app.command("down")
def lab_down(inventory: InventoryOpt = None, labhost: LabhostOpt = None) -> None:
    """Stop every simulated part of an inventory (or of one lab host); leaves no process, pty or namespace behind."""
    inv = _load(inventory)
    from lab.sim.lab import SimLab

    SimLab(inv, labhost=labhost).down()
    out.print(f"simulated lab {inv.lab!r}{f' of lab host {labhost!r}' if labhost else ''} is down")


@lab_app.command("check")
def lab_check(inventory: InventoryOpt = None, bench: BenchOpt = None) -> None:
    """Per bench: power-cycle, time the boot banner, login prompt and SSH answer from power-on, log in over SSH."""
    inv = _load(inventory)
    from lab.check import check_lab

    results = check_lab(inv, _benches(inv, bench))
    table = Table(title=f"lab check: {inv.lab}", caption="seconds from power-on to each moment")
    for col in ("bench", "power", "console", "to boot banner s", "to login prompt s", "to SSH answer s", "ssh"):
        table.add_column(col)

    def secs(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    for r in results:
        table.add_row(r.bench, r.power, r.console, secs(r.banner_seconds), secs(r.prompt_seconds), secs(r.ssh_seconds),
                      r.ssh, style=None if r.ok else "red")
    out.print(table)
    failed = [r.bench for r in results if not r.ok]
    if failed:
        err.print(f"[red]{len(failed)} bench(es) failed the check: {', '.join(failed)}[/red]")
        raise typer.Exit(1)


@queue_app.callback()
def queue_show(ctx: typer.Context) -> None:
    """Show pending and claimed runs in the order benches will take them."""
    if ctx.invoked_subcommand is not None:
        return
    from lab.store import open_store, queued_runs

    with open_store() as store:
        rows = queued_runs(store)
        table = Table(title=f"queue ({store.url})")
        for col in ("id", "state", "priority", "DUT model", "capabilities", "suites", "queued", "bench / by"):
            table.add_column(col, overflow="fold")
        for q in rows:
            suites = ", ".join(Path(s.split("::")[0]).name for s in (q.payload or {}).get("suites", []))
            where = f"{q.bench} / {q.claimed_by}" if q.state == "claimed" else ""
            table.add_row(str(q.id), q.state, str(q.priority), q.model, ", ".join(q.capabilities or []), suites,
                          q.created_at.strftime("%Y-%m-%d %H:%M:%S"), where)
    out.print(table)
    if not rows:
        out.print("the queue is empty")


@queue_app.command("add")
def queue_add(
    model: Annotated[str, typer.Option("--model", help="DUT model a bench must hold (e.g. TH-100)")],
    capability: Annotated[Optional[list[str]], typer.Option("--capability", help="a capability the bench must have (repeatable)")] = None,
    suite: Annotated[Optional[list[str]], typer.Option("--suite", "-s", help="test suite folder or file (repeatable); default: the assessment, testsuites/en303645")] = None,
    priority: Annotated[int, typer.Option("--priority", help="higher runs first; equal priorities in queue order")] = 0,
    edition: Annotated[str, typer.Option("--edition", help="v2 or v3")] = "v2",
    ics: Annotated[Optional[Path], typer.Option("--ics", help="ICS file")] = None,
    ixit: Annotated[Optional[Path], typer.Option("--ixit", help="IXIT file")] = None,
    out_dir: Annotated[Path, OutOpt] = DEFAULT_REPORTS,
    release: Annotated[Optional[Path], typer.Option("--release", help="a firmware release image of MODEL to install on the bench's DUT before the tests (a re-test)")] = None,
) -> None:
    """Queue a run for any bench with this DUT model and capabilities."""
    from lab.orchestrator import queued
    from lab.store import open_store

    if not model.strip() or len(model) > 128:
        raise CertlabError("--model: give the DUT model the run is for (at most 128 characters), e.g. --model TH-100")
    if not -1000 <= priority <= 1000:
        raise CertlabError(f"--priority {priority}: give a number from -1000 to 1000")
    from lab.catalog import normalise_edition
    from lab.preflight import check_product

    edition = normalise_edition(edition)
    if ics is not None or ixit is not None:  # what is known now; the rest when a worker knows the bench (queue work)
        if ics is None or ixit is None:
            raise CertlabError("--ics and --ixit go together for a queued run (or give neither: the worker's "
                               "inventory then has them under products/<model>/)")
        check_product(model.strip(), edition, ics_path=ics, ixit_path=ixit)
    extra = _suite_options(edition=edition, ics=ics, ixit=ixit, assessments=None, seed=None, power_cuts=None)
    if release is not None:
        from lab.install import RELEASE_OPTION, read_release

        image = read_release(release)
        if image.model != model.strip():
            raise CertlabError(f"--release {release}: the image is for model {image.model}, the run is for {model.strip()}; "
                               "give a release of that model")
        extra += [RELEASE_OPTION, str(image.path)]
    suites = _suites(suite or [str(resources.assessment_suites())])
    with open_store() as store:
        qid = queued.add(store, model=model.strip(), capabilities=list(capability or []), suites=suites, options=extra,
                         edition=edition, reports_dir=out_dir.resolve(), priority=priority)
    needs = f" with {', '.join(capability)}" if capability else ""
    out.print(f"queued run {qid}: any {model} bench{needs}, priority {priority}")


FOLLOW_FOREVER_SECONDS = 100 * 365 * 86400.0  # `queue work --follow` without --max-seconds: until stopped


@queue_app.command("work")
def queue_work(
    inventory: InventoryOpt = None,
    max_seconds: Annotated[Optional[float], typer.Option("--max-seconds", help="stop dispatching after this long (default: an hour; with --follow: until stopped)")] = None,
    max_runs: Annotated[Optional[int], typer.Option("--max-runs", help="stop after this many runs")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="keep serving: wait for new entries when the queue is empty, until Ctrl-C or SIGTERM")] = False,
) -> None:
    """Serve the queue with this inventory's benches until it holds nothing they can do (or, with --follow, until stopped)."""
    from lab.orchestrator import queued
    from lab.store import open_store

    inv = _load(inventory)
    if max_seconds is None:
        max_seconds = FOLLOW_FOREVER_SECONDS if follow else 3600.0
    elif not 0 < max_seconds <= 7 * 86400:
        raise CertlabError(f"--max-seconds {max_seconds}: give a number of seconds up to a week")
    with open_store() as store:
        stats = queued.work(store, inv, max_seconds=max_seconds, max_runs=max_runs, console=out, follow=follow)
    out.print(f"dispatched {stats.dispatched} run(s): {stats.done} done, {stats.failed} failed"
              + (f"; quarantined: {', '.join(stats.quarantined)}" if stats.quarantined else ""))
    if stats.failed:
        raise typer.Exit(1)


@bench_app.command("list")
def bench_list(inventory: InventoryOpt = None) -> None:
    """Each bench's state in the store: available, leased (by whom), quarantined (why), fault count."""
    from lab.store import benches, lease_holder, open_store

    inv = _load(inventory)
    with open_store() as store:
        known = {b.name: b for b in benches(store, lab=inv.lab)}
        table = Table(title=f"benches of lab {inv.lab} ({store.url})")
        for col in ("bench", "DUT model", "capabilities", "state", "lab faults", "why / holder"):
            table.add_column(col, overflow="fold")
        for name, cfg in inv.benches.items():
            row = known.get(name)
            if row is None:
                table.add_row(name, cfg.dut.model, ", ".join(cfg.capabilities), "never used", "0", "")
                continue
            why = row.state_reason or (lease_holder(store, bench=name) or "") if row.state != "available" else ""
            style = {"quarantined": "red", "leased": "cyan"}.get(row.state)
            table.add_row(name, row.model, ", ".join(row.capabilities), row.state, str(row.fault_count), why, style=style)
    out.print(table)


@bench_app.command("release")
def bench_release(name: Annotated[str, typer.Argument(help="the quarantined bench")],
                  inventory: InventoryOpt = None) -> None:
    """Return a quarantined bench to the pool (after the lab fixed it); its fault count restarts."""
    from lab.store import benches, open_store, release_bench

    inv = _load(inventory)
    inv.bench(name)
    with open_store() as store:
        row = next((b for b in benches(store, lab=inv.lab) if b.name == name), None)
        if row is None or row.state != "quarantined":
            state = row.state if row else "never used"
            out.print(f"bench {name} is not quarantined ({state}); nothing to do")
            return
        release_bench(store, bench=name)
    out.print(f"bench {name} is back in the pool (was quarantined: {row.state_reason})")


FULL_TABLE_MAX = 60  # more results than this: verdict counts per bench, and only the results to look at


def _print_verdicts(doc: dict) -> Counter:
    results = sorted(doc["results"], key=lambda r: (r["bench"] or "", r["nodeid"]))
    counts: Counter = Counter(r["verdict"] for r in results)
    shown = results if len(results) <= FULL_TABLE_MAX else [r for r in results if r["verdict"] in ("FAIL", "INCONCLUSIVE")]
    if len(results) > FULL_TABLE_MAX:
        per_bench = Table(title=f"run {doc['run_id']}: verdicts per bench")
        verdicts = sorted(counts)
        for col in ("bench", *verdicts):
            per_bench.add_column(col, justify="left" if col == "bench" else "right")
        by_bench: dict[str, Counter] = {}
        for r in results:
            by_bench.setdefault(r["bench"] or "-", Counter())[r["verdict"]] += 1
        for bench, c in by_bench.items():
            per_bench.add_row(bench, *(str(c.get(v, 0)) for v in verdicts))
        out.print(per_bench)
    if shown:
        table = Table(title=f"run {doc['run_id']}" + ("" if shown is results else ": FAIL and INCONCLUSIVE"))
        for col in ("bench", "DUT", "test", "verdict", "reason"):
            table.add_column(col, overflow="fold")
        for r in shown:
            style = VERDICT_STYLE.get(r["verdict"], "")
            where = r["bench"] or "-"
            if r.get("executed_on") and r["executed_on"] != r["bench"]:
                where += f" (ran on {r['executed_on']})"
            table.add_row(where, f"{r['dut_serial']} fw {r['firmware']}", r["test_case"] or r["nodeid"],
                          f"[{style}]{r['verdict']}[/{style}]",
                          (r["reason"] or "").splitlines()[0][:100] if r["reason"] else "")
        out.print(table)
    out.print("  ".join(f"[{VERDICT_STYLE.get(k, '')}]{k}: {v}[/]" for k, v in sorted(counts.items())))
    outside = [r for r in results if not r.get("test_case")]
    if outside:  # the report counts only results tied to a test case; say which ones it leaves out
        tests = sorted({r["nodeid"].split("[")[0] for r in outside})
        out.print(f"{len(results) - len(outside)} results for EN 303 645 test cases; {len(outside)} outside the "
                  f"conformance scope (no test case, listed apart in the report): {', '.join(tests)}", highlight=False)
    return counts


def _suite_options(*, edition: str, ics: Path | None, ixit: Path | None, assessments: Path | None,
                   seed: int | None, power_cuts: int | None) -> list[str]:
    """The run's inputs as pytest options (lab.preflight has checked the files; the numbers are checked here)."""
    extra = ["--edition", edition]
    if ics:
        extra += ["--ics", str(ics.resolve())]
    if ixit:
        extra += ["--ixit", str(ixit.resolve())]
    if assessments:
        extra += ["--assessments", str(assessments.resolve())]
    if seed is not None:
        extra += ["--seed", str(seed)]
    if power_cuts is not None:
        if not 1 <= power_cuts <= 10_000:
            raise CertlabError(f"--power-cuts {power_cuts}: give a count from 1 to 10000")
        extra += ["--power-cuts", str(power_cuts)]
    return extra


def _provision_options(provisions: list[str], edition: str, catalogs: Catalogs) -> list[str]:
    """`--provision` as pytest options, each id checked against the edition before the lab moves."""
    if not provisions:
        return []
    catalog = catalogs.get(edition)
    for given in provisions:
        if not catalog.provision_ids(given):
            raise CertlabError(f"--provision {given}: not a provision of EN 303 645 {edition}; "
                               "give an id such as 5.3-2 (`certlab catalog` lists them)")
    return [arg for given in provisions for arg in ("--certlab-provision", given)]


def _exit_code(counts: Counter) -> int:
    if counts.get("FAIL"):
        return 1
    if counts.get("INCONCLUSIVE") or not counts:
        return 3
    return 0


@app.command("run")
def run(
    inventory: InventoryOpt = None,
    bench: BenchOpt = None,
    suite: Annotated[Optional[list[str]], typer.Option("--suite", "-s", help="test suite folder or file (repeatable); default: the assessment, testsuites/en303645 (the examples: --suite testsuites/examples)")] = None,
    out_dir: Annotated[Path, OutOpt] = DEFAULT_REPORTS,
    edition: Annotated[str, typer.Option("--edition", help="v2 (EN 303 645 V2.1.1) or v3 (V3.1.3)")] = "v2",
    ics: Annotated[Optional[Path], typer.Option("--ics", help="ICS file (default: products/<model>/ics.yaml beside the inventory)")] = None,
    ixit: Annotated[Optional[Path], typer.Option("--ixit", help="IXIT file (default: products/<model>/ixit.yaml)")] = None,
    assessments: Annotated[Optional[Path], typer.Option("--assessments", help="the assessor's record: decisions on conceptual cases, functional cases performed by hand")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="seed of the random power-cut moments")] = None,
    power_cuts: Annotated[Optional[int], typer.Option("--power-cuts", help="power cuts per resilience test")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="finish the interrupted run in this run directory")] = None,
    campaign: Annotated[Optional[str], typer.Option("--campaign", help="power-loss: many seeded power cuts, reported as a table")] = None,
    cuts: Annotated[Optional[int], typer.Option("--cuts", help="power cuts per phase in a power-loss campaign")] = None,
    provision: Annotated[Optional[list[str]], typer.Option("--provision", help="only the test cases of this provision, e.g. 5.3-2 (repeatable): a re-test; the rest is reported not assessed")] = None,
    release: Annotated[Optional[Path], typer.Option("--release", help="a firmware release image to install on each bench's DUT (through its IXIT's update mechanism) before the tests: a re-test of that release")] = None,
) -> None:
    """Run suites on benches in parallel (one pytest worker per bench); exit 0 / 1 FAIL / 3 INCONCLUSIVE."""
    from lab.orchestrator.launch import resume_run, start_run

    if resume is not None:
        spec, outcome = resume_run(resume, console=out)
        _report_run(outcome, campaign=spec.campaign)
        return
    inv = _load(inventory)
    if campaign is not None:
        suite, options = _campaign_options(campaign, cuts, seed, suite, power_cuts)
        extra = _suite_options(edition=edition, ics=ics, ixit=ixit, assessments=assessments, seed=None,
                               power_cuts=None) + options
    else:
        if cuts is not None:
            raise CertlabError("--cuts belongs to --campaign power-loss; for a normal run use --power-cuts")
        extra = _suite_options(edition=edition, ics=ics, ixit=ixit, assessments=assessments, seed=seed,
                               power_cuts=power_cuts)
    from lab.preflight import preflight

    catalogs = Catalogs()  # one parse for the provisions and the preflight
    extra += _provision_options(provision or [], edition, catalogs)
    names = _benches(inv, bench)
    suites = _suites(suite or [str(resources.assessment_suites())])
    # every input, for every bench of the run, before the lab moves
    preflight(inv, names, edition, ics=ics, ixit=ixit, assessments=assessments, suites=suites, catalogs=catalogs,
              release=release)
    if release is not None:
        from lab.install import RELEASE_OPTION

        extra += [RELEASE_OPTION, str(release.resolve())]
    outcome = start_run(inv, benches=names, suites=suites, options=extra, edition=edition, reports_dir=out_dir,
                        console=out, campaign=campaign)
    _report_run(outcome, campaign=campaign)


def _suites(given: list[str]) -> list[str]:
    """Suite folders, files or node ids, made absolute so that a resume works from anywhere."""
    suites = []
    for s in given:
        path, sep, rest = s.partition("::")
        full = resources.resolve_suite(path)  # testsuites/... also names the shipped suites
        if not full.exists():
            raise CertlabError(f"--suite {s}: no such file or folder; give a path under testsuites/")
        suites.append(str(full.resolve()) + sep + rest)
    return suites


def _campaign_options(campaign: str, cuts: int | None, seed: int | None, suite: list[str] | None,
                      power_cuts: int | None) -> tuple[list[str], list[str]]:
    from lab.orchestrator import campaign as power_loss

    if campaign != "power-loss":
        raise CertlabError(f"--campaign {campaign}: unknown campaign; the one there is: power-loss")
    if suite or power_cuts is not None:
        raise CertlabError("--campaign power-loss chooses its own suite and cuts; drop --suite/--power-cuts, use --cuts")
    seed = DEFAULT_CAMPAIGN_SEED if seed is None else seed
    cuts = DEFAULT_CAMPAIGN_CUTS if cuts is None else cuts
    options = power_loss.pytest_options(cuts, seed)  # checks both before anything starts
    out.print(f"power-loss campaign: {cuts} cut(s) per phase, seed {seed}", highlight=False)
    return [power_loss.SUITE_NODE], options


def _report_run(outcome, *, campaign: str | None) -> None:
    counts = _print_verdicts(outcome.doc)
    if campaign == "power-loss":
        from lab.orchestrator import campaign as power_loss
        from lab.orchestrator.rundir import write_json

        table = power_loss.summarise(power_loss.collect_cuts(outcome.run_dir))
        out.print(power_loss.render(table))
        write_json(outcome.run_dir / "campaign.json", power_loss.to_json(table))
    for name, why in outcome.quarantined.items():
        err.print(f"[yellow]bench {name} is quarantined ({why}); once it is fixed: certlab bench release {name}[/yellow]",
                  highlight=False)
    if outcome.cancelled:
        err.print("[yellow]run cancelled: DUTs switched off, unfinished tests are INCONCLUSIVE; "
                  f"finish it with: certlab run --resume {outcome.run_dir}[/yellow]")
    out.print(f"run directory: {outcome.run_dir}")
    out.print(f"report: certlab report {outcome.run_dir}", highlight=False)
    raise typer.Exit(_exit_code(counts))


def _release_restarted(inv: Inventory) -> None:
    """The demo has just (re)started its simulated benches: a quarantine from an earlier run is stale."""
    from lab.store import benches, open_store, release_bench

    with open_store() as store:
        for b in benches(store, lab=inv.lab):
            if b.state == "quarantined" and b.name in inv.benches and inv.benches[b.name].simulated:
                release_bench(store, bench=b.name)
                out.print(f"bench {b.name}: simulated bench restarted, quarantine lifted ({b.state_reason})",
                          highlight=False)


@app.command("demo")
def demo(
    inventory: Annotated[Optional[Path], typer.Option("-i", "--inventory", help="a simulated lab's inventory (default: "
                                                      "the shipped one, certlab_examples/sim.yaml)")] = None,
    out_dir: Annotated[Path, OutOpt] = DEFAULT_REPORTS,
) -> None:
    """Bring up the simulated lab, run every suite on every bench, write the signed reports, stop the lab."""
    from lab.orchestrator.launch import start_run
    from lab.reports.build import build_report, find_profile
    from lab.sim.lab import SimLab
    from lab.store.db import default_data_dir

    from lab.preflight import preflight

    inv = load_inventory(inventory or resources.sim_inventory())  # the demo's own lab, whatever $CERTLAB_INVENTORY says
    demo_suites = [str(resources.example_suites()), str(resources.assessment_suites())]
    preflight(inv, list(inv.benches), "v2", suites=demo_suites)
    _demo_key()
    lab = SimLab(inv)
    out.print(f"[bold]certlab demo[/bold] on simulated lab {inv.lab!r} ({len(inv.benches)} benches)")
    try:
        with out.status("starting the simulated lab ..."):
            lab.up()
        _release_restarted(inv)
        outcome = start_run(inv, benches=list(inv.benches), suites=demo_suites, options=[],
                            edition="v2", reports_dir=out_dir, console=out)
    finally:
        with out.status("stopping the simulated lab ..."):
            lab.down()
    counts = _print_verdicts(outcome.doc)
    with out.status("writing the reports (Allure, conformance report, PDF) and signing them ..."):
        report = build_report(outcome.run_dir, profile=find_profile(outcome.run_dir), data_dir=default_data_dir())
    print_report_paths(report)
    out.print(f"evidence:            {outcome.run_dir / 'evidence'}", highlight=False)
    record = _demo_record(outcome.run_dir, inv)
    _demo_web(record)
    raise typer.Exit(_exit_code(counts))


def _demo_record(run_dir: Path, inv: Inventory) -> dict:
    """The demo's report approved and its product's record opened (lab/webdemo.py)."""
    from lab.webdemo import certify_demo_run

    with out.status("approving the report and opening the product's record ..."):
        view = certify_demo_run(run_dir, Path(inv.path))
    rev = view["revision"]
    out.print(f"product record:      {view['model']} of {view['manufacturer']}, revision {rev['seq']} "
              f"({rev['kind']}), signed with the lab key", highlight=False)
    return view


def _demo_web(record: dict) -> None:
    """Point the newcomer at the web app, with an account per role in the demo's store, and at the
    product record: a release registered through the API is re-tested while `serve --demo` runs."""
    from rich.markup import escape

    from lab.store import open_store
    from lab.store.db import default_data_dir
    from lab.webdemo import ACCOUNTS_FILE, accounts_lines, ensure_demo_accounts, record_lines

    with open_store() as store:
        accounts = ensure_demo_accounts(store, default_data_dir())
    address = "http://127.0.0.1:8303"
    out.print("\n[bold]the lab in a browser:[/bold] .venv/bin/certlab serve --demo (the simulated lab and the queue "
              "worker stay up while it serves; Ctrl-C stops them)", highlight=False)
    for line in accounts_lines(accounts, f"{address}/"):
        out.print(escape(line), highlight=False, soft_wrap=True)
    out.print("\n[bold]after the certificate:[/bold] while it serves, register a release as the manufacturer; "
              "it is re-tested unprompted and the signed record updated", highlight=False)
    maker_token = next((a.token for a in accounts if a.role == "manufacturer"), "")
    for line in record_lines(record, address, default_data_dir() / ACCOUNTS_FILE, token_kept=bool(maker_token)):
        out.print(escape(line), highlight=False, soft_wrap=True)


def _demo_key() -> None:
    from lab.webdemo import ensure_demo_key

    made = ensure_demo_key()
    if made:
        out.print(made, highlight=False)


@app.command("init")
def init(
    folder: Annotated[Path, typer.Argument(help="the new lab's folder (new or empty)")],
    model: Annotated[str, typer.Option("--model", help="the first product's model (products/<model>/)")] = "MY-DEVICE-1",
    example: Annotated[Optional[str], typer.Option("--example", help="also copy a shipped example: sim (the "
                                                   "simulated lab, into DIR/sim/)")] = None,
) -> None:
    """Write a starting lab folder (inventory with one real-hardware bench, lab profile, an empty product) that validates."""
    from lab.labinit import write_lab

    if example not in (None, "sim"):
        raise CertlabError(f"--example {example}: unknown example; the one there is: sim")
    written = write_lab(folder, model=model, example_sim=example == "sim")
    for path in written:
        out.print(f"wrote {path}" + ("/ (the simulated lab: certlab lab up -i " + str(path / "sim.yaml") + ")"
                                     if path.name == "sim" else ""), highlight=False)
    out.print(f"next: certlab inventory check -i {folder / 'inventory.yaml'}; certlab product check -i "
              f"{folder / 'inventory.yaml'}; then export CERTLAB_INVENTORY={(folder / 'inventory.yaml').resolve()}",
              highlight=False)


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
    except Exception as exc:  # usage errors and the unexpected
        # usage errors come from click, or from the copy of it newer typer releases carry:
        # recognised by what they can do, not by a module path that moves between versions
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        if os.environ.get("CERTLAB_DEBUG"):
            traceback.print_exc()
        err.print(f"certlab: internal error: {type(exc).__name__}: {exc} (set CERTLAB_DEBUG=1 for details)")
        sys.exit(70)


@assess_app.command("template")
def assess_template(
    model: Annotated[str, typer.Option("--model", help="the product model (its ICS is products/<model>/ics.yaml)")],
    inventory: InventoryOpt = None,
    edition: Annotated[str, typer.Option("--edition", help="v2 (EN 303 645 V2.1.1) or v3 (V3.1.3)")] = "v2",
    ics: Annotated[Optional[Path], typer.Option("--ics", help="ICS file (default: products/<model>/ics.yaml)")] = None,
) -> None:
    """Print the YAML skeleton of the assessor's record: every test case certlab does not automate for the ICS."""
    from lab.assess_template import render_template
    from lab.catalog import load_catalog, normalise_edition
    from lab.ics import load_ics
    from lab.products import find_product_file, product_folder

    key = normalise_edition(edition)
    if ics is None:
        folder = product_folder(_load(inventory).base_dir, model)
        ics = find_product_file(folder, "ics", key)
        if ics is None:
            raise CertlabError(f"--model {model}: no ICS in {folder} (ics.{key}.yaml or ics.yaml); fix: put the "
                               f"manufacturer's ICS there or pass --ics FILE")
    typer.echo(render_template(load_catalog(key), load_ics(ics, key), model), nl=False)


ModelOpt = Annotated[str, typer.Option("--model", help="the product model (its files are products/<model>/ beside the inventory)")]
EditionOpt = Annotated[str, typer.Option("--edition", help="v2 (EN 303 645 V2.1.1) or v3 (V3.1.3)")]


def _product_paths(inventory: Path, model: str, edition: str, ics: Path | None, ixit: Path | None):
    from lab.preflight import product_files
    from lab.products import product_folder

    base = _load(inventory).base_dir
    return (*product_files(base, model, edition, ics=ics, ixit=ixit), product_folder(base, model))


@product_app.command("check")
def product_check(
    model: Annotated[Optional[str], typer.Option("--model", help="the product model (default: every model of the inventory's benches)")] = None,
    inventory: InventoryOpt = None,
    edition: EditionOpt = "v2",
    ics: Annotated[Optional[Path], typer.Option("--ics", help="ICS file (default: products/<model>/ics.yaml)")] = None,
    ixit: Annotated[Optional[Path], typer.Option("--ixit", help="IXIT file (default: products/<model>/ixit.yaml)")] = None,
) -> None:
    """Validate a product's ICS and IXIT with the run's own preflight: each file, and the ICS's N/A answers against the IXIT."""
    from lab.assessments import default_path, load_assessments
    from lab.catalog import normalise_edition
    from lab.preflight import check_product

    key = normalise_edition(edition)
    models = [model] if model else sorted({b.dut.model for b in _load(inventory).benches.values()})
    if (ics or ixit) and len(models) != 1:
        raise CertlabError("--ics/--ixit describe one product: name it with --model")
    for name in models:
        ics_path, ixit_path, folder = _product_paths(inventory, name, key, ics, ixit)
        loaded_ics, loaded_ixit = check_product(name, key, ics_path=ics_path, ixit_path=ixit_path, folder=folder)
        record = default_path(folder, key)
        if record is not None:
            load_assessments(record, key, model=name).check_refs(loaded_ixit)
        na = sum(1 for e in loaded_ics.provisions.values() if e.support == "N/A")
        missing = _missing_facts(loaded_ixit)
        out.print(f"{name}: ICS {ics_path} and IXIT {ixit_path} are valid for {loaded_ics.catalog.en}; "
                  f"{na} N/A answer(s) checked against the IXIT"
                  + (f"; assessor's record {record} valid" if record else ""), highlight=False)
        if missing:
            out.print(f"[yellow]{name}: facts the suites need that the IXIT does not give: {', '.join(missing)} "
                      f"(certlab product facts --model {name})[/yellow]", highlight=False)


def _missing_facts(ixit) -> list[str]:
    from lab.facts import FACTS, fact_value

    return [name for name in FACTS if fact_value(ixit.test_facts, name).startswith("missing")]


@product_app.command("facts")
def product_facts(
    model: ModelOpt,
    inventory: InventoryOpt = None,
    edition: EditionOpt = "v2",
    ixit: Annotated[Optional[Path], typer.Option("--ixit", help="IXIT file (default: products/<model>/ixit.yaml)")] = None,
) -> None:
    """Each fact the suites need beyond TS 103 701's lists: its meaning, the tests needing it, the product's value."""
    from lab.catalog import normalise_edition
    from lab.facts import FACTS, fact_value, readers
    from lab.ixit import load_ixit

    key = normalise_edition(edition)
    _, ixit_path, folder = _product_paths(inventory, model, key, None, ixit)
    if ixit_path is None:
        raise CertlabError(f"--model {model}: no IXIT in {folder}; fix: put the manufacturer's IXIT there or pass --ixit FILE")
    loaded = load_ixit(ixit_path)
    needed_by = readers(key)
    table = Table(title=f"{model}: test_facts ({ixit_path})")
    for col in ("field", "meaning", "unit", "test cases", "value"):
        table.add_column(col, overflow="fold")
    for name, fact in FACTS.items():
        value = fact_value(loaded.test_facts, name)
        style = "yellow" if value.startswith("missing") else "dim" if value.startswith("none:") else None
        table.add_row(f"test_facts.{name}", fact.meaning, fact.unit, ", ".join(needed_by.get(name, [])) or "-",
                      value, style=style)
    out.print(table)


if __name__ == "__main__":
    main()
