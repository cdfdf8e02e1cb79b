"""lab.drivers.netcut: the link cut and the peer refusal are undone whatever happens (commands scripted)."""

from __future__ import annotations

import subprocess

import pytest

from lab.drivers.net import NetDriver
from lab.drivers.netcut import link_cut, refuse_peer, refuse_ruleset
from lab.errors import NetworkFault


class Ip:
    """A scripted `ip`/`nft`: records every command; `route get` answers with the bench interface."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, args, stdin=None) -> subprocess.CompletedProcess:
        line = " ".join(args)
        self.calls.append(line)
        if self.fail and self.fail in line:
            return subprocess.CompletedProcess(args, 2, "", "RTNETLINK answers: Operation not permitted")
        out = "10.203.1.2 dev clh-b1 src 10.203.1.1 uid 0\n" if "route get" in line else ""
        return subprocess.CompletedProcess(args, 0, out, "")


def test_the_link_is_cut_behind_a_blackhole_route_and_restored() -> None:
    ip = Ip()
    with link_cut("clh-b1", "10.203.1.2", run=ip, sleep=lambda _: None) as cut:
        assert ip.calls == ["ip route replace blackhole 10.203.1.2/32", "ip link set dev clh-b1 down"]
    assert ip.calls[2:] == ["ip link set dev clh-b1 up", "ip route del blackhole 10.203.1.2/32",
                            "ip -o route get 10.203.1.2"]
    assert cut.up_at is not None and cut.up_at >= cut.down_at


def test_the_link_is_restored_when_the_test_fails_meanwhile() -> None:
    ip = Ip()
    with pytest.raises(RuntimeError):
        with link_cut("clh-b1", "10.203.1.2", run=ip, sleep=lambda _: None):
            raise RuntimeError("the test failed")
    assert "ip link set dev clh-b1 up" in ip.calls and "ip route del blackhole 10.203.1.2/32" in ip.calls


def test_a_link_that_cannot_be_restored_is_a_lab_fault_naming_what_to_check() -> None:
    with pytest.raises(NetworkFault) as err:
        with link_cut("clh-b1", "10.203.1.2", run=Ip(fail="link set dev clh-b1 up"), sleep=lambda _: None):
            pass
    assert "ip link show clh-b1" in str(err.value)


def test_a_refused_cut_is_a_lab_fault_and_leaves_nothing_behind() -> None:
    ip = Ip(fail="down")
    with pytest.raises(NetworkFault):
        with link_cut("clh-b1", "10.203.1.2", run=ip, sleep=lambda _: None):
            pass
    assert ip.calls[-3:-1] == ["ip link set dev clh-b1 up", "ip route del blackhole 10.203.1.2/32"]


def test_the_refusal_matches_only_this_dut_on_this_interface_and_port() -> None:
    rules = refuse_ruleset("clh-b1", "10.203.1.2", 8883)
    assert rules.count('iifname "clh-b1" ip saddr 10.203.1.2 tcp dport 8883 reject with tcp reset') == 2
    assert "table ip certlab_refuse_clh_b1" in rules and "hook input" in rules and "hook forward" in rules
    assert 'udp dport 53 reject\n' in refuse_ruleset("clh-b1", "10.203.1.2", 53, "udp")
    with pytest.raises(NetworkFault):
        refuse_ruleset('clh"; flush ruleset', "10.203.1.2", 8883)


def test_the_refusal_table_goes_when_the_block_ends_even_on_failure() -> None:
    ip = Ip()
    with pytest.raises(RuntimeError):
        with refuse_peer("clh-b1", "10.203.1.2", 8883, run=ip):
            raise RuntimeError("the test failed")
    assert ip.calls == ["nft delete table ip certlab_refuse_clh_b1", "nft -f -",
                        "nft delete table ip certlab_refuse_clh_b1"]


def test_a_loopback_bench_has_no_link_of_its_own_to_cut() -> None:
    with pytest.raises(NetworkFault) as err:
        with NetDriver("127.0.0.1", bench="b1").link_cut():
            pass
    assert "loopback" in str(err.value)
