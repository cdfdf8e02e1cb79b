"""One work item on a lab host: claim the attempt, run its pytest worker, send the files back.

The item runs exactly as on the orchestrating machine (`python -m lab.orchestrator.worker`),
with this host's copy of the inventory and a spool directory of its own as run directory. While
it runs, the task watches two things once a second: that the attempt is still the running one
in the store (the orchestrator supersedes it when it gives up on this host, or cancels it on
Ctrl-C) and that the broker still answers (a host cut off for SELF_FENCE_AFTER stops on its own,
before the orchestrator, after LOST_AFTER, gives the work to another host). Either way pytest
gets SIGINT, as a Ctrl-C would, so the test in progress ends without a verdict.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.labhost.beats import SELF_FENCE_AFTER
from lab.labhost.broker import RESULT_TTL, VISIBILITY_TIMEOUT, BrokerSettings, redis_client
from lab.labhost.evidence import FileStream, pack
from lab.labhost.inputs import INPUTS_DIR, materialize_inputs
from lab.orchestrator.workitem import WorkItem
from lab.store.dispatch import FENCE_ENV

SPEC_NAME = ".certlab-item.json"  # the item as this host runs it; not sent back
WATCH_EVERY = 0.5  # seconds between looks at the attempt and the broker
STREAM_EVERY = 2.0  # seconds between sends of the files that changed (evidence of finished tests)
STOP_GRACE = 20.0  # seconds pytest gets after SIGINT before it is killed
STORE_VARS = ("CERTLAB_DATA_DIR", "CERTLAB_DATABASE_URL")  # a lab host uses its own store settings


@dataclass(frozen=True)
class HostContext:
    """What a bench's worker process knows about where it runs."""

    lab: str
    host: str
    bench: str
    inventory: Path  # this host's copy of the lab inventory
    spool: Path  # where items run before their files go back
    settings: BrokerSettings


def run_item(ctx: HostContext, item_json: str, token: int) -> dict:
    from lab.store import claim_dispatch, dispatch_state, end_dispatch, open_store

    item = WorkItem.from_json(item_json)
    with open_store(migrate=False) as store:
        if item.bench != ctx.bench:
            return _discarded(f"item for bench {item.bench} arrived at the worker of {ctx.bench}")
        if not claim_dispatch(store, token=token, labhost=ctx.host):
            state = dispatch_state(store, token=token)
            if state is None:
                return _discarded(f"attempt {token} is not in this host's result store {store.url}: the lab host "
                                  f"must use the orchestrator's store (CERTLAB_DATABASE_URL)")
            return _discarded(f"attempt {token} is {state}")
        workdir = ctx.spool / item.run_id / item.slug
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "logs").mkdir(parents=True)
        env = {k: v for k, v in item.env.items() if k not in STORE_VARS} | {FENCE_ENV: str(token)}
        local = dataclasses.replace(materialize_inputs(item, workdir), inventory=str(ctx.inventory),
                                    run_dir=str(workdir), env=env)
        spec = workdir / SPEC_NAME
        spec.write_text(local.to_json(), encoding="utf-8")
        log = workdir / "logs" / f"pytest-{item.slug}.log"
        started = time.monotonic()
        with open(log, "ab") as fh:
            proc = subprocess.Popen([sys.executable, "-P", "-m", "lab.orchestrator.worker", str(spec)],
                                    stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        stream = FileStream(workdir, skip=(SPEC_NAME, INPUTS_DIR))
        stopped = _watch(proc, lambda: dispatch_state(store, token=token), ctx.settings, stream, files_key(token))
        if stopped is None:
            end_dispatch(store, token=token, state="done", note=f"pytest exit {proc.returncode} on {ctx.host}")
        else:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"\ncertlab: lab host {ctx.host} stopped this item: {stopped}\n")
        files = pack(workdir, skip=(SPEC_NAME, INPUTS_DIR))
        shutil.rmtree(workdir, ignore_errors=True)  # the files now live in the result until the orchestrator takes them
        try:
            workdir.parent.rmdir()  # the run's spool folder, once its last item here is packed
        except OSError:
            pass
        return {"discarded": False, "returncode": proc.returncode, "seconds": time.monotonic() - started,
                "labhost": ctx.host, "stopped": stopped, "log": log.relative_to(workdir).as_posix(),
                "files": files.to_wire()}


def _discarded(why: str) -> dict:
    return {"discarded": True, "why": why}


def files_key(token: int) -> str:
    """The Redis list an attempt's files stream into while it runs."""
    return f"certlab:files:{token}"


def _watch(proc: subprocess.Popen, attempt_state, settings: BrokerSettings, stream: FileStream, key: str) -> str | None:
    """Wait for pytest, streaming its files; None if it ended by itself, else why it was stopped."""
    client = redis_client(settings, timeout=2.0)
    started = last_contact = last_push = time.monotonic()
    reason = None
    while proc.poll() is None:
        time.sleep(WATCH_EVERY)
        now = time.monotonic()
        try:
            client.ping()
            last_contact = now
            if now - last_push >= STREAM_EVERY:
                last_push = now
                _push(client, stream, key)
        except Exception:  # noqa: BLE001 - any broker error counts as no contact; files go again next time
            pass
        if now - last_contact > SELF_FENCE_AFTER:
            reason = f"no contact with the broker for {now - last_contact:.0f} s: another host may take this work"
        elif (state := _state_or_none(attempt_state)) not in (None, "running"):
            reason = f"the orchestrator {state} this attempt"
        elif now - started > VISIBILITY_TIMEOUT:
            reason = f"ran longer than {VISIBILITY_TIMEOUT / 3600:.0f} h, the broker's visibility timeout"
        if reason:
            break
    else:
        return None
    _interrupt(proc)
    return reason


def _push(client, stream: FileStream, key: str) -> None:
    changes = stream.changes()
    if changes is None:
        return
    files, stamps = changes
    client.rpush(key, json.dumps(files.to_wire()))
    client.expire(key, RESULT_TTL)
    stream.mark_sent(stamps)


def _state_or_none(attempt_state) -> str | None:
    try:
        return attempt_state()
    except Exception:  # noqa: BLE001 - a store hiccup is not a reason to stop a test
        return None


def _interrupt(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def power_off(ctx: HostContext, bench: str) -> dict:
    """Switch a bench's DUT off (the orchestrator's run was cancelled); the error, if any, as text."""
    from lab.bench import Bench
    from lab.inventory import load_inventory

    b = Bench(load_inventory(ctx.inventory), bench, evidence_dir=ctx.spool / "power-off" / bench)
    try:
        b.power.off()
        return {"ok": True, "labhost": ctx.host}
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which records it
        return {"ok": False, "labhost": ctx.host, "error": str(exc)}
    finally:
        b.close()


def describe(result: dict) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "files"}, sort_keys=True)
