"""5.5-2-2: the security implementations the device exposes are the ones IXIT 12-NetSecImpl documents.

EN 303 645 5.5-2 asks for reviewed, evaluated implementations for network and security
functionality; TS 103 701 checks on the DUT that what it exposes matches the documentation. The
IXIT names each implementation and version (`implementations: {name, version, exposed}`) and
where the device shows them: the identification line an SSH interface sends (15-Intf id), or a
command's output in the lab's shell session. The lab reads each place and FAILs a place that
names another implementation or version; it also reads the identification of every enabled SSH
interface, and one no documented implementation claims is an undocumented implementation.
Side effects: none (connections of its own that stop after the key exchange offer; read-only commands).
"""

from __future__ import annotations

import allure
import pytest

import support
from lab.errors import CertlabError, DutError, NetworkFault
from lab.identity import implementation_problem, ssh_software
from lab.traffic.ssh_algorithms import read_server_offer

pytestmark = pytest.mark.bench_state("shell")


def _ident(bench, intf, cache: dict[str, str]) -> str:
    """The identification line of SSH interface `intf` (read once per test)."""
    if intf.id not in cache:
        port = intf.port or bench.config.ssh.port
        with allure.step(f"read the identification of {intf.id} (tcp/{port})"):
            try:
                cache[intf.id] = read_server_offer(bench.config.network.address, port, bench.config.ssh.timeout).ident
            except OSError as exc:
                raise NetworkFault(f"{intf.id} (tcp/{port}) gave no SSH identification: {exc}", bench=bench.name) from None
    return cache[intf.id]


@pytest.mark.etsi("5.5-2-2")
def test_5_5_2_2_security_implementations_as_documented(dut, bench, ixit, evidence):
    """Each place the IXIT says the device names a security implementation shows that name and version."""
    impls = [(entry, impl) for entry in ixit.net_sec_impl for impl in entry.implementations]
    if not impls:
        raise CertlabError("ixit: 12-NetSecImpl: no entry lists its implementations (implementations: name, version, "
                           "exposed); the lab needs them to compare with what the device exposes")
    ssh_intfs = [i for i in ixit.network_interfaces() if "ssh" in i.protocol.lower()]
    if ssh_intfs:
        bench.ssh.run("true", timeout=bench.config.ssh.timeout)  # SSH ready after the boot (the strategy's wait)
    idents: dict[str, str] = {}
    checked, problems, claimed = [], [], set()
    for entry, impl in impls:
        for exp in impl.exposed:
            if exp.kind == "ssh_identification":
                intf = ixit.interface(exp.interface)
                ident = _ident(bench, intf, idents)
                shown, where = ssh_software(ident) or ident, f"the SSH identification of {intf.id} (tcp/{intf.port})"
                claimed.add(intf.id)
            else:
                with allure.step(f"run `{exp.command}`"):
                    shown, where = support.ssh_output(bench, exp.command).strip(), f"`{exp.command}`"
            problem = implementation_problem(shown, impl.name, impl.version, where)
            checked.append({"entry": entry.id, "implementation": f"{impl.name} {impl.version}", "where": where,
                            "shown": shown[:500], "problem": problem})
            if problem:
                problems.append(problem)
    for intf in ssh_intfs:
        if intf.id not in claimed:
            ident = _ident(bench, intf, idents)
            checked.append({"interface": intf.id, "shown": ident, "problem": "no documented implementation claims it"})
            problems.append(f"{intf.id} (tcp/{intf.port}) identifies as {ident[:80]!r}, and no 12-NetSecImpl "
                            "implementation documents its identification")
    evidence.json("implementations", {"checked": checked, "problems": problems})
    if not checked:
        raise CertlabError("ixit: 12-NetSecImpl: no implementation has a place the lab can read (exposed: []) and no "
                           "SSH interface is enabled; compare the implementations with the SBOM by hand")
    if problems:
        raise DutError(f"5.5-2-2: {len(problems)} place(s) where the device exposes an implementation other than "
                       "documented: " + " | ".join(problems))
