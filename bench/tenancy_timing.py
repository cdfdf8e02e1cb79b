"""Does the answer's time tell whether another organisation's id exists? (issue 15 item 14)

In-process (FastAPI's TestClient, no socket) on a private SQLite store: a manufacturer "maker" owns a
booking with a firmware image, a sample and a run; a second manufacturer "rival" asks for those ids
(404) and for ids that do not exist (404). Requests alternate between the two paths, N of each,
bounded by a time limit per object kind; prints the median of each path, their ratio (1.00: the time
tells nothing) and the owner's own read for scale. Printed, never asserted.

    .venv/bin/python bench/tenancy_timing.py [-n 2000] [--code DIR]

`--code DIR` imports certlab from another checkout (e.g. `git archive <commit> | tar -x -C DIR`), to
print the figures of older code side by side with these.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/api/v1"
RUN_ID = "20260101-120000-abc123"
TIME_LIMIT_S = 60.0  # per object kind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per path (default 2000)")
    parser.add_argument("--code", type=Path, default=ROOT, help="the certlab checkout to measure (default this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))

    from fastapi.testclient import TestClient

    from lab.api.app import create_app
    from lab.api.settings import ApiSettings
    from lab.sim.vendor import build_release
    from lab.store.accounts import add_user
    from lab.store.bookings import receive_sample
    from lab.store.models import Booking, Product
    from lab.store.unit import unit

    product_dir = ROOT / "inventory" / "products" / "TH-100"
    with tempfile.TemporaryDirectory(prefix="certlab-bench-tenancy-") as tmp:
        folder = Path(tmp)
        app = create_app(ApiSettings(database_url=f"sqlite:///{folder / 'certlab.db'}", data_dir=folder / "data",
                                     reports_dir=folder / "reports", rate_per_second=1e9, rate_burst=1e9))
        store = app.state.services.store
        maker, maker_token = add_user(store, name="maker", role="manufacturer", org="Acme")
        _, rival_token = add_user(store, name="rival", role="manufacturer", org="Rival")
        with unit(store) as s:
            product = Product(org_id=maker.org_id, model="TH-100", name="Thermostat", vendor="Certlab Sim Devices")
            s.add(product)
            s.flush()
            booking = Booking(org_id=maker.org_id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                              suites=["examples"], ics=(product_dir / "ics.yaml").read_text(),
                              ixit=(product_dir / "ixit.yaml").read_text(), status="accepted", created_by=maker.id)
            s.add(booking)
            s.flush()
            booking_id = booking.id
        headers = {"maker": {"Authorization": f"Bearer {maker_token}"},
                   "rival": {"Authorization": f"Bearer {rival_token}"}}
        with TestClient(app) as client:
            upload = client.post(f"{PREFIX}/bookings/{booking_id}/firmware", headers=headers["maker"],
                                 files={"file": ("fw.clfw", build_release("TH-100", "1.4.0", 3, size=1024))})
            firmware_id = upload.json()["id"]
            sample_id = receive_sample(store, booking_id=booking_id, model="TH-100", serial="S-1",
                                       received_on=date(2026, 1, 1), condition="new", firmware=None, by_user=None).id
            with unit(store) as s:
                s.get(Booking, booking_id).run_id = RUN_ID
            run_dir = folder / "reports" / RUN_ID
            run_dir.mkdir(parents=True)
            (run_dir / "run.json").write_text(json.dumps({"run_id": RUN_ID}))

            kinds = {"firmware": (f"/firmware/{firmware_id}", "/firmware/999999"),
                     "sample": (f"/samples/{sample_id}", "/samples/999999"),
                     "run": (f"/runs/{RUN_ID}", "/runs/20990101-000000-none00")}
            print(f"certlab from {args.code}; {args.n} requests per path, medians in ms")
            print(f"{'object':<10}{'own (200)':>11}{'theirs (404)':>14}{'missing (404)':>15}{'theirs/missing':>16}")
            for kind, (theirs, missing) in kinds.items():
                times: dict[str, list[float]] = {"own": [], "theirs": [], "missing": []}
                plan = [("own", "maker", theirs), ("theirs", "rival", theirs), ("missing", "rival", missing)]
                for _, user, path in plan:  # warm up: token cache, statement cache
                    client.get(PREFIX + path, headers=headers[user])
                deadline = time.monotonic() + TIME_LIMIT_S
                for i in range(args.n):
                    if time.monotonic() > deadline:
                        break
                    for label, user, path in plan[i % 3:] + plan[:i % 3]:  # rotate the order
                        start = time.perf_counter()
                        status = client.get(PREFIX + path, headers=headers[user]).status_code
                        times[label].append(time.perf_counter() - start)
                        assert status == (200 if label == "own" else 404), (kind, label, status)
                med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
                print(f"{kind:<10}{med['own']:>11.3f}{med['theirs']:>14.3f}{med['missing']:>15.3f}"
                      f"{med['theirs'] / med['missing']:>16.2f}")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
