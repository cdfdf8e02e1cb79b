"""`python -m lab.labhost.benchworker`: the Celery worker of one bench, started by `labhost serve`.

One process per bench, solo pool, prefetch 1: a bench runs one item at a time, and a message
is taken only when the bench is free, so the others stay in the queue for a spare to take.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lab.labhost.broker import POWER_OFF, RUN_ITEM, BrokerSettings, bench_queue, make_app
from lab.labhost.task import HostContext, power_off, run_item


def build_worker(ctx: HostContext):
    app = make_app(ctx.settings, name=f"certlab-{ctx.host}-{ctx.bench}")

    @app.task(name=RUN_ITEM, acks_late=True, reject_on_worker_lost=True)
    def _run_item(item_json: str, token: int) -> dict:
        return run_item(ctx, item_json, token)

    @app.task(name=POWER_OFF, acks_late=True)
    def _power_off(bench: str) -> dict:
        return power_off(ctx, bench)

    return app.Worker(hostname=f"{ctx.bench}@{ctx.host}", queues=[bench_queue(ctx.lab, ctx.bench)], pool="solo",
                      concurrency=1, prefetch_multiplier=1, without_gossip=True, without_mingle=True,
                      without_heartbeat=True, loglevel="INFO", quiet=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.labhost.benchworker")
    for name in ("--lab", "--host", "--bench", "--inventory", "--spool"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    settings = BrokerSettings.from_env()
    if settings is None:
        print("benchworker: CERTLAB_BROKER_URL is not set", file=sys.stderr)
        return 2
    ctx = HostContext(lab=args.lab, host=args.host, bench=args.bench, inventory=Path(args.inventory).resolve(),
                      spool=Path(args.spool).resolve(), settings=settings)
    # Celery logs each task's return value at INFO, and ours carries the item's files: keep them out of the log
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    worker = build_worker(ctx)
    worker.start()
    return worker.exitcode or 0


if __name__ == "__main__":
    sys.exit(main())
