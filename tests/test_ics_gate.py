"""NOT_APPLICABLE means not run: the ICS decides before any fixture of the test touches the bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.sim.genlab import write_sim_inventory

pytest_plugins = ["pytester"]

# Every bench is built through lab.bench.Bench: counting its constructions and the session
# fixtures' set-ups shows whether a test's fixtures ran at all.
CONFTEST = '''
import os
import pytest
import lab.bench

COUNTS = os.environ["GATE_COUNTS"]

def _count(what):
    with open(COUNTS, "a") as fh:
        fh.write(what + "\\n")

_init = lab.bench.Bench.__init__

def _counting_init(self, *args, **kwargs):
    _count("bench")
    _init(self, *args, **kwargs)

lab.bench.Bench.__init__ = _counting_init

@pytest.fixture(scope="session")
def bench_touch(bench):
    _count("bench_touch")
    return bench
'''

TESTS = '''
import pytest

@pytest.mark.etsi("5.3-14-2")
def test_na_with_bench_fixtures(dut, bench, bench_touch, firmware_dir, power):
    raise AssertionError("never runs: the ICS says 5.3-14 is N/A")

@pytest.mark.etsi("5.10-1-1")
def test_recommendation_answered_n(bench_touch, firmware_dir):
    raise AssertionError("never runs: the ICS answers N for the recommendation 5.10-1")
'''

APPLICABLE = '''
import pytest

@pytest.mark.etsi("5.1-1-2")
def test_applicable(bench_touch):
    assert bench_touch.name
'''


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    # no firmware_dir in this inventory: a fixture that needs it would fail the test's setup
    return write_sim_inventory(tmp_path / "inv", "tgate", 1, scpi_port=16927, subnet=171, netns=False)


def _run(pytester: pytest.Pytester, inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         tests: str) -> tuple[dict, list[str]]:
    counts = tmp_path / "counts.txt"
    counts.write_text("")
    monkeypatch.setenv("GATE_COUNTS", str(counts))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gate=tests)
    out = tmp_path / "run"
    pytester.runpytest("--inventory", str(inventory), "--certlab-out", str(out), "-q")
    doc = json.loads((out / "verdicts.json").read_text())
    return {r["test_case"]: r for r in doc["results"]}, counts.read_text().split()


def test_not_applicable_sets_up_no_fixture(pytester: pytest.Pytester, inventory: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch):
    by, counts = _run(pytester, inventory, tmp_path, monkeypatch, TESTS)
    assert counts == [], f"an N/A test set up bench fixtures: {counts}"
    assert by["5.3-14-2"]["verdict"] == "NOT_APPLICABLE"
    assert by["5.3-14-2"]["reason"].startswith("ICS: 5.3-14 N/A: Conditions 3 and 4 not met")
    assert by["5.10-1-1"]["verdict"] == "NOT_APPLICABLE"
    assert "recommendation not implemented" in by["5.10-1-1"]["reason"]
    assert by["5.3-14-2"]["dut_serial"] == "TGATE-0001", "the result still names its sample"


def test_an_applicable_test_sets_up_its_fixtures(pytester: pytest.Pytester, inventory: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch):
    """The counting itself works: an applicable test builds its bench once."""
    by, counts = _run(pytester, inventory, tmp_path, monkeypatch, APPLICABLE)
    assert by["5.1-1-2"]["verdict"] == "PASS"
    assert counts == ["bench", "bench_touch"]
