"""How certlab uses the broker: one queue per bench, settings that make delivery safe.

Late acknowledgement with reject-on-worker-lost means a message is only gone once its task has
returned; Redis hands an unacknowledged message out again after the visibility timeout, which
is longer than any suite, so a slow test is never given to a second worker while it runs. What
a redelivery may still do twice is stopped by the attempt's fencing token (lab.store.dispatch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lab.errors import CertlabError

BROKER_ENV = "CERTLAB_BROKER_URL"
RUN_ITEM = "certlab.run_item"
POWER_OFF = "certlab.power_off"
VISIBILITY_TIMEOUT = 6 * 3600.0  # seconds: longer than the longest suite on the slowest DUT
RESULT_TTL = 24 * 3600  # seconds a finished item's result (and its evidence) waits in Redis


@dataclass(frozen=True)
class BrokerSettings:
    url: str

    @classmethod
    def from_env(cls) -> BrokerSettings | None:
        """None: no broker, the local process pool runs the work (the embedded default)."""
        url = os.environ.get(BROKER_ENV, "").strip()
        if not url:
            return None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise CertlabError(f"{BROKER_ENV}={_mask(url)}: certlab's broker is Redis; fix: use "
                               f"redis://[:PASSWORD@]HOST:6379/0 (or rediss:// for TLS)")
        return cls(url)

    @property
    def shown(self) -> str:
        """The URL without its password, for logs and tables."""
        return _mask(self.url)


def _mask(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"


def bench_queue(lab: str, bench: str) -> str:
    """One queue per bench: only the host the bench hangs off consumes it, one item at a time."""
    return f"certlab.bench.{lab}.{bench}"


def make_app(settings: BrokerSettings, *, name: str = "certlab"):
    """A Celery app for this broker; tasks are registered by whoever consumes (lab.labhost.task)."""
    from celery import Celery

    app = Celery(name, broker=settings.url, backend=settings.url, set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=True, result_expires=RESULT_TTL, result_extended=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_send_task_events=False, task_send_sent_event=False, worker_enable_remote_control=True,
        broker_connection_timeout=5.0, redis_socket_timeout=10.0, redis_socket_connect_timeout=5.0,
        redis_backend_health_check_interval=10,
    )
    return app


def redis_client(settings: BrokerSettings, *, timeout: float = 3.0):
    """A plain Redis client on the broker, for heartbeats (short timeouts: a partition must show)."""
    import redis

    return redis.Redis.from_url(settings.url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=0, decode_responses=True)
