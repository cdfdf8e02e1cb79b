"""The simulated DUT's flaws of 5.1-3, 5.5-2 and 5.3-16, seen as the suites see them (real DUT processes).

Conforming: the SSH server offers exactly the TH-100 IXIT's algorithms, identifies as OpenSSH 9.2p1
and `version` names TH-100. Each flaw changes only its own part.
"""

from __future__ import annotations

import pytest

from lab.sim.sshd import DEVICE_ALGORITHMS
from lab.traffic.ssh_algorithms import probe_weak, read_server_offer
from test_sim_dut import booted, make_dut  # noqa: F401 - fixture

TIMEOUT = 10.0


@pytest.mark.parametrize("flaw", [None, "weak_auth_crypto", "undocumented_security_impl", "wrong_model_designation"])
def test_identity_and_algorithm_flaws(make_dut, flaw: str | None) -> None:  # noqa: F811 - fixture
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    offer = read_server_offer("127.0.0.1", dut.ssh_port, TIMEOUT)
    sha1_kex = "diffie-hellman-group14-sha1" in offer.offers["kex"]
    assert sha1_kex is (flaw == "weak_auth_crypto")
    assert [k for k in offer.offers["kex"] if k != "diffie-hellman-group14-sha1"] == list(DEVICE_ALGORITHMS["kex"])
    assert offer.offers["host_key"] == ["ssh-ed25519"]
    kex = probe_weak("127.0.0.1", dut.ssh_port, "kex", TIMEOUT)
    assert kex.outcome == ("accepted" if flaw == "weak_auth_crypto" else "refused"), kex
    other = "SSH-2.0-dropbear_2019.78" if flaw == "undocumented_security_impl" else "SSH-2.0-OpenSSH_9.2p1"
    assert offer.ident == other
    status, out, _ = dut.run("version")
    assert status == 0 and out.split()[0] == ("TH-100X" if flaw == "wrong_model_designation" else "TH-100"), out
