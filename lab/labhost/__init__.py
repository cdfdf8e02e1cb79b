"""Lab hosts: the machines benches hang off, taking work items from a Celery + Redis broker.

`broker` names queues and builds Celery apps, `beats` keeps hosts' heartbeats in Redis, `task`
is one work item on a lab host, `evidence` carries its files back, `serve` supervises a host's
per-bench workers, `executor` is the orchestrator's side. None of it is imported unless
CERTLAB_BROKER_URL is set: one machine keeps the local process pool.
"""
