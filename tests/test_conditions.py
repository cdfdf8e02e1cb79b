"""An ICS N/A must not contradict the IXIT's facts (lab/conditions.py), and the table covers the catalogue."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lab.catalog import load_catalog
from lab.conditions import RULES, check_conditions, ics_says, rules_for
from lab.ics import IcsError, load_ics
from lab.ixit import load_ixit

PRODUCTS = Path(__file__).resolve().parents[1] / "inventory" / "products"


def _load(tmp_path: Path, model: str, ics_change=None, ixit_change=None):
    ics = yaml.safe_load((PRODUCTS / model / "ics.yaml").read_text())
    ixit = yaml.safe_load((PRODUCTS / model / "ixit.yaml").read_text())
    ics, ixit = copy.deepcopy(ics), copy.deepcopy(ixit)
    if ics_change:
        ics_change(ics)
    if ixit_change:
        ixit_change(ixit)
    (tmp_path / "ics.yaml").write_text(yaml.safe_dump(ics))
    (tmp_path / "ixit.yaml").write_text(yaml.safe_dump(ixit))
    return load_ics(tmp_path / "ics.yaml", "v2"), load_ixit(tmp_path / "ixit.yaml")


@pytest.mark.parametrize("model", ["TH-100", "OTS-1"])
def test_shipped_products_agree(tmp_path, model):
    check_conditions(*_load(tmp_path, model))


def test_rules_name_real_conditions():
    for rule in RULES:
        cat = load_catalog(rule.edition)
        assert rule.key in cat.conditions or rule.key in cat.features, f"{rule.edition} has no condition {rule.key}"
    for edition in ("v2", "v3"):
        assert len(rules_for(edition)) == len([r for r in RULES if r.edition == edition]), "a key twice"


def test_not_constrained_product_cannot_claim_the_constrained_na(tmp_path):
    def na(ics):
        ics["provisions"]["5.3-2"] = {"support": "N/A", "detail": "Condition 5 not met: the device is constrained."}

    ics, ixit = _load(tmp_path, "TH-100", na)
    with pytest.raises(IcsError) as exc:
        check_conditions(ics, ixit)
    line = str(exc.value)
    assert "\n" not in line
    assert "provisions.5.3-2.support" in line and "product.constrained is false" in line
    assert "fix: answer Y, or N" in line


def test_constrained_unknown_leaves_the_na_to_the_assessor(tmp_path):
    def na(ics):
        ics["provisions"]["5.3-2"] = {"support": "N/A", "detail": "Condition 5 not met: the device is constrained."}

    def unknown(ixit):
        del ixit["product"]["constrained"]

    check_conditions(*_load(tmp_path, "TH-100", na, unknown))


def test_update_na_with_an_update_mechanism_in_the_ixit(tmp_path):
    def na(ics):
        ics["provisions"]["5.3-7"] = {"support": "N/A", "detail": "Condition 12 not met."}

    ics, ixit = _load(tmp_path, "TH-100", na)
    with pytest.raises(IcsError, match=r"provisions\.5\.3-7\.support: .*7-UpdMech lists 'fw-update'"):
        check_conditions(ics, ixit)


def test_na_with_several_conditions_stands_while_one_is_undecided(tmp_path):
    def na(ics):  # conditions 9 (undecided by the IXIT) and 12 (met)
        ics["provisions"]["5.3-6"] = {"support": "N/A", "detail": "Condition 9 not met."}

    ics, ixit = _load(tmp_path, "TH-100", na)
    assert ics.provisions["5.3-6"].support == "N/A"
    check_conditions(ics, ixit)


def test_telemetry_na_contradicted(tmp_path):
    def na(ics):
        ics["provisions"]["5.10-1"] = {"support": "N/A", "detail": "Condition 6 not met: no telemetry."}

    ics, ixit = _load(tmp_path, "TH-100", na)
    with pytest.raises(IcsError, match="24-TelData lists"):
        check_conditions(ics, ixit)


def test_ics_says_whether_there_are_updates(tmp_path):
    assert ics_says(_load(tmp_path, "TH-100")[0], "update_mechanism") is True
    assert ics_says(_load(tmp_path, "OTS-1")[0], "update_mechanism") is False
