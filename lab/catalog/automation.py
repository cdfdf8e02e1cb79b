"""Which test cases the suites automate: read from their `@pytest.mark.etsi` markers, the one source.

A test case is `automated` because a suite test is marked with its id (`@pytest.mark.etsi("5.1-1-2")`,
with `v3="5.6-4A-2"` where the V3 id differs), not because a data file says so: the catalogue loader
derives `coverage` from here, so adding a test case touches the suite only. The suites are read as
source (ast), never imported or collected: no pytest start, no test code run, and it works from an
installed package given the suites' folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

from lab import resources

MAX_FILES = 2000  # a suite tree larger than this is not certlab's


def marked_tests(edition: str, root: Path | None = None) -> dict[str, list[str]]:
    """Test case id -> the tests marked with it ('<root name>/file.py::test_name'), for `edition`
    (root: a suites folder; default the shipped assessment suites, lab.resources)."""
    found: dict[str, list[str]] = {}
    root = resources.assessment_suites() if root is None else root
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("test_*.py"))[:MAX_FILES]:
        try:
            text = path.read_text(encoding="utf-8")
            if "etsi(" not in text:
                continue
            tree = ast.parse(text, filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue  # a suite that does not parse fails at collection, with pytest's own message
        name = f"{root.name}/{path.relative_to(root).as_posix()}"
        for node in _test_functions(tree.body):
            for case in etsi_ids(node, edition):
                found.setdefault(case, []).append(f"{name}::{node.name}")
    return found


def _test_functions(body: list[ast.stmt]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions pytest can collect: a module's and its classes', not what their bodies hold.

    Every `certlab run`, worker and catalogue read parses the suites; walking every node of every
    test body cost each of them half a second of CPU on a lab PC its DUTs share.
    """
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node)
        elif isinstance(node, ast.ClassDef):
            found += _test_functions(node.body)
    return found


def etsi_ids(node: ast.FunctionDef | ast.AsyncFunctionDef, edition: str) -> list[str]:
    """The test case ids (of `edition`) a test function's literal `etsi(...)` markers name.

    Read as fixtures/etsi.py's marked_case does: the id is the first argument (or `test_case=`),
    `v3="..."` replaces it in V3, and `v3=None` means the test has no counterpart there."""
    ids = []
    for deco in node.decorator_list:
        if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "etsi"):
            continue
        given = {kw.arg: kw.value for kw in deco.keywords if kw.arg}
        first = deco.args[0] if deco.args else given.get("test_case")
        chosen = given[edition] if edition == "v3" and edition in given else first
        if isinstance(chosen, ast.Constant) and isinstance(chosen.value, str):
            ids.append(chosen.value)
        # else: v3=None (no counterpart), or a computed id (the conceptual tests' parametrisation)
    return ids
