"""The body of a 422 for a request FastAPI could not validate, always serialisable as JSON.

FastAPI's own handler echoes each error's `input` (and `ctx`): a lone surrogate (`"\\ud800"` is
valid JSON) or NaN (Python's json accepts the literal) in a body then made the 422 itself fail,
and the client got a 500. Here strings are made encodable, non-finite floats are spelt as the
client wrote them, and what still cannot be serialised is dropped; the shape stays FastAPI's
HTTPValidationError (`{"detail": [{"loc", "msg", "type", ...}]}`), as the OpenAPI document says.
A body that validates but holds such a value is refused too (`refuse_unusable_json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError

#: How deep an echoed input is followed; deeper parts are replaced by a marker.
MAX_ECHO_DEPTH = 16
_TRUNCATED = "..."


def safe_text(text: str) -> str:
    """`text` that encodes as UTF-8: lone surrogates become their `\\udXXX` escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON data (dict, list, str, finite number, bool, None) that encodes as
    UTF-8; bytes are decoded with escapes, NaN and the infinities become "NaN"/"Infinity"/"-Infinity".
    Bounded: nesting past MAX_ECHO_DEPTH is cut (an input is echoed, not reproduced)."""
    if depth > MAX_ECHO_DEPTH:
        return _TRUNCATED
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {safe_text(str(k)): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Sequence) or isinstance(value, (set, frozenset)):
        return [json_safe(v, depth + 1) for v in value]
    try:
        return json_safe(jsonable_encoder(value), depth + 1)
    except Exception:  # noqa: BLE001 - an object FastAPI cannot encode is not echoed
        return safe_text(repr(value))


def _serialisable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):
        return False
    return True


def validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's list of validation errors made JSON-safe: `loc`, `msg`, `type` always; `input`
    and `ctx` when they can be made serialisable, else left out."""
    out: list[dict[str, Any]] = []
    for error in errors:
        item: dict[str, Any] = {
            "loc": [p if isinstance(p, int) else safe_text(str(p)) for p in error.get("loc", ())],
            "msg": safe_text(str(error.get("msg", ""))),
            "type": safe_text(str(error.get("type", "value_error"))),
        }
        for key in ("input", "ctx"):
            if key in error:
                value = json_safe(error[key])
                if _serialisable(value):
                    item[key] = value
        out.append(item)
    return out


def unusable_value(data: Any) -> tuple[tuple[str | int, ...], str, str] | None:
    """(location, type, message) of the first value in parsed JSON the service could never use:
    a string with a lone surrogate (it cannot be stored or written as UTF-8) or NaN/Infinity
    (Python's json accepts them; no quantity certlab takes is infinite). Iterative, each value once."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack:  # bounded by the size of the parsed body
        loc, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and safe_text(value) != value:
                return loc, "string_unicode", "Input should be valid Unicode text: it holds a lone surrogate"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return loc, "finite_number", "Input should be a finite number"
        elif isinstance(value, dict):
            for key, item in value.items():
                if safe_text(key) != key:
                    return (*loc, safe_text(key)), "string_unicode", \
                        "Field names should be valid Unicode text: this one holds a lone surrogate"
                stack.append(((*loc, key), item))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in enumerate(value))
    return None


async def refuse_unusable_json(request: Request) -> None:
    """App-wide dependency: a JSON body holding a lone surrogate or NaN/Infinity is a 422 naming
    the field, before any route stores it (SQLite and files need valid UTF-8; a NaN compares false)."""
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return  # the route reads no body
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type.split(";")[0].lower():
        return  # a form or an upload: not parsed as JSON
    if not await request.body():
        return
    try:
        data = await request.json()  # FastAPI has parsed it already: this is the cached value
    except ValueError:
        return  # FastAPI answered the syntax error itself
    found = unusable_value(data)
    if found is not None:
        loc, kind, msg = found
        raise RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": kind}])
