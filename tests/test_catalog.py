"""The catalogue: counts per edition, id and kind rules, coverage, flaws, filters and the CLI."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from lab.catalog import CatalogError, load_catalog, normalise_edition
from lab.catalog.cli import app, catalog
from lab.catalog.models import CatalogFile
from lab.yamlfile import parse_yaml
from lab.flaws import FLAWS

AUTOMATED_V2 = {"5.1-1-2", "5.1-2-2", "5.1-4-2", "5.1-5-2", "5.3-2-2", "5.5-1-2", "5.5-6-2", "5.5-7-2", "5.6-1-2",
                "5.6-4-2", "5.8-1-2", "5.9-2-2", "5.11-1-2", "5.13-1-2"}
AUTOMATED_V3 = (AUTOMATED_V2 - {"5.6-4-2", "5.13-1-2"}) | {"5.6-4A-2", "5.13-1A-2", "5.13-1B-2"}
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
    assert {c.id for c in v2.test_cases if c.coverage == "automated"} == AUTOMATED_V2
    assert {c.id for c in v3.test_cases if c.coverage == "automated"} == AUTOMATED_V3
    for cat in (v2, v3):
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
    assert {c.id for c in v2.select_test_cases(coverage="automated")} == AUTOMATED_V2
    assert [c.id for c in v2.select_test_cases(chapter="5.6", coverage="automated")] == ["5.6-1-2", "5.6-4-2"]
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
    assert {c["id"] for p in doc["provisions"] for c in p["test_cases"]} == AUTOMATED_V3


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


def test_automated_coverage_is_what_the_suites_implement():
    """The catalogue claims `automated` for exactly the test cases a suite marks: no more, no less."""
    import re as _re
    from pathlib import Path as _Path

    suites = _Path(__file__).resolve().parent.parent / "testsuites" / "en303645"
    marked: dict[str, set[str]] = {"v2": set(), "v3": set()}
    for path in suites.glob("test_*.py"):
        for v2, v3 in _re.findall(r'etsi\("([^"]+)"(?:, v3="([^"]+)")?', path.read_text()):
            marked["v2"].add(v2)
            marked["v3"].add(v3 or v2)
    for edition in ("v2", "v3"):
        claimed = {tc.id for tc in load_catalog(edition).test_cases if tc.coverage == "automated"}
        assert claimed == marked[edition], (edition, sorted(claimed ^ marked[edition]))


def test_catalogs_parse_each_edition_once_and_the_ics_check_uses_them():
    from pathlib import Path

    from lab.catalog import Catalogs
    from lab.ics import load_ics

    shelf = Catalogs()
    assert shelf.get("v2") is shelf.get("v2") and shelf.get("v2") is not shelf.get("v3")
    assert shelf.get("v2").provisions == load_catalog("v2").provisions
    ics = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ics.yaml"
    assert load_ics(ics, "v2", catalogs=shelf).catalog is shelf.get("v2")
