"""The audit log: every state-changing call (who, what, when, with what outcome), append-only.

A plain ASGI middleware, so reads pay nothing and the entry is written after the response is
known, refused calls included (their status says so).
"""

from __future__ import annotations

from typing import Any

import anyio

from lab.store.db import Store
from lab.store.models import AuditEntry
from lab.store.unit import unit

CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


def record(store: Store, *, caller: Any, method: str, path: str, status: int, detail: str = "") -> None:
    with unit(store) as s:
        s.add(AuditEntry(user_id=getattr(caller, "id", None), user_name=getattr(caller, "name", None),
                         role=getattr(caller, "role", None), org=getattr(caller, "org", None),
                         method=method, path=path[:512], status=status, detail=detail))


class AuditMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGES:
            await self.app(scope, receive, send)
            return
        outcome = {"status": 500}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            services = scope["app"].state.services
            caller = scope.get("state", {}).get("caller")
            query = scope.get("query_string", b"").decode("latin-1")
            await anyio.to_thread.run_sync(lambda: record(
                services.store, caller=caller, method=scope["method"], path=scope["path"],
                status=outcome["status"], detail=" ".join(filter(None, [f"?{query}" if query else "",
                                                                        scope.get("state", {}).get("audit_detail")]))))
