"""Testing a booking: an engineer starts `certlab run` for it, everyone who sees the booking
follows the run's progress.

The run is the ordinary `certlab run` command in its own process and session (so it survives a
restart of the API, is stopped by the same Ctrl-C semantics, and writes the same run directory
and store rows as one started by hand). Its inputs (the booking's ICS and IXIT) and its console
log go to a launch folder under data_dir/bookings/<id>/; the run id is read from the run
directory that names that folder. A thread owned by the app waits for the process and moves the
booking to "tested".
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from lab.api.schemas.bookings import SUITES, IdPath
from lab.api.deps import Allow, Caller, Engineer, Services, ServicesDep
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors, invalid
from lab.api.schemas.service import BenchProgress, RunIdPath, RunOut, RunStart
from lab.actions.tenancy import booking_for, not_found, run_booking_for
from lab import resources
from lab.errors import CertlabError
from lab.preflight import preflight
from lab.inventory import load_inventory
from lab.ownerfiles import UMASK, copy_private, open_private, private_dir, write_private
from lab.store import get_run, result_counts, service
from lab.store.models import Booking
from lab.store.unit import reading

router = APIRouter(tags=["runs"], responses=errors(*AUTHENTICATED))

DEFAULT_SUITES = ("en303645",)
RUN_ID_WAIT = 30.0  # seconds for `certlab run` to check its inputs and make its run directory
LAUNCH_FILE = "launch.json"
RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}")
END_STATES = ("finished", "interrupted", "cancelled")

# a certification body reads the report released to it, not the run's progress
FollowsRuns = Annotated[Caller, Depends(Allow("manufacturer", "engineer"))]


@dataclass
class Launch:
    """One `certlab run` process this app started."""

    run_id: str
    booking_id: int
    folder: Path
    proc: subprocess.Popen
    exit_code: int | None = None  # set once the process ended AND the booking was updated


@dataclass
class RunLauncher:
    """The app's running processes (app.state, never a module global): one waiter thread each."""

    launches: dict[str, Launch] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, launch: Launch, svc: Services) -> None:
        with self.lock:
            self.launches[launch.run_id] = launch
        threading.Thread(target=self._wait, args=(launch, svc), name=f"certlab-run-{launch.run_id}",
                         daemon=True).start()

    def get(self, run_id: str) -> Launch | None:
        with self.lock:
            return self.launches.get(run_id)

    @staticmethod
    def _wait(launch: Launch, svc: Services) -> None:
        code = launch.proc.wait()
        tested = (svc.settings.reports_dir / launch.run_id / "verdicts.json").is_file()
        try:
            service.finish_run(svc.store, booking_id=launch.booking_id, run_id=launch.run_id, tested=tested)
        finally:
            _write_launch(launch.folder, run_id=launch.run_id, pid=launch.proc.pid, exit_code=code)
            launch.exit_code = code


def launcher(request: Request) -> RunLauncher:
    """The app's launcher (made by create_app)."""
    return request.app.state.run_launcher


# --- helpers shared by the run, report and review routes -------------------------------------


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise not_found("run", run_id)
    return run_id


ASSESSMENTS_FILE = "assessments.yaml"  # the assessor's decisions for a booking (routes/assessments.py)


def booking_folder(svc: Services, booking_id: int) -> Path:
    return svc.settings.data_dir / "bookings" / str(booking_id)


def _booking_id_from_run_dir(svc: Services, run_id: str) -> int | None:
    """An earlier run of a booking: its run.json names the booking's launch folder (--ics)."""
    try:
        spec = json.loads((svc.settings.reports_dir / run_id / "run.json").read_text(encoding="utf-8"))
        options = list(spec.get("options") or [])
        ics = Path(options[options.index("--ics") + 1])
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


# --- launching --------------------------------------------------------------------------------


def _suites(given: list[str]) -> list[str]:
    """Suite names, or paths inside testsuites/ only: a booking must not point `certlab run` anywhere else."""
    names = dict(SUITES)
    suites = []
    for s in given:
        path, sep, rest = names.get(str(s), str(s)).partition("::")
        full = resources.resolve_suite(path).resolve()
        if not full.exists() or not full.is_relative_to(resources.suites_root().resolve()):
            raise invalid(["body", "suites"], f"suite {s!r}: not a test suite folder or file under testsuites/")
        suites.append(str(full) + sep + rest)
    return suites


def _benches(svc: Services, model: str, wanted: list[str] | None) -> list[str]:
    try:
        inv = load_inventory(svc.settings.inventory)
    except CertlabError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the lab's inventory is unusable: {exc}") from None
    names = [name for name, b in inv.benches.items() if b.dut.model == model]
    if wanted:
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise invalid(["body", "benches"], f"bench(es) {', '.join(unknown)}: not in the inventory with a {model}; "
                                               f"those are: {', '.join(names) or 'none'}")
        names = list(wanted)
    if not names:
        raise HTTPException(status.HTTP_409_CONFLICT, f"no bench of the lab's inventory holds a {model}")
    return names


def _write_launch(folder: Path, **record: object) -> None:
    """Add to the launch record (atomically): what ran, its run id, and at the end its exit code."""
    try:
        record = {**json.loads((folder / LAUNCH_FILE).read_text(encoding="utf-8")), **record}
    except (OSError, ValueError):
        pass
    write_private(folder / LAUNCH_FILE, json.dumps(record, indent=2))


def child_env(svc: Services) -> dict[str, str]:
    """The caller's environment, pinned to this app's store and data folder: the run's results
    must land where the API reads them."""
    return {**os.environ, "COLUMNS": "200",
            "CERTLAB_DATA_DIR": str(svc.settings.data_dir),
            "CERTLAB_DATABASE_URL": svc.store.engine.url.render_as_string(hide_password=False)}


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


def _launch(svc: Services, booking: Booking, body: RunStart) -> Launch:
    suites = _suites(body.suites or list(booking.suites or []) or list(DEFAULT_SUITES))
    benches = _benches(svc, booking.product.model, body.benches)
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
        uploads = decided.parent / "evidence"  # routes/assessments.py EVIDENCE_DIR: named as evidence/<name>
        if uploads.is_dir():
            shutil.copytree(uploads, folder / "evidence", ignore=shutil.ignore_patterns(".upload-*"),
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
    with open_private(log) as fh:  # umask: the run directory, evidence, logs the run writes are owner-only too
        proc = subprocess.Popen(argv, cwd=reports_dir, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env=child_env(svc), start_new_session=True, umask=UMASK)
    deadline = time.monotonic() + RUN_ID_WAIT
    while time.monotonic() < deadline:
        ended = proc.poll() is not None
        run_id = _find_run_dir(reports_dir, str(ics.resolve()), started)
        if run_id:
            _write_launch(folder, run_id=run_id, pid=proc.pid, exit_code=None, argv=argv)
            return Launch(run_id=run_id, booking_id=booking.id, folder=folder, proc=proc)
        if ended:
            raise invalid(["body"], f"certlab run stopped before the run began (exit {proc.returncode}): {_tail(log)}")
        time.sleep(0.1)
    _stop(proc)
    raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT,
                        f"certlab run made no run directory within {RUN_ID_WAIT:g} s and was stopped: {_tail(log)}")


@router.post("/bookings/{booking_id}/runs", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Start testing an accepted booking (lab engineers)",
             responses=errors(403, 404, *BODY, 422, 504, why={
                 409: "The booking is not accepted, or no bench holds its model"}))
def start_run(booking_id: IdPath, request: Request, who: Engineer, svc: ServicesDep,
              body: Annotated[RunStart | None, Body()] = None) -> RunOut:
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
    if not service.claim_for_run(svc.store, booking_id=booking_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"booking {booking_id} is {booking.status}; only an accepted "
                            f"booking can be started")
    try:
        launch = _launch(svc, booking, body or RunStart())
    except BaseException:
        service.unclaim(svc.store, booking_id=booking_id)
        raise
    service.attach_run(svc.store, booking_id=booking_id, run_id=launch.run_id)
    booking.status, booking.run_id = "running", launch.run_id
    launcher(request).add(launch, svc)
    return run_out(svc, launcher(request), launch.run_id, booking)


def run_out(svc: Services, runs: RunLauncher, run_id: str, booking: Booking) -> RunOut:
    """Progress from the store, liveness from the process (or its launch record after a restart)."""
    booking_id = booking.id
    run = get_run(svc.store, run_id=run_id)
    counts = result_counts(svc.store, run_id=run_id)
    launch = runs.get(run_id)
    exit_code: int | None = None
    if launch is not None:
        process = "running" if launch.exit_code is None else "exited"
        exit_code = launch.exit_code
    else:
        process, exit_code = _recorded(svc, booking_id, run_id)
    state = run.status if run is not None else "starting"
    if process != "running" and state in ("starting", "pending", "running"):
        state = "failed" if process == "exited" or run is None else state
    if launch is None and state in END_STATES and booking.status == "running" and booking.run_id == run_id:
        tested = (svc.settings.reports_dir / run_id / "verdicts.json").is_file()
        service.finish_run(svc.store, booking_id=booking_id, run_id=run_id, tested=tested)  # after an API restart
    benches, verdicts = [], {}
    for bench, c in sorted(counts.items()):
        done = {k: n for k, n in c.items() if k != "total"}
        for k, n in done.items():
            verdicts[k] = verdicts.get(k, 0) + n
        benches.append(BenchProgress(bench=bench, done=sum(done.values()), total=c["total"], verdicts=done))
    return RunOut(run_id=run_id, booking_id=booking_id, status=state, process=process,  # type: ignore[arg-type]
                  exit_code=exit_code, benches=benches, done=sum(b.done for b in benches),
                  total=sum(b.total for b in benches), verdicts=verdicts,
                  started_at=run.started_at if run else None, finished_at=run.finished_at if run else None)


def _launches(svc: Services, booking_id: int) -> list[dict]:
    records = []
    for path in sorted(booking_folder(svc, booking_id).glob(f"launch-*/{LAUNCH_FILE}")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return records


def _recorded(svc: Services, booking_id: int, run_id: str) -> tuple[str, int | None]:
    for record in _launches(svc, booking_id):
        if record.get("run_id") == run_id and record.get("exit_code") is not None:
            return "exited", int(record["exit_code"])
    return "unknown", None


@router.get("/runs/{run_id}", response_model=RunOut, responses=errors(403, 404, 422),
            summary="A run's status, progress per bench and verdicts")
def get_run_status(run_id: RunIdPath, request: Request, who: FollowsRuns, svc: ServicesDep) -> RunOut:
    with reading(svc.store) as s:
        booking = run_booking(s, svc, who, run_id)
    return run_out(svc, launcher(request), run_id, booking)


@router.get("/bookings/{booking_id}/runs", response_model=list[RunOut], responses=errors(403, 404, 422),
            summary="The runs of a booking, oldest first")
def booking_runs(booking_id: IdPath, request: Request, who: FollowsRuns, svc: ServicesDep) -> list[RunOut]:
    with reading(svc.store) as s:
        booking = booking_for(s, who, booking_id)
    ids = [r["run_id"] for r in _launches(svc, booking_id) if r.get("run_id")]
    if booking.run_id and booking.run_id not in ids:
        ids.append(booking.run_id)
    return [run_out(svc, launcher(request), i, booking) for i in ids]
