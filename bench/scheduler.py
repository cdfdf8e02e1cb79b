"""Queue dispatch at lab scale: 10,000 queued runs over 500 simulated benches, instant fake work.

Benches have one of eight DUT models and each a different mix of capabilities, and every run
needs a model and some capabilities (taken from one bench that has them), so matching decides
who gets what. One dispatcher serves all benches from a fresh SQLite store in a temporary folder
(or `--database-url`, e.g. PostgreSQL: names are tagged so the run stays apart from other data).
Prints dispatch latency (as the Dispatcher docstring defines it) p50/p99/max, runs dispatched per
second, wall time, and whether every run was dispatched exactly once to a matching bench.
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.orchestrator.dispatcher import BenchSlot, Dispatcher  # noqa: E402
from lab.store import QueuedRun, Store, StoreError, enqueue_run, open_store, queued_runs  # noqa: E402

MODELS = 8
EXTRA_CAPABILITIES = ("scope", "rf", "usb", "jtag", "thermal")


def make_benches(rng: random.Random, count: int, tag: str) -> list[BenchSlot]:
    return [BenchSlot(f"{tag}b{i:04d}", f"{tag}M{i % MODELS}",
                      frozenset({"power", "console", *rng.sample(EXTRA_CAPABILITIES, rng.randint(0, 3))}))
            for i in range(count)]


def enqueue(store: Store, rng: random.Random, slots: list[BenchSlot], runs: int) -> set[int]:
    """Each run needs what one random bench has (so some bench can do it, but far from all)."""
    ids = set()
    with store.transaction() as tx:
        for n in range(runs):
            model_of = rng.choice(slots)
            extras = sorted(model_of.capabilities - {"power", "console"})
            need = rng.sample(extras, rng.randint(0, min(2, len(extras))))
            ids.add(enqueue_run(tx, model=model_of.model, capabilities=["power", *need],
                                payload={"n": n}, priority=rng.choice((0, 0, 0, 1, 1, 2, 5))))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--benches", type=int, default=500)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on the dispatch phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work-ms", type=float, default=0.0,
                        help="mean fake work per run, spread 0.5x..1.5x (default 0: instant, so every "
                             "bench always wants work and the dispatcher is the bottleneck)")
    args = parser.parse_args()
    runs, count = max(1, min(args.runs, 1_000_000)), max(1, min(args.benches, 10_000))
    rng = random.Random(args.seed)
    tag = f"s{uuid.uuid4().hex[:6]}-" if args.database_url else ""
    with tempfile.TemporaryDirectory(prefix="certlab-bench-sched-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'certlab.db'}"
        try:
            store = open_store(url)
        except StoreError as exc:
            raise SystemExit(f"scheduler: {exc}") from None
        with store:
            slots = make_benches(rng, count, tag)
            by_name = {s.name: s for s in slots}
            t0 = time.monotonic()
            ids = enqueue(store, rng, slots, runs)
            enqueue_s = time.monotonic() - t0

            executed: list[tuple[int, str]] = []
            lock = threading.Lock()

            work_s = max(0.0, min(args.work_ms, 60_000.0)) / 1000

            def execute(q: QueuedRun, slot: BenchSlot) -> str:
                with lock:
                    executed.append((q.id, slot.name))
                if work_s:
                    time.sleep(work_s * (0.5 + random.random()))
                return f"run-{q.id}"

            dispatcher = Dispatcher(store, holder=f"{tag}bench-scheduler", slots=slots, execute=execute)
            stats = dispatcher.run(max_seconds=args.max_seconds)
            left = [q for q in queued_runs(store, states=["pending", "claimed"]) if q.id in ids]
            rows = {q.id: q for q in queued_runs(store, states=["done"]) if q.id in ids}

    times = Counter(qid for qid, _ in executed)
    once = set(times) == ids and all(n == 1 for n in times.values()) and len(rows) == len(ids)
    wrong = [qid for qid, bench in executed if qid in rows and not _fits(rows[qid], by_name[bench])]
    p = stats.percentile
    print(f"store={store.dialect} runs={len(ids)} benches={count} models={min(MODELS, count)} "
          f"work_ms={args.work_ms:g} enqueue_s={enqueue_s:.2f}")
    print(f"dispatched={stats.dispatched} done={stats.done} failed={stats.failed} left_in_queue={len(left)}")
    if stats.latencies:
        print(f"dispatch_latency_p50_ms={p(50) * 1e3:.2f} p99_ms={p(99) * 1e3:.2f} "
              f"max_ms={max(stats.latencies) * 1e3:.2f}")
    dispatching = max(stats.wall_seconds - stats.startup_seconds, 1e-9)
    print(f"runs_dispatched_per_s={stats.dispatched / dispatching:.0f} wall_s={stats.wall_seconds:.2f} "
          f"(of which startup_s={stats.startup_seconds:.2f}: registering the benches)")
    print(f"every_run_dispatched_exactly_once={'yes' if once else 'NO'} "
          f"to_a_matching_bench={'yes' if not wrong else f'NO ({len(wrong)} wrong)'}")


def _fits(q: QueuedRun, slot: BenchSlot) -> bool:
    return q.model == slot.model and set(q.capabilities) <= slot.capabilities


if __name__ == "__main__":
    main()
