"""`certlab serve --workers N`: several uvicorn worker processes on one socket, made ready once.

uvicorn starts each worker afresh (spawn) and builds the app in it from an import string, so
the options reach the workers through the environment: the parent checks them, migrates the
store once (N workers migrating at start would queue on the write lock), writes the resolved
values into the environment the workers inherit, and each worker builds its app with
`app_from_env` over the already-migrated store. What must be one for the whole server lives
outside the workers' memory: the rate limit (a file under the data folder, lab/api/ratelimit.py),
the runs (their launch records, lab/actions/runs.py), the report locks (a file per run).
"""

from __future__ import annotations

from collections.abc import MutableMapping

from fastapi import FastAPI

from lab.api.ratelimit import RateLimiter, rate_limit_file
from lab.api.settings import ApiSettings
from lab.errors import CertlabError
from lab.store.db import ENV_DATA_DIR, ENV_URL, open_store

MAX_WORKERS = 32
APP_FACTORY = "lab.api.workers:app_from_env"  # what uvicorn imports in each worker (factory=True)


def check_workers(workers: int) -> int:
    if not 1 <= workers <= MAX_WORKERS:
        raise CertlabError(f"--workers {workers}: give a number of server processes from 1 to {MAX_WORKERS} "
                           f"(e.g. --workers 2, about one per CPU)")
    return workers


def prepare(settings: ApiSettings) -> str:
    """Migrate the store once and check the shared rate-limit file, before any worker starts;
    the store's URL (password masked) for the banner."""
    with open_store(settings.database_url) as store:
        shown = store.url
    RateLimiter(settings.rate_per_second, settings.rate_burst, rate_limit_file(settings.data_dir, "api")).close()
    return shown


def hand_over(settings: ApiSettings, env: MutableMapping[str, str]) -> None:
    """Write what the parent resolved (-i, --reports, the data folder, the database) into `env`,
    the environment the workers inherit, as absolute paths (a worker reads it with `ApiSettings.from_env`)."""
    env["CERTLAB_INVENTORY"] = str(settings.inventory.resolve())
    env["CERTLAB_REPORTS_DIR"] = str(settings.reports_dir.resolve())
    env[ENV_DATA_DIR] = str(settings.data_dir.expanduser().resolve())
    if settings.database_url:
        env[ENV_URL] = settings.database_url


def app_from_env() -> FastAPI:
    """One worker's app: settings from the environment, the store opened without migrating
    (the parent did; a store not at this certlab's schema is refused with the fix)."""
    from lab.api.app import create_app
    from lab.store.migrations import current_revision, head_revision

    settings = ApiSettings.from_env()
    store = open_store(settings.database_url, migrate=False)
    try:
        at, head = current_revision(store), head_revision()
        if at != head:
            raise CertlabError(f"the result store {store.url} is at schema revision {at}, this certlab's is {head}; "
                               f"fix: start the server with `certlab serve`, which migrates the store before its "
                               f"workers start")
        return create_app(settings, store=store)
    except BaseException:
        store.close()
        raise

