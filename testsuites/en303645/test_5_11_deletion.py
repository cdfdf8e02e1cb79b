"""5.11-1-2, 5.11-4-1: the user can erase their data from the device, and is told so (TS 103 701 V1.1.1).

EN 303 645 5.11-1 requires a simple way for the user to erase user data from the device. The
TS has the lab create user data (personal data, configuration, ...), run each erase function
as IXIT 25-DelFunc describes it, and show the data gone. Here the lab stores a file in the
documented user data folder (test_facts.user_data_dir) and a configuration value
(test_facts.config_set_command), runs each device deletion function with a command, waits
for the reboot the IXIT announces, and looks for the data twice: over SSH, and on the serial
console after a power cycle (the erasure must be persistent, and must hold on every interface).

EN 303 645 5.11-4 requires that the user gets a clear confirmation that the data were deleted.
5.11-4-1 reads what each deletion function printed where it ran (the SSH session) and looks for
what the IXIT says the confirmation is (25-DelFunc `confirmation_pattern`, a regular expression).
It shares 5.11-1-2's run of each function (no second deletion, no extra reboot); run alone, it
runs the deletion itself. Deletion functions without a command (an app, a cloud service) are
out of the bench's reach and said so in the evidence.

Side effects: the deletion function is run for real (a factory reset erases all user data and
configuration and restores the label password, as the IXIT says); the DUT is power-cycled; a
lab file that survived is removed afterwards. The DUT is left booted and reachable.
"""

from __future__ import annotations

import posixpath
import secrets
import shlex

import allure
import pytest

import support
from lab.deletion import confirmation_shown
from lab.errors import CertlabError, DutError, LabFault, SSHUnreachable
from lab.strategy import BenchState

pytestmark = pytest.mark.bench_state("shell")


def _console_output(bench, command: str, timeout: float = 20) -> str:
    """Run `command` at the console's shell prompt; what it printed between two markers.

    The markers are quoted in the typed line, so the console's echo of it never matches them.
    """
    mark = f"certlab{secrets.token_hex(4)}"
    bench.console.read_until_quiet(quiet=0.3, timeout=3)
    bench.console.sendline(f'echo {mark}-"BEGIN"; {command}; echo {mark}-"END"')
    bench.console.expect(f"{mark}-BEGIN\r?\n", timeout=timeout)
    return bench.console.expect(f"{mark}-END\r?\n", timeout=timeout).before


@pytest.fixture(scope="module")
def deletion_runs() -> dict[str, dict]:
    """What each deletion function printed and did, by 25-DelFunc id: one run serves 5.11-1-2 and 5.11-4-1."""
    return {}


def _run_deletion(bench, test_facts, func, evidence, runs: dict[str, dict]) -> dict:
    """Run one deletion function over SSH as documented; follow its reboot. The record goes to `runs`."""
    record: dict = {"function": func.id, "command": func.command, "reboots": func.reboots}
    runs[func.id] = record
    bench.console.open()
    bench.console.clear()
    try:
        result = bench.ssh.run(func.command, timeout=test_facts.update_seconds)
        record.update(exit_status=result.exit_status, output=(result.stdout + result.stderr).strip())
    except SSHUnreachable as exc:
        if not func.reboots:
            raise
        record.update(exit_status=None, output=f"(session ended: {exc.cause})")
    if record["exit_status"] not in (0, None):
        raise DutError(f"the deletion function `{func.command}` (25-DelFunc {func.id}) exited "
                       f"{record['exit_status']}: {record['output'][:200]!r}")
    if func.reboots:
        record["rebooted"] = support.saw_boot_banner(bench, test_facts.update_seconds + test_facts.boot_seconds)
        record["back_seconds"] = round(support.wait_until_back(bench, test_facts, why=f"`{func.command}`"), 3)
    evidence.json(f"{func.id}-run", record)
    return record


@pytest.mark.etsi("5.11-1-2")
def test_5_11_1_2_deletion_erases_user_data(dut, bench, ixit, test_facts, evidence, deletion_runs):
    """User data created by the lab must be gone after each documented deletion function (SSH and console)."""
    funcs = [f for f in ixit.del_func if f.target_type == "device" and f.command]
    if not funcs:
        raise CertlabError("ixit: 25-DelFunc has no device deletion function with a command; test it by hand")
    folder = test_facts.need("user_data_dir")  # not set, or the product says it keeps none: INCONCLUSIVE, saying which
    survivors: list[str] = []
    for func in funcs:
        token = secrets.token_hex(8)
        name = f"certlab-{token[:8]}.txt"
        path = posixpath.join(folder, name)
        content = f"certlab user data {token}"
        setting = f"certlab-user-{token}"
        with allure.step(f"create user data: {path} and a configuration value"):
            local = evidence.path(f"{func.id}-{name}")
            local.write_text(content + "\n")
            bench.ssh.put(local, path)
            if content not in support.ssh_output(bench, f"cat {shlex.quote(path)}"):
                raise CertlabError(f"could not create user data: {path} does not hold what the lab wrote")
            key = test_facts.config_probe_key if test_facts.config_set_command else None  # None: no settings
            if test_facts.config_set_command and test_facts.config_get_command:
                support.ssh_output(bench, test_facts.config_set_command.format(key=shlex.quote(key),
                                                                               value=shlex.quote(setting)))
                if setting not in support.ssh_output(bench, test_facts.config_get_command.format(key=shlex.quote(key))):
                    raise CertlabError(f"could not create user data: setting {key} does not read back")
        with allure.step(f"run the deletion function `{func.command}` (25-DelFunc {func.id})"):
            _run_deletion(bench, test_facts, func, evidence, deletion_runs)
        found: dict[str, str] = {}
        with allure.step("look for the data over SSH"):
            listing = bench.ssh.run(f"ls -a {shlex.quote(folder)}", timeout=30)
            cat = bench.ssh.run(f"cat {shlex.quote(path)}", timeout=30)
            found["ssh: ls -a"] = listing.stdout
            found["ssh: cat"] = cat.stdout if cat.exit_status == 0 else ""
            if name in listing.stdout or content in found["ssh: cat"]:
                survivors.append(f"{path} still exists over SSH after `{func.command}`")
            if test_facts.config_get_command:
                got = bench.ssh.run(test_facts.config_get_command.format(key=shlex.quote(key)), timeout=30)
                found["ssh: config get"] = got.stdout
                if got.exit_status == 0 and setting in got.stdout:
                    survivors.append(f"the configuration value {key}={setting} survived `{func.command}`")
        with allure.step("power-cycle, log in on the console and look again"):
            bench.strategy.invalidate()
            bench.strategy.transition(BenchState.SHELL)
            console_ls = _console_output(bench, f"ls -a {shlex.quote(folder)}")
            console_cat = _console_output(bench, f"cat {shlex.quote(path)}")
            found["console: ls -a"], found["console: cat"] = console_ls, console_cat
            if name in console_ls or content in console_cat:
                survivors.append(f"{path} still exists on the console after `{func.command}` and a power cycle")
        evidence.json(f"{func.id}-after", {"file": path, "content": content, "setting": {key: setting}, "seen": found})
        if any(path in s for s in survivors):
            with allure.step(f"remove the lab's file {path}"):
                bench.ssh.run(f"rm -f {shlex.quote(path)}", timeout=30)
    if survivors:
        raise DutError("user data survived the deletion function: " + "; ".join(survivors))


@pytest.mark.etsi("5.11-4-1")
def test_5_11_4_1_deletion_is_confirmed(dut, bench, ixit, test_facts, evidence, deletion_runs):
    """Each documented deletion function tells the user it is done, as 25-DelFunc confirmation says."""
    funcs = [f for f in ixit.del_func if f.target_type == "device" and f.command]
    if not funcs:
        raise CertlabError("ixit: 25-DelFunc has no device deletion function with a command; test it by hand")
    unchecked = [f.id for f in funcs if not f.confirmation_pattern]
    if unchecked:
        raise CertlabError(f"ixit: 25-DelFunc {unchecked[0]} has no confirmation_pattern; the lab needs the regular "
                           "expression the command prints once the deletion is done (its confirmation text says "
                           f"{next(f for f in funcs if f.id == unchecked[0]).confirmation!r})")
    missing: list[str] = []
    seen: dict[str, dict] = {}
    for func in funcs:
        shared = func.id in deletion_runs
        with allure.step(f"the confirmation of `{func.command}` (25-DelFunc {func.id})"
                         + (" from 5.11-1-2's run" if shared else "")):
            record = deletion_runs[func.id] if shared else _run_deletion(bench, test_facts, func, evidence,
                                                                         deletion_runs)
            output = record.get("output") or ""
            if record.get("exit_status") is None:
                raise LabFault(f"the SSH session of `{func.command}` ended before its output could be read "
                               f"({output[:120]}); its confirmation could not be checked", bench=bench.name)
            found = confirmation_shown(output, func.confirmation_pattern)
            seen[func.id] = {"command": func.command, "shared_with_5.11-1-2": shared, "exit_status": record["exit_status"],
                             "output": output[:2000], "pattern": func.confirmation_pattern,
                             "documented": func.confirmation, "confirmed": found}
            if not found:
                shown = output.strip()[:160] or "nothing"
                missing.append(f"`{func.command}` (25-DelFunc {func.id}) printed {shown!r}, without the documented "
                               f"confirmation {func.confirmation_pattern!r} ({func.confirmation})")
    others = [f.id for f in ixit.del_func if f not in funcs]
    evidence.json("deletion-confirmation", {"functions": seen, "not_on_the_bench": others})
    if missing:
        raise DutError("the deletion was not confirmed to the user as documented: " + "; ".join(missing))
