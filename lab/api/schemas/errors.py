"""Error bodies as the API answers them, declared per operation so the OpenAPI document is true.

An HTTPException answers `{"detail": "<one line>"}`; every 422 has the list shape FastAPI gives a
malformed request (`[{"loc": [...], "msg": ..., "type": ...}]`), custom checks included, so a
client parses one shape whatever refused its input.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel


class Problem(BaseModel):
    """Any refusal but 422: one line saying what is wrong and how to fix it."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    """A 422: the fields that are wrong (`loc` from "body"/"query"/"path" down), each with its problem."""

    detail: list[FieldProblem]


WHY: dict[int, str] = {
    400: "The body cannot be parsed (not UTF-8 JSON, or broken multipart)",
    401: "No, unknown or revoked API token",
    403: "Your role may not do this",
    404: "No such object, or not yours (another organisation's ids are never confirmed)",
    409: "The object's state does not allow this",
    410: "The stored file is gone",
    413: "The body is over its size limit",
    422: "Invalid input: `loc` names the field",
    429: "Over the token's rate limit (Retry-After says when to retry)",
    503: "The result store or the lab's inventory is unavailable",
    504: "The lab's command took too long and was stopped",
}

AUTHENTICATED = (401, 429, 503)
"""What any call with a token can answer: the routers declare these for every operation."""
BODY = (400, 413)
"""What any operation that takes a body can answer about the body itself."""


def errors(*codes: int, why: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for these status codes, each with its body model and a description (`why` overrides)."""
    why = why or {}
    return {code: {"model": Invalid if code == 422 else Problem, "description": why.get(code, WHY[code])}
            for code in (*codes, *[c for c in why if c not in codes])}


def invalid(loc: list[str | int], msg: str, kind: str = "value_error") -> HTTPException:
    """A 422 naming one field, in the standard list shape."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": loc, "msg": msg, "type": kind}])


def download(media_type: str, description: str, *, yaml: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` entry for a 200 whose body is a file of this type, on a route with `response_class=Response`
    (a PlainTextResponse or FileResponse class would file the error bodies under its own type too)."""
    schema = {"type": "object"} if yaml else {"type": "string", "format": "binary"}  # a YAML document is a mapping
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}
