"""The `command` power backend with real tiny commands: switched, read back, and every failure named."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from lab.drivers.power_command import CommandPower, CommandPowerConfig
from lab.drivers.registry import PowerContext, PowerRegistry
from lab.errors import PowerFault
from lab.secrets import SecretRef
from lab.sim.relayctl import main as relayctl_main
from lab.steps import ListSteps


def _power(tmp_path: Path, **fields) -> CommandPower:
    config = CommandPowerConfig(driver="command", **fields)
    return PowerRegistry.installed().open(config, PowerContext(bench="b1", base_dir=tmp_path))  # type: ignore[return-value]


def _state_commands(state: Path) -> dict[str, list[str]]:
    return {"on": ["sh", "-c", f"echo on > {state}"], "off": ["sh", "-c", f"echo off > {state}"],
            "status": ["cat", str(state)]}


def test_switches_and_reads_back_through_argv_commands(tmp_path: Path):
    state = tmp_path / "state"
    steps = ListSteps()
    power = CommandPower(CommandPowerConfig(driver="command", **_state_commands(state)), bench="b1", steps=steps)
    power.on()
    assert state.read_text() == "on\n" and power.is_on()
    power.off()
    assert not power.is_on()
    assert power.identify() == f"external power commands (status `cat {state}`: off)"
    assert [t for t, *_ in steps.records][:3] == ["power on", "power state", "power off"]


def test_string_commands_are_split_not_given_to_a_shell(tmp_path: Path):
    marker = tmp_path / "pwned"
    power = _power(tmp_path, on="true", off="true", status=f"echo off && touch {marker}")
    assert power.is_on() is False  # echo printed "off && touch ...": the first word, and no shell ran touch
    assert not marker.exists()


def test_shell_true_runs_through_sh_with_env_secrets_and_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_PDU_TOKEN", "t0ken")
    (tmp_path / "pdu.secret").write_text("from-a-file\n")
    state = tmp_path / "outlet"
    power = _power(tmp_path, shell=True, channel=3,
                   on=f'echo "on {{channel}} $TOKEN $OTHER $PLAIN" > {state}',
                   off=f'echo "off {{channel}}" > {state}', status=f"cat {state} | cut -d' ' -f1",
                   env={"TOKEN": SecretRef(env="LAB_PDU_TOKEN"), "OTHER": SecretRef(file="pdu.secret"), "PLAIN": "p"})
    power.on()
    assert state.read_text() == "on 3 t0ken from-a-file p\n"
    power.off()
    assert state.read_text() == "off 3\n" and not power.is_on()


def test_status_on_regex(tmp_path: Path):
    state = tmp_path / "state"
    state.write_text("Outlet 2: POWER ON (since 12:00)\n")
    power = _power(tmp_path, on="true", off="true", status=["cat", str(state)], status_on=r"POWER ON\b")
    assert power.is_on()
    state.write_text("Outlet 2: POWER OFF\n")
    assert not power.is_on()


def test_a_failing_command_is_retried_then_named_with_its_stderr(tmp_path: Path):
    count = tmp_path / "count"
    power = _power(tmp_path, retries=1, on=["sh", "-c", f"echo x >> {count}; echo 'relay 3 jammed' >&2; exit 3"],
                   off="true", status="echo off")
    with pytest.raises(PowerFault) as info:
        power.on()
    message = str(info.value)
    assert "bench b1: power relay fault: external power command" in message
    assert "exited with status 3: relay 3 jammed" in message and "(2 attempts to switch channel 1 on)" in message
    assert "sh -c" in message
    assert count.read_text().count("x") == 2


def test_a_switch_the_status_does_not_confirm_is_a_power_fault(tmp_path: Path):
    power = _power(tmp_path, retries=0, on="true", off="true", status="echo off")
    with pytest.raises(PowerFault, match="kept channel 1 off after switching it on"):
        power.on()


def test_unparseable_status_is_not_retried_and_says_the_fix(tmp_path: Path):
    count = tmp_path / "count"
    power = _power(tmp_path, retries=3, on="true", off="true", status=["sh", "-c", f"echo x >> {count}; echo maybe"])
    with pytest.raises(PowerFault) as info:
        power.is_on()
    assert "printed 'maybe', not on or off" in str(info.value) and "power.status_on" in str(info.value)
    assert count.read_text().count("x") == 1


def test_a_missing_program_is_named(tmp_path: Path):
    power = _power(tmp_path, retries=0, on=[str(tmp_path / "no-such-tool"), "on"], off="true", status="echo off")
    with pytest.raises(PowerFault, match=r"no-such-tool on` could not be started .*power.on"):
        power.on()


def test_a_hung_command_is_killed_with_its_children_after_the_timeout(tmp_path: Path):
    pids = tmp_path / "pids"
    power = _power(tmp_path, retries=0, timeout=0.5, shell=True, on="true", off="true",
                   status=f"sleep 30 & echo $! > {pids}; wait")
    with pytest.raises(PowerFault, match=r"did not finish within 0.5 s \(power.timeout\)"):
        power.is_on()
    child = int(pids.read_text())
    for _ in range(100):  # SIGKILL of the session is immediate; bounded wait for the kernel to reap it
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            break
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the command's child {child} survived the timeout")


def test_relayctl_reports_a_missing_relay_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert relayctl_main(["--socket", str(tmp_path / "none.sock"), "on", "1"]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_the_sim_relay_control_program_through_the_command_backend(tmp_path: Path):
    """lab.sim.relayctl against a live `ctl` relay (no bench wired: the relay keeps the state)."""
    import json
    import subprocess

    sock = tmp_path / "ctl0.sock"
    cfg = tmp_path / "ctl0.json"
    cfg.write_text(json.dumps({"id": "ctl0", "kind": "ctl", "socket": str(sock), "channels": {}, "size": 4}))
    relay = subprocess.Popen([sys.executable, "-m", "lab.sim.relay", "--config", str(cfg)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.02)
        ctl = [sys.executable, "-m", "lab.sim.relayctl", "--socket", str(sock)]
        power = _power(tmp_path, channel=3, on=[*ctl, "on", "{channel}"], off=[*ctl, "off", "{channel}"],
                       status=[*ctl, "status", "{channel}"])
        power.on()
        assert power.is_on()
        power.off()
        assert not power.is_on()
        wrong = _power(tmp_path, channel=9, retries=0, on=[*ctl, "on", "{channel}"], off="true", status="echo off")
        with pytest.raises(PowerFault, match="relay refused ON 9: no channel 9"):
            wrong.on()
    finally:
        relay.terminate()
        relay.wait(timeout=10)
