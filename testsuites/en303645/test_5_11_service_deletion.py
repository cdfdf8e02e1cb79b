"""5.11-2-2: deleting user data through the documented means removes it from the associated service
(TS 103 701 V1.1.1).

EN 303 645 5.11-2 requires that the user can remove their personal data from associated services
in a simple way. The TS has the lab create personal data, use each documented deletion function
of the associated service (IXIT 25-DelFunc, target_type associated_service) and check the data are
gone. Here the personal data are the device's records the companion app's service keeps
(IXIT associated_service: `list_personal_data`): the lab pairs the sample to a fresh account,
gives consent, waits until records exist (the positive control: none within two telemetry
intervals + 2 s is INCONCLUSIVE, never PASS), runs the function's `service_operation`, and checks
that the deleted account cannot log in, and that a NEW account paired to the same sample (with
consent), one telemetry interval + 2 s later, sees no record dated before its pairing: neither the
deleted account's data nor records the service kept of the device while it had no owner.

Side effects: test accounts are created and deleted; the sample is paired to them.
"""

from __future__ import annotations

import time

import allure
import pytest

import support
from lab.errors import CertlabError, DutError
from lab.service.client import absence_window, appearance_bound
from lab.service.records import left_after_deletion, span

pytestmark = pytest.mark.bench_state("shell")


@pytest.mark.etsi("5.11-2-2")
def test_5_11_2_2_service_deletion(dut, bench, ixit, test_facts, evidence, service_client):
    """Each documented deletion function of the associated service removes the user's records there for good."""
    funcs = [f for f in ixit.del_func if f.target_type == "associated_service"]
    if not funcs:
        raise CertlabError("ixit: 25-DelFunc has no entry with target_type associated_service; the lab needs the "
                           "deletion function the service offers")
    manual = [f.id for f in funcs if not f.service_operation]
    if manual:
        raise CertlabError(f"ixit: 25-DelFunc {manual[0]} has no service_operation; name the "
                           "associated_service operation that performs it, or test it by hand")
    consent = service_client.service.consent
    interval = test_facts.need("telemetry_interval_seconds")
    survivors: list[str] = []
    for func in funcs:
        record: dict = {"function": func.id, "operation": func.service_operation}
        try:
            with allure.step("create a test account, pair the sample, give consent"):
                first = service_client.paired_account()
                if consent is not None:
                    first.call(consent.give)
            bound = appearance_bound(interval)
            with allure.step(f"wait until records exist (at most {bound:g} s)"):
                seen, held = first.wait_for_records(bound, bool)
                record["before"] = span(seen)
                if not held:
                    raise support.PositiveControlFailed(f"positive control: no record appeared in list_personal_data within {bound:g} s "
                                   "(two telemetry intervals + 2 s) after pairing and consent; with no data to "
                                   "delete the lab cannot show that the deletion removes it")
            with allure.step(f"run the deletion function {func.id} ({func.service_operation})"):
                deleted_at = first.call(func.service_operation).moment
                first.deleted = True
                record["deleted_at"] = deleted_at.describe()
            with allure.step("the deleted account can no longer log in"):
                login = service_client.call("login", values=first.values(), check=False)
                record["login_after_deletion"] = login.status
                if login.ok:
                    survivors.append(f"the account still logs in after {func.service_operation} (HTTP {login.status})")
            window = absence_window(interval)
            with allure.step(f"wait {window:g} s (one telemetry interval + 2 s) with the sample unowned"):
                time.sleep(window)
            with allure.step("a new account pairs the same sample with consent: no earlier record is shown"):
                second = service_client.paired_account()
                if consent is not None:
                    second.call(consent.give)
                found, _ = second.records()
                record["new_owner_sees"] = [r.data for r in found]
                old, unowned = left_after_deletion(found, seen, deleted_at, second.paired_at)
                if old:
                    survivors.append(f"a new account paired to the sample sees {span(old)}, before the deletion "
                                     f"with {func.service_operation}")
                if unowned:
                    survivors.append(f"the service kept {span(unowned)} of the device between the deletion and "
                                     "the new pairing")
        finally:
            evidence.json(f"{func.id}-service-deletion", record)
    if survivors:
        raise DutError("the deletion did not remove the user's data from the associated service: " + "; ".join(survivors))
