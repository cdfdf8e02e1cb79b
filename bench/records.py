"""A product record over years of releases: how big its chain grows and how fast it is read.

For each R of `--releases` (default 10,60,200) fills a private store (a temporary data dir, SQLite)
with one TH-100 record as a product's life makes it: opened from a certifying report, then R
releases, each with a CycloneDX SBOM of C components (`--components`, default 120; a few change
every release, one is added now and then) and the revisions a real release makes (release
registered, re-test running, re-test done with its verdict delta), an advisory every
ADVISORY_EVERY releases; every revision signed with a temporary lab key through
lab.actions.records. Release entries are written as the service writes them now (the SBOM as a
summary bound by its hash, the document kept apart) and, with `--full-sbom`, also the way they
were written before (the whole component list in every release entry), side by side with ratios.

Printed per R and shape: chain bytes, revisions, bytes of the newest revision, p50/p95 of
GET /records/TH-100, GET /records/TH-100/revisions (the whole chain up to 200 revisions, else its
first page), its first and last page of 50 (what `certlab verify-record URL` asks) and
GET /public/records/TH-100 (FastAPI's TestClient on the app `certlab serve` runs, each bounded by
`--repeats` and `--max-seconds`); the time verify_chain takes over the whole chain in memory, and
`certlab verify-record` side by side: over the URL's pages (the app under uvicorn on loopback,
head compared, largest page's bytes) and over the chain saved as one file (refused over 32 MiB);
and what the page's revision list costs read from the whole chain (as the page did before) and
from the store's columns (as it does now). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from bench._common import median, pct  # noqa: E402

from lab.actions import records  # noqa: E402
from lab.api.app import create_app  # noqa: E402
from lab.api.settings import ApiSettings  # noqa: E402
from lab.records import record as doc  # noqa: E402
from lab.errors import CertlabError  # noqa: E402
from lab.records.chain import canonical, chain_document, verify_chain  # noqa: E402
from lab.records.verify import MAX_RECORD_BYTES, PAGE_LIMIT, verify_source  # noqa: E402
from lab.records.delta import verdict_delta  # noqa: E402
from lab.records.sbom import read_sbom  # noqa: E402
from lab.reports.keys import KEY_DIR_ENV, init_keys  # noqa: E402
from lab.store import records as store  # noqa: E402

MODEL = "TH-100"
MANUFACTURER = "Demo Thermostats Ltd"
IXIT = ROOT / "inventory" / "products" / MODEL / "ixit.yaml"
BY_MAKER = f"{MANUFACTURER} (manufacturer)"
BY_KEEPER = "record keeper (lab)"
ADVISORY_EVERY = 8  # releases between two advisories
CHANGED_PER_RELEASE = 3  # components whose version moves each release
ADDED_EVERY = 10  # releases between two new components
BASELINE = {f"5.{m}-{n}": "PASS" for m in range(1, 14) for n in range(1, 4)}
SHAPES = ("summary", "full")
PATHS = {"record": "/records/{model}", "chain": "/records/{model}/revisions",
         "first page": f"/records/{{model}}/revisions?limit={PAGE_LIMIT}",
         "last page": f"/records/{{model}}/revisions?after={{last_after}}&limit={PAGE_LIMIT}",
         "page": "/public/records/{model}"}
SERVER_START_S = 20.0  # uvicorn's start on loopback, at most


@dataclass
class Figures:
    shape: str
    releases: int
    fill_s: float
    chain_bytes: int
    revisions: int
    newest_bytes: int
    latency: dict[str, tuple[float, float, int]]  # PATHS label -> (p50 ms, p95 ms, requests)
    verify_ms: float
    list_ms: tuple[float, float]  # the page's revision list: (the whole chain read, as it was; the store's columns)
    pages_ms: float  # certlab verify-record URL: every page fetched and verified, the head compared
    pages: int
    largest_page: int  # bytes
    file_ms: float | None  # certlab verify-record FILE over the whole chain saved; None: refused (over 32 MiB)


# --- what a product's life writes ------------------------------------------------------------------------


def next_components(components: dict[str, str], release: int) -> dict[str, str]:
    """Release number `release`'s components from the previous release's: CHANGED_PER_RELEASE of them
    at a new version, one more every ADDED_EVERY releases."""
    out = dict(components)
    names = sorted(out)
    for k in range(CHANGED_PER_RELEASE):
        name = names[(release * 7 + k * 13) % len(names)]
        major, minor, patch = out[name].split(".")
        out[name] = f"{major}.{minor}.{int(patch) + 1}"
    if release % ADDED_EVERY == 0:
        out[f"pkg-{len(names):03d}"] = "1.0.0"
    return out


def sbom_bytes(version: str, components: dict[str, str]) -> bytes:
    """The release's CycloneDX 1.6 SBOM, as a manufacturer's build exports it."""
    comps = [{"type": "library", "bom-ref": f"{name}@{ver}", "name": name, "version": ver,
              "purl": f"pkg:generic/{name}@{ver}"} for name, ver in sorted(components.items())]
    bom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
           "metadata": {"component": {"type": "firmware", "name": MODEL, "version": version,
                                      "bom-ref": f"{MODEL}@{version}"}},
           "components": comps}
    return json.dumps(bom, indent=1).encode()


def certifying_record() -> dict[str, Any]:
    conformance = {"report": {"id": "CL-2026-0001", "issued": "2026-01-15"}, "method": {"edition": "v2"},
                   "summary": {"overall": "PASS"}, "run": {"lab": "bench"},
                   "items": [{"model": MODEL, "firmware": "1.0.0", "vendor": MANUFACTURER}],
                   "provisions": [{"id": pid, "verdict": v} for pid, v in BASELINE.items()]}
    run = doc.Certifying(run_id="20260115-100000-cert01", conformance=conformance, conformance_sha256="0" * 64,
                         ixit_text=IXIT.read_text(encoding="utf-8"))
    return doc.new_record(run, model=MODEL, manufacturer=MANUFACTURER, product="Smart thermostat", lab="bench")


def advisory(n: int, version: str) -> dict[str, Any]:
    return {"id": f"TH100-2026-{n:03d}", "title": f"Advisory {n}", "published": "2026-06-01",
            "updated": "2026-06-01", "cves": [f"CVE-2026-{10000 + n}"], "affected": [version], "fixed": [],
            "sha256": f"{n:064x}"}


def fill(svc: Any, *, releases: int, components: int, shape: str) -> None:
    """One record of `releases` releases, appended through lab.actions.records (signed, chained)."""
    org_id, product_id = store.organisation_and_product(svc.store, organisation=MANUFACTURER, model=MODEL,
                                                        name="Smart thermostat", vendor=MANUFACTURER)

    def opened(_: dict | None) -> records.Change:
        return records.Change("opened", f"record opened: {MODEL} certified by report CL-2026-0001",
                              certifying_record())

    def before(session: Any, revision: dict[str, Any]) -> None:
        store.new_product_record(session, model=MODEL, org_id=org_id, product_id=product_id,
                                 baseline_run_id="20260115-100000-cert01", inputs_dir=str(svc.settings.data_dir))

    records.append_revision(svc, MODEL, BY_KEEPER, opened, before)
    parts = {f"pkg-{i:03d}": f"1.{i % 9}.0" for i in range(components)}
    for n in range(1, releases + 1):
        version = f"2.{n}.0"
        parts = next_components(parts, n)
        data = sbom_bytes(version, parts)
        bom = read_sbom(data)
        if shape == "summary":
            records.keep_sbom(svc, data, bom.sha256)

        def released(record: dict | None, version: str = version, n: int = n, bom: Any = bom) -> records.Change:
            entry = {"version": version, "released_on": f"2027-{1 + n % 12:02d}-01",
                     "registered_at": records.stamp(records.now()), "filename": f"{MODEL}-{version}.clfw",
                     "sha256": f"{n:064x}", "size": 4 << 20, "signature": "valid", "signature_detail": "bench",
                     "sbom": bom.summary() if shape == "summary" else bom.as_json(),
                     "sbom_diff": records.release_sbom_diff(svc, MODEL, record or {}, bom),
                     "retest": doc.new_retest(n)}
            return records.Change("release", f"release {version} registered (signature valid); re-test queued "
                                             f"(queue {n})", doc.add_release(record or {}, entry))

        records.append_revision(svc, MODEL, BY_MAKER, released)
        running = {**doc.new_retest(n), "state": "running", "run_id": f"2027{n:04d}-100000-retest"}
        retest = dict(BASELINE)
        if n % 5 == 0:
            retest["5.6-1"] = "FAIL"
        delta = verdict_delta(BASELINE, retest)
        done = {**running, "state": "done", "verdict": "FAIL" if delta["flagged"] else "PASS", "delta": delta,
                "flagged": delta["flagged"], "report_url": f"/reports/{running['run_id']}",
                "conformance_sha256": f"{n:064x}", "ended_at": records.stamp(records.now())}
        for outcome, summary in ((running, f"re-test of {version} running (run {running['run_id']})"),
                                 (done, f"re-test of {version}: {done['verdict']}")):
            records.append_revision(svc, MODEL, BY_KEEPER, lambda record, v=version, o=outcome, s=summary:
                                    records.Change("retest", s, doc.set_retest(record or {}, v, o)))
        if n % ADVISORY_EVERY == 0:
            adv = advisory(n // ADVISORY_EVERY, version)
            records.append_revision(svc, MODEL, BY_MAKER, lambda record, a=adv: records.Change(
                "advisory", f"advisory {a['id']} registered: {a['title']}",
                doc.put_advisory(record or {}, a, records.stamp(records.now()))))


# --- measuring ---------------------------------------------------------------------------------------------


def timed(call: Callable[[], Any], repeats: int, max_seconds: float) -> tuple[list[float], Any]:
    """Call up to `repeats` times within `max_seconds` (at least once): seconds each, the last answer."""
    deadline = time.monotonic() + max_seconds
    times: list[float] = []
    last = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        last = call()
        times.append(time.perf_counter() - t0)
        if time.monotonic() > deadline:
            break
    return times, last


def whole_chain(svc: Any) -> dict[str, Any]:
    """The whole chain document, joined from the action's largest pages (the GET answers pages past 200)."""
    revisions: list[dict[str, Any]] = []
    after = 0
    for _ in range(10_000):  # bounded: one page per 500 revisions
        page = records.revisions(svc, MODEL, after=after, limit=records.CHAIN_PAGE_MAX)
        revisions += page["revisions"]
        if page["next"] is None:
            return chain_document(MODEL, []) | {"revisions": revisions}
        after = page["revisions"][-1]["seq"]
    raise SystemExit("the chain has more pages than the bench follows")


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """The app under uvicorn on a loopback port, for `certlab verify-record URL`; its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S
    while not server.started:  # bounded by SERVER_START_S
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit(f"uvicorn did not start on loopback within {SERVER_START_S:.0f} s")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_S)


def measure(shape: str, releases: int, components: int, repeats: int, max_seconds: float) -> Figures:
    with tempfile.TemporaryDirectory(prefix=f"certlab-bench-records-{shape}-{releases}-") as tmp:
        base = Path(tmp)
        settings = ApiSettings(inventory=ROOT / "inventory" / "sim.yaml", data_dir=base / "data",
                               reports_dir=base / "reports", database_url=f"sqlite:///{base / 'store.db'}",
                               rate_per_second=1e6, rate_burst=1e6)
        app = create_app(settings)
        svc = app.state.services
        t0 = time.monotonic()
        fill(svc, releases=releases, components=components, shape=shape)
        fill_s = time.monotonic() - t0
        last_after = max(0, (store.last_seq(svc.store, MODEL) or 0) - PAGE_LIMIT)
        latency: dict[str, tuple[float, float, int]] = {}
        with TestClient(app) as client:
            for label, template in PATHS.items():
                path = template.format(model=MODEL, last_after=last_after)

                def get(path: str = path) -> bytes:
                    answer = client.get(path)
                    if answer.status_code != 200:
                        raise SystemExit(f"GET {path}: HTTP {answer.status_code}: {answer.text[:300]}")
                    return answer.content

                get()  # warm: the first request of a path builds what later ones reuse
                times, _ = timed(get, repeats, max_seconds)
                latency[label] = (median(times) * 1000, pct(times, 95) * 1000, len(times))
        whole, _ = timed(lambda: whole_chain(svc), repeats, max_seconds)
        columns, _ = timed(lambda: records.revision_list(svc, MODEL), repeats, max_seconds)
        chain = whole_chain(svc)
        chain_body = json.dumps(chain, ensure_ascii=False).encode()
        revisions = chain["revisions"]
        verify_times, check = timed(lambda: verify_chain(chain), min(repeats, 3), max_seconds)
        if not check.ok:
            raise SystemExit(f"{shape} R={releases}: the chain does not verify: {check.reason}")
        with served(app) as url:
            source = f"{url}/records/{MODEL}/revisions"
            pages_times, walked = timed(lambda: verify_source(source), min(repeats, 3), max_seconds)
            largest = max(len(client_get(f"{url}{path}")) for path in page_paths(len(revisions)))
        if not walked.ok:
            raise SystemExit(f"{shape} R={releases}: verify-record over the pages: {walked.lines()[-1]}")
        saved = base / "chain.json"
        saved.write_bytes(chain_body)
        file_ms = None
        if len(chain_body) <= MAX_RECORD_BYTES:
            file_times, _ = timed(lambda: verify_source(str(saved)), min(repeats, 3), max_seconds)
            file_ms = median(file_times) * 1000
        else:
            try:
                verify_source(str(saved))
            except CertlabError:
                pass  # refused as the user would see it: over 32 MiB
        svc.store.close()
        return Figures(shape, releases, fill_s, len(chain_body), len(revisions), len(canonical(revisions[-1])),
                       latency, median(verify_times) * 1000, (median(whole) * 1000, median(columns) * 1000),
                       median(pages_times) * 1000, walked.pages, largest, file_ms)


def page_paths(revisions: int) -> list[str]:
    """The paths of verify-record's pages of the chain."""
    return [f"/records/{MODEL}/revisions?after={after}&limit={PAGE_LIMIT}" for after in range(0, revisions, PAGE_LIMIT)]


def client_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:  # loopback, the bench's own server
        return answer.read()


# --- printing ----------------------------------------------------------------------------------------------


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def show(row: Figures) -> None:
    lat = "\n           ".join(f"GET {PATHS[label].format(model=MODEL, last_after='N-50')}: p50 {p50:.1f} "
                                 f"p95 {p95:.1f} ms ({n})" for label, (p50, p95, n) in row.latency.items())
    print(f"  {row.shape:8} R={row.releases:<4} revisions {row.revisions:<5} chain {size(row.chain_bytes):>10}  "
          f"newest revision {size(row.newest_bytes):>10}  verify {row.verify_ms:.0f} ms  (filled in {row.fill_s:.1f} s)")
    print(f"           {lat}")
    print(f"           the page's revision list: whole chain read {row.list_ms[0]:.1f} ms (before), "
          f"store columns {row.list_ms[1]:.1f} ms (now)")
    one = (f"{row.file_ms:.0f} ms" if row.file_ms is not None
           else f"refused (over {MAX_RECORD_BYTES >> 20} MiB)")
    print(f"           certlab verify-record: URL over {row.pages} pages of {PAGE_LIMIT} (largest "
          f"{size(row.largest_page)}, head compared) {row.pages_ms:.0f} ms | one document file {one}")


def ratio(full: Figures, summary: Figures) -> None:
    parts = [f"chain bytes x{full.chain_bytes / summary.chain_bytes:.1f}",
             f"newest revision x{full.newest_bytes / summary.newest_bytes:.1f}",
             f"verify x{full.verify_ms / max(summary.verify_ms, 1e-6):.1f}"]
    parts += [f"{label} p50 x{full.latency[label][0] / max(summary.latency[label][0], 1e-6):.1f}" for label in PATHS]
    print(f"  old/new (full/summary) R={full.releases}: " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", default="10,60,200", help="comma-separated R values (default 10,60,200)")
    parser.add_argument("--components", type=int, default=120, help="components per SBOM (default 120)")
    parser.add_argument("--repeats", type=int, default=20, help="requests per endpoint at most (default 20)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time per endpoint at most (default 30)")
    parser.add_argument("--full-sbom", action="store_true",
                        help="also fill release entries the pre-summary way (whole component list), side by side")
    parser.add_argument("--full-sbom-max-releases", type=int, default=60,
                        help="the largest R filled the old way (its chain grows quadratically; default 60)")
    args = parser.parse_args(argv)
    try:
        counts = [int(r) for r in args.releases.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--releases {args.releases!r}: give numbers separated by commas, e.g. 10,60,200")
    if not counts or min(counts) < 1 or args.components < 1 or args.repeats < 1:
        parser.error("--releases, --components and --repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="certlab-bench-records-keys-") as keys:
        os.environ[KEY_DIR_ENV] = keys  # the temporary lab key that signs every revision
        init_keys(Path(keys))
        print(f"product record of {MODEL}: {args.components} components per SBOM, ~{3 + 1 / ADVISORY_EVERY:.2f} "
              f"revisions per release; GET p50/p95 over at most {args.repeats} requests or {args.max_seconds:.0f} s")
        for releases in counts:
            summary = measure("summary", releases, args.components, args.repeats, args.max_seconds)
            show(summary)
            if not args.full_sbom:
                continue
            if releases > args.full_sbom_max_releases:
                print(f"  full     R={releases:<4} skipped (over --full-sbom-max-releases "
                      f"{args.full_sbom_max_releases}: the old shape's chain grows quadratically)")
                continue
            full = measure("full", releases, args.components, args.repeats, args.max_seconds)
            show(full)
            ratio(full, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
