"""5.3-6-2 (V3: 5.3-6A-2, 5.3-6B-2): automatic updates and update notifications are on by default
and the user can switch them (TS 103 701 V1.1.1).

EN 303 645 5.3-6 requires that a device supporting automatic updates and/or update notifications
has them enabled in the initialised state and configurable by the user. The TS has the lab put
the device in its initialised state, check the settings are on, then use the documented means to
switch them. Here the documented means is the companion app's service (IXIT associated_service):
a fresh account with the sample paired to it is the initialised state; the setting is read
(`update_settings.<name>.read`/`value`) and must be on; it is switched off (`write`), read back
in a new login session (the change is kept by the service, not by one session), and, when the
IXIT says where the device itself shows its settings (`update_settings.device_shows`), the device
must show it within one telemetry interval + 2 s (test_facts.telemetry_interval_seconds); then it
is switched on again the same way.

Side effects: a test account is created and deleted; the sample is paired to it; the setting is
restored to what it read at the start.
"""

from __future__ import annotations

import time

import allure
import pytest

import support
from lab.errors import CertlabError, DutError
from lab.service.client import absence_window
from lab.service.records import shown_switch, switch_value

pytestmark = pytest.mark.bench_state("shell")

#: setting key in update_settings -> (device_shows pattern field, words for a reason)
SETTINGS = {"auto_update": ("auto_update_pattern", "automatic updates"),
            "notifications": ("notifications_pattern", "update notifications")}


def _device_shows(bench, command: str, pattern: str, on_value: str, want: bool, bound_s: float) -> tuple[bool | None, str]:
    """Poll the device's documented command until it shows `want` or `bound_s` passes: (last shown, output)."""
    deadline = time.monotonic() + bound_s
    shown, output = None, ""
    for _ in range(int(bound_s) + 2):  # about one look a second, bounded in count as in time
        output = support.ssh_output(bench, command)
        shown = shown_switch(output, pattern, on_value)
        if shown is want or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    return shown, output


def _check_setting(key: str, bench, test_facts, evidence, service_client) -> None:
    service = service_client.service
    pattern_field, words = SETTINGS[key]
    spec = getattr(service.update_settings, key, None) if service.update_settings else None
    if spec is None:
        raise CertlabError(f"ixit: associated_service.update_settings.{key} is not given; the lab needs the "
                           f"operations that read and switch {words} (read, value, write)")
    shows = service.update_settings.device_shows
    pattern = getattr(shows, pattern_field) if shows else None
    bound = absence_window(test_facts.need("telemetry_interval_seconds")) if pattern else None
    record: dict = {"setting": key, "read": spec.read, "value": spec.value, "write": spec.write, "steps": []}
    state: dict = {"initial": None, "now": None}
    account = None
    try:
        with allure.step("create a test account and pair the sample to it (the initialised state)"):
            account = service_client.paired_account()
        with allure.step(f"read {words}: on by default"):
            initial = switch_value(account.read(spec.read, pointer=spec.value, what=f"{spec.read} {spec.value}"),
                                   what=f"{words} ({spec.read} {spec.value})")
            state["initial"] = state["now"] = initial
            record["steps"].append({"default": initial})
            if not initial:
                raise DutError(f"{words} are off on a newly set up sample: {spec.read} reads {spec.value} = false "
                               f"right after pairing to a new account; EN 303 645 5.3-6 wants them on by default")
        for want in (False, True):
            word = "on" if want else "off"
            with allure.step(f"switch {words} {word} ({spec.write}) and read back after a new login"):
                account.call(spec.write, value=want)
                state["now"] = None  # unknown until read back
                account.login()
                got = switch_value(account.read(spec.read, pointer=spec.value, what=f"{spec.read} {spec.value}"),
                                   what=f"{words} ({spec.read} {spec.value})")
                state["now"] = got
                record["steps"].append({"switched": want, "read_back": got})
                if got is not want:
                    raise DutError(f"switching {words} {word} with {spec.write} did not hold: {spec.read} reads "
                                   f"{spec.value} = {str(got).lower()} in a new login session")
            if pattern:
                with allure.step(f"the device shows {words} {word} within {bound:g} s (`{shows.command}`)"):
                    shown, output = _device_shows(bench, shows.command, pattern, shows.on_value, want, bound)
                    record["steps"].append({"device_shows": shown, "output": output[-500:]})
                    if shown is not want:
                        seen = "nothing matching its pattern" if shown is None else ("on" if shown else "off")
                        raise DutError(f"after {words} were switched {word} in the service, the device's "
                                       f"`{shows.command}` still showed {seen} {bound:g} s later (one telemetry "
                                       f"interval + 2 s): the switch does not reach the device")
    finally:
        if account is not None and state["initial"] is not None and state["now"] is not state["initial"]:
            try:
                with allure.step(f"restore {words} to {state['initial']}"):
                    account.call(spec.write, value=state["initial"])
                    record["restored"] = state["initial"]
            except Exception as exc:  # noqa: BLE001 - restoring must not hide the verdict
                record["restore_failed"] = service_client.redactor.text(str(exc))
        evidence.json(f"update-setting-{key}", record)


@pytest.mark.etsi("5.3-6-2", v3="5.3-6A-2")
def test_5_3_6_2_auto_update_default_and_switch(dut, bench, ixit, test_facts, evidence, service_client):
    """Automatic updates read on for a newly paired sample, switch off and on again as documented, and reach the device."""
    _check_setting("auto_update", bench, test_facts, evidence, service_client)


@pytest.mark.etsi("5.3-6-2", v3="5.3-6B-2")
def test_5_3_6_2_update_notifications_default_and_switch(dut, bench, ixit, test_facts, evidence, service_client):
    """Update notifications read on for a newly paired sample, switch off and on again as documented, and reach the device."""
    _check_setting("notifications", bench, test_facts, evidence, service_client)
