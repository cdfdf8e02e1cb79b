"""certlab's result store: runs, benches, samples, results, evidence, events, leases, queue.

SQLite (WAL) in `$CERTLAB_DATA_DIR` by default, PostgreSQL through `CERTLAB_DATABASE_URL`;
the schema is kept by Alembic migrations that `open_store()` applies. Typical use:

    with open_store() as store:
        create_run(store, run_id=rid, edition="v2", lab="sim")
        record_result(store, run_id=rid, bench="bench1", nodeid=..., verdict="PASS", ...)
        doc = export_verdicts(store, run_id=rid)
"""

from lab.store.db import Store, StoreError, StoreUnavailable, open_store, resolve_url
from lab.store.dispatch import claim_dispatch, dispatch_state, dispatches, end_dispatch, new_dispatch, set_task_id
from lab.store.models import (
    BENCH_STATES,
    CAUSES,
    DISPATCH_STATES,
    QUEUE_STATES,
    RUN_STATES,
    VERDICTS,
    Bench,
    Dispatch,
    Event,
    Evidence,
    Lease,
    QueuedRun,
    Run,
    Sample,
    TestResult,
)
from lab.store.repo import (
    EvidenceRef,
    append_event,
    benches,
    clear_bench_faults,
    completed_nodeids,
    create_run,
    events,
    export_verdicts,
    finalise_unfinished,
    get_run,
    hash_evidence,
    last_event_id,
    note_bench_fault,
    plan_results,
    quarantine_bench,
    record_result,
    register_bench,
    register_sample,
    release_bench,
    reopen_results,
    reopen_unevidenced,
    result_counts,
    results,
    retry_candidates,
    set_run_status,
)
from lab.store.scheduling import (
    acquire_lease,
    acquire_leases,
    claim_next_run,
    claim_runs,
    enqueue_run,
    expire_leases,
    finish_queued_run,
    finish_queued_runs,
    held_leases,
    lease_holder,
    match_runs,
    queued_runs,
    release_lease,
    release_leases,
    renew_lease,
    renew_leases,
    requeue_claimed,
    take_over_lease,
)

__all__ = [
    "BENCH_STATES", "CAUSES", "DISPATCH_STATES", "QUEUE_STATES", "RUN_STATES", "VERDICTS",
    "Bench", "Dispatch", "Event", "Evidence", "EvidenceRef", "Lease", "QueuedRun", "Run", "Sample", "Store",
    "StoreError", "StoreUnavailable", "TestResult",
    "claim_dispatch", "dispatch_state", "dispatches", "end_dispatch", "new_dispatch", "set_task_id",
    "acquire_lease", "append_event", "benches", "claim_next_run", "clear_bench_faults", "completed_nodeids", "create_run",
    "enqueue_run", "events", "expire_leases", "export_verdicts", "finalise_unfinished", "finish_queued_run", "get_run",
    "hash_evidence", "last_event_id", "lease_holder", "note_bench_fault", "open_store", "plan_results", "quarantine_bench",
    "queued_runs", "record_result", "register_bench", "register_sample", "release_bench",
    "release_lease", "reopen_results", "reopen_unevidenced", "renew_lease", "requeue_claimed", "resolve_url", "result_counts", "results", "retry_candidates",
    "set_run_status", "take_over_lease",
    "acquire_leases", "claim_runs", "finish_queued_runs", "held_leases", "match_runs", "release_leases", "renew_leases",
]
