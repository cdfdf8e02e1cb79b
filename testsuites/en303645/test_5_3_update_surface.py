"""5.3-10-1 (functional unit): no network update mechanism beyond the ones IXIT 7-UpdMech declares.

EN 303 645 5.3-10 requires updates to be delivered over a secure channel where they are
delivered over the network; TS 103 701's functional unit checks that the device offers no
update path the manufacturer did not declare (which then escapes 5.3-x testing). The lab
judges the session's unauthenticated survey (fixtures/survey.py): every open port that looks
like an update or firmware-transfer service (TFTP and similar ports, banners or web pages
naming firmware, update, upgrade, OTA, flashing) must be the interface of a 7-UpdMech
delivery (15-Intf / 28-ExtAPI). Side effects: none (probe packets; one connection per open port).
"""

from __future__ import annotations

import allure
import pytest

from lab.traffic.update_surface import declared_update_ports, undeclared_update_services


@pytest.mark.etsi("5.3-10-1")
@pytest.mark.timeout(600)  # the first case of a session to use the survey pays for its scan
def test_5_3_10_1_no_undocumented_update_service(dut, bench, survey, ixit, evidence):
    """Every listener that looks like an update service is a declared 7-UpdMech delivery (5.3-10)."""
    declared = declared_update_ports(ixit)
    with allure.step(f"compare {len(survey.found())} open port(s) with the 7-UpdMech deliveries "
                     f"({', '.join(f'{t}/{p}' for t, p in sorted(declared)) or 'none over the network'})"):
        candidates, problems = undeclared_update_services(survey.found(), survey.disclosed(), ixit)
    evidence.json("update-surface", {"declared_deliveries": {f"{t}/{p}": m for (t, p), m in sorted(declared.items())},
                                     "update_like_listeners": candidates, "problems": problems,
                                     "survey": survey.evidence()})
    assert not problems, "an undeclared network update mechanism listens: " + "; ".join(problems)
