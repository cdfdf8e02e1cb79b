"""Which TS 103 701 test cases certlab automates, and by which test of `testsuites/`.

A functional test case that a suite decides must never also be recorded by hand: the assessor's
record would stand beside (or in place of) the machine's result. The catalogue's `coverage`
says which cases are automated; the suites say by which test (`@pytest.mark.etsi("5.1-1-2")`,
with `v3="..."` where the V3 id differs). The suites are read as source (ast), never imported,
so this costs no pytest start and cannot run test code.
"""

from __future__ import annotations

import ast
from pathlib import Path

from lab.catalog import Catalog
from lab.errors import CertlabError

SUITES = Path(__file__).resolve().parents[1] / "testsuites"
MAX_FILES = 2000  # a suite tree larger than this is not certlab's


def marked_tests(edition: str, root: Path = SUITES) -> dict[str, list[str]]:
    """Test case id -> the tests marked with it ('testsuites/.../file.py::test_name'), for `edition`."""
    found: dict[str, list[str]] = {}
    if not root.is_dir():
        return found
    files = sorted(root.rglob("test_*.py"))[:MAX_FILES]
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue  # a suite that does not parse fails at collection, with pytest's own message
        name = f"{root.name}/{path.relative_to(root).as_posix()}"
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for case in _etsi_ids(node, edition):
                found.setdefault(case, []).append(f"{name}::{node.name}")
    return found


def _etsi_ids(node: ast.FunctionDef | ast.AsyncFunctionDef, edition: str) -> list[str]:
    ids = []
    for deco in node.decorator_list:
        if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "etsi"):
            continue
        if not deco.args or not isinstance(deco.args[0], ast.Constant) or not isinstance(deco.args[0].value, str):
            continue  # computed ids (the conceptual tests' parametrisation) are not automation
        ident = deco.args[0].value
        for kw in deco.keywords:
            if kw.arg == edition and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                ident = kw.value.value
        ids.append(ident)
    return ids


def automated_by(catalog: Catalog, test_case: str, marked: dict[str, list[str]]) -> list[str] | None:
    """The tests that decide `test_case`, or ["the catalogue's coverage"] when only the catalogue says
    so; None when the case is not automated."""
    tests = marked.get(test_case)
    if tests:
        return tests
    try:
        if catalog.test_case(test_case).coverage == "automated":
            return [f"the catalogue ({catalog.ts}) marks it automated"]
    except CertlabError:  # an unknown id is reported by the caller's own check
        return None
    return None
