"""certlab's result store: runs, benches, samples, results, evidence, events, leases, queue.

SQLite (WAL) in `$CERTLAB_DATA_DIR` by default, PostgreSQL through `CERTLAB_DATABASE_URL`;
the schema is kept by Alembic migrations that `open_store()` applies. Typical use:

    with open_store() as store:
        create_run(store, run_id=rid, edition="v2", lab="sim")
        record_result(store, run_id=rid, bench="bench1", nodeid=..., verdict="PASS", ...)
        doc = export_verdicts(store, run_id=rid)
"""

from lab.store.db import Store, StoreError, StoreUnavailable, open_store, resolve_url
from lab.store.models import (
    BENCH_STATES,
    QUEUE_STATES,
    RUN_STATES,
    VERDICTS,
    Bench,
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
    acquire_lease,
    append_event,
    benches,
    claim_next_run,
    completed_nodeids,
    create_run,
    enqueue_run,
    events,
    expire_leases,
    export_verdicts,
    finish_queued_run,
    get_run,
    hash_evidence,
    lease_holder,
    note_bench_fault,
    quarantine_bench,
    queued_runs,
    record_result,
    register_bench,
    register_sample,
    release_bench,
    release_lease,
    renew_lease,
    requeue_claimed,
    results,
    set_run_status,
)

__all__ = [
    "BENCH_STATES", "QUEUE_STATES", "RUN_STATES", "VERDICTS",
    "Bench", "Event", "Evidence", "EvidenceRef", "Lease", "QueuedRun", "Run", "Sample", "Store",
    "StoreError", "StoreUnavailable", "TestResult",
    "acquire_lease", "append_event", "benches", "claim_next_run", "completed_nodeids", "create_run",
    "enqueue_run", "events", "expire_leases", "export_verdicts", "finish_queued_run", "get_run",
    "hash_evidence", "lease_holder", "note_bench_fault", "open_store", "quarantine_bench",
    "queued_runs", "record_result", "register_bench", "register_sample", "release_bench",
    "release_lease", "renew_lease", "requeue_claimed", "resolve_url", "results", "set_run_status",
]
