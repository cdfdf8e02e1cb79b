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

@pytest.mark.etsi("5.3-14-2")
def test_not_applicable(bench):
    raise AssertionError("never runs: the ICS says 5.3-14 is N/A")

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
    assert by[("b1", "5.3-14-2")]["verdict"] == "NOT_APPLICABLE"
    assert by[("b1", "5.3-14-2")]["reason"].startswith("ICS: 5.3-14 N/A: Conditions 3 and 4 not met")
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


NOT_RUN = '''
import pytest
from fixtures.etsi import IcsNotApplicable

@pytest.mark.etsi("5.1-2-2")
def test_skip_in_body(bench):
    pytest.skip("the DUT looked busy")

@pytest.mark.skip(reason="flaky on this bench")
@pytest.mark.etsi("5.1-4-2")
def test_skip_marker(bench):
    pass

@pytest.mark.etsi("5.3-2-2")
def test_own_not_applicable(bench):
    raise IcsNotApplicable("5.3-2", "N/A: decided by the test, not the ICS")

@pytest.mark.xfail(reason="known sim bug")
@pytest.mark.etsi("5.5-1-2")
def test_xfail(bench):
    assert False, "the DUT sent its password in clear"

@pytest.mark.xfail(reason="known sim bug")
@pytest.mark.etsi("5.11-1-2")
def test_xpass(bench):
    pass

@pytest.mark.xfail(reason="known sim bug", strict=True)
@pytest.mark.etsi("5.13-1-2")
def test_xpass_strict(bench):
    pass

@pytest.mark.etsi("5.10-1-1")
def test_recommendation_not_implemented(bench):
    raise AssertionError("never runs: the ICS answers N for the recommendation 5.10-1")
'''


def test_only_the_ics_makes_not_applicable(pytester: pytest.Pytester, inventory: Path, tmp_path: Path):
    """A skip, an xfail or an xpass says nothing about the DUT: INCONCLUSIVE (test error), never N/A or PASS/FAIL."""
    pytester.makepyfile(test_rules=NOT_RUN)
    out = tmp_path / "run"
    pytester.runpytest("--inventory", str(inventory), "--bench", "b1", "--certlab-out", str(out), "-q")
    doc = json.loads((out / "verdicts.json").read_text())
    by = {r["test"]: r for r in doc["results"]}
    assert by["test_recommendation_not_implemented"]["verdict"] == "NOT_APPLICABLE"
    assert by["test_recommendation_not_implemented"]["reason"].startswith("ICS: 5.10-1 recommendation not implemented")
    expected = {
        "test_skip_in_body": "skipped outside the ICS check: the DUT looked busy",
        "test_skip_marker": "skipped outside the ICS check: flaky on this bench",
        "test_own_not_applicable": "skipped outside the ICS check: ICS: 5.3-2 N/A: decided by the test",
        "test_xfail": "marked xfail (known sim bug): the DUT sent its password in clear",
        "test_xpass": "marked xfail (known sim bug) but passed",
        "test_xpass_strict": "XPASS(strict)",
    }
    for test, words in expected.items():
        row = by[test]
        assert (row["verdict"], row["cause"]) == ("INCONCLUSIVE", "test-error"), (test, row)
        assert row["reason"].startswith("test error: "), (test, row["reason"])
        assert words in row["reason"], (test, row["reason"])


def test_unknown_test_case_id_is_a_collection_error(pytester: pytest.Pytester, inventory: Path):
    pytester.makepyfile(test_ids='''
import pytest

@pytest.mark.etsi("5.1-1-2")
def test_known(bench):
    pass

@pytest.mark.etsi("5.1-99-2")
def test_typo(bench):
    pass
''')
    result = pytester.runpytest("--inventory", str(inventory), "--bench", "b1")
    assert result.ret == 2
    out = result.stdout.str() + result.stderr.str()
    assert "collection error: " in out and "test_ids.py::test_typo[b1] is marked etsi('5.1-99-2')" in out
    assert "not a test case of EN 303 645 V2.1.1" in out
    assert "passed" not in result.stdout.str().splitlines()[-1]


def test_no_counterpart_in_an_edition_is_deselected_visibly(pytester: pytest.Pytester, inventory: Path):
    pytester.makepyfile(test_ids='''
import pytest

@pytest.mark.etsi("5.1-1-2", v3=None)
def test_only_v2(bench):
    pass
''')
    v2 = pytester.runpytest("--inventory", str(inventory), "--bench", "b1", "--edition", "v2")
    v2.assert_outcomes(passed=1)
    v3 = pytester.runpytest("--inventory", str(inventory), "--bench", "b1", "--edition", "v3")
    assert v3.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    v3.stdout.fnmatch_lines(["*1 test(s) have no counterpart in EN 303 645 V3.1.3*deselected: *test_ids.py::test_only_v2[[]b1[]]*",
                             "*1 deselected*"])



def test_provision_option_keeps_only_that_provisions_cases(pytester: pytest.Pytester, inventory: Path):
    pytester.makepyfile(test_ids='''
import pytest

@pytest.mark.etsi("5.1-1-2")
def test_passwords(bench):
    pass

@pytest.mark.etsi("5.6-4-2", v3="5.6-4A-2")
def test_console(bench):
    pass

def test_unmarked(bench):
    pass
''')
    one = pytester.runpytest("--inventory", str(inventory), "--bench", "b1", "--certlab-provision", "5.1-1", "-q")
    one.assert_outcomes(passed=1, deselected=2)
    lettered = pytester.runpytest("--inventory", str(inventory), "--bench", "b1", "--edition", "v3",
                                  "--certlab-provision", "5.6-4", "--collect-only", "-q")
    lettered.stdout.fnmatch_lines(["*test_ids.py::test_console[[]b1[]]", "*1/3 tests collected (2 deselected)*"])
    typo = pytester.runpytest("--inventory", str(inventory), "--bench", "b1", "--certlab-provision", "5.1-99")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    assert "--certlab-provision 5.1-99: not a provision of EN 303 645 V2.1.1" in typo.stderr.str()

WRITTEN = '''
import pytest
from lab.errors import PowerFault

@pytest.mark.etsi("5.1-1-2")
def test_message(bench):
    found = ["b1 and b2 share the password"]
    assert not found, "universal or shared password: " + "; ".join(found)

@pytest.mark.etsi("5.1-2-2")
def test_bare_assert(bench):
    assert len(bench.name) == 7

@pytest.mark.etsi("5.1-4-2")
def test_multiline_message(bench):
    assert bench.name == "nope", "the change did not take effect:\\nold password still accepted"

@pytest.mark.etsi("5.1-5-2")
def test_lab_fault(bench):
    raise PowerFault("relay silent", bench=bench.name)
'''


def test_titles_and_fail_reasons_are_written_for_a_person(pytester: pytest.Pytester, inventory: Path, tmp_path: Path):
    """Allure titles: case id, provision and purpose from the catalogue; a FAIL's reason: the finding, no Python."""
    pytester.makepyfile(test_written=WRITTEN)
    out, allure_dir = tmp_path / "run", tmp_path / "allure"
    pytester.runpytest("--inventory", str(inventory), "--bench", "b1", "--certlab-out", str(out),
                       "--alluredir", str(allure_dir), "-q")
    by = {r["test"]: r for r in json.loads((out / "verdicts.json").read_text())["results"]}
    assert by["test_message"]["reason"] == "universal or shared password: b1 and b2 share the password"
    assert by["test_bare_assert"]["verdict"] == "FAIL"
    assert by["test_bare_assert"]["reason"].startswith("assertion without a stated finding: assert 2 == 7")
    assert by["test_multiline_message"]["reason"] == "the change did not take effect:\nold password still accepted"
    assert all("where" not in r["reason"] and "AssertionError" not in r["reason"] for r in by.values())
    titles = {json.loads(p.read_text())["name"] for p in allure_dir.glob("*-result.json")}
    assert ("5.1-1-2 Passwords are unique per device or defined by the user: every sample's password is unique "
            "per device or set by the user, as the IXIT describes") in titles
    assert any(t.startswith("5.1-5-2 ") for t in titles), titles  # a lab fault's result has its title too
    assert not any(t.startswith("test_") for t in titles), titles
