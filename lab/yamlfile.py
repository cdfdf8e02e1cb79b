"""Reading certlab's YAML data files and turning pydantic errors into one line.

The catalogue, the ICS and the IXIT share this so that every bad input reads the same way:
`FILE: WHAT: FIELD.PATH: problem; fix` (the style of lab/inventory.py). Duplicate keys are an
error, because PyYAML would silently keep the last one and a provision answered twice must be
noticed. A value PyYAML cannot build (an impossible date, an integer beyond Python's digit
limit), nesting deeper than MAX_DEPTH and aliases expanding past MAX_NODES are errors with their
field and line too: they used to escape as ValueError or RecursionError (a 500, exit 70).
"""

from __future__ import annotations

import difflib
import math
import sys
from pathlib import Path
from collections.abc import Callable, Hashable
from typing import Any

import yaml
from pydantic import ValidationError

from lab.errors import CertlabError
from lab.inputfile import MAX_YAML_BYTES, read_bounded_text

#: Deepest nesting of mappings and lists a data file may have (the deepest real one has under 10);
#: checked on the node tree before constructing, whose recursion would otherwise blow up.
MAX_DEPTH = 64
#: Most values a document may expand to through aliases ("billion laughs"); real files have thousands.
MAX_NODES = 1_000_000

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


class _Refused(Exception):
    """The document is refused: `message` says where and why (the source is added by the caller)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _BadValue(Exception):
    """A scalar no constructor could build; carries its node so the field path can be named."""

    def __init__(self, node: yaml.Node, problem: str):
        super().__init__(problem)
        self.node = node
        self.problem = problem


#: Integers below this many bits always print within Python's digit limit (4300 digits ~ 14284 bits).
_INT_BITS_SURE = 4096

#: What a value of each tag must be, for the fix of a value PyYAML could not build.
_VALUE_FIXES = {
    "tag:yaml.org,2002:timestamp": ("is not a real date or time", "write a real date as YYYY-MM-DD (or quote it)"),
    "tag:yaml.org,2002:int": ("is not a whole number certlab can read",
                              "write a whole number of at most 4300 digits (or quote it as text)"),
    "tag:yaml.org,2002:float": ("is not a usable number", "write a finite number"),
}
_COLLECTIONS = (yaml.MappingNode, yaml.SequenceNode)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that rejects a key given twice in one mapping, a tree too deep or too large, and
    a value its constructors cannot build. libyaml parses when PyYAML has it (ten times faster: an
    ICS is read on every booking); the constructors stay Python."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_shape(node)
        try:
            return super().construct_document(node)
        except _BadValue as exc:
            raise _Refused(_bad_value_line(node, exc)) from None


def _checked(construct: Callable[[Any, yaml.ScalarNode], Any]) -> Callable[[Any, yaml.ScalarNode], Any]:
    """A scalar constructor whose ValueError (datetime's ranges, int's digit limit) becomes
    _BadValue with the node, and whose result certlab can use: a finite float, an int that can be
    printed (a hex literal is built past the digit limit, but no error line could show it)."""
    def checked(loader: Any, node: yaml.ScalarNode) -> Any:
        too_long = f"more than the {sys.get_int_max_str_digits()} digits Python converts"
        try:
            value = construct(loader, node)
        except (ValueError, OverflowError) as exc:
            problem = str(exc).split(";")[0]
            raise _BadValue(node, too_long if "integer string conversion" in problem else problem) from None
        if type(value) is float and not math.isfinite(value):
            raise _BadValue(node, "not a finite number")  # .nan/.inf: every float certlab reads is a measure
        if type(value) is int and value.bit_length() > _INT_BITS_SURE:
            try:
                str(value)
            except ValueError:
                raise _BadValue(node, too_long) from None
        return value
    return checked


for _tag, _construct in (("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_timestamp),
                         ("tag:yaml.org,2002:int", yaml.constructor.SafeConstructor.construct_yaml_int),
                         ("tag:yaml.org,2002:float", yaml.constructor.SafeConstructor.construct_yaml_float)):
    _UniqueKeyLoader.add_constructor(_tag, _checked(_construct))


def _check_shape(root: yaml.Node) -> None:
    """Depth and expanded size of the node tree, without recursion; each collection node measured
    once (aliases share nodes), so a document of aliases is measured in linear time."""
    if not isinstance(root, _COLLECTIONS):
        return
    measured: dict[int, tuple[int, int]] = {}  # id -> (height, values it expands to)
    open_nodes: set[int] = set()  # the path from the root to the node being measured
    stack: list[yaml.Node] = [root]
    while stack:  # bounded: each collection node is pushed once per parent edge, measured once
        node = stack[-1]
        key = id(node)
        if key in measured:
            stack.pop()
            continue
        kids = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        if key not in open_nodes:
            if len(open_nodes) >= MAX_DEPTH:
                raise _Refused(f"line {node.start_mark.line + 1}: nesting deeper than {MAX_DEPTH} levels; "
                               "flatten the document")
            open_nodes.add(key)
            for kid in kids:
                if isinstance(kid, _COLLECTIONS) and id(kid) not in measured:
                    if id(kid) in open_nodes:
                        raise _Refused(f"line {kid.start_mark.line + 1}: an alias inside its own anchor; "
                                       "write the values out")
                    stack.append(kid)
            continue
        stack.pop()
        open_nodes.discard(key)
        height, size = 1, 1
        for kid in kids:
            got = measured.get(id(kid))
            if got is None:
                size += 1
            else:
                height, size = max(height, got[0] + 1), size + got[1]
        if height > MAX_DEPTH:
            raise _Refused(f"line {node.start_mark.line + 1}: nesting deeper than {MAX_DEPTH} levels; "
                           "flatten the document")
        if size > MAX_NODES:
            raise _Refused(f"line {node.start_mark.line + 1}: aliases expand to more than {MAX_NODES} "
                           "values; write the values out instead of nesting aliases")
        measured[key] = (height, size)


def _field_of(root: yaml.Node, target: yaml.Node) -> str:
    """The path of `target` in the tree ('dut.date', 'items[2]'), or '' if not found; iterative."""
    stack: list[tuple[yaml.Node, str, int]] = [(root, "", 0)]
    seen: set[int] = set()
    while stack:  # bounded: each node visited once
        node, path, level = stack.pop()
        if node is target:
            return path
        if id(node) in seen or level > MAX_DEPTH:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append((key_node, path, level + 1))
                stack.append((value_node, f"{path}.{name}" if path else name, level + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, f"{path}[{i}]", level + 1) for i, child in enumerate(node.value))
    return ""


def _bad_value_line(root: yaml.Node, exc: _BadValue) -> str:
    node = exc.node
    what, fix = _VALUE_FIXES.get(node.tag, ("cannot be read", "write a plain value (or quote it as text)"))
    text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
    shown = repr(text if len(text) <= 40 else text[:20] + "..." + text[-10:])
    field = _field_of(root, node)
    where = f"field {field} (line {node.start_mark.line + 1})" if field else f"line {node.start_mark.line + 1}"
    return f"{where}: {shown} {what} ({exc.problem}); {fix}"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise _Refused(f"line {key_node.start_mark.line + 1}: a key that is a list or mapping; "
                           "write a plain key (text, number or date)")
        if key in seen:
            raise _Refused(
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
    except _Refused as exc:
        raise error(f"{source}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{source}: YAML syntax error at {where}{problem}; fix the YAML") from None


def read_yaml(path: Path, error: type[CertlabError], what: str) -> Any:
    """Read (only a regular file, at most MAX_YAML_BYTES) and parse a YAML file; `what` names the
    document in the fix ("ICS", "IXIT")."""
    text = read_bounded_text(path, what=what, limit=MAX_YAML_BYTES, error=error)
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
