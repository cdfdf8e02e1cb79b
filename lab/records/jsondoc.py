"""Reading a JSON document a manufacturer uploads (SBOM, CSAF advisory): one clear error each.

Shared by sbom.py and csaf.py so both refuse bad input the same way: an error carries `loc`, the
JSON path of the offending field (["components", 3, "name"]; [] for the whole document), which
the API puts after ["body", <form field>] in a 422, and `msg`, one line ending with the fix.
From a schema validation, the reported error is deterministic: the most relevant by jsonschema's
`relevance` (the shallowest, then the first by path), inside an anyOf/oneOf the alternative that
failed least, and a missing or unexpected property named in `loc` itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lab.errors import CertlabError

Loc = list[str | int]
MAX_MESSAGE = 160  # a value quoted in a message is cut: the message stays one line


class DocumentError(CertlabError, ValueError):
    """An uploaded document that cannot be used; `loc` is the field's JSON path, `msg` the line."""

    def __init__(self, loc: Loc, msg: str):
        super().__init__(f"{where(loc)}: {msg}")
        self.loc = list(loc)
        self.msg = msg


def where(loc: Loc) -> str:
    """`components[3].name` for ["components", 3, "name"]; `(document)` for []."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def load_json(data: bytes, *, error: type[DocumentError], what: str, limit: int) -> Any:
    """The JSON value in `data`, or `error` at [] naming the size, encoding or syntax problem."""
    if len(data) > limit:
        raise error([], f"{len(data)} bytes, over the {limit >> 20} MiB certlab accepts for {what}; "
                        f"fix: upload the {what} itself")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error([], f"not UTF-8 text (byte {exc.start}); fix: save the {what} as UTF-8 JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error([], f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                        f"fix: upload the {what} as a JSON file") from None
    except RecursionError:
        raise error([], f"nested too deeply to be {what}; fix: upload the {what} itself") from None


def schema_error(errors: Any, *, fix: str) -> tuple[Loc, str] | None:
    """The one jsonschema error to report from `errors` (an iterable of ValidationError), as
    (loc, one-line msg ending in `fix`); None when there is none."""
    from jsonschema.exceptions import relevance  # jsonschema takes a second to import: only when validating

    error = max(errors, key=relevance, default=None)
    if error is None:
        return None
    while error.validator in ("anyOf", "oneOf") and error.context:
        error = max(_nearest_alternative(error.context), key=relevance)
    loc: Loc = list(error.absolute_path)
    validator, value, instance = error.validator, error.validator_value, error.instance
    if validator == "required" and isinstance(instance, dict):
        missing = next((name for name in value if name not in instance), None)
        if missing is not None:
            return [*loc, missing], f"required field missing; fix: {fix}"
    if validator in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        extra = _unexpected(error.schema, instance)
        if extra is not None:
            return [*loc, extra], f"field not allowed here; fix: remove it or {fix}"
    return loc, f"{_message(error)}; fix: {fix}"


def _nearest_alternative(context: list[Any]) -> list[Any]:
    """Of the alternatives an anyOf/oneOf tried, the errors of the one that failed least (ties:
    the first): a CVSS 3.1 score with a bad baseScore is reported as that, not as a 3.0 score."""
    by_branch: dict[Any, list[Any]] = {}
    for err in context:
        by_branch.setdefault(err.relative_schema_path[0] if err.relative_schema_path else 0, []).append(err)
    return min(by_branch.values(), key=len)


def _unexpected(schema: dict, instance: dict) -> str | None:
    """The first property of `instance` the schema's properties and patternProperties do not allow."""
    known = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return next((name for name in instance if name not in known and not any(p.search(name) for p in patterns)), None)


def _message(error: Any) -> str:
    """jsonschema's message, on one line and bounded (it quotes the whole offending value)."""
    validator, value = error.validator, error.validator_value
    if validator == "type":
        types = value if isinstance(value, list) else [value]
        return f"must be of type {' or '.join(types)}"
    if validator == "enum" and len(value) == 1:
        return f"must be {_cut(json.dumps(value[0]))}"
    if validator == "enum":
        return "must be one of " + _cut(", ".join(json.dumps(v) for v in value))
    if validator == "const":
        return f"must be {_cut(json.dumps(value))}"
    if validator == "format":
        return f"not a valid {value} ({_cut(json.dumps(error.instance, default=str))})"
    if validator == "pattern":
        return f"does not match the pattern {_cut(value, 80)}"
    bounds = {"minItems": "at least {} entries", "maxItems": "at most {} entries",
              "minLength": "at least {} characters", "maxLength": "at most {} characters",
              "minProperties": "at least {} fields", "maxProperties": "at most {} fields"}
    if validator in bounds:
        return "must have " + bounds[validator].format(value)
    if validator == "uniqueItems":
        return "has duplicate entries"
    return _cut(" ".join(error.message.split()))


def _cut(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
