"""The catalogue: counts per edition, id and kind rules, coverage, flaws, filters and the CLI."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from lab.catalog import CatalogError, load_catalog, normalise_edition
from lab.catalog.automation import marked_tests
from lab.catalog.cli import app, catalog
from lab.catalog.models import CatalogFile
from lab.yamlfile import parse_yaml
from lab.flaws import FLAWS

# automated coverage is derived from the suites' markers; these are only floors (issue 16 started
# from 14 functional test cases of TS 103 701 V1.1.1, 15 of V2.1.1 where 5.13-1 splits in two)
AT_LEAST_AUTOMATED = {"v2": 37, "v3": 39}  # issue 17: 37 of the 47 functional cases, with the site and service ones
# TS 103 701 V1.1.1: the only test cases whose kind does not follow "-1 conceptual, -2 functional"
FUNCTIONAL_ONES = {"5.8-3-1", "5.11-3-1", "5.11-4-1", "5.12-2-1", "5.12-3-1"}
BOTH = {"5.3-10-1"}


@pytest.fixture(scope="module")
def v2():
    return load_catalog("v2")


@pytest.fixture(scope="module")
def v3():
    return load_catalog("v3")


def test_v2_counts(v2):
    assert len(v2.provisions) == 68
    assert len(v2.test_groups) == 68
    assert len(v2.test_cases) == 109
    assert Counter(c.kind for c in v2.test_cases) == {"conceptual": 62, "functional": 46, "both": 1}
    assert Counter(p.chapter.split(".")[0] for p in v2.provisions) == {"4": 1, "5": 62, "6": 5}
    assert v2.confidence == "confirmed"


def test_v3_counts(v3):
    # 78 rows of Table B.1; 77 groups and 131 cases per the TS V2.1.1 derivative (none seen for 5.0-1)
    assert len(v3.provisions) == 78
    assert len(v3.test_groups) == 77
    assert len(v3.test_cases) == 131
    assert v3.provision("5.0-1").test_cases == ()
    assert v3.confidence == "derived"


def test_v2_ids_and_kinds(v2):
    for prov in v2.provisions:
        assert prov.test_group == prov.id
        for case in prov.test_cases:
            m = re.fullmatch(rf"{re.escape(prov.id)}-(\d+)", case.id)
            assert m, case.id
            assert case.provision == prov.id
            if case.id in FUNCTIONAL_ONES:
                assert case.kind == "functional", case.id
            elif case.id in BOTH:
                assert case.kind == "both", case.id
            else:
                assert case.kind == {"1": "conceptual", "2": "functional"}[m.group(1)], case.id


def test_v3_split_and_new_groups(v3):
    for old, new in {"5.3-4": ("5.3-4A", "5.3-4B"), "5.3-6": ("5.3-6A", "5.3-6B"), "5.3-15": ("5.3-15A", "5.3-15B"),
                     "5.6-4": ("5.6-4A", "5.6-4B"), "5.13-1": ("5.13-1A", "5.13-1B"), "6-3": ("6-3A", "6-3B"),
                     "4-1": ("5.0-1",)}.items():
        assert v3.replaced_by(old) == new
        assert not v3.has_provision(old)
    for pid in ("5.1-2A", "6-6", "6-7", "6-8", "5.6-4A", "5.13-1B"):
        assert [(c.id, c.kind) for c in v3.provision(pid).test_cases] == [(f"{pid}-1", "conceptual"), (f"{pid}-2", "functional")]
    assert v3.test_case("5.3-9-2").kind == "functional"
    assert [c.kind for c in v3.provision("5.12-3").test_cases] == ["conceptual", "functional"]
    assert v3.provision("5.1-5").status.code() == "M C(14) F(e)"


def test_coverage(v2, v3):
    for cat in (v2, v3):
        automated = {c.id for c in cat.test_cases if c.coverage == "automated"}
        assert automated == set(marked_tests(cat.edition)), cat.edition
        assert len(automated) >= AT_LEAST_AUTOMATED[cat.edition], \
            f"{cat.edition} automates {len(automated)} test cases: {sorted(automated)}"
        for case in cat.test_cases:
            if case.coverage != "automated":
                assert case.coverage == ("manual" if case.kind == "conceptual" else "assisted"), case.id


def test_statuses_sample(v2):
    assert v2.provision("5.1-1").status.code() == "M C(1)"
    assert v2.provision("5.3-6").status.code() == "R C(9,12)"
    assert v2.provision("5.3-10").status.code() == "M C(11,12)"
    assert v2.provision("5.2-1").status.code() == "M" and not v2.provision("5.2-1").status.conditional
    assert v2.condition_texts(v2.provision("5.6-4")) == ("C13: a debug interface is physically accessible",)
    assert all(p.status.confidence == "confirmed" and p.title for p in v2.provisions)


def test_mappings_are_marked_unconfirmed(v2, v3):
    for cat in (v2, v3):
        mapped = [p for p in cat.provisions if p.mapping]
        assert mapped and all(p.mapping.confidence == "unconfirmed" for p in mapped)
    assert "AUM-6" in v2.provision("5.1-5").mapping.en18031


def test_every_flaw_provision_is_in_the_catalogue(v2, v3):
    for flaw in FLAWS.values():
        for pid in flaw.provisions:
            assert v2.has_provision(pid), (flaw.id, pid)
            assert v3.has_provision(pid) or v3.replaced_by(pid), (flaw.id, pid)
        # and at least one of its provisions has a case certlab's suites run
        assert any(c.coverage == "automated" for pid in flaw.provisions for c in v2.provision(pid).test_cases), flaw.id


def test_lookups_and_errors(v2, v3):
    assert v2.test_case("5.1-1-2").provision == "5.1-1"
    with pytest.raises(CatalogError, match="in v3 it is 5.6-4A and 5.6-4B"):
        v3.provision("5.6-4")
    with pytest.raises(CatalogError, match="did you mean '5.1-5-2'"):
        v2.test_case("5.1-5-3")
    with pytest.raises(CatalogError, match="use one of: v2, v3"):
        load_catalog("v4")
    assert normalise_edition("V3.1.3") == "v3" and normalise_edition("2.1.1") == "v2"


def test_filters(v2):
    assert [p.id for p in v2.select(chapter="5.1")] == ["5.1-1", "5.1-2", "5.1-3", "5.1-4", "5.1-5"]
    assert len(v2.select(chapter="6")) == 5 and len(v2.select(chapter="5")) == 62
    assert all(p.status.conditional for p in v2.select(status="conditional"))
    assert all(p.status.requirement == "R" for p in v2.select(status="recommended"))
    assert len(v2.select_test_cases(kind="functional")) == 47  # 46 functional + the one "both"
    marked = set(marked_tests("v2"))
    assert {c.id for c in v2.select_test_cases(coverage="automated")} == marked
    chapter = [c.id for c in v2.select_test_cases(chapter="5.6", coverage="automated")]
    assert set(chapter) == {m for m in marked if m.startswith("5.6-")} and {"5.6-1-2", "5.6-4-2"} <= set(chapter)
    with pytest.raises(CatalogError, match="filter kind='x'"):
        v2.select(kind="x")


def test_broken_data_is_rejected():
    from importlib import resources

    raw = parse_yaml(resources.files("lab.catalog").joinpath("data", "en303645-v2.1.1.yaml").read_text(), "v2", CatalogError)
    raw["provisions"] = raw["provisions"][:-1]
    with pytest.raises(ValidationError, match="differ from expected_counts"):
        CatalogFile.model_validate(raw)


def test_json_output_parses(capsys):
    catalog(edition="v3", chapter=None, status=None, kind=None, coverage="automated", as_json=True)
    doc = json.loads(capsys.readouterr().out)
    assert doc["edition"] == "v3"
    assert {c["id"] for p in doc["provisions"] for c in p["test_cases"]} == set(marked_tests("v3"))
    assert {"5.6-4A-2", "5.13-1A-2", "5.13-1B-2"} <= set(marked_tests("v3"))  # the v3= spelling of a marker


def test_cli_table_and_json():
    runner = CliRunner()
    table = runner.invoke(app, ["--edition", "v2", "--chapter", "5.1"])
    assert table.exit_code == 0, table.output
    assert "5.1-5-2" in table.output and "automated" in table.output
    res = runner.invoke(app, ["--json"])
    assert res.exit_code == 0
    doc = json.loads(res.output)
    assert doc["counts"] == {"provisions": 68, "test_cases": 109}
    bad = runner.invoke(app, ["--coverage", "sometimes"])
    assert isinstance(bad.exception, CatalogError)


@pytest.mark.parametrize("edition", ["v2", "v3"])
def test_every_suite_marker_names_a_functional_test_case_of_the_edition(edition):
    """A marker on an id the catalogue lacks (or on a conceptual case) would automate nothing: a typo
    or a missing `v3=` spelling, caught here with the test that carries it."""
    cat = load_catalog(edition)
    known = {tc.id: tc.kind for tc in cat.test_cases}
    wrong = {case: tests for case, tests in marked_tests(edition).items() if known.get(case, "conceptual") == "conceptual"}
    assert not wrong, f"markers naming no functional test case of {cat.ts} (fix the id or add v3=...): {wrong}"


SUITE = """import pytest

@pytest.mark.etsi("5.3-16-2")
def test_model_designation():
    pass

@pytest.mark.etsi("5.6-4-2", v3="5.6-4A-2")
def test_debug_interface():
    pass

@pytest.mark.etsi(case_id)
def test_computed(case_id):
    pass

@pytest.mark.etsi("5.1-1-1")
def test_on_a_conceptual_case():
    pass

@pytest.mark.etsi("5.5-7-2", v3=None)
def test_without_a_v3_counterpart():
    pass

@pytest.mark.etsi(test_case="5.4-1-2")
def test_by_keyword():
    pass
"""


def test_coverage_follows_the_markers_of_the_suites_given(tmp_path):
    (tmp_path / "test_a.py").write_text(SUITE)
    (tmp_path / "test_broken.py").write_text("@pytest.mark.etsi('5.5-1-2')\ndef (:\n")  # pytest reports it
    (tmp_path / "helpers.py").write_text(SUITE.replace("5.3-16-2", "5.4-1-2"))  # not a test module
    assert marked_tests("v2", tmp_path) == {
        "5.3-16-2": [f"{tmp_path.name}/test_a.py::test_model_designation"],
        "5.6-4-2": [f"{tmp_path.name}/test_a.py::test_debug_interface"],
        "5.1-1-1": [f"{tmp_path.name}/test_a.py::test_on_a_conceptual_case"],
        "5.5-7-2": [f"{tmp_path.name}/test_a.py::test_without_a_v3_counterpart"],
        "5.4-1-2": [f"{tmp_path.name}/test_a.py::test_by_keyword"],
    }
    assert set(marked_tests("v3", tmp_path)) == {"5.3-16-2", "5.6-4A-2", "5.1-1-1", "5.4-1-2"}  # v3=None: none
    v2 = load_catalog("v2", suites=tmp_path)
    assert {c.id for c in v2.select_test_cases(coverage="automated")} == {"5.3-16-2", "5.6-4-2", "5.5-7-2", "5.4-1-2"}
    assert v2.test_case("5.1-1-1").coverage == "manual" and v2.test_case("5.1-1-2").coverage == "assisted"
    assert {c.id for c in load_catalog("v3", suites=tmp_path).select_test_cases(coverage="automated")} == {
        "5.3-16-2", "5.6-4A-2", "5.4-1-2"}
    assert not load_catalog("v2", suites=None).select_test_cases(coverage="automated")
    assert not load_catalog("v2", suites=tmp_path / "absent").select_test_cases(coverage="automated")


def test_a_data_file_that_says_automated_by_hand_is_refused(tmp_path, monkeypatch):
    from importlib import resources

    name = "en303645-v2.1.1.yaml"
    text = resources.files("lab.catalog").joinpath("data", name).read_text(encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_text(text.replace(
        '"5.3-16-2", kind: functional, coverage: assisted', '"5.3-16-2", kind: functional, coverage: automated'))
    monkeypatch.setattr(resources, "files", lambda _package: tmp_path)
    with pytest.raises(CatalogError, match=r"^lab/catalog/data/en303645-v2.1.1.yaml: test case 5.3-16-2 says "
                                           r"'coverage: automated'; write 'assisted'"):
        load_catalog("v2")


def test_catalogs_parse_each_edition_once_and_the_ics_check_uses_them():
    from pathlib import Path

    from lab.catalog import Catalogs
    from lab.ics import load_ics

    shelf = Catalogs()
    assert shelf.get("v2") is shelf.get("v2") and shelf.get("v2") is not shelf.get("v3")
    assert shelf.get("v2").provisions == load_catalog("v2").provisions
    ics = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ics.yaml"
    assert load_ics(ics, "v2", catalogs=shelf).catalog is shelf.get("v2")
