"""The queue of pending runs (`/queue`, engineers): add, move up or down, set a priority, cancel.
`certlab queue work` serves it; everything here is `lab.actions.queue`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from lab.actions import queue as actions
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Invalid
from lab.catalog import EDITIONS
from lab.webui.deps import EngineerView, SvcDep
from lab.webui.render import form_errors, page, see_other

router = APIRouter(include_in_schema=False)

QueuedId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _page(request: Request, svc: Services, who: Caller, *, status: int = 200, errors: dict[str, str] | None = None,
          values: dict[str, str] | None = None) -> HTMLResponse:
    errors = errors or {}
    return page(request, "queue/list.html", status=status, rows=actions.listing(svc, who), shown=actions.SHOWN,
                errors=errors, add_errors={k: v for k, v in errors.items() if not k.startswith("priority-")}, values=values or {"suite": "en303645", "edition": "v2", "priority": "0"},
                suites=list(actions.SUITES), editions=list(EDITIONS))


@router.get("/queue")
def queue_page(request: Request, svc: SvcDep, who: EngineerView) -> HTMLResponse:
    return _page(request, svc, who)


@router.post("/queue")
def add(request: Request, svc: SvcDep, who: EngineerView, model: Annotated[str, Form()] = "",
        capabilities: Annotated[str, Form()] = "", priority: Annotated[str, Form()] = "0",
        suite: Annotated[str, Form()] = "en303645", edition: Annotated[str, Form()] = "v2") -> Response:
    values = {"model": model, "capabilities": capabilities, "priority": priority, "suite": suite, "edition": edition}
    try:
        qid = actions.add(svc, who, model=model, capabilities=capabilities, priority=priority, suite=suite,
                          edition=edition)
    except Invalid as exc:
        return _page(request, svc, who, status=422, errors=form_errors(exc), values=values)
    return see_other(request, "/queue", notice=f"Queued run {qid} for any {model.strip()} bench; "
                                                "certlab queue work serves it.")


def _changed(request: Request, what: str, change) -> Response:  # type: ignore[no-untyped-def]
    try:
        change()
    except (Conflict, Invalid) as exc:
        return see_other(request, "/queue", notice=f"Not changed: {exc}")
    return see_other(request, "/queue", notice=what)


@router.post("/queue/{queued_id}/move")
def move(request: Request, queued_id: QueuedId, svc: SvcDep, who: EngineerView,
         direction: Annotated[str, Form()] = "") -> Response:
    return _changed(request, f"Queued run {queued_id} moved {direction}.",
                    lambda: actions.move(svc, who, queued_id, direction))


@router.post("/queue/{queued_id}/priority")
def priority(request: Request, queued_id: QueuedId, svc: SvcDep, who: EngineerView,
             priority: Annotated[str, Form()] = "") -> Response:
    try:
        level = actions.reprioritise(svc, who, queued_id, priority)
    except Invalid as exc:  # the error at that row's priority field
        return _page(request, svc, who, status=422, errors={f"priority-{queued_id}": exc.msg},
                     values={"suite": "en303645", "edition": "v2", "priority": "0", f"priority-{queued_id}": priority})
    except Conflict as exc:
        return see_other(request, "/queue", notice=f"Not changed: {exc}")
    return see_other(request, "/queue", notice=f"Queued run {queued_id} now has priority {level}.")


@router.post("/queue/{queued_id}/cancel")
def cancel(request: Request, queued_id: QueuedId, svc: SvcDep, who: EngineerView) -> Response:
    return _changed(request, f"Queued run {queued_id} cancelled.", lambda: actions.cancel(svc, who, queued_id))
