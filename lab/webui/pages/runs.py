"""Runs in the browser: the recent runs, one run's live progress (server-sent events), a test
case's transcript and evidence, cancel; and starting a booking's testing (`/bookings/{id}/start`).

Engineers and the manufacturer whose booking it is follow a run (read-only for the manufacturer);
a certifier reads the released report instead. Everything is `lab.actions.runs`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from lab.actions import runs as actions
from lab.actions.context import Caller
from lab.actions.errors import ActionError
from lab.errors import CertlabError
from lab.store.db import StoreUnavailable
from lab.webui.deps import EngineerView, Roles, SvcDep, session_of
from lab.webui.render import page, see_other

router = APIRouter(include_in_schema=False)

FollowsRuns = Annotated[Caller, Depends(Roles(*actions.FOLLOWS_RUNS))]
RunId = Annotated[str, Path(min_length=1, max_length=64)]
ResultId = Annotated[int, Path(ge=1, le=2**63 - 1)]
BookingId = Annotated[int, Path(ge=1, le=2**31 - 1)]

POLL = 1.0  # seconds between two looks at the run (one indexed query each)
HEARTBEAT = 15.0  # seconds: a comment line keeps proxies from closing a quiet stream
LIFETIME = 600.0  # seconds one stream lives; the browser's EventSource reconnects by itself
TEXT_FILES = (".log", ".txt", ".json", ".yaml", ".yml", ".csv", ".transcript")


def _progress_html(request: Request, run: actions.RunStatus) -> str:
    """The progress section (with the cancel button for an engineer while the process runs): the
    run page shows it and its live stream sends it again whenever it changed."""
    view = session_of(request)
    engineer = view is not None and view.caller.is_engineer
    return request.app.state.templates.get_template("runs/_progress.html").render(
        run=run, cancel=engineer and run.process == "running", csrf=view.csrf if view is not None else "")


@router.get("/runs")
def runs_page(request: Request, svc: SvcDep, who: FollowsRuns) -> HTMLResponse:
    return page(request, "runs/list.html", runs=actions.recent_runs(svc, who), limit=actions.RECENT_RUNS)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: RunId, svc: SvcDep, who: FollowsRuns) -> HTMLResponse:
    run = actions.run_status(svc, who, run_id)
    results = actions.run_results(svc, who, run_id)
    return page(request, "runs/detail.html", run=run, results=results, progress=_progress_html(request, run))


async def _stream(request: Request, poll: Callable[[], actions.RunStatus]) -> AsyncIterator[str]:
    """SSE lines: the progress section whenever it changed, a heartbeat comment when quiet, and
    `done` once the run is final; at most LIFETIME seconds per connection (access was checked
    when it opened; the browser reconnects, and is checked again)."""
    started = last_sent = time.monotonic()
    previous = None
    yield "retry: 5000\n\n"
    while time.monotonic() - started < LIFETIME:
        try:
            run = await run_in_threadpool(poll)
        except (ActionError, StoreUnavailable) as exc:  # say so and stop; the browser retries later
            yield f"data: {json.dumps({'id': 'live-status', 'text': f'Live updates stopped: {exc}'})}\n\n"
            return
        snapshot = run.as_dict()
        if snapshot != previous:
            previous, last_sent = snapshot, time.monotonic()
            yield f"data: {json.dumps({'replace': 'run-progress', 'html': _progress_html(request, run)})}\n\n"
        if run.final:
            yield f"data: {json.dumps({'done': True})}\n\n"
            return
        if time.monotonic() - last_sent >= HEARTBEAT:
            last_sent = time.monotonic()
            yield ": heartbeat\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL)


@router.get("/runs/{run_id}/events")
def run_events(request: Request, run_id: RunId, svc: SvcDep, who: FollowsRuns) -> StreamingResponse:
    poll = actions.follow(svc, who, run_id)  # 404/403 as a page before the stream starts
    return StreamingResponse(_stream(request, poll), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/runs/{run_id}/tests/{result_id}")
def result_page(request: Request, run_id: RunId, result_id: ResultId, svc: SvcDep, who: FollowsRuns) -> HTMLResponse:
    return page(request, "runs/result.html", detail=actions.result_detail(svc, who, run_id, result_id))


@router.get("/runs/{run_id}/tests/{result_id}/file")
def evidence_download(run_id: RunId, result_id: ResultId, svc: SvcDep, who: FollowsRuns,
                      path: Annotated[str, Query(min_length=1, max_length=1024)]) -> Response:
    """One evidence file, always as a download (never rendered by the browser as a page)."""
    file = actions.evidence_file(svc, who, run_id, result_id, path)
    media = "text/plain; charset=utf-8" if file.name.endswith(TEXT_FILES) else "application/octet-stream"
    return FileResponse(file, media_type=media, filename=file.name, content_disposition_type="attachment",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


@router.post("/runs/{run_id}/cancel")
def cancel(request: Request, run_id: RunId, svc: SvcDep, who: EngineerView) -> Response:
    try:
        actions.cancel_run(svc, who, run_id)
    except ActionError as exc:
        if exc.status in (403, 404):
            raise
        return see_other(request, f"/runs/{run_id}", notice=f"Not cancelled: {exc}")
    return see_other(request, f"/runs/{run_id}", notice="Cancel sent: the run stops its tests and switches the "
                                                         "devices off; its state changes here in a few seconds.")


@router.post("/bookings/{booking_id}/start")
def start(request: Request, booking_id: BookingId, svc: SvcDep, who: EngineerView) -> Response:
    """Start testing an accepted booking with the booking's suites on every bench of its model."""
    try:
        run = actions.start_run(svc, who, booking_id, launcher=request.app.state.run_launcher)
    except (ActionError, CertlabError) as exc:
        if isinstance(exc, ActionError) and exc.status in (403, 404):
            raise
        return see_other(request, f"/bookings/{booking_id}", notice=f"Testing did not start: {exc}")
    return see_other(request, f"/runs/{run.run_id}", notice=f"Testing started: run {run.run_id}.")
