"""A re-test against the certified baseline: only PASS -> FAIL flags a release."""

from __future__ import annotations

import pytest

from lab.records.delta import provision_verdicts, verdict_delta

BASELINE = {"5.1-1": "PASS", "5.1-2": "PASS", "5.3-2": "FAIL", "5.5-1": "PASS", "5.6-1": "PASS",
            "5.6-2": "NOT_APPLICABLE", "5.7-1": "PASS", "5.8-1": "INCONCLUSIVE"}


def test_each_kind_of_change():
    retest = {"5.1-1": "PASS", "5.1-2": "FAIL", "5.3-2": "PASS", "5.5-1": "INCONCLUSIVE", "5.6-1": "NOT_ASSESSED",
              "5.6-2": "NOT_APPLICABLE", "5.8-1": "FAIL", "5.13-1": "PASS"}
    assert verdict_delta(BASELINE, retest) == {
        "newly_failing": ["5.1-2"],
        "newly_passing": ["5.3-2"],
        "unchanged": ["5.1-1", "5.6-2"],
        "changed": [{"provision": "5.5-1", "from": "PASS", "to": "INCONCLUSIVE"},
                    {"provision": "5.8-1", "from": "INCONCLUSIVE", "to": "FAIL"},
                    {"provision": "5.13-1", "from": None, "to": "PASS"}],
        "not_retested": ["5.6-1", "5.7-1"],  # NOT_ASSESSED, and absent
        "flagged": True,
    }


def test_a_release_that_changes_nothing_is_not_flagged():
    delta = verdict_delta(BASELINE, dict(BASELINE))
    assert delta["unchanged"] == list(BASELINE) and not delta["flagged"]
    assert delta["newly_failing"] == delta["newly_passing"] == delta["changed"] == delta["not_retested"] == []


def test_a_failed_install_is_inconclusive_never_a_flag():
    retest = {pid: "INCONCLUSIVE" for pid in BASELINE}
    delta = verdict_delta(BASELINE, retest)
    assert not delta["flagged"] and delta["newly_failing"] == []
    assert {c["provision"] for c in delta["changed"]} == set(BASELINE) - {"5.8-1"}


def test_provision_verdicts_from_conformance_json():
    conformance = {"provisions": [{"id": "5.1-1", "verdict": "PASS", "title": "x"},
                                  {"id": "5.1-2", "verdict": "NOT_ASSESSED"}]}
    assert provision_verdicts(conformance) == {"5.1-1": "PASS", "5.1-2": "NOT_ASSESSED"}


@pytest.mark.parametrize("conformance, words", [
    ({}, "'provisions' must be a list"),
    ([], "'provisions' must be a list"),
    ({"provisions": [{"verdict": "PASS"}]}, "provisions[0] has no id"),
    ({"provisions": [{"id": "5.1-1", "verdict": "OK"}]}, "provisions[0] (5.1-1) has verdict 'OK'"),
])
def test_provision_verdicts_refuses_what_is_not_a_conformance_report(conformance, words):
    with pytest.raises(ValueError) as caught:
        provision_verdicts(conformance)
    assert words in str(caught.value)
