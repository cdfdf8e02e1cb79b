"""Which TS 103 701 test cases certlab automates, and by which test of `testsuites/`.

A functional test case that a suite decides must never also be recorded by hand: the assessor's
record would stand beside (or in place of) the machine's result. The suites' markers
(`@pytest.mark.etsi("5.1-1-2")`, with `v3="..."` where the V3 id differs) say which cases are
automated and by which test; the catalogue's `coverage` follows from them (lab/catalog/automation.py
reads them as source, never imported: no pytest start, no test code run).
"""

from __future__ import annotations

from pathlib import Path

from lab import resources
from lab.catalog import Catalog
from lab.catalog.automation import marked_tests as _marked
from lab.errors import CertlabError

__all__ = ["automated_by", "marked_tests"]


def marked_tests(edition: str, root: Path | None = None) -> dict[str, list[str]]:
    """Test case id -> the tests marked with it ('testsuites/.../file.py::test_name'), for `edition`
    (root: default every shipped suite, lab.resources)."""
    return _marked(edition, resources.suites_root() if root is None else root)


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
