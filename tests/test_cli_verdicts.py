"""The terminal's verdict summary: its counts reconcile with the report's."""

from __future__ import annotations

import pytest
from rich.console import Console

from lab import cli


def _result(nodeid: str, test_case: str | None, verdict: str = "PASS") -> dict:
    return {"bench": "b1", "nodeid": nodeid, "test_case": test_case, "verdict": verdict, "reason": "",
            "dut_serial": "SN1", "firmware": "1.0", "executed_on": "b1"}


def test_results_outside_the_conformance_scope_are_counted_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Console(width=300, record=True)
    monkeypatch.setattr(cli, "out", screen)
    doc = {"run_id": "r1", "results": [
        _result("testsuites/en303645/test_5_1_passwords.py::test_x[b1]", "5.1-1-2"),
        _result("testsuites/examples/test_examples.py::test_boots[b1]", None),
        _result("testsuites/examples/test_examples.py::test_boots[b2]", None),
    ]}
    counts = cli._print_verdicts(doc)
    text = " ".join(screen.export_text().split())
    assert counts == {"PASS": 3}
    assert ("1 results for EN 303 645 test cases; 2 outside the conformance scope (no test case, listed apart in "
            "the report): testsuites/examples/test_examples.py::test_boots") in text, text
    assert "None" not in text  # a result without a test case is shown by its test, not as "None"
