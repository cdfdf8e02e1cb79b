"""5.5-4-2 and 5.5-5-2: network functions and security-relevant settings need authentication.

EN 303 645 5.5-4 requires authentication before any function reachable over the network (unless
the manufacturer documents it as intentionally unauthenticated), 5.5-5 that security-relevant
settings change only after authentication, in the factory-default state too. The lab tries
every open port of the session's survey and every documented configuration interface (IXIT
15-Intf, 28-ExtAPI, 13-SoftServ `allows_configuration` + `interfaces`) with no credentials
(SSH method `none`), an empty and a wrong password, then the right one from the inventory.

Side effects: failed login attempts (fewer than the documented lockout); 5.5-5-2 writes a
security-relevant setting (test_facts.security_setting_key) and runs the documented factory
reset (25-DelFunc), which erases configuration and user data and restores the label password;
the setting is restored afterwards. The DUT is left booted and reachable.
"""

from __future__ import annotations

import secrets
import shlex
import time

import allure
import pytest

import support
from lab.errors import CertlabError, DutError, LabLoginRejected, SSHUnreachable
from lab.traffic.netauth import (AuthTarget, Probe, auth_targets, configuration_interfaces, kind_of, probe_raw,
                                 probe_ssh, probe_telnet, right_login_refused, settings_changed, unauthenticated_access)

pytestmark = pytest.mark.bench_state("shell")


def _lockout(ixit, target: AuthTarget) -> float:
    """The documented lockout of the target's mechanisms: how long to wait if the right login is refused."""
    waits = [m.brute_force_prevention.lockout_seconds or 0.0 for m in ixit.auth_mech
             if m.id in target.authentication and m.brute_force_prevention]
    return max(waits, default=0.0)


def _probe(bench, ixit, test_facts, target: AuthTarget, banner: str, *, command: str) -> Probe:
    """Try one service without, with wrong and with the right credentials, as its protocol allows."""
    address = bench.config.network.address
    user, right = bench.config.ssh.user, bench.ssh_password()
    if not right:
        raise CertlabError(f"inventory: bench {bench.name!r}: no ssh.password or dut.label_password; the lab needs "
                           "the right credentials to tell a refusal of wrong ones from a broken login")
    kind = kind_of(target.protocol, banner)
    if kind == "ssh":
        probe = probe_ssh(target, address, user, right, command=command)
        wait = _lockout(ixit, target)
        if probe.outcomes.get("right") == "rejected" and wait:
            with allure.step(f"the right password was refused: wait out the documented lockout ({wait:g} s), try again"):
                time.sleep(wait)
                probe.outcomes["right"] = probe_ssh(target, address, user, right, command=command,
                                                    attempts=("right",)).outcomes["right"]
        return probe
    p = bench.prompts
    if kind == "telnet":
        return probe_telnet(target, address, user, right, login=p.login_prompt, password=p.password_prompt,
                            shell=p.shell_prompt, incorrect=p.login_incorrect, command=command)
    if target.source != "undocumented" and target.transport == "tcp":
        raise CertlabError(f"{target.where} ({target.source}, protocol {target.protocol!r}): the lab has no automated "
                           "login probe for this protocol; test it by hand, or document the protocol as ssh or telnet")
    return probe_raw(target, address, command=command, version_pattern=test_facts.version_pattern)


@pytest.mark.etsi("5.5-4-2")
@pytest.mark.timeout(600)  # the survey may be made in this case
def test_5_5_4_2_network_functions_need_authentication(dut, bench, survey, ixit, test_facts, evidence):
    """No open port gives a function without the right credentials, unless the IXIT documents it as
    intentionally unauthenticated (15-Intf authentication: [])."""
    probes: list[Probe] = []
    skipped: dict[str, str] = {}
    for target in auth_targets(ixit, survey.found()):
        banner = survey.banners.get(target.where, "")
        if target.declared_open:
            skipped[target.where] = f"documented as intentionally unauthenticated ({target.source})"
            continue
        if target.transport == "udp":
            skipped[target.where] = "UDP listener not documented: no login to try (5.6-1-2 judges it)"
            continue
        with allure.step(f"{target.where} ({target.source}): no, empty, wrong, right credentials"):
            probes.append(_probe(bench, ixit, test_facts, target, banner, command=test_facts.version_command))
    refused = right_login_refused(probes)
    evidence.json("network-auth", {"probes": [p.record() for p in probes], "not_probed": skipped,
                                   "right_credentials_refused": refused, "survey": survey.evidence()})
    problems = unauthenticated_access(probes)
    assert not problems, "a network function answered without the right credentials: " + "; ".join(problems)
    if refused:
        raise LabLoginRejected(f"the inventory's credentials were refused on {', '.join(refused)}: the refusals of "
                               "wrong credentials there prove nothing", bench=bench.name)
    if not probes:
        raise CertlabError("no open port needs authentication and none was probed; 5.5-4-2 cannot be assessed "
                           "on this sample (the ICS says 5.5-4 applies)")


def _unauthenticated_change(bench, ixit, test_facts, targets, key: str, state: str, evidence) -> tuple[list[str], list[dict]]:
    """Try to set `key` without credentials on every configuration interface; read it back with them."""
    marker = f"certlab-unauth-{secrets.token_hex(4)}"
    set_cmd = test_facts.need("config_set_command").format(key=shlex.quote(key), value=shlex.quote(marker))
    get_cmd = test_facts.need("config_get_command").format(key=shlex.quote(key))
    probes = []
    for serv, target in targets:
        with allure.step(f"{state}: {target.where} ({serv}) — `config set` with no, empty, wrong credentials"):
            probes.append(_probe(bench, ixit, test_facts, target, "", command=set_cmd))
    with allure.step(f"{state}: read {key} back with the lab's credentials"):
        readback = support.ssh_output(bench, get_cmd)
    problems = [f"in the {state} state, {p}" for p in settings_changed(probes, marker, readback)]
    if marker in readback and not problems:
        problems.append(f"in the {state} state the setting {key} took the lab's unauthenticated value by some other way")
    refused = right_login_refused(probes)
    if refused and not problems:
        raise LabLoginRejected(f"{state}: the inventory's credentials were refused on {', '.join(refused)}",
                               bench=bench.name)
    return problems, [{"state": state, "marker": marker, "readback": readback.strip()[:200],
                       **p.record()} for p in probes]


@pytest.mark.etsi("5.5-5-2")
@pytest.mark.timeout(600)
def test_5_5_5_2_settings_change_needs_authentication(dut, bench, ixit, test_facts, evidence):
    """A security-relevant setting cannot be changed without authentication on any configuration interface,
    in the initialised state and again in the factory-default state reached by the documented reset."""
    targets = configuration_interfaces(ixit)  # CertlabError naming 13-SoftServ <id>.interfaces if missing
    if not targets:
        raise CertlabError("ixit: 13-SoftServ documents no enabled service with allows_configuration over a network "
                           "interface, but the ICS says 5.5-5 applies; correct one of them")
    key = test_facts.need("security_setting_key")
    resets = [f for f in ixit.del_func if f.target_type == "device" and f.command]
    if not resets:
        raise CertlabError("ixit: 25-DelFunc has no device function with a command: the lab cannot reach the "
                           "factory-default state the documented way")
    reset = resets[0]
    get_cmd = test_facts.need("config_get_command").format(key=shlex.quote(key))
    original = support.ssh_output(bench, get_cmd).strip()
    record: dict = {"setting": key, "original": original, "reset": reset.id, "attempts": []}
    problems, attempts = _unauthenticated_change(bench, ixit, test_facts, targets, key, "initialised", evidence)
    record["attempts"] += attempts
    with allure.step(f"reach the factory-default state: `{reset.command}` (25-DelFunc {reset.id})"):
        bench.console.open()
        bench.console.clear()
        try:
            result = bench.ssh.run(reset.command, timeout=test_facts.update_seconds)
            record["reset_output"] = (result.stdout + result.stderr).strip()[-300:]
        except SSHUnreachable as exc:
            if not reset.reboots:
                raise
            record["reset_output"] = f"(session ended: {exc.cause})"
        if reset.reboots:
            support.saw_boot_banner(bench, test_facts.update_seconds + test_facts.boot_seconds)
        bench.ssh.close()
        bench.strategy.invalidate()
        # back when its SSH server answers: no login yet, the factory-default state is what is tested
        bench.ssh.wait_reachable(timeout=test_facts.update_seconds + test_facts.boot_seconds)
    more, attempts = _unauthenticated_change(bench, ixit, test_facts, targets, key, "factory-default", evidence)
    problems += more
    record["attempts"] += attempts
    with allure.step(f"restore {key}"):
        support.wait_until_back(bench, test_facts, why=f"`{reset.command}`")
        if original:
            support.ssh_output(bench, test_facts.config_set_command.format(key=shlex.quote(key),
                                                                           value=shlex.quote(original)))
    evidence.json("settings-auth", record)
    assert not problems, "a security-relevant setting changed without authentication: " + "; ".join(problems)
