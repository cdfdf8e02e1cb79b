"""Example bench tests: what every lab checks first on a new bench.

They use only the plugin's fixtures and the prompts from the inventory, so they run unchanged
on the simulated lab and on real hardware.
"""

from __future__ import annotations

import secrets

import pytest

from lab.strategy import BenchState


def test_power_cycle_shows_boot_banner(bench):
    """Power off, power on, and see the product's boot banner on the serial console."""
    seconds = bench.strategy.power_cycle()
    assert bench.strategy.state is BenchState.BOOTED, f"after the power cycle the bench is {bench.strategy.state.name}, not BOOTED"
    assert seconds < bench.config.console.boot_timeout, (
        f"the boot banner came after {seconds:.1f} s, not within console.boot_timeout ({bench.config.console.boot_timeout} s)")


@pytest.mark.bench_state("shell")
def test_console_login_gives_a_shell(dut, console, bench):
    """Log in on the console with the lab's credentials and run a command at the prompt."""
    token = f"certlab-{secrets.token_hex(4)}"
    console.sendline(f"echo {token}")
    match = console.expect(token + r"\s*\r?\n")  # waits console.timeout, from the inventory
    assert match is not None, f"the console did not echo {token!r}"
    console.expect(bench.prompts.shell_prompt)


@pytest.mark.bench_state("booted")
def test_ssh_runs_a_command(dut, ssh, bench):
    """Reach the DUT over the network and run a command over SSH."""
    ssh.wait_reachable(timeout=bench.config.console.boot_timeout)  # up within a boot, as the inventory says
    token = f"certlab-{secrets.token_hex(4)}"
    result = ssh.run(f"echo {token}", timeout=bench.config.ssh.timeout)
    assert result.exit_status == 0, f"echo over SSH exited {result.exit_status}: {result.stderr.strip()}"
    assert token in result.stdout, f"echo over SSH printed {result.stdout[-200:]!r}, not {token!r}"
