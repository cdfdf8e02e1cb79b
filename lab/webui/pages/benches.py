"""The bench board (`/bench`) and releasing a quarantined bench (engineers); `lab.actions.benches`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from lab.actions import benches as actions
from lab.actions.errors import Conflict
from lab.webui.deps import EngineerView, SvcDep
from lab.webui.render import page, see_other

router = APIRouter(include_in_schema=False)

BenchName = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("/bench")
def board(request: Request, svc: SvcDep, who: EngineerView) -> HTMLResponse:
    rows, note = actions.board(svc, who)
    return page(request, "bench/board.html", benches=rows, note=note)


@router.post("/bench/{name}/release")
def release(request: Request, name: BenchName, svc: SvcDep, who: EngineerView) -> Response:
    try:
        actions.release(svc, who, name)
    except Conflict as exc:
        return see_other(request, "/bench", notice=f"Not released: {exc}")
    return see_other(request, "/bench", notice=f"Bench {name} is back in the pool; its fault count starts from zero.")
