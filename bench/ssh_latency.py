"""Command round trips on one simulated bench, side by side: SSH warm, SSH cold, serial console.

- `ssh_warm_certlab`: `bench.ssh.run("true")` on the kept connection (one paramiko Transport, a
  new channel per command), as every test's commands run;
- `ssh_cold_certlab`: a new connection per command (TCP, key exchange, password login, command,
  close): the per-command-connection baseline, and what the first command after a boot costs;
- `console_command`: `echo` typed at the console's shell prompt until its output and the next
  prompt are back (the simulated UART is a pty bridged by the bench host, without a baud-rate
  delay: a real 115200-baud line adds about 1 ms per 11 characters);
- `ssh_warm_labgrid` (with `--labgrid`): labgrid's SSHDriver on the same DUT (OpenSSH with a
  ControlMaster connection, a new `ssh` process per command). labgrid is not one of certlab's
  dependencies; put it in a throwaway venv (`python3 -m venv /tmp/lg && /tmp/lg/bin/pip install
  labgrid==26.0.1`) and pass `--labgrid-python /tmp/lg/bin/python`, or run this script with an
  interpreter where `import labgrid` works.
Medians and 90th percentiles in milliseconds; printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median, open_bench, pct, sim_lab

from lab.drivers.ssh import SSHDriver
from lab.strategy import BenchState

LABGRID_PROBE = r"""
import json, os, sys, time
from labgrid import Target
from labgrid.driver import SSHDriver
from labgrid.resource import NetworkService
import labgrid
host, port, user, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
target = Target("dut")
NetworkService(target, name=None, address=host, username=user, port=port, password=os.environ["CL_PW"])
driver = SSHDriver(target, name=None)
target.activate(driver)
# labgrid keeps `cat` running over the master as a keepalive; the simulated shell's cat does not
# read stdin and ends at once, so the check is bypassed (it costs a poll() per command, nothing more)
driver._check_keepalive = lambda: True
driver.run("true")
times = []
for _ in range(n):
    t0 = time.perf_counter()
    out, err, code = driver.run("true")
    times.append(time.perf_counter() - t0)
    assert code == 0, (out, err, code)
target.deactivate(driver)
from importlib.metadata import version
print(json.dumps({"version": version("labgrid"), "seconds": times}))
"""


def timed(action, count: int) -> list[float]:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return times


def line(name: str, seconds: list[float], note: str) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{name}_median_ms={median(ms):.2f} p90_ms={pct(ms, 90):.2f} n={len(ms)}  # {note}"


def labgrid_times(python: str, host: str, port: int, user: str, password: str, count: int) -> tuple[str, list[float]]:
    """Runs labgrid in its own interpreter, so it never shares (or pins) certlab's packages."""
    proc = subprocess.run([python, "-c", LABGRID_PROBE, host, str(port), user, str(count)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "CL_PW": password})
    if proc.returncode != 0:
        raise SystemExit(f"ssh_latency: labgrid probe with {python} failed: {proc.stderr.strip()[-500:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["version"], data["seconds"]


def find_labgrid(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    try:
        import labgrid  # noqa: F401 - only whether it is there
        return sys.executable
    except ImportError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=200, help="commands per warm measurement (10-5000)")
    parser.add_argument("--cold", type=int, default=30, help="commands on a new connection each (5-500)")
    parser.add_argument("--labgrid", action="store_true", help="also measure labgrid's SSHDriver")
    parser.add_argument("--labgrid-python", help="interpreter that has labgrid (default: this one, if it has)")
    args = parser.parse_args()
    n = max(10, min(args.commands, 5000))
    cold_n = max(5, min(args.cold, 500))
    lg_python = find_labgrid(args.labgrid_python) if args.labgrid else None
    if args.labgrid and lg_python is None:
        raise SystemExit("ssh_latency: --labgrid: `import labgrid` fails here; install it into a throwaway venv "
                         "(python3 -m venv /tmp/lg && /tmp/lg/bin/pip install labgrid==26.0.1) and pass "
                         "--labgrid-python /tmp/lg/bin/python")
    out: list[str] = []
    with sim_lab("bssh", 1, scpi_port=16525, subnet=166) as (inv, sim):
        sim.up()
        with tempfile.TemporaryDirectory() as tmp:
            bench = open_bench(inv, "b1", Path(tmp))
            try:
                bench.strategy.transition(BenchState.SHELL)
                ssh = bench.ssh
                ssh.run("true", check=True)  # waits for SSH after the boot, warms the connection

                warm = timed(lambda: ssh.run("true", check=True), n)
                out.append(line("ssh_warm_certlab", warm, "kept paramiko transport, new channel per command"))

                def cold() -> None:
                    fresh = SSHDriver(ssh.host, ssh.port, ssh.user, bench.ssh_password, timeout=ssh.timeout)
                    try:
                        fresh.run("true", check=True)
                    finally:
                        fresh.close()

                out.append(line("ssh_cold_certlab", timed(cold, cold_n),
                                "cold: new connection per command (TCP, key exchange, login, command)"))

                console = bench.console
                console.read_until_quiet(quiet=0.3, timeout=5)
                counter = iter(range(10**9))

                def console_command() -> None:
                    i = next(counter)
                    console.sendline(f"echo cl{i}")
                    console.expect(rf"\ncl{i}\r?\n[^\n]*{bench.prompts.shell_prompt}", timeout=10)

                console_command()
                out.append(line("console_command", timed(console_command, n),
                                "echo at the shell prompt, output and next prompt back"))

                if lg_python:
                    version, seconds = labgrid_times(lg_python, ssh.host, ssh.port, ssh.user, bench.ssh_password() or "", n)
                    out.append(line("ssh_warm_labgrid", seconds,
                                    f"labgrid {version} SSHDriver: OpenSSH ControlMaster, one ssh process per command"))
                elif not args.labgrid:
                    out.append("ssh_warm_labgrid: not measured (--labgrid)")
            finally:
                bench.strategy.transition(BenchState.OFF)
                bench.close()
    import paramiko

    print(f"bench=b1 root={os.geteuid() == 0} paramiko={paramiko.__version__} cpus={os.cpu_count()}")
    for text in out:
        print(text)


if __name__ == "__main__":
    main()
