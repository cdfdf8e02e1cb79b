"""5.6 Minimise exposed attack surfaces: the functional test cases 5.6-1-2, 5.6-2-2 and 5.6-4-2.

EN 303 645 5.6-1 requires unused network and logical interfaces to be disabled; 5.6-4 that a
physically accessible debug interface be disabled or protected. TS 103 701 probes the DUT as a
black box and compares what it finds with IXIT 15-Intf (and 28-ExtAPI): every open port must be
a documented, enabled interface, and the serial console the IXIT says needs authentication must
ask for it; 5.6-2 that the DUT discloses without authentication only what the IXIT allows
(15-Intf `discloses`). Ports, statuses, allow-lists and prompts come from the IXIT and the
inventory, never from the simulator; the scan is the session's survey (fixtures/survey.py).
"""

from __future__ import annotations

import time

import allure
import pytest

from lab.errors import CertlabError, DutError, ExpectTimeout
from lab.traffic.disclosure import identifying_values, judge_disclosures
from lab.traffic.ports import documented_ports, undocumented_open


@pytest.mark.etsi("5.6-1-2")
@pytest.mark.timeout(600)  # a SYN scan of 10000 ports takes about 20 s idle, minutes on a loaded lab PC
def test_5_6_1_2_only_documented_interfaces_open(dut, bench, survey, ixit, evidence):
    """Every open port is a documented, enabled interface of IXIT 15-Intf (5.6-1).

    Judges the session's survey (fixtures/survey.py): TCP scan of ports 1-10000, the IXIT's ports
    and common high ports; a small UDP scan; discovery requests. An undocumented open port (or
    one the IXIT says is disabled) FAILs, named with its banner. Documented enabled interfaces
    found closed are reported in the evidence. Side effects: none (probe packets; one
    connection per open port to read its banner).
    """
    docs = documented_ports(ixit)
    found = survey.found()
    udp = survey.udp
    problems = undocumented_open(found, docs, survey.banners)
    expected_open = [f"{t}/{p} ({d['id']})" for (t, p), d in sorted(docs.items()) if d["status"] == "enabled"]
    closed_documented = [f"{t}/{p} ({d['id']})" for (t, p), d in sorted(docs.items())
                         if d["status"] == "enabled" and (t, p) not in found
                         and not (t == "udp" and udp.get(p) == "open|filtered")]
    if closed_documented:
        with allure.step(f"documented as enabled but found closed: {', '.join(closed_documented)}"):
            pass
    scan = survey.evidence()
    evidence.json("scan", {
        **scan,
        "documented": {f"{t}/{p}": d for (t, p), d in sorted(docs.items())},
        "documented_enabled_expected_open": expected_open,
        "documented_enabled_found_closed": closed_documented,
        "all_documented_enabled_open": not closed_documented,
        "undocumented_or_disabled_open": problems,
    })
    assert not problems, "the DUT listens where its IXIT says nothing should: " + "; ".join(problems)


@pytest.mark.etsi("5.6-2-2")
@pytest.mark.timeout(600)  # the survey may be made in this case
def test_5_6_2_2_no_unauthenticated_disclosure_beyond_ixit(dut, bench, survey, ixit, evidence):
    """What the DUT says without authentication (banners, discovery answers) discloses no identifying
    value (serial, MAC, firmware version, model) that IXIT 15-Intf `discloses` does not allow (5.6-2).

    Judges the session's survey: the lab knows the sample's identifying values (inventory) and
    looks for each in every banner and discovery answer, per interface; an interface the IXIT
    does not document may disclose nothing. Side effects: none.
    """
    dut_facts = bench.config.dut
    values = identifying_values(serial=dut_facts.serial, mac=dut_facts.mac, firmware=dut_facts.firmware,
                                model=dut_facts.model)
    said = survey.disclosed()
    with allure.step(f"look for {', '.join(values)} in {len(said)} banner(s) and discovery answer(s)"):
        judged = judge_disclosures(said, values, ixit)  # CertlabError naming 15-Intf <id> `discloses` if unstated
    problems = judged.problems
    evidence.json("disclosure", {"identifying_values": values, "disclosed_without_authentication": said,
                                 "found": judged.found, "allowed": judged.allowed, "problems": problems,
                                 "survey": survey.evidence()})
    assert not problems, "the DUT discloses without authentication what its IXIT does not allow: " + "; ".join(problems)


@pytest.mark.etsi("5.6-4-2", v3="5.6-4A-2")
def test_5_6_4_2_debug_console_requires_login(bench, ixit, evidence):
    """The serial console gives no shell without logging in, as IXIT 15-Intf documents (5.6-4).

    Powers the DUT up through the bench strategy, waits for the boot banner and for the console
    to settle, presses Enter: the console must ask to log in (login or password prompt), and a
    wrong password must not give a shell. A shell prompt without a login FAILs. Side effects: a
    power cycle; the DUT is left booted at its login prompt.
    """
    consoles = [i for i in ixit.intf if i.kind == "physical" and i.debug]
    if not consoles:
        raise CertlabError("ixit: 15-Intf documents no physical debug interface, but the ICS says 5.6-4 applies; "
                           "correct one of them")
    protected = [i for i in consoles if i.status != "disabled" and i.authentication]
    disabled = [i for i in consoles if i.status == "disabled"]
    if not protected and not disabled:
        raise CertlabError(f"ixit: 15-Intf: debug interface(s) {', '.join(i.id for i in consoles)} are enabled "
                           "without authentication; the IXIT itself contradicts 5.6-4 (see 5.6-4-1)")
    p = bench.prompts
    con = bench.console
    report: dict = {"interfaces": [{"id": i.id, "status": i.status, "authentication": list(i.authentication)}
                                   for i in consoles], "prompts": {"login": p.login_prompt, "password": p.password_prompt,
                                                                   "shell": p.shell_prompt}}
    with allure.step("power the DUT on and wait for its boot banner"):
        report["boot_banner_seconds"] = round(bench.strategy.power_cycle(), 3)
    with allure.step("let the boot finish, then press Enter on the console"):
        settle = time.monotonic()
        boot_log = con.read_until_quiet(quiet=1.0, timeout=bench.strategy.boot_timeout)
        report["settled_after_seconds"] = round(time.monotonic() - settle, 3)
        con.sendline("")
        try:
            first = con.expect([p.shell_prompt, p.login_prompt, p.password_prompt], timeout=bench.strategy.boot_timeout)
        except ExpectTimeout as exc:
            if protected:
                raise DutError(f"the console ({protected[0].id}) showed no login prompt after boot and Enter "
                               f"although the IXIT says it requires authentication; last output: {exc.tail[-150:]!r}") from None
            first = None  # a disabled console that stays silent is what the IXIT says
    seen = (boot_log + (first.before + first.match.group(0) if first else ""))[-400:]
    report["console_after_enter"] = seen
    report["first_prompt"] = ["shell", "login", "password"][first.index] if first else "none"
    report["strategy_saw_unauthenticated_console"] = bench.strategy.unauthenticated_console  # from earlier logins
    evidence.json("console", report)
    shell_without_login = first is not None and first.index == 0
    assert not shell_without_login, (
        "the serial console gave a shell prompt without any login after boot + Enter "
        f"(IXIT 15-Intf {', '.join(i.id for i in consoles)} says it needs authentication); "
        f"console: {seen[-120:]!r}")
    if first is None:
        return  # a disabled console that stays silent: nothing to log in to
    with allure.step("a wrong password must not give a shell"):
        user = bench.config.ssh.user
        if first.index == 1:
            con.sendline(user)
            con.expect(p.password_prompt, timeout=10)
        con.sendline(f"wrong-{time.monotonic_ns() % 10**8}", secret=True)
        try:
            after = con.expect([p.shell_prompt, p.login_incorrect, p.login_prompt], timeout=15)
        except ExpectTimeout as exc:
            raise DutError(f"after a wrong console password the DUT neither refused nor answered: {exc}") from None
        report["wrong_password"] = ["shell", "login incorrect", "login prompt again"][after.index]
        evidence.json("console", report)
        shell_after_wrong = after.index == 0
        assert not shell_after_wrong, "the serial console gave a shell after a wrong password"
