"""6-2-2, 6-3-2 (V3: 6-3A-2): personal data is processed only with consent, and withdrawing it stops
the processing (TS 103 701 V1.1.1).

EN 303 645 6-2 requires that personal data processed on the basis of consent is processed only
once the consent is obtained; 6-3 that the user can withdraw it at any time. The TS has the lab
use the documented consent functions and check what is processed. Here the personal data are the
records the companion app's service keeps of the device (IXIT associated_service.consent:
`personal_data` are the 21-PersData entries `list_personal_data` returns; `decision` the 26-UserDec
entry whose default is in force before the user decides). The device sends them every telemetry
interval (test_facts.telemetry_interval_seconds), so the lab watches one interval + 2 s for a
record that must not come, and up to two intervals + 2 s for one that must (the positive control:
none then is INCONCLUSIVE, never PASS). Record times are the service's; the lab compares them
with the service's clock at each operation (its HTTP Date header).

Side effects: test accounts are created and deleted; the sample is paired to them.
"""

from __future__ import annotations

import time

import allure
import pytest

import support
from lab.errors import CertlabError, DutError
from lab.service.client import absence_window, appearance_bound
from lab.service.records import dated_after, span, switch_value

pytestmark = pytest.mark.bench_state("shell")


def _consent_spec(service_client, ixit):
    consent = service_client.service.consent
    if consent is None:
        raise CertlabError("ixit: associated_service.consent is not given; the lab needs the operations that read, "
                           "give and withdraw consent and the 26-UserDec decision they implement")
    decision = next((d for d in ixit.user_dec if d.id == consent.decision), None)
    if decision is None:
        raise CertlabError(f"ixit: associated_service.consent.decision {consent.decision!r} is not an id in 26-UserDec")
    return consent, decision


def _consent_given(account, consent) -> bool:
    value = account.read(consent.read, what=f"the consent ({consent.read})")
    return switch_value(value, what=f"the consent ({consent.read})")


def _records_appear(account, interval: float, after, what: str) -> list:
    """Records dated after `after` within two intervals + 2 s, or INCONCLUSIVE: the positive control."""
    bound = appearance_bound(interval)
    found, held = account.wait_for_records(bound, lambda recs: bool(dated_after(recs, after)))
    if not held:
        raise support.PositiveControlFailed(f"positive control: no record appeared in list_personal_data within {bound:g} s "
                       f"(two telemetry intervals + 2 s) {what}; is the sample sending its data? The lab cannot "
                       "tell what the service does with data it never gets")
    return found


@pytest.mark.etsi("6-2-2")
def test_6_2_2_no_processing_before_consent(dut, bench, ixit, test_facts, evidence, service_client):
    """Before the documented consent, the service keeps no personal data of the paired sample; after it, it does."""
    consent, decision = _consent_spec(service_client, ixit)
    interval = test_facts.need("telemetry_interval_seconds")
    window = absence_window(interval)
    record: dict = {"decision": decision.id, "default": decision.default, "personal_data": list(consent.personal_data)}
    try:
        with allure.step("create a test account and pair the sample to it"):
            account = service_client.paired_account()
            record["paired_at"] = account.paired_at.describe()
        with allure.step(f"the consent reads as the 26-UserDec default ({decision.default!r}): not given"):
            given = _consent_given(account, consent)
            record["consent_before"] = given
            if given:
                raise DutError(f"the consent ({consent.read}) reads given on a newly paired sample before the user "
                               f"decided; the 26-UserDec {decision.id} default is {decision.default!r}, and "
                               "EN 303 645 6-2 wants no processing before consent")
        with allure.step(f"wait {window:g} s (one telemetry interval + 2 s): no record is stored"):
            time.sleep(window)
            found, _ = account.records()
            early = dated_after(found, account.paired_at)
            record["before_consent"] = [r.data for r in found]
            if early:
                raise DutError(f"the service stored personal data before consent: list_personal_data shows "
                               f"{span(early)} after pairing, while the consent ({consent.read}) read not given")
        with allure.step("give consent: records appear (positive control)"):
            given_at = account.call(consent.give).moment
            record["consent_given_at"] = given_at.describe()
            found = _records_appear(account, interval, given_at, "after consent was given")
            record["after_consent"] = len(found)
    finally:
        evidence.json("consent-before", record)


@pytest.mark.etsi("6-3-2", v3="6-3A-2")
def test_6_3_2_withdrawn_consent_stops_processing(dut, bench, ixit, test_facts, evidence, service_client):
    """After withdrawing consent as documented, the service stores no new personal data (and deletes the history where documented)."""
    consent, decision = _consent_spec(service_client, ixit)
    interval = test_facts.need("telemetry_interval_seconds")
    window = absence_window(interval)
    record: dict = {"decision": decision.id, "withdrawal_deletes_history": consent.withdrawal_deletes_history}
    try:
        with allure.step("create a test account, pair the sample, give consent: records appear"):
            account = service_client.paired_account()
            given_at = account.call(consent.give).moment
            found = _records_appear(account, interval, given_at, "after consent was given")
            record["before_withdrawal"] = len(found)
        with allure.step(f"withdraw consent ({consent.withdraw}): it reads not given"):
            withdrawn_at = account.call(consent.withdraw).moment
            record["withdrawn_at"] = withdrawn_at.describe()
            if _consent_given(account, consent):
                raise DutError(f"the consent ({consent.read}) still reads given after {consent.withdraw} succeeded")
        with allure.step(f"wait {window:g} s (one telemetry interval + 2 s): no new record"):
            time.sleep(window)
            found, _ = account.records()
            record["after_withdrawal"] = [r.data for r in found]
            late = dated_after(found, withdrawn_at)
            problems = []
            if late:
                problems.append(f"it stored {span(late)} after the withdrawal at {withdrawn_at.describe()}")
            if consent.withdrawal_deletes_history and found:
                problems.append(f"the history is still listed ({span(found)}), while the IXIT says withdrawing "
                                "consent deletes it (associated_service.consent.withdrawal_deletes_history)")
            if problems:
                raise DutError("withdrawing consent did not stop the processing: " + "; ".join(problems))
    finally:
        evidence.json("consent-withdrawal", record)
