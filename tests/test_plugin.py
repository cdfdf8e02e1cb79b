"""The pytest plugin: benches as parameters, lab faults as INCONCLUSIVE, verdicts.json written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.sim.genlab import write_sim_inventory

pytest_plugins = ["pytester"]

TESTS = '''
import pytest
from lab.errors import PowerFault, DutError

@pytest.mark.etsi("5.1-1-2")
def test_passes(bench):
    assert bench.name

@pytest.mark.etsi("5.1-5-2")
def test_dut_fails(bench):
    raise DutError("DUT accepted 100 wrong passwords in 3.1 s without any delay")

@pytest.mark.etsi("5.6-1-2")
def test_relay_fault(bench):
    raise PowerFault("relay did not answer *IDN? within 2.0 s", bench=bench.name)

@pytest.mark.etsi("5.3-2-2")
def test_not_applicable(bench):
    pytest.skip("ICS: 5.3-2 N/A: the product has no update mechanism (constrained device)")

@pytest.mark.etsi("5.9-2-2")
def test_machinery_bug(bench):
    {}["missing"]

def test_without_bench():
    assert True
'''


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return write_sim_inventory(tmp_path / "inv", "tplug", 2, scpi_port=16925, subnet=169, netns=False)


def test_verdicts_per_bench(pytester: pytest.Pytester, inventory: Path, tmp_path: Path):
    pytester.makepyfile(test_suite=TESTS)
    out = tmp_path / "run"
    result = pytester.runpytest("--inventory", str(inventory), "--certlab-out", str(out), "-q")
    outcomes = result.parseoutcomes()
    # 5 bench tests x 2 benches + 1 plain test
    assert outcomes.get("passed") == 3
    assert outcomes.get("failed") == 4  # the DUT failure and the machinery bug, on each bench
    assert outcomes.get("errors", outcomes.get("error")) == 2  # the relay fault, shown as an error
    assert outcomes.get("skipped") == 2

    doc = json.loads((out / "verdicts.json").read_text())
    by = {(r["bench"], r["test_case"]): r for r in doc["results"]}
    assert by[("b1", "5.1-1-2")]["verdict"] == "PASS"
    assert by[("b2", "5.1-5-2")]["verdict"] == "FAIL"
    assert "100 wrong passwords" in by[("b2", "5.1-5-2")]["reason"]
    assert by[("b1", "5.6-1-2")]["verdict"] == "INCONCLUSIVE"
    assert "did not answer" in by[("b1", "5.6-1-2")]["reason"]
    assert by[("b1", "5.3-2-2")]["verdict"] == "NOT_APPLICABLE"
    assert "no update mechanism" in by[("b1", "5.3-2-2")]["reason"]
    assert by[("b1", "5.9-2-2")]["verdict"] == "INCONCLUSIVE", "only the DUT's behaviour may FAIL"
    assert by[("b1", "5.9-2-2")]["reason"].startswith("test error")
    assert by[("b1", "5.1-1-2")]["dut_serial"] == "TPLUG-0001"
    assert by[("b1", "5.1-1-2")]["provision"] == "5.1-1"
    assert {r["bench"] for r in doc["results"] if r["bench"]} == {"b1", "b2"}


def test_bench_option_selects_one_bench(pytester: pytest.Pytester, inventory: Path):
    pytester.makepyfile(test_suite=TESTS)
    result = pytester.runpytest("--inventory", str(inventory), "--bench", "b2",
                                "-k", "passes", "-v")
    result.stdout.fnmatch_lines(["*test_passes[[]b2[]] PASSED*"])
    assert "b1" not in result.stdout.str().replace("--bench", "")


def test_unknown_bench_is_a_usage_error(pytester: pytest.Pytester, inventory: Path):
    pytester.makepyfile(test_suite=TESTS)
    result = pytester.runpytest("--inventory", str(inventory), "--bench", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no bench named 'nope'*"])


def test_bad_inventory_is_a_usage_error_without_traceback(pytester: pytest.Pytester, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("all: [\n")
    pytester.makepyfile(test_suite=TESTS)
    result = pytester.runpytest("--inventory", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stderr.str()
    result.stderr.fnmatch_lines(["*YAML syntax error at line*"])
