"""The FastAPI application, assembled from one router per resource under /api/v1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from lab.actions.errors import ActionError, Invalid
from lab.api.audit import AuditMiddleware
from lab.api.bodylimit import BodyGuard
from lab.api.deps import Services
from lab.api.ratelimit import RateLimiter, rate_limit_file
from lab.api.routes import (
    assessments,
    bookings,
    firmware,
    products,
    records,
    reports,
    reviews,
    runs,
    samples,
    slots,
    system,
)
from lab.actions.retests import record_keeper
from lab.actions.runs import RunLauncher, run_follower
from lab.api.settings import ApiSettings
from lab.api.validation import refuse_unusable_json, safe_text, validation_errors
from lab.errors import CertlabError
from lab.store.db import Store, StoreUnavailable, open_store
from lab.webui import install as install_pages
from lab.webui.errors import error_page, validation_message
from lab.webui.guard import WebGuard, is_page
from lab.webui.pages import auth as auth_pages
from lab.webui.pages import assessments as assessment_pages
from lab.webui.pages import firmware as firmware_pages
from lab.webui.pages import samples as sample_pages
from lab.webui.pages import reports as report_pages
from lab.webui.pages import bookings as booking_pages
from lab.webui.pages import benches as bench_pages
from lab.webui.pages import queue as queue_pages
from lab.webui.pages import runs as run_pages
from lab.webui.pages import records as record_pages

PREFIX = "/api/v1"
DESCRIPTION = """Book IoT security tests against ETSI EN 303 645 (per TS 103 701) at a certlab lab.

Manufacturers create products and bookings, upload firmware and follow their runs; lab engineers
accept bookings onto slots, record sample receipt, run the suites and release reports;
certifiers read the reports released to them and record their review. Every call needs
`Authorization: Bearer <token>` (from `certlab users add`); another organisation's objects
answer 404."""


def create_app(settings: ApiSettings | None = None, *, store: Store | None = None) -> FastAPI:
    """The app with its own store (opened and migrated here unless given) and rate limiter."""
    settings = settings or ApiSettings.from_env()
    store = store or open_store(settings.database_url)
    app = FastAPI(title="certlab booking API", version="1", description=DESCRIPTION,
                  dependencies=[Depends(refuse_unusable_json)], lifespan=_follow_runs,
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs", redoc_url=f"{PREFIX}/redoc")
    app.state.services = Services(store=store, settings=settings,
                                  limiter=RateLimiter(settings.rate_per_second, settings.rate_burst,  # one budget for
                                                      rate_limit_file(settings.data_dir, "api")))  # all workers
    app.state.run_launcher = RunLauncher()  # reaps the run processes this server process started
    app.add_middleware(BodyGuard)  # inside the audit log: a refused body is logged too
    app.add_middleware(WebGuard)  # pages: the session cookie becomes the caller before any body is read
    app.add_middleware(AuditMiddleware)
    install_pages(app)  # pages: templates, /static, CSRF on every page POST, error pages (lab/webui)
    for router in _routers():
        app.include_router(router, prefix=PREFIX)
    app.include_router(records.public)  # product records, public JSON: /records, /feed (no account)
    app.include_router(auth_pages.router)  # web pages (lab/webui/pages): one line per page module
    app.include_router(sample_pages.router)
    app.include_router(firmware_pages.router)
    app.include_router(assessment_pages.router)
    app.include_router(report_pages.router)
    app.include_router(booking_pages.router)
    app.include_router(run_pages.router)
    app.include_router(bench_pages.router)
    app.include_router(queue_pages.router)
    app.include_router(record_pages.router)

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> Response:
        if is_page(request.url.path):
            return error_page(request, 503, f"the result store is unavailable: {exc}")
        return JSONResponse({"detail": f"the result store is unavailable: {exc}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if is_page(request.url.path):
            return error_page(request, 422, validation_message(exc.errors()))
        # FastAPI's own handler echoes the input, and a lone surrogate or NaN in it made the 422 a 500
        return JSONResponse({"detail": validation_errors(exc.errors())}, status_code=422)

    @app.exception_handler(ActionError)
    async def _refused(request: Request, exc: ActionError) -> Response:
        if is_page(request.url.path):
            return error_page(request, exc.status, str(exc))
        if isinstance(exc, Invalid):
            detail: object = [{"loc": exc.loc, "msg": safe_text(exc.msg), "type": exc.kind}]
        else:
            detail = safe_text(str(exc))
        return JSONResponse({"detail": detail}, status_code=exc.status)

    @app.exception_handler(CertlabError)
    async def _bad_input(request: Request, exc: CertlabError) -> Response:
        if is_page(request.url.path):
            return error_page(request, 422, str(exc))
        return JSONResponse({"detail": [{"loc": ["body"], "msg": safe_text(str(exc)), "type": "value_error"}]},
                            status_code=422)

    return app


@asynccontextmanager
async def _follow_runs(app: FastAPI) -> AsyncIterator[None]:
    """While the app serves: its run follower settles bookings whose run process ended (lab.actions.runs),
    its record keeper writes ended re-tests into their product records (lab.actions.records)."""
    follower = run_follower(app.state.services)
    keeper = record_keeper(app.state.services, period=app.state.services.settings.keeper_period)
    follower.start()
    keeper.start()
    try:
        yield
    finally:
        keeper.stop()
        follower.stop()


def _routers() -> list:
    return [system.router, products.router, bookings.router, slots.router, samples.router, firmware.router,
            assessments.router, runs.router, reports.router, reviews.router, records.router]
