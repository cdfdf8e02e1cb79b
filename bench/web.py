"""The web app's pages over a big store: p50/p95/p99 of each main page with 10,000 runs and 1,000,000 results.

Fills a fresh store (SQLite in a temporary folder by default; `--database-url` for an empty
PostgreSQL database) in bulk (SQLAlchemy core executemany, one transaction per table): the
organisations and users of the three roles, products, slots, benches with their leases and
health events, bookings (one per run, with the real TH-100 ICS and IXIT, plus requested ones),
runs (finished, some running, interrupted, cancelled), results (100 per run by default, on two
benches), samples with their custody, report releases and reviews, a queue. Then starts
`certlab serve` on loopback over it, signs in (POST /login with the password set through
lab.store.accounts, the session cookie kept) as the engineer, the manufacturer and the certifier,
and drives N keep-alive clients at each page, bounded by a request count AND a time limit per
page. Prints a table (p50/p95/p99/max, requests, errors) and whether each page is under 200 ms
at p95. Printed, never asserted.

`--explain` then runs each slow page once in-process (FastAPI TestClient, same store) with every
SQL statement timed, and prints the slowest statements with the database's query plan, so a
missing index or an N+1 shows itself.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from bench._common import Load, free_port, pct, wait_health  # noqa: E402

from lab.store.accounts import add_user, set_password  # noqa: E402
from lab.store.db import Store, open_store  # noqa: E402
from lab.store.models import (  # noqa: E402
    Bench,
    Booking,
    CustodyEvent,
    Event,
    Lease,
    Organisation,
    Product,
    QueuedRun,
    ReportRelease,
    Review,
    Run,
    Sample,
    Slot,
    TestResult,
)

PRODUCT = ROOT / "inventory" / "products" / "TH-100"
AIM_P95_MS = 200.0
START_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0
PASSWORD = "bench-password-1234"
MODELS = ("TH-100", "CAM-200", "PLUG-300")
CHUNK = 20_000
VERDICT_MIX = ["PASS"] * 14 + ["FAIL"] * 2 + ["NOT_APPLICABLE"] * 2 + ["INCONCLUSIVE"] * 2
CAUSES = ("lab-fault", "test-error", "assessment-pending")


# --- filling the store -------------------------------------------------------------------------

@dataclass
class Filled:
    """What the pages are asked about: ids of a typical object of each kind."""

    run_id: str  # a finished, released run with its results
    running_run_id: str
    booking_id: int  # the booking of run_id
    requested_booking_id: int
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


def bench_model(name: str) -> str:
    """bench-th-100-1 -> TH-100"""
    parts = name.split("-")
    return f"{parts[1].upper()}-{parts[2]}"


def _bulk(store: Store, table: Any, rows: list[dict[str, Any]]) -> None:
    with store.engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(insert(table), rows[i:i + CHUNK])


def fill(store: Store, *, runs: int, per_run: int, seed: int = 19) -> Filled:
    """A lab's years of history in the store, in bulk."""
    t0 = time.monotonic()
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ics, ixit = (PRODUCT / "ics.yaml").read_text(), (PRODUCT / "ixit.yaml").read_text()

    eng, _ = add_user(store, name="eng", role="engineer", org="Certlab Test Lab")
    cert, _ = add_user(store, name="cert", role="certifier", org="Notified Body One")
    makers = [add_user(store, name=f"maker{i}", role="manufacturer", org=f"Maker {i}")[0] for i in range(1, 6)]
    for name in ("eng", "cert", "maker1"):
        set_password(store, name, PASSWORD)
    with store.transaction() as s:
        cert_org = s.scalars(select(Organisation.id).where(Organisation.name == "Notified Body One")).one()

    products = []
    for maker in makers:
        for model in MODELS:
            products.append({"org_id": maker.org_id, "model": model, "name": f"{model} by {maker.name}",
                             "vendor": f"Vendor of {maker.name}", "created_at": now - timedelta(days=900)})
    _bulk(store, Product, products)
    with store.transaction() as s:
        product_rows = [(p.id, p.org_id, p.model) for p in s.scalars(select(Product)).all()]
    maker_of_org = {m.org_id: m.id for m in makers}

    benches, leases, events = [], [], []
    bench_names = [f"bench-{model.lower()}-{i}" for model in MODELS for i in range(1, 9)]
    for i, name in enumerate(bench_names):
        state = "quarantined" if i % 11 == 3 else ("leased" if i % 3 == 0 else "available")
        benches.append({"name": name, "lab": "bench-lab", "model": bench_model(name),
                        "capabilities": ["ssh", "serial", "power"], "state": state, "fault_count": 3 if state == "quarantined" else 0,
                        "state_reason": "three lab faults in a row: serial console silent" if state == "quarantined" else None,
                        "updated_at": now})
        leases.append({"bench": name, "holder": f"run-holder-{i}" if state == "leased" else None,
                       "acquired_at": now if state == "leased" else None, "heartbeat_at": now if state == "leased" else None,
                       "expires_at": now + timedelta(minutes=5) if state == "leased" else None})
    _bulk(store, Bench, benches)
    _bulk(store, Lease, leases)

    slots = [{"model": model, "day": (now + timedelta(days=d)).date().isoformat(), "capacity": 8, "reserved": 0}
             for model in MODELS for d in range(-30, 60)]
    _bulk(store, Slot, slots)

    run_rows, booking_rows = [], []
    run_ids = []
    start = now - timedelta(minutes=30 * runs)
    for i in range(runs):
        at = start + timedelta(minutes=30 * i)
        run_id = at.strftime("%Y%m%d-%H%M%S") + f"-{i:06x}"
        run_ids.append(run_id)
        status = "running" if i >= runs - 5 else ("interrupted" if i % 97 == 5 else
                                                   "cancelled" if i % 89 == 7 else "finished")
        pid, org_id, model = product_rows[i % len(product_rows)]
        pair = [b for b in bench_names if bench_model(b) == model][:2]
        run_rows.append({"id": run_id, "edition": "v2", "lab": "bench-lab", "inventory_hash": "0" * 64,
                         "status": status, "operator": "eng",
                         "options": {"benches": pair, "suites": ["testsuites/en303645"], "booking_id": i + 1},
                         "created_at": at, "started_at": at,
                         "finished_at": None if status == "running" else at + timedelta(minutes=25)})
        booking_rows.append({"org_id": org_id, "product_id": pid, "firmware_version": f"1.{i % 10}.0", "edition": "v2",
                             "suites": [], "ics": ics, "ixit": ixit, "status": "running" if status == "running" else
                             ("reported" if i % 3 == 0 else "tested"), "run_id": run_id, "created_by": maker_of_org[org_id],
                             "created_at": at - timedelta(days=3), "updated_at": at,
                             "preferred_from": None, "preferred_to": None})
    for j in range(300):  # the inbox: requested and accepted bookings without a run yet
        pid, org_id, model = product_rows[j % len(product_rows)]
        booking_rows.append({"org_id": org_id, "product_id": pid, "firmware_version": "2.0.0", "edition": "v2",
                             "suites": [], "ics": ics, "ixit": ixit, "status": "requested" if j % 3 else "accepted",
                             "run_id": None, "created_by": maker_of_org[org_id], "created_at": now - timedelta(hours=j),
                             "updated_at": now - timedelta(hours=j), "preferred_from": now.date().isoformat(),
                             "preferred_to": (now + timedelta(days=30)).date().isoformat()})
    _bulk(store, Run, run_rows)
    _bulk(store, Booking, booking_rows)
    with store.transaction() as s:
        booking_of_run = dict(s.execute(select(Booking.run_id, Booking.id).where(Booking.run_id.is_not(None))).all())
        requested = s.scalars(select(Booking.id).where(Booking.status == "requested").order_by(Booking.id)).first()

    samples = [{"serial": f"SN{i:07d}", "model": bench_model(run_rows[i]["options"]["benches"][0]), "firmware": "1.0.0",
                "received_at": run_rows[i]["created_at"] - timedelta(days=1), "condition": "sealed, undamaged",
                "booking_id": booking_of_run[run_rows[i]["id"]]} for i in range(runs)]
    _bulk(store, Sample, samples)
    with store.transaction() as s:
        sample_of_booking = dict(s.execute(select(Sample.booking_id, Sample.id)).all())

    custody, releases, reviews = [], [], []
    for i, run in enumerate(run_rows):
        booking_id = booking_of_run[run["id"]]
        sample_id = sample_of_booking[booking_id]
        custody.append({"sample_id": sample_id, "booking_id": booking_id, "kind": "received", "note": "by courier",
                        "by_user": eng.id, "at": run["created_at"] - timedelta(days=1)})
        custody.append({"sample_id": sample_id, "booking_id": booking_id, "kind": "on-bench",
                        "note": run["options"]["benches"][0], "by_user": eng.id, "at": run["created_at"]})
        events.append({"run_id": run["id"], "bench": None, "kind": "run-started", "message": "", "at": run["created_at"]})
        for bench in run["options"]["benches"]:
            events.append({"run_id": run["id"], "bench": bench, "kind": "health-check-passed",
                           "message": "console, power and network answered", "at": run["created_at"]})
        if run["status"] != "running":
            events.append({"run_id": run["id"], "bench": None, "kind": "run-finished", "message": "",
                           "at": run["finished_at"]})
        if run["status"] == "finished" and i % 3 == 0:
            releases.append({"run_id": run["id"], "booking_id": booking_id, "org_id": cert_org, "released_by": eng.id,
                             "at": run["finished_at"] + timedelta(days=1)})
            if i % 6 == 0:
                reviews.append({"run_id": run["id"], "booking_id": booking_id, "org_id": cert_org, "reviewer": cert.id,
                                "decision": "accepted", "comment": "consistent with the ICS",
                                "at": run["finished_at"] + timedelta(days=2)})
    _bulk(store, CustodyEvent, custody)
    _bulk(store, Event, events)
    _bulk(store, ReportRelease, releases)
    _bulk(store, Review, reviews)
    _bulk(store, QueuedRun, [{"priority": j % 5, "model": MODELS[j % 3], "capabilities": ["ssh"],
                              "payload": {"suites": ["testsuites/en303645"]},
                              "state": "pending" if j < 150 else "done", "created_at": now - timedelta(minutes=j)}
                             for j in range(300)])

    nodes = [(f"testsuites/en303645/test_p5_{p}.py::test_5_{p}_{k}", f"5.{p}-{k}", f"5.{p}-{k}")
             for p in range(1, 14) for k in range(1, 6)][: max(1, per_run // 2)]
    total = 0
    batch: list[dict[str, Any]] = []
    for run in run_rows:
        for bench in run["options"]["benches"]:
            for nodeid, case, provision in nodes:
                verdict = rng.choice(VERDICT_MIX)
                batch.append({"run_id": run["id"], "bench": bench, "sample_id": None, "dut_serial": "SN",
                              "firmware": "1.0.0", "nodeid": nodeid, "test": nodeid.rsplit("::", 1)[1],
                              "test_case": case, "provision": provision, "verdict": verdict,
                              "reason": f"{verdict.lower()}: observed on the DUT", "evidence": [],
                              "attempt": 1, "final": True, "executed_on": None,
                              "cause": rng.choice(CAUSES) if verdict == "INCONCLUSIVE" else None,
                              "duration": 1.5, "started_at": run["created_at"], "finished_at": run["created_at"]})
        if len(batch) >= 100_000:
            _bulk(store, TestResult, batch)
            total += len(batch)
            batch = []
    _bulk(store, TestResult, batch)
    total += len(batch)
    if store.dialect == "postgresql":  # its autovacuum would soon; SQLite's statistics are left as certlab leaves them
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    done = next(r for r in reversed(run_rows) if r["status"] == "finished"
                and any(rel["run_id"] == r["id"] for rel in releases[-5:]))
    return Filled(run_id=done["id"], running_run_id=run_rows[-1]["id"], booking_id=booking_of_run[done["id"]],
                  requested_booking_id=requested or 0, seconds=time.monotonic() - t0,
                  counts={"runs": len(run_rows), "results": total, "bookings": len(booking_rows),
                          "events": len(events), "releases": len(releases)})


def locate(store: Store) -> Filled:
    """The typical objects of a store filled before (`--data-dir` used again)."""
    with store.transaction() as s:
        released = s.execute(select(ReportRelease.run_id, ReportRelease.booking_id)
                             .order_by(ReportRelease.id.desc()).limit(1)).one()
        running = s.scalars(select(Run.id).where(Run.status == "running").order_by(Run.id.desc()).limit(1)).one()
        requested = s.scalars(select(Booking.id).where(Booking.status == "requested").order_by(Booking.id)).first()
        counts = {"runs": s.scalar(select(func.count()).select_from(Run)),
                  "results": s.scalar(select(func.count()).select_from(TestResult)),
                  "bookings": s.scalar(select(func.count()).select_from(Booking))}
    return Filled(run_id=released[0], running_run_id=running, booking_id=released[1],
                  requested_booking_id=requested or 0, counts=counts)


# --- the server, signing in, the load ----------------------------------------------------------

def wait_up(port: int, server: subprocess.Popen) -> None:
    wait_health(port, server, timeout_s=START_TIMEOUT_S, who="web bench")


def sign_in(port: int, name: str) -> str:
    """The session cookie of `name` (the login form's CSRF cookie first, as a browser would)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request("GET", "/login")
        first = conn.getresponse()
        first.read()
        login_cookie = _cookie(first.getheader("Set-Cookie") or "", "certlab_login")
        body = urlencode({"name": name, "password": PASSWORD, "csrf": login_cookie or ""})
        conn.request("POST", "/login", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"certlab_login={login_cookie}"})
        answer = conn.getresponse()
        answer.read()
        session = _cookie(", ".join(answer.headers.get_all("Set-Cookie") or []), "certlab_session")
        if answer.status != 303 or not session:
            raise SystemExit(f"web bench: signing in as {name} answered {answer.status} without a session")
        return session
    finally:
        conn.close()


def _cookie(header: str, name: str) -> str | None:
    match = re.search(rf"{name}=([^;,\s]+)", header)
    return match.group(1) if match else None


@dataclass
class PageLoad(Load):
    """One page under load: `clients` threads share `count` requests and a deadline."""

    role: str
    path: str
    count: int
    max_seconds: float

    def run(self, port: int, cookie: str, clients: int) -> None:
        headers = {"Cookie": f"certlab_session={cookie}"}

        def get(conn: http.client.HTTPConnection) -> int:
            conn.request("GET", self.path, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status

        self.drive(port, clients, get, 200, REQUEST_TIMEOUT_S)

    def p(self, q: float) -> float:
        return pct(self.latencies, q) * 1e3

    @property
    def ok(self) -> bool:
        return bool(self.latencies) and self.p(95) < AIM_P95_MS and not self.errors


def pages(filled: Filled) -> list[tuple[str, str]]:
    """(role, path) of the main pages, a typical object each."""
    return [("engineer", "/bench"), ("engineer", "/queue"), ("engineer", "/runs"),
            ("engineer", f"/runs/{filled.run_id}"), ("engineer", f"/runs/{filled.running_run_id}"),
            ("engineer", "/bookings"), ("engineer", "/bookings?state=requested"),
            ("engineer", f"/bookings/{filled.booking_id}"), ("engineer", f"/bookings/{filled.requested_booking_id}"),
            ("engineer", "/reports"), ("engineer", f"/reports/{filled.run_id}"),
            ("manufacturer", "/products"), ("manufacturer", "/bookings"), ("manufacturer", "/reports"),
            ("certifier", "/reports"), ("certifier", f"/reports/{filled.run_id}")]


def explain(env: dict[str, str], slow: list[PageLoad], top: int) -> None:
    """Each slow page once in-process, every SQL statement timed; the slowest with their plan."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from lab.api.app import create_app
    from lab.api.settings import ApiSettings

    os.environ.update({k: v for k, v in env.items() if k.startswith("CERTLAB_")})
    app = create_app(ApiSettings.from_env())
    engine = app.state.services.store.engine
    timings: list[tuple[float, str, Any]] = []
    started: dict[int, float] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        started[id(cursor)] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        timings.append((time.perf_counter() - started.pop(id(cursor), time.perf_counter()), statement, params))

    names = {"engineer": "eng", "manufacturer": "maker1", "certifier": "cert"}
    sessions: dict[str, str] = {}
    with TestClient(app) as client:
        for load in slow:
            if load.role not in sessions:
                client.cookies.clear()
                client.get("/login")
                login = client.post("/login", data={"name": names[load.role], "password": PASSWORD,
                                                    "csrf": client.cookies.get("certlab_login") or ""},
                                    follow_redirects=False)
                if login.status_code != 303:
                    print(f"  explain: cannot sign in as {names[load.role]} ({login.status_code})")
                    continue
                sessions[load.role] = client.cookies.get("certlab_session") or ""
            client.cookies.clear()
            client.cookies.set("certlab_session", sessions[load.role])
            client.get(load.path)  # warm
            timings.clear()
            t0 = time.perf_counter()
            answer = client.get(load.path)
            wall = (time.perf_counter() - t0) * 1e3
            sql_ms = sum(t for t, _, _ in timings) * 1e3
            print(f"\n{load.role} {load.path}: {answer.status_code} in {wall:.0f} ms, {len(timings)} SQL statements "
                  f"taking {sql_ms:.0f} ms")
            for took, statement, params in sorted(timings, key=lambda x: -x[0])[:top]:
                print(f"  {took * 1e3:7.1f} ms  {' '.join(statement.split())[:400]}")
                plan_sql = ("EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN ") + statement
                try:
                    with engine.connect() as conn:
                        rows = conn.exec_driver_sql(plan_sql, params).fetchall()
                    for row in rows:
                        print(f"             plan: {' | '.join(str(x) for x in row)}")
                except Exception as exc:  # noqa: BLE001 - a plan is a hint, not the measurement
                    print(f"             plan: (not available: {str(exc).splitlines()[0][:120]})")
    app.state.services.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the store")
    parser.add_argument("--results-per-run", type=int, default=100, help="results per run (two benches)")
    parser.add_argument("--database-url", default=None,
                        help="an EMPTY PostgreSQL database to fill (default: SQLite in a temporary folder)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive connections per page")
    parser.add_argument("--requests", type=int, default=200, help="requests per page (at most)")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="time bound per page")
    parser.add_argument("--workers", type=int, default=1, help="certlab serve --workers N")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the SQLite store in this folder (filled on first use, measured again as it is "
                             "on the next: e.g. after adding an index)")
    parser.add_argument("--explain", action="store_true", help="show the slowest SQL of each slow page with its plan")
    parser.add_argument("--top", type=int, default=4, help="statements shown per slow page with --explain")
    args = parser.parse_args()
    clients = max(1, min(args.clients, 64))
    max_s = max(1.0, min(args.max_seconds, 300.0))
    runs = max(10, min(args.runs, 1_000_000))
    per_run = max(2, min(args.results_per_run, 104))

    with tempfile.TemporaryDirectory(prefix="certlab-bench-web-") as scratch:
        tmp = str(args.data_dir.resolve()) if args.data_dir else scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CERTLAB_DATA_DIR": tmp, "CERTLAB_REPORTS_DIR": str(Path(tmp) / "reports"),
               "CERTLAB_INVENTORY": str(ROOT / "inventory" / "sim.yaml"),
               "CERTLAB_RATE_PER_SECOND": "1e6", "CERTLAB_RATE_BURST": "1e6"}
        env.pop("CERTLAB_DATABASE_URL", None)
        if args.database_url:
            env["CERTLAB_DATABASE_URL"] = args.database_url
        url = args.database_url or f"sqlite:///{Path(tmp) / 'certlab.db'}"
        store = open_store(url)  # migrated to this certlab's head (a kept store gains new indexes here)
        with store.engine.connect() as conn:
            had = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
        if had and not args.data_dir:
            raise SystemExit(f"web bench: {store.url} has runs already; give an empty database")
        filled = locate(store) if had else fill(store, runs=runs, per_run=per_run)
        store.close()
        print(f"{'reused' if had else 'filled'} {url if not args.database_url else 'the PostgreSQL database'}"
              f"{'' if had else f' in {filled.seconds:.1f} s'}: " + ", ".join(f"{k}={v:,}" for k, v in filled.counts.items()))

        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "lab.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--workers", str(args.workers)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        loads: list[PageLoad] = []
        try:
            wait_up(port, server)
            cookies = {role: sign_in(port, name) for role, name in
                       (("engineer", "eng"), ("manufacturer", "maker1"), ("certifier", "cert"))}
            for role, path in pages(filled):
                load = PageLoad(role, path, max(1, min(args.requests, 100_000)), max_s)
                PageLoad(role, path, clients, max_s).run(port, cookies[role], clients)  # warm each worker's caches
                load.run(port, cookies[role], clients)
                loads.append(load)
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)

        print(f"\ncertlab serve --workers {args.workers} on 127.0.0.1, {'PostgreSQL' if args.database_url else 'SQLite'}, "
              f"clients={clients} keep-alive, bounds: {args.requests} requests and {max_s:g} s per page, "
              f"cpus={os.cpu_count()}")
        print(f"{'role':<13}{'page':<42}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  p95<200  errors")
        for load in loads:
            print(f"{load.role:<13}{load.path[:41]:<42}{len(load.latencies):>6}{load.p(50):>9.1f}{load.p(95):>9.1f}"
                  f"{load.p(99):>9.1f}{(max(load.latencies) * 1e3 if load.latencies else float('nan')):>9.1f}  "
                  f"{'yes' if load.ok else 'NO':<8} {load.errors or ''}")
        slow = [load for load in loads if not load.ok]
        print(f"\nall pages p95 < {AIM_P95_MS:.0f} ms: {'yes' if not slow else 'no: ' + ', '.join(l.path for l in slow)}")
        if args.explain and slow:
            explain(env, slow, args.top)


if __name__ == "__main__":
    main()
