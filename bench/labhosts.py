"""Lab hosts: what the broker costs and how fast a dead host's work moves (tests/labhosts.py).

Three figures, on one machine with a real redis-server and lab hosts as network namespaces
(inventory/sim-labhosts.yaml: four conforming TH-100):
  - the same suite on 4 benches of one lab host vs 2 + 2 on two hosts: wall times and their
    ratio (aim: two hosts / one host <= 1.05; both go through the broker);
  - dispatch latency through the broker, submit -> task claimed on its host (the dispatches
    table's created_at -> claimed_at), p50 and p99 over every item of every run here;
  - a host's death (SIGKILL of its serve process group) -> its work claimed on another host.
Printed, never asserted. Needs root, iproute2 and redis-server.

    sudo .venv/bin/python bench/labhosts.py [--suite testsuites/examples] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml
from _common import pct

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from labhosts import LabHosts, unavailable_reason  # noqa: E402

INVENTORY = ROOT / "inventory" / "sim-labhosts.yaml"
BENCHES = ["ra1", "ra2", "rb1", "rb2"]
RUN_TIMEOUT = 1800  # s, one run
CLAIM_TIMEOUT = 120  # s


def one_host_inventory(folder: Path) -> Path:
    """The same four benches, all hanging off rack-a (beside the original's secrets and products)."""
    doc = yaml.safe_load(INVENTORY.read_text())
    for bench in doc["all"]["children"]["benches"]["hosts"].values():
        bench["certlab"]["labhost"] = "rack-a"
    for name in ("secrets", "products", "lab-profile.yaml", "playbooks"):
        if (INVENTORY.parent / name).exists():
            (folder / name).symlink_to(INVENTORY.parent / name)
    path = folder / "sim-labhosts-one.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _when(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text)).replace(tzinfo=timezone.utc).timestamp()


def dispatches(lab: LabHosts, run_id: str | None = None) -> list[dict]:
    db = sqlite3.connect(f"file:{lab.data_dir / 'certlab.db'}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        query = "SELECT * FROM dispatches" + (" WHERE run_id = ?" if run_id else "") + " ORDER BY id"
        return [dict(r) for r in db.execute(query, (run_id,) if run_id else ())]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def start_run(lab: LabHosts, inventory: Path, suite: str, out: Path, extra: list[str],
              benches: list[str] = BENCHES) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    cmd = lab.certlab("run", "-i", str(inventory), "--suite", suite, "--out", str(out), *extra,
                      *(a for b in benches for a in ("-b", b)))
    log = open(out / "run.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=lab.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


def finish(proc: subprocess.Popen, out: Path) -> tuple[int, dict]:
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        rc = -9
    runs = sorted(p for p in out.iterdir() if (p / "verdicts.json").exists())
    return rc, json.loads((runs[-1] / "verdicts.json").read_text()) if runs else {"results": [], "run_id": None}


def timed_runs(lab: LabHosts, inventory: Path, suite: str, out: Path, rounds: int, extra: list[str]) -> tuple[list[float], list[float]]:
    """Wall time per round, and every item's submit -> claimed latency."""
    walls, latencies = [], []
    for i in range(rounds):
        t0 = time.monotonic()
        rc, doc = finish(start_run(lab, inventory, suite, out / f"r{i}", extra), out / f"r{i}")
        walls.append(time.monotonic() - t0)
        verdicts: dict[str, int] = {}
        for r in doc["results"]:
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        print(f"  round {i + 1}: wall_s={walls[-1]:.1f} exit={rc} results={len(doc['results'])} verdicts={verdicts}", flush=True)
        for d in dispatches(lab, doc.get("run_id")):
            sent, claimed = _when(d["created_at"]), _when(d.get("claimed_at"))
            if sent is not None and claimed is not None:
                latencies.append(claimed - sent)
    return walls, latencies


def takeover(lab: LabHosts, inventory: Path, suite: str, out: Path, extra: list[str]) -> float | None:
    """Seconds from SIGKILL of rack-b to its slot's work claimed on rack-a (slots ra1, rb1; spares ra2, rb2)."""
    known = {d["run_id"] for d in dispatches(lab)}
    proc = start_run(lab, inventory, suite, out, extra, benches=["ra1", "rb1"])
    deadline = time.monotonic() + CLAIM_TIMEOUT
    run_id = None
    while run_id is None and time.monotonic() < deadline and proc.poll() is None:
        run_id = next((d["run_id"] for d in dispatches(lab) if d["run_id"] not in known and d["labhost"] == "rack-b"
                       and d["state"] == "running"), None)
        time.sleep(0.1)
    if run_id is None:
        print(f"  rack-b claimed nothing within {CLAIM_TIMEOUT} s", flush=True)
        finish(proc, out)
        return None
    lost = {d["slot"] for d in dispatches(lab, run_id) if d["labhost"] == "rack-b"}
    time.sleep(1.0)
    killed = time.time()
    lab.kill_host("rack-b")
    rc, doc = finish(proc, out)
    later = [_when(d["claimed_at"]) for d in dispatches(lab, run_id)
             if d["slot"] in lost and d["labhost"] != "rack-b" and d.get("claimed_at")]
    later = [t for t in later if t is not None and t >= killed - 1]
    verdicts: dict[str, int] = {}
    for r in doc["results"]:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    print(f"  takeover run: exit={rc} results={len(doc['results'])} verdicts={verdicts} slots of rack-b={sorted(lost)}",
          flush=True)
    return min(later) - killed if later else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="testsuites/examples", help="suite every bench runs (default testsuites/examples)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per layout (default 2)")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"bench/labhosts.py: {reason}")
    rounds = max(1, min(10, args.rounds))
    extra = ["--power-cuts", "1", "--seed", "7"]
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="certlab-bench-lh-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "inv").mkdir()
        one = one_host_inventory(tmpdir / "inv")
        print("4 benches on one lab host (rack-a):", flush=True)
        with LabHosts(one, ["rack-a"], tmpdir / "one") as lab:
            one_walls, lat = timed_runs(lab, one, args.suite, tmpdir / "one" / "out", rounds, extra)
            latencies += lat
        print("2 + 2 benches on two lab hosts (rack-a, rack-b):", flush=True)
        with LabHosts(INVENTORY, ["rack-a", "rack-b"], tmpdir / "two") as lab:
            two_walls, lat = timed_runs(lab, INVENTORY, args.suite, tmpdir / "two" / "out", rounds, extra)
            latencies += lat
            print("SIGKILL of rack-b mid-run (slots ra1 and rb1):", flush=True)
            resumed = takeover(lab, INVENTORY, args.suite, tmpdir / "two" / "kill", extra)
    one_wall, two_wall = min(one_walls), min(two_walls)
    print(f"\ncpus={os.cpu_count()} suite={args.suite} rounds={rounds} (best of)")
    print(f"{'layout':<22} {'wall s':>8}")
    print(f"{'4 on one host':<22} {one_wall:8.1f}")
    print(f"{'2 + 2 on two hosts':<22} {two_wall:8.1f}")
    print(f"two_hosts/one_host={two_wall / one_wall:.3f} (aim <= 1.05)")
    if latencies:
        print(f"dispatch_latency_s n={len(latencies)} p50={pct(latencies, 50):.3f} p99={pct(latencies, 99):.3f} "
              f"max={max(latencies):.3f}")
    print(f"host_death_to_resume_s={resumed:.1f}" if resumed is not None else "host_death_to_resume_s=- (no takeover seen)")


if __name__ == "__main__":
    main()
