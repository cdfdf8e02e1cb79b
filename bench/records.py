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
GET /records/TH-100, GET /records/TH-100/revisions and GET /public/records/TH-100 (FastAPI's
TestClient on the app `certlab serve` runs, each bounded by `--repeats` and `--max-seconds`) and
the time verify_chain takes over the served chain, and what the page's revision list costs read
from the whole chain (as the page did before) and from the store's columns (as it does now).
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from bench._common import median, pct  # noqa: E402

from lab.actions import records  # noqa: E402
from lab.api.app import create_app  # noqa: E402
from lab.api.settings import ApiSettings  # noqa: E402
from lab.records import record as doc  # noqa: E402
from lab.records.chain import canonical, verify_chain  # noqa: E402
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
PATHS = {"record": "/records/{model}", "chain": "/records/{model}/revisions", "page": "/public/records/{model}"}


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
        latency: dict[str, tuple[float, float, int]] = {}
        chain_body = b""
        with TestClient(app) as client:
            for label, template in PATHS.items():
                path = template.format(model=MODEL)

                def get(path: str = path) -> bytes:
                    answer = client.get(path)
                    if answer.status_code != 200:
                        raise SystemExit(f"GET {path}: HTTP {answer.status_code}: {answer.text[:300]}")
                    return answer.content

                get()  # warm: the first request of a path builds what later ones reuse
                times, body = timed(get, repeats, max_seconds)
                latency[label] = (median(times) * 1000, pct(times, 95) * 1000, len(times))
                if label == "chain":
                    chain_body = body
        whole, _ = timed(lambda: records.revisions(svc, MODEL), repeats, max_seconds)
        columns, _ = timed(lambda: records.revision_list(svc, MODEL), repeats, max_seconds)
        chain = json.loads(chain_body)
        revisions = chain["revisions"]
        verify_times, check = timed(lambda: verify_chain(chain), min(repeats, 3), max_seconds)
        if not check.ok:
            raise SystemExit(f"{shape} R={releases}: the chain does not verify: {check.reason}")
        svc.store.close()
        return Figures(shape, releases, fill_s, len(chain_body), len(revisions), len(canonical(revisions[-1])),
                       latency, median(verify_times) * 1000, (median(whole) * 1000, median(columns) * 1000))


# --- printing ----------------------------------------------------------------------------------------------


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def show(row: Figures) -> None:
    lat = "  ".join(f"GET {PATHS[label].format(model=MODEL)}: p50 {p50:.1f} p95 {p95:.1f} ms ({n})"
                    for label, (p50, p95, n) in row.latency.items())
    print(f"  {row.shape:8} R={row.releases:<4} revisions {row.revisions:<5} chain {size(row.chain_bytes):>10}  "
          f"newest revision {size(row.newest_bytes):>10}  verify {row.verify_ms:.0f} ms  (filled in {row.fill_s:.1f} s)")
    print(f"           {lat}")
    print(f"           the page's revision list: whole chain read {row.list_ms[0]:.1f} ms (before), "
          f"store columns {row.list_ms[1]:.1f} ms (now)")


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
