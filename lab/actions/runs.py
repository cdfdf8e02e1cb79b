"""Testing a booking: an engineer starts `certlab run` for it, cancels it; everyone who sees the
booking follows the run's progress.

The run is the ordinary `certlab run` command in its own process and session (so it survives a
restart of the server, stops with the same Ctrl-C semantics, and writes the same run directory
and store rows as one started by hand). Its inputs and console log go to a launch folder under
data_dir/bookings/<id>/launch-*/, with `launch.json` (booking, ICS path, pid, run id and, once
known, exit code).

The truth is that launch record and the store's run status, never one server process's memory:
any worker of `certlab serve --workers N`, or the server after a restart, reads the same. The
run follower (`run_follower`: one thread per app) moves a booking whose run process is gone from "running" to
"tested" (verdicts left) or back to "accepted", with a conditional UPDATE, so several workers
doing it at once is harmless. Reads never write.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lab import resources
from lab.actions.assessments import ASSESSMENTS_FILE, EVIDENCE_DIR, booking_folder
from lab.actions.periodic import Periodic
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound, TimedOut, Unavailable
from lab.actions.tenancy import booking_for, not_found, run_booking_for, visible_bookings
from lab.errors import CertlabError
from lab.inventory import load_inventory
from lab.ownerfiles import UMASK, copy_private, open_private, private_dir, write_private
from lab.orchestrator.rundir import option_value
from lab.preflight import preflight
from lab.store import service
from lab.store.models import Booking, Evidence, Run, TestResult
from lab.store.unit import reading

DEFAULT_SUITES = ("en303645",)
SUITES = resources.NAMED_SUITES
RUN_ID_WAIT = 30.0  # seconds for `certlab run` to check its inputs and make its run directory
LAUNCH_FILE = "launch.json"
RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}")
END_STATES = ("finished", "interrupted", "cancelled")
FOLLOWS_RUNS = ("manufacturer", "engineer")  # a certification body reads the released report, not the run
FOLLOW_PERIOD = 2.0  # seconds between the follower's looks at the running bookings
RECENT_RUNS = 50  # the runs page lists this many, newest first
CMDLINE_TRIES, CMDLINE_PAUSE = 10, 0.02  # an exec'ing process's empty command line: at most 0.2 s
TRANSCRIPT_LIMIT = 256 * 1024  # bytes of a transcript shown in a page (the file itself downloads whole)


# --- what a read returns ------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchCounts:
    bench: str
    done: int
    total: int
    verdicts: dict[str, int]


@dataclass(frozen=True)
class RunStatus:
    """A run's state as the store and its launch record tell it (the API's RunOut, field for field)."""

    run_id: str
    booking_id: int
    status: str  # starting, pending, running, finished, interrupted, cancelled, failed
    process: str  # running, exited, unknown
    exit_code: int | None
    benches: list[BenchCounts]
    done: int
    total: int
    verdicts: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def final(self) -> bool:
        """Nothing more will change: the run ended (or its process is gone)."""
        return self.status in END_STATES or self.status == "failed"

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "benches": [b.__dict__ for b in self.benches]}


# --- who sees which run --------------------------------------------------------------------------


def require_follower(who: Caller) -> None:
    if who.role not in FOLLOWS_RUNS:
        raise Forbidden(f"a {who.role} may not do this; it takes: {', '.join(FOLLOWS_RUNS)}")


def require_engineer(who: Caller) -> None:
    if not who.is_engineer:
        raise Forbidden(f"a {who.role} may not do this; it takes: engineer")


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise not_found("run", run_id)
    return run_id


def _booking_id_from_run_dir(svc: Services, run_id: str) -> int | None:
    """An earlier run of a booking: its run.json names the booking's launch folder (--ics)."""
    try:
        spec = json.loads((svc.settings.reports_dir / run_id / "run.json").read_text(encoding="utf-8"))
        ics = Path(option_value([str(o) for o in spec.get("options") or []], "--ics") or "")
        rel = ics.resolve().relative_to((svc.settings.data_dir / "bookings").resolve())
        return int(rel.parts[0])
    except (OSError, ValueError, IndexError, TypeError, AttributeError):
        return None


def run_booking(session: Session, svc: Services, who: Caller, run_id: str) -> Booking:
    """The booking a run tested, if `who` may see it; else 404 (another tenant's run does not exist).

    The same work whether the run is missing or another's: its directory is always looked at (an
    earlier run of a booking is known only there), then one query narrowed to the caller's bookings.
    """
    check_run_id(run_id)
    return run_booking_for(session, who, run_id, _booking_id_from_run_dir(svc, run_id))


def child_env(svc: Services) -> dict[str, str]:
    """The caller's environment, pinned to this app's store and data folder: the run's results
    must land where the app reads them."""
    return {**os.environ, "COLUMNS": "200",
            "CERTLAB_DATA_DIR": str(svc.settings.data_dir),
            "CERTLAB_DATABASE_URL": svc.store.engine.url.render_as_string(hide_password=False)}


# --- the launch record ---------------------------------------------------------------------------


def write_launch(folder: Path, **record: object) -> None:
    """Add to the launch record (atomically): what ran, its run id, and at the end its exit code."""
    try:
        record = {**json.loads((folder / LAUNCH_FILE).read_text(encoding="utf-8")), **record}
    except (OSError, ValueError):
        pass
    write_private(folder / LAUNCH_FILE, json.dumps(record, indent=2))


def launch_records(svc: Services, booking_id: int) -> list[dict[str, Any]]:
    """The booking's launch records, oldest first (each with its `folder`)."""
    records = []
    for path in booking_folder(svc, booking_id).glob(f"launch-*/{LAUNCH_FILE}"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records.append({**record, "folder": str(path.parent)})
    return sorted(records, key=lambda r: (float(r.get("started") or 0), r["folder"]))


def _record_of(svc: Services, booking_id: int, run_id: str) -> dict[str, Any] | None:
    return next((r for r in launch_records(svc, booking_id) if r.get("run_id") == run_id), None)


def process_alive(pid: object, ics: object) -> bool:
    """Is `pid` still the run process of this launch? Its command line must name the launch's ICS
    copy (a recycled pid is some other process); a zombie (ended, its waiter about to reap it) counts.
    A process just exec'ed shows an empty command line for a moment: looked at again, briefly."""
    if not isinstance(pid, int) or pid <= 0 or not ics:
        return False
    for _ in range(CMDLINE_TRIES):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return False
        if stat.rpartition(")")[2].split()[:1] == ["Z"]:
            return True  # ended, not yet reaped: its waiter is settling the booking and recording the code
        if cmdline:
            return str(ics).encode() in cmdline.split(b"\0")
        time.sleep(CMDLINE_PAUSE)
    return False


def _process(record: dict[str, Any] | None) -> tuple[str, int | None]:
    if record is None:
        return "unknown", None
    if record.get("exit_code") is not None:
        return "exited", int(record["exit_code"])
    if process_alive(record.get("pid"), record.get("ics")):
        return "running", None
    return "exited", None  # gone without its launcher seeing the end (a server restart): code unknown


@dataclass
class RunLauncher:
    """Reaps the run processes this server process started: one waiter thread each, which writes
    the exit code into the launch record. Held by the app; nothing else depends on it."""

    threads: list[threading.Thread] = field(default_factory=list)

    def watch(self, proc: subprocess.Popen, folder: Path, on_exit: Callable[[], None]) -> None:
        """Wait for `proc` in a thread; at its end call `on_exit` (settle the booking), then record the code."""
        thread = threading.Thread(target=self._wait, args=(proc, folder, on_exit), name=f"certlab-run-{proc.pid}",
                                  daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    @staticmethod
    def _wait(proc: subprocess.Popen, folder: Path, on_exit: Callable[[], None]) -> None:
        # wait WITHOUT reaping: while the zombie stays, readers see the run as running, so no one sees it
        # "exited" before the booking is settled and the exit code recorded
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        code = -info.si_status if info is not None and info.si_code != os.CLD_EXITED else (
            info.si_status if info is not None else None)
        try:
            on_exit()
        finally:
            write_launch(folder, exit_code=code if code is not None else proc.wait())
            proc.wait()


# --- launching -----------------------------------------------------------------------------------


def _suites(given: list[str]) -> list[str]:
    """Suite names, or paths inside testsuites/ only: a booking must not point `certlab run` anywhere else."""
    suites = []
    for s in given:
        path, sep, rest = SUITES.get(str(s), str(s)).partition("::")
        full = resources.resolve_suite(path).resolve()
        if not full.exists() or not full.is_relative_to(resources.suites_root().resolve()):
            raise Invalid(["body", "suites"], f"suite {s!r}: not a test suite folder or file under testsuites/")
        suites.append(str(full) + sep + rest)
    return suites


def _benches(svc: Services, model: str, wanted: list[str] | None) -> list[str]:
    try:
        inv = load_inventory(svc.settings.inventory)
    except CertlabError as exc:
        raise Unavailable(f"the lab's inventory is unusable: {exc}") from None
    names = [name for name, b in inv.benches.items() if b.dut.model == model]
    if wanted:
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise Invalid(["body", "benches"], f"bench(es) {', '.join(unknown)}: not in the inventory with a {model}; "
                                               f"those are: {', '.join(names) or 'none'}")
        names = list(wanted)
    if not names:
        raise Conflict(f"no bench of the lab's inventory holds a {model}")
    return names


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    errors = [line for line in text if "error" in line.lower()]
    return " | ".join((errors or text)[-lines:])


def _find_run_dir(reports_dir: Path, ics: str, since: float) -> str | None:
    """The run directory created after `since` whose run.json names our ICS copy (so our launch)."""
    try:
        candidates = [p for p in reports_dir.iterdir() if p.is_dir() and p.stat().st_mtime >= since - 2]
    except OSError:
        return None
    for path in candidates:
        try:
            spec = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a run, or run.json not written yet
        if isinstance(spec, dict) and ics in (spec.get("options") or []):
            return str(spec.get("run_id") or path.name)
    return None


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT first (certlab run switches the DUTs off), then the whole group if it lingers."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except (ProcessLookupError, PermissionError):
            return
        except subprocess.TimeoutExpired:
            continue


def _launch(svc: Services, booking: Booking, suites_given: list[str] | None, benches_given: list[str] | None,
            launcher: RunLauncher) -> str:
    """Start `certlab run` for the booking; its run id once its run directory exists."""
    suites = _suites(suites_given or list(booking.suites or []) or list(DEFAULT_SUITES))
    benches = _benches(svc, booking.product.model, benches_given)
    folder = booking_folder(svc, booking.id) / f"launch-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    private_dir(folder)  # the booking's documents, as every file below: owner-only (lab/ownerfiles.py)
    ics, ixit, log = folder / "ics.yaml", folder / "ixit.yaml", folder / "run.log"
    write_private(ics, booking.ics)
    write_private(ixit, booking.ixit)
    decided = booking_folder(svc, booking.id) / ASSESSMENTS_FILE
    assessments: list[str] = []
    if decided.is_file():  # the assessor's decisions as they are now go with this run
        copy = folder / ASSESSMENTS_FILE
        copy_private(decided, copy)
        uploads = decided.parent / EVIDENCE_DIR  # named in the record as evidence/<name>
        if uploads.is_dir():
            shutil.copytree(uploads, folder / EVIDENCE_DIR, ignore=shutil.ignore_patterns(".upload-*"),
                            copy_function=copy_private)
        assessments = ["--assessments", str(copy.resolve())]
    # the command line's preflight, here, so a bad input answers 422 with its one line before the lab moves
    # (CertlabError -> 422 in app.py) rather than as the tail of a failed `certlab run`
    preflight(load_inventory(svc.settings.inventory), benches, booking.edition, ics=ics, ixit=ixit,
              assessments=Path(assessments[1]) if assessments else None, suites=suites)
    reports_dir = svc.settings.reports_dir
    private_dir(reports_dir)
    argv = [sys.executable, "-m", "lab.cli", "run", "-i", str(Path(svc.settings.inventory).resolve()),
            *[a for b in benches for a in ("--bench", b)], *[a for s in suites for a in ("--suite", s)],
            "--edition", booking.edition, "--ics", str(ics.resolve()), "--ixit", str(ixit.resolve()), *assessments,
            "--out", str(reports_dir.resolve())]
    started = time.time()
    write_launch(folder, booking_id=booking.id, ics=str(ics.resolve()), started=started, argv=argv,
                 run_id=None, pid=None, exit_code=None)
    with open_private(log) as fh:  # umask: the run directory, evidence, logs the run writes are owner-only too
        proc = subprocess.Popen(argv, cwd=reports_dir, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env=child_env(svc), start_new_session=True, umask=UMASK)
    write_launch(folder, pid=proc.pid)
    deadline = time.monotonic() + RUN_ID_WAIT
    while time.monotonic() < deadline:
        ended = proc.poll() is not None
        run_id = _find_run_dir(reports_dir, str(ics.resolve()), started)
        if run_id:
            write_launch(folder, run_id=run_id)
            launcher.watch(proc, folder, lambda: settle_run(svc, booking.id, run_id))
            return run_id
        if ended:
            write_launch(folder, exit_code=proc.returncode)
            raise Invalid(["body"], f"certlab run stopped before the run began (exit {proc.returncode}): {_tail(log)}")
        time.sleep(0.1)
    _stop(proc)
    write_launch(folder, exit_code=proc.returncode)
    raise TimedOut(f"certlab run made no run directory within {RUN_ID_WAIT:g} s and was stopped: {_tail(log)}")


def start_run(svc: Services, who: Caller, booking_id: int, *, launcher: RunLauncher,
              suites: list[str] | None = None, benches: list[str] | None = None) -> RunStatus:
    """Start testing an accepted booking (engineers): claimed first, so two starts cannot both win."""
    require_engineer(who)
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
        booking.product  # noqa: B018 - loaded while the session is open
    if not service.claim_for_run(svc.store, booking_id=booking_id):
        raise Conflict(f"booking {booking_id} is {booking.status}; only an accepted booking can be started")
    try:
        run_id = _launch(svc, booking, suites, benches, launcher)
    except BaseException:
        service.unclaim(svc.store, booking_id=booking_id)
        raise
    service.attach_run(svc.store, booking_id=booking_id, run_id=run_id)
    return _status(svc, booking_id, run_id)


# --- reading -------------------------------------------------------------------------------------


def _counts_and_run(svc: Services, run_id: str) -> tuple[Run | None, dict[str, dict[str, int]]]:
    """The run row and its per-bench counts in ONE indexed query (the run by key, its results by
    ix_test_results_run_id_bench): what a live page polls."""
    with reading(svc.store) as s:
        rows = s.execute(
            select(Run.status, Run.started_at, Run.finished_at, TestResult.bench, TestResult.final,
                   TestResult.verdict, func.count(TestResult.id))
            .select_from(Run).outerjoin(TestResult, TestResult.run_id == Run.id).where(Run.id == run_id)
            .group_by(Run.status, Run.started_at, Run.finished_at, TestResult.bench, TestResult.final,
                      TestResult.verdict)).all()
    if not rows:
        return None, {}
    run = Run(id=run_id, status=rows[0][0], started_at=rows[0][1], finished_at=rows[0][2])
    counts: dict[str, dict[str, int]] = {}
    for *_, bench, final, verdict, n in rows:
        if bench is None:
            continue
        c = counts.setdefault(bench, {"total": 0})
        c["total"] += n
        if final:
            c[verdict] = c.get(verdict, 0) + n
    return run, counts


def _status(svc: Services, booking_id: int, run_id: str) -> RunStatus:
    """Progress from the store, liveness from the launch record and the process it names. Writes nothing."""
    run, counts = _counts_and_run(svc, run_id)
    process, exit_code = _process(_record_of(svc, booking_id, run_id))
    if process == "exited" and exit_code is None:
        # the waiter records the code, then reaps: gone since the record was read means the code is there now
        process, exit_code = _process(_record_of(svc, booking_id, run_id))
    state = run.status if run is not None else "starting"
    if process != "running" and state in ("starting", "pending", "running"):
        state = "failed" if process == "exited" or run is None else state
    benches, verdicts = [], {}
    for bench, c in sorted(counts.items()):
        done = {k: n for k, n in c.items() if k != "total"}
        for k, n in done.items():
            verdicts[k] = verdicts.get(k, 0) + n
        benches.append(BenchCounts(bench=bench, done=sum(done.values()), total=c["total"], verdicts=done))
    return RunStatus(run_id=run_id, booking_id=booking_id, status=state, process=process, exit_code=exit_code,
                     benches=benches, done=sum(b.done for b in benches), total=sum(b.total for b in benches),
                     verdicts=verdicts, started_at=run.started_at if run else None,
                     finished_at=run.finished_at if run else None)


def run_status(svc: Services, who: Caller, run_id: str) -> RunStatus:
    """A run's status, progress per bench and verdicts, for whoever follows the booking's runs."""
    require_follower(who)
    with reading(svc.store) as s:
        booking_id = run_booking(s, svc, who, run_id).id
    return _status(svc, booking_id, run_id)


def follow(svc: Services, who: Caller, run_id: str) -> Callable[[], RunStatus]:
    """For a live page: access checked once, then each call reads the run's status in one indexed
    query (plus its launch record) without asking again who may see it."""
    require_follower(who)
    with reading(svc.store) as s:
        booking_id = run_booking(s, svc, who, run_id).id
    return lambda: _status(svc, booking_id, run_id)


def _run_ids(svc: Services, booking: Booking) -> list[str]:
    ids = [r["run_id"] for r in launch_records(svc, booking.id) if r.get("run_id")]
    if booking.run_id and booking.run_id not in ids:
        ids.append(booking.run_id)
    return ids


def booking_run_statuses(svc: Services, who: Caller, booking_id: int) -> list[RunStatus]:
    """The runs of a booking, oldest first."""
    require_follower(who)
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
    return [_status(svc, booking_id, i) for i in _run_ids(svc, booking)]


def booking_runs(svc: Services, who: Caller, booking_id: int) -> dict[str, Any]:
    """Context of the booking page's runs part (templates/bookings/_runs.html): the runs, newest
    first, and whether this caller may start testing now. A certifier gets nothing (404 if unseen)."""
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id, documents=False)
        state = booking.status
    runs = [] if who.role not in FOLLOWS_RUNS else [_status(svc, booking_id, i) for i in _run_ids(svc, booking)][::-1]
    return {"booking_id": booking_id, "runs": runs, "can_start": who.is_engineer and state == "accepted",
            "follows": who.role in FOLLOWS_RUNS}


@dataclass(frozen=True)
class RunRow:
    run_id: str
    booking_id: int | None
    status: str
    started_at: datetime | None
    verdicts: dict[str, int]


def recent_runs(svc: Services, who: Caller, *, limit: int = RECENT_RUNS) -> list[RunRow]:
    """The newest runs the caller follows (an engineer: all; a manufacturer: its bookings' current
    runs), bounded: two indexed queries whatever the store holds."""
    require_follower(who)
    limit = max(1, min(int(limit), 200))
    with reading(svc.store) as s:
        mine = visible_bookings(who).with_only_columns(Booking.run_id, Booking.id).where(Booking.run_id.is_not(None))
        if who.is_engineer:
            query = (select(Run.id, Run.status, Run.started_at, Booking.id)
                     .outerjoin(Booking, Booking.run_id == Run.id))
        else:
            sub = mine.subquery()
            query = select(Run.id, Run.status, Run.started_at, sub.c.id).join(sub, sub.c.run_id == Run.id)
        rows = s.execute(query.order_by(Run.id.desc()).limit(limit)).all()
        ids = [r[0] for r in rows]
        counts: dict[str, dict[str, int]] = {}
        if ids:
            for run_id, verdict, n in s.execute(
                    select(TestResult.run_id, TestResult.verdict, func.count(TestResult.id))
                    .where(TestResult.run_id.in_(ids), TestResult.final.is_(True))
                    .group_by(TestResult.run_id, TestResult.verdict)).all():
                counts.setdefault(run_id, {})[verdict] = n
    return [RunRow(run_id=r[0], booking_id=r[3], status=r[1], started_at=r[2], verdicts=counts.get(r[0], {}))
            for r in rows]


@dataclass(frozen=True)
class ResultRow:
    id: int
    bench: str
    test_case: str
    provision: str | None
    verdict: str
    reason: str
    final: bool
    cause: str | None


def run_results(svc: Services, who: Caller, run_id: str, *, limit: int = 2000) -> list[ResultRow]:
    """The run's test cases with verdict and reason, bench by bench (bounded)."""
    require_follower(who)
    with reading(svc.store) as s:
        run_booking(s, svc, who, run_id)
        rows = s.execute(select(TestResult.id, TestResult.bench, TestResult.test_case, TestResult.test,
                                TestResult.nodeid, TestResult.provision, TestResult.verdict, TestResult.reason,
                                TestResult.final, TestResult.cause)
                         .where(TestResult.run_id == run_id).order_by(TestResult.bench, TestResult.id)
                         .limit(limit)).all()
    return [ResultRow(id=r.id, bench=r.bench, test_case=r.test_case or r.test or r.nodeid, provision=r.provision,
                      verdict=r.verdict, reason=r.reason or "",
                      final=bool(r.final), cause=r.cause) for r in rows]


@dataclass(frozen=True)
class ResultDetail:
    run_id: str
    result: ResultRow
    nodeid: str
    evidence: list[str]  # paths relative to the run directory that exist there
    transcript_name: str | None
    transcript: str | None
    truncated: bool


def _run_dir(svc: Services, run_id: str) -> Path:
    return (svc.settings.reports_dir / check_run_id(run_id)).resolve()


def _result(s: Session, run_id: str, result_id: int) -> TestResult:
    row = s.scalars(select(TestResult).where(TestResult.id == result_id, TestResult.run_id == run_id)).first()
    if row is None:
        raise NotFound("test result", result_id)
    return row


def _evidence_paths(s: Session, row: TestResult) -> list[str]:
    """The files the store names for this result (its evidence rows and its evidence list)."""
    named = list(row.evidence or []) + list(s.scalars(select(Evidence.path).where(Evidence.result_id == row.id)))
    return list(dict.fromkeys(str(p) for p in named))


def _safe_file(root: Path, rel: str) -> Path | None:
    """`root/rel` if it is a regular file inside `root` (no '..', no absolute path, no symlink out)."""
    if not rel or rel.startswith("/") or "\0" in rel or ".." in Path(rel).parts:
        return None
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def result_detail(svc: Services, who: Caller, run_id: str, result_id: int) -> ResultDetail:
    """One test case of a run: verdict, reason, its evidence files and the text of its transcript."""
    require_follower(who)
    with reading(svc.store) as s:
        run_booking(s, svc, who, run_id)
        row = _result(s, run_id, result_id)
        paths = _evidence_paths(s, row)
        result = ResultRow(id=row.id, bench=row.bench, test_case=row.test_case or row.test or row.nodeid,
                           provision=row.provision, verdict=row.verdict, reason=row.reason or "",
                           final=bool(row.final), cause=row.cause)
        nodeid = row.nodeid
    root = _run_dir(svc, run_id)
    present = [p for p in paths if _safe_file(root, p) is not None]
    text_files = [p for p in present if p.endswith((".log", ".txt", ".transcript"))]
    transcript = next((p for p in text_files if "transcript" in p or "console" in p), text_files[0] if text_files else None)
    text, truncated = None, False
    if transcript:
        data = (root / transcript).read_bytes()[:TRANSCRIPT_LIMIT + 1]
        truncated = len(data) > TRANSCRIPT_LIMIT
        text = data[:TRANSCRIPT_LIMIT].decode("utf-8", errors="replace")
    return ResultDetail(run_id=run_id, result=result, nodeid=nodeid, evidence=present, transcript_name=transcript,
                        transcript=text, truncated=truncated)


def evidence_file(svc: Services, who: Caller, run_id: str, result_id: int, rel: str) -> Path:
    """An evidence file of a result, served only if the store names it for that result and it lies
    inside the run directory; anything else is 404 (no path traversal, no other file)."""
    require_follower(who)
    with reading(svc.store) as s:
        run_booking(s, svc, who, run_id)
        paths = _evidence_paths(s, _result(s, run_id, result_id))
    path = _safe_file(_run_dir(svc, run_id), rel) if rel in paths else None
    if path is None:
        raise NotFound("evidence file", rel)
    return path


# --- cancelling ----------------------------------------------------------------------------------


def cancel_run(svc: Services, who: Caller, run_id: str) -> RunStatus:
    """Ctrl-C for a run (engineers), from any server process: SIGINT to the process group its launch
    record names, once /proc shows that pid really is this run (a recycled pid is left alone)."""
    require_engineer(who)
    with reading(svc.store) as s:
        booking_id = run_booking(s, svc, who, run_id).id
    record = _record_of(svc, booking_id, run_id)
    if record is None or not process_alive(record.get("pid"), record.get("ics")):
        raise Conflict(f"run {run_id} is not running here; nothing to cancel")
    pid = int(record["pid"])
    try:
        if os.getpgid(pid) != pid:  # started in its own session: its group is its pid
            raise Conflict(f"run {run_id}: process {pid} is not the run's process group; not cancelled")
        os.killpg(pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        raise Conflict(f"run {run_id} ended meanwhile; nothing to cancel") from None
    return _status(svc, booking_id, run_id)


# --- following -----------------------------------------------------------------------------------


def settle_runs(svc: Services) -> list[int]:
    """Finish the bookings whose run process is gone: "tested" if the run left verdicts, else back
    to "accepted". Idempotent and safe in several processes at once (`service.finish_run` is a
    conditional UPDATE). A booking whose newest launch is not its recorded run (a new launch in
    progress) is left alone. Returns the bookings it looked at and found ended."""
    with reading(svc.store) as s:
        running = s.execute(select(Booking.id, Booking.run_id)
                            .where(Booking.status == "running", Booking.run_id.is_not(None))).all()
    ended = []
    for booking_id, run_id in running:
        records = launch_records(svc, booking_id)
        if not records or records[-1].get("run_id") != run_id:
            continue  # launched by hand, or a newer launch is starting: not ours to judge
        process, _ = _process(records[-1])
        if process == "running":
            continue
        settle_run(svc, booking_id, run_id)
        ended.append(booking_id)
    return ended


def settle_run(svc: Services, booking_id: int, run_id: str) -> None:
    """The run's process ended: the booking is tested if the run left verdicts, else accepted again,
    as it is after a cancelled run (to be started again). A conditional UPDATE: only while the booking
    is still running that run."""
    with reading(svc.store) as s:
        cancelled = s.scalars(select(Run.status).where(Run.id == run_id)).first() == "cancelled"
    tested = not cancelled and (svc.settings.reports_dir / run_id / "verdicts.json").is_file()
    service.finish_run(svc.store, booking_id=booking_id, run_id=run_id, tested=tested)


def run_follower(svc: Services, period: float = FOLLOW_PERIOD) -> Periodic:
    """The app's thread that calls `settle_runs` every `period` seconds until stopped."""
    return Periodic("certlab-run-follower", lambda: settle_runs(svc), period)
