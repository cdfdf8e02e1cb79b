"""The facts the suites need (lab/facts.py): the registry matches the code and every shipped product."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from lab.errors import CertlabError
from lab.facts import FACTS, Absent, FactsView, fact_value, readers
from lab.ixit import IxitError, TestFacts, load_ixit

ROOT = Path(__file__).resolve().parents[1]
PRODUCTS = ROOT / "inventory" / "products"
SUITES = ROOT / "testsuites"


def test_registry_is_the_test_facts_model():
    assert set(FACTS) == set(TestFacts.model_fields) - {"absent"}


def test_every_fact_the_suites_read_is_registered():
    # read mechanically: what a test reads through its test_facts, followed into the helpers it calls
    assert set(readers("v2")) <= set(FACTS)
    # and, bluntly, every `test_facts.<name>` written anywhere in the suites
    written = {m for path in SUITES.rglob("*.py")
               for m in re.findall(r"test_facts\.(\w+)", path.read_text(encoding="utf-8"))} - {"need"}
    assert written <= set(FACTS), f"not in lab/facts.py FACTS: {sorted(written - set(FACTS))}"


def test_readers_follow_helpers():
    found = readers("v2")
    assert "5.5-1-2" in found["telemetry_interval_seconds"]  # via test_5_5's _window(test_facts)
    assert "5.9-2-2" in found["config_set_command"]  # via test_5_9's _probe(test_facts) and need()
    assert "5.9-2-2" in found["boot_seconds"]  # via support.restore_power_after_cut(bench, test_facts)


@pytest.mark.parametrize("product", sorted(p.name for p in PRODUCTS.iterdir() if (p / "ixit.yaml").is_file()))
def test_every_shipped_product_answers_every_fact(product):
    """A value or `{none: why}`, never left out: a reader sees what the product lacks and why."""
    raw = yaml.safe_load((PRODUCTS / product / "ixit.yaml").read_text(encoding="utf-8"))
    given = raw.get("test_facts") or {}
    left_out = [name for name in FACTS if name not in given and name not in (given.get("absent") or {})]
    assert not left_out, f"{product}: test_facts leaves out {left_out} (certlab product facts --model {product})"
    facts = load_ixit(PRODUCTS / product / "ixit.yaml").test_facts
    assert not [n for n in FACTS if fact_value(facts, n) == "missing"]


def _facts(**given) -> TestFacts:
    return TestFacts.model_validate({"version_command": "version", "version_pattern": "(?P<version>.+)", **given})


def test_absent_fact_is_false_and_any_use_names_the_contradiction():
    view = FactsView(_facts(telemetry_interval_seconds={"none": "no telemetry"}))
    value = view.telemetry_interval_seconds
    assert isinstance(value, Absent) and not value
    with pytest.raises(CertlabError) as exc:
        value * 2
    line = str(exc.value)
    assert "test_facts.telemetry_interval_seconds" in line and "no telemetry" in line
    assert "the ICS puts this test's provision in scope" in line and "\n" not in line
    with pytest.raises(CertlabError, match="the IXIT says the product has none"):
        f"{value}"
    with pytest.raises(CertlabError, match="the IXIT says the product has none"):
        view.need("telemetry_interval_seconds")


def test_missing_fact_names_the_field_and_both_fixes():
    with pytest.raises(CertlabError) as exc:
        FactsView(_facts()).need("user_data_dir")
    assert "test_facts.user_data_dir is not set" in str(exc.value)
    assert "{none: \"why\"}" in str(exc.value)


def test_fact_values_as_listed():
    facts = _facts(user_data_dir="/data", telemetry_interval_seconds={"none": "no telemetry"})
    assert fact_value(facts, "user_data_dir") == "/data"
    assert fact_value(facts, "telemetry_interval_seconds") == "none: no telemetry"
    assert fact_value(facts, "config_set_command") == "missing"
    assert fact_value(facts, "boot_seconds") == "60 (default)"


@pytest.mark.parametrize("given, expected", [
    ({"version_command": {"none": "n/a"}}, "every product has it"),
    ({"absent": {"telemetry": "x"}}, "'telemetry' is not a field of test_facts"),
    ({"user_data_dir": "/data", "absent": {"user_data_dir": "none"}}, "given a value and said to be absent"),
])
def test_bad_absent_declarations(tmp_path, given, expected):
    raw = yaml.safe_load((PRODUCTS / "TH-100" / "ixit.yaml").read_text(encoding="utf-8"))
    raw["test_facts"].update(given)
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(IxitError) as exc:
        load_ixit(path)
    assert expected in str(exc.value) and "test_facts" in str(exc.value)
