"""Reading certlab's YAML data files and turning pydantic errors into one line.

The catalogue, the ICS and the IXIT share this so that every bad input reads the same way:
`FILE: WHAT: FIELD.PATH: problem; fix` (the style of lab/inventory.py). Duplicate keys are an
error, because PyYAML would silently keep the last one and a provision answered twice must be
noticed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import ValidationError

from lab.errors import CertlabError

#: How to fix each pydantic error type (message text stays pydantic's, shortened).
FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write a text value (quote it)",
    "string_too_short": "write a non-empty text",
    "string_pattern_mismatch": "use the format shown",
    "model_type": "write a mapping (key: value lines)",
    "model_attributes_type": "write a mapping (key: value lines)",
    "dict_type": "write a mapping (key: value lines)",
    "list_type": "write a list",
    "tuple_type": "write a list",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "too_short": "add entries",
    "date_from_datetime_parsing": "write a date as YYYY-MM-DD",
    "date_parsing": "write a date as YYYY-MM-DD",
    "date_type": "write a date as YYYY-MM-DD",
    "url_parsing": "write a full URL such as https://example.com/security",
}


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that rejects a key given twice in one mapping. libyaml parses when PyYAML has it
    (ten times faster: an ICS is read on every booking); the constructors stay Python."""


class _DuplicateKey(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(
                f"line {key_node.start_mark.line + 1}: duplicate key {key!r} (first at line {seen[key]}); "
                "give each key once"
            )
        seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str, error: type[CertlabError]) -> Any:
    """Parse YAML text; any syntax problem becomes `error` naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except _DuplicateKey as exc:
        raise error(f"{source}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{source}: YAML syntax error at {where}{problem}; fix the YAML") from None


def read_yaml(path: Path, error: type[CertlabError], what: str) -> Any:
    """Read and parse a YAML file; `what` names the document in the fix ("ICS", "IXIT")."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found; pass an existing {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} ({exc}); check the file") from None
    return parse_yaml(text, str(path), error)


def field_path(loc: tuple[Any, ...]) -> str:
    """pydantic's loc as a readable path: ('15-Intf', 2, 'port') -> '15-Intf[2].port'."""
    out = ""
    for part in loc:
        text = str(part)
        if isinstance(part, int):
            out += f"[{part}]"
        elif text.startswith(("function-", "tagged-union", "union[")) or text in ("str", "int", "list[str]"):
            continue  # pydantic internals, not fields the user wrote
        else:
            out += ("." if out else "") + text
    return out


def validation_line(source: str, prefix: str, exc: ValidationError,
                    annotate: Callable[[tuple[Any, ...]], str] | None = None) -> str:
    """One line for the first (most useful) error of a ValidationError.

    `annotate(loc)` may add a hint after the field path, e.g. the id of the list entry.
    """
    errors = exc.errors()
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")  # a misspelling explains its "missing" twin
    err = errors[0]
    loc = field_path(err["loc"])
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    fix = FIXES.get(err["type"], "")
    if err["type"] == "extra_forbidden":
        parent = loc.rpartition(".")[0]
        siblings = [field_path(e["loc"]).rpartition(".")[2] for e in errors
                    if e["type"] == "missing" and field_path(e["loc"]).rpartition(".")[0] == parent]
        close = difflib.get_close_matches(loc.rpartition(".")[2], siblings, n=1)
        msg = "unknown field"
        fix = f"did you mean {close[0]!r}?" if close else fix
    elif err["type"] == "literal_error":
        fix = ""  # pydantic's message already lists the allowed values
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"{prefix}: {loc}" if loc else prefix
    if annotate:
        where += annotate(tuple(err["loc"]))
    return f"{source}: {where}: {msg}{'; ' + fix if fix and fix not in msg else ''}{more}"
