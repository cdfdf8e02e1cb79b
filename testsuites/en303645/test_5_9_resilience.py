"""5.9: the DUT stays resilient to outages (TS 103 701 V1.1.1 5.9-2-2, 5.9-3-2, 5.9-1-2).

5.9-1-2 and 5.9-3-2 (network outages) are described at their tests below; the power cuts of
5.9-2-2 follow.

EN 303 645 5.9-2 requires the device to recover cleanly after a loss of power: after power
returns it works again, in the same or a better state. The lab cuts power at seeded random
moments (`--seed`, `--power-cuts`): while the configuration is written, while an update is
written, and at an arbitrary moment of normal operation and of the boot that follows. After
every cut the DUT must boot, come back over SSH, read its configuration without error (a value
it legitimately held: from before the write or the one being written, nothing else) and keep
working. Commands, the probe setting and all timing bounds come from the IXIT (test_facts,
7-UpdMech, 25-DelFunc). Only the update phase needs the manufacturer's release files
(firmware_dir): a product whose ICS says it has no update mechanism is tested in the other phases
and the evidence says the update phase is out of scope by the ICS; a product that has one but no
release files on the lab is tested in the other phases and then INCONCLUSIVE naming the field.

Every random moment is drawn before the first cut (phase a's, then b's, then two per cut of c)
and recorded with its window (`window_s`, `at_fraction`), so the same seed on the same bench
cuts at the same moments whatever happens. Before each phase the lab writes the probe setting
and reads it back without any cut; a DUT that cannot do that FAILs with what it read and wrote
(a DUT that cannot be reached at all is a lab fault: INCONCLUSIVE).

Side effects: many power cycles; the probe setting (test_facts.config_probe_key) is written
with long random values and put back to its value from before the test when it had one; the
firmware is updated to the manufacturer's newer release. After a failure in any phase, a DUT
that still answers is restored with its documented factory reset (25-DelFunc), which also erases
user data and restores the label password, so the next phase (and the next run) starts clean.
A DUT that no longer boots is left as it is: it FAILed.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shlex
import threading
import time
from dataclasses import dataclass, field

import allure
import pytest

import support
from lab.conditions import ics_says
from lab.errors import CertlabError, DutError, LabFault, SSHUnreachable
from lab.strategy import BenchState
from lab.traffic.reconnect import (attempts, attempts_since, gaps_needed, judge_backoff, resume_bound, retry_window,
                                   went_through)

pytestmark = pytest.mark.bench_state("shell")


@dataclass
class ProbeSetting:
    """The harmless setting the lab may write, and every value it may legitimately hold."""

    key: str
    set_template: str
    get_template: str
    allowed: set[str] = field(default_factory=set)

    def set_command(self, value: str) -> str:
        return self.set_template.format(key=shlex.quote(self.key), value=shlex.quote(value))

    def get_command(self) -> str:
        return self.get_template.format(key=shlex.quote(self.key))

    def read(self, bench) -> tuple[int, str]:
        result = bench.ssh.run(self.get_command(), timeout=30)
        return result.exit_status, (result.stdout if result.exit_status == 0 else result.stderr or result.stdout).strip()

    def write(self, bench, value: str) -> float:
        """Set `value` as documented; the seconds the command took."""
        self.allowed.add(value)
        start = time.monotonic()
        support.ssh_output(bench, self.set_command(value))
        return time.monotonic() - start


def _probe(test_facts) -> ProbeSetting:
    """The setting the lab writes; a product that lacks one (or its IXIT that leaves it out) is INCONCLUSIVE."""
    set_template, get_template = test_facts.need("config_set_command"), test_facts.need("config_get_command")
    return ProbeSetting(test_facts.need("config_probe_key"), set_template, get_template)


def _long_value(rng, tag: str) -> str:
    """A long-ish, shell-safe text value (about 1 KiB), reproducible from the seed."""
    return f"certlab-{tag}-{rng.getrandbits(4096):01024x}"


def _short(value: str) -> str:
    return value if len(value) <= 40 else f"{value[:28]}…({len(value)} chars)"


def _check_after_cut(bench, test_facts, probe: ProbeSetting, row: dict, why: str) -> str | None:
    """Boot, SSH, configuration and function after a cut; the failure in words, or None.

    A DUT that does not boot or come back raises DutError (support.restore_power_after_cut).
    """
    row.update(support.restore_power_after_cut(bench, test_facts, why=why))
    status, text = probe.read(bench)
    row["config_after"] = _short(text) if status == 0 else f"error (exit {status}): {text[:120]}"
    try:
        row["version_after"] = support.installed_version(bench, test_facts)
    except DutError as exc:
        row["outcome"] = "FAIL: not working"
        return f"after {why} the DUT no longer works as documented: {exc}"
    if status != 0:
        row["outcome"] = "FAIL: configuration unreadable"
        return (f"after {why}, `{probe.get_command()}` failed (exit {status}: {text[:160]!r}): the configuration "
                "did not survive the power loss intact")
    if text not in probe.allowed:
        row["outcome"] = "FAIL: configuration garbled"
        return (f"after {why}, `{probe.get_command()}` printed {_short(text)!r}, which is neither the value before "
                "the write nor the one being written")
    row["outcome"] = "ok"
    return None


@dataclass
class CutPlan:
    """Every random draw of the test, made before the first cut.

    Drawn in a fixed order (a, b, c, then the values), so the same seed on the same bench gives
    the same moments whatever happens: a phase that stops early shifts nothing that follows.
    """

    a: list[float]  # fractions of the configuration-write window
    b: list[float]  # fractions (0.05 to 0.95) of the update window
    c: list[tuple[float, float]]  # fractions of the operation/boot window: (into operation, into the boot)
    values: dict[str, str]  # "base", "w1".."wN", "b", "c": the values written


def _plan(rng, power_cuts: int) -> CutPlan:
    a = [rng.uniform(0.0, 1.0) for _ in range(power_cuts)]
    b = [rng.uniform(0.05, 0.95) for _ in range(power_cuts)]
    c = [(rng.uniform(0.0, 1.0), rng.uniform(0.0, 1.0)) for _ in range(power_cuts)]
    tags = ["base", *(f"w{i}" for i in range(1, power_cuts + 1)), "b", "c"]
    return CutPlan(a, b, c, {tag: _long_value(rng, tag) for tag in tags})


def _recover_configuration(bench, ixit, test_facts, log: list[str]) -> str | None:
    """Bring a DUT with a corrupt configuration back with its documented factory reset (25-DelFunc).

    Returns None once the DUT is back, else why it could not be brought back (the test's later
    phases then cannot run). What was done goes to `log` (evidence recovery.txt).
    """
    funcs = [f for f in ixit.del_func if f.target_type == "device" and f.command]
    if not funcs:
        why = "25-DelFunc has no device deletion function with a command: the configuration was not restored"
        log.append(why)
        return why
    func = funcs[0]
    with allure.step(f"recover the configuration with `{func.command}` (25-DelFunc {func.id})"):
        try:
            bench.console.open()
            bench.console.clear()
            try:
                result = bench.ssh.run(func.command, timeout=test_facts.update_seconds)
                log.append(f"$ {func.command}\nexit {result.exit_status}\n{result.stdout}{result.stderr}")
                if result.exit_status > 0:
                    return (f"the recovery `{func.command}` (25-DelFunc {func.id}) exited {result.exit_status}: "
                            f"{(result.stderr or result.stdout).strip()[:160]!r}")
            except SSHUnreachable:  # the session ended as the DUT rebooted
                log.append(f"$ {func.command}\n(session ended)")
            if func.reboots:
                support.saw_boot_banner(bench, test_facts.update_seconds + test_facts.boot_seconds)
                support.wait_until_back(bench, test_facts, why=f"the recovery `{func.command}`")
        except (DutError, LabFault) as exc:
            why = f"the recovery `{func.command}` (25-DelFunc {func.id}) did not bring the DUT back: {exc}"
            log.append(why)
            return why
    log.append("recovered")
    return None


def _update_phase_scope(ics, ixit) -> str | None:
    """None when the update phase is in scope; else why not, from the ICS (never from a missing file).

    The ICS decides whether the product has an update mechanism (the provisions conditional on
    one, e.g. 5.3-3, all N/A means it has none); where it answers none of them, the IXIT's
    7-UpdMech does.
    """
    says = ics_says(ics, "update_mechanism")
    if says is False:
        return ("phase b (power cuts during an update) is out of scope: the ICS marks the provisions that need an "
                "update mechanism N/A (the product has none)")
    if says is None and not ixit.upd_mech:
        return "phase b (power cuts during an update) is out of scope: the IXIT's 7-UpdMech is empty"
    return None


def _table(rows: list[dict]) -> str:
    cols = [("cut", "#"), ("phase", "phase"), ("during", "what was happening"), ("window_s", "window (s)"),
            ("at_fraction", "fraction"), ("cut_after_s", "cut at (s)"), ("command_state", "command at cut"),
            ("boot_banner_s", "boot (s)"), ("ssh_back_s", "SSH back (s)"), ("config_after", "config after"),
            ("version_after", "version after"), ("outcome", "outcome")]
    cells = [[str(r.get(k, "")) for k, _ in cols] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(cols)]

    def line(values: list[str]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return "\n".join([line([h for _, h in cols]), "-+-".join("-" * w for w in widths)] + [line(c) for c in cells]) + "\n"


def _command_state(cut: dict) -> str:
    if cut.get("finished_before_cut"):
        return f"had exited {cut.get('exit_status')}"
    return "running (cut off)"


def _prepare(bench, probe: ProbeSetting, value: str, when: str, first_read: dict | None = None
             ) -> tuple[str | None, float]:
    """Write `value` and read it back, with no cut: (the DUT's failure to keep its configuration or None,
    the seconds the write took). `first_read`: the test's first read, for the very first write.

    A DUT that cannot be reached raises its LabFault (INCONCLUSIVE) from the SSH driver.
    """
    command = probe.set_command(value)
    what = f"`{command.replace(shlex.quote(value), shlex.quote(_short(value)))}` (a {len(value)}-character value)"
    try:
        took = probe.write(bench, value)
    except DutError as exc:
        error = str(exc).replace(f"`{command}` ", "").replace(shlex.quote(value), _short(value))
        if first_read and first_read["exit_status"] != 0:
            return (f"{when}, the DUT could not keep its configuration: {what} failed ({error}), and the first read "
                    f"`{first_read['command']}` had failed too (exit {first_read['exit_status']}: "
                    f"{first_read['output']!r}); its configuration was already unusable before this test cut power "
                    "(an earlier power loss may have corrupted it)"), 0.0
        return f"{when}, the DUT could not write its configuration: {what} failed ({error})", 0.0
    status, text = probe.read(bench)
    if status != 0:
        return (f"{when}, the DUT could not read back its configuration: {what} succeeded, then "
                f"`{probe.get_command()}` failed (exit {status}: {text[:160]!r})"), took
    if text != value:
        return (f"{when}, the DUT did not keep its configuration: {what} succeeded, then `{probe.get_command()}` "
                f"printed {_short(text)!r}"), took
    return None, took


@pytest.mark.etsi("5.9-2-2")
def test_5_9_2_2_recovers_cleanly_after_power_loss(request, dut, bench, ics, ixit, test_facts, evidence, rng,
                                                   power_cuts):
    """Power cuts during a configuration write, during an update and at random moments: clean recovery.

    Each phase makes `--power-cuts` cuts, at moments drawn before the first one. A phase whose
    preparation or a cut's aftermath fails ends there; the DUT's configuration is then restored
    with its factory reset, and the next phase runs if that brought the DUT back. A DUT that does
    not come back ends the test. The update phase is the only one that needs the release files
    (firmware_dir): a product the ICS says has no update mechanism is tested without it, and a
    missing folder for one that has leaves only that phase undone (INCONCLUSIVE naming the field,
    unless the other phases found a failure).
    """
    update_scope = _update_phase_scope(ics, ixit)
    missing_update: str | None = None  # the update phase is in scope but could not be run
    probe = _probe(test_facts)
    plan = _plan(rng, power_cuts)
    rows: list[dict] = []
    failures: list[str] = []  # the DUT's failures, in the order they happened
    notes: list[str] = []  # why later phases did not run
    recovery_log: list[str] = []
    status, text = probe.read(bench)  # an unreachable DUT raises its LabFault here: INCONCLUSIVE
    first_read = {"command": probe.get_command(), "exit_status": status,
                  "output": _short(text) if status == 0 else text[:200]}
    initial = text if status == 0 else None  # a failed read may just mean the setting has no value yet
    if initial is not None:
        probe.allowed.add(initial)
    stopped = False

    def new_row(phase: str, during: str, window: float, fraction: float) -> dict:
        rows.append({"cut": len(rows) + 1, "phase": phase, "during": during, "window_s": round(window, 3),
                     "at_fraction": round(fraction, 4)})
        return rows[-1]

    def failed(failure: str) -> None:
        """Record the DUT's failure and restore its configuration; stop the test if that did not work."""
        nonlocal stopped
        failures.append(failure)
        why = _recover_configuration(bench, ixit, test_facts, recovery_log)
        if why:
            notes.append(f"the remaining phases were not run: {why}")
            stopped = True

    try:
        # (a) during a configuration write; the window is one undisturbed write (at least 0.1 s, at most 1 s)
        with allure.step("phase a: power cuts while the configuration is written"):
            failure, took = _prepare(bench, probe, plan.values["base"], "before any power cut", first_read)
            window = min(1.0, max(0.1, 1.5 * took))
            if failure:
                failed(failure)
            else:
                for i, fraction in enumerate(plan.a, start=1):
                    value = plan.values[f"w{i}"]
                    probe.allowed.add(value)
                    at = fraction * window
                    why = (f"a power cut {at:.2f} s into `{probe.set_template}` of a {len(value)}-character value "
                           f"(cut {i} of {power_cuts})")
                    row = new_row("a", f"config write ({len(value)} chars)", window, fraction)
                    with allure.step(f"cut {i}/{power_cuts}: {at:.2f} s into a configuration write"):
                        cut = support.run_and_cut(bench, probe.set_command(value), at)
                        row.update(cut_after_s=cut["cut_after_s"], command_state=_command_state(cut))
                        failure = _check_after_cut(bench, test_facts, probe, row, why)
                    if failure:
                        failed(failure)
                        break

        # (b) during an update; the window is one undisturbed run of the apply command
        if update_scope is not None:
            notes.append(update_scope)
            with allure.step(f"phase b not run: {update_scope}"):
                pass
        elif not stopped:
            try:
                firmware_dir = request.getfixturevalue("firmware_dir")
            except CertlabError as exc:
                missing_update = f"phase b (power cuts during an update) was not run: {exc}"
                notes.append(missing_update)
        if update_scope is None and missing_update is None and not stopped:
            mech = support.update_mechanism(ixit)
            data, header = support.release_image(firmware_dir, test_facts, "newer")
            local = evidence.path("newer.clfw")
            with allure.step("phase b: power cuts while an update is written"):
                failure, _ = _prepare(bench, probe, plan.values["b"], "before the update cuts (phase b)")
                if failure:
                    failed(failure)
                else:
                    window, command = support.measure_update_window(bench, test_facts, mech, data, header, local,
                                                                    evidence)
                    for i, fraction in enumerate(plan.b, start=1):
                        at = fraction * window
                        why = f"a power cut {at:.2f} s into installing {header.version} (update cut {i} of {power_cuts})"
                        before = support.installed_version(bench, test_facts)
                        bench.ssh.put(local, mech.delivery.upload_path)
                        row = new_row("b", f"update to {header.version}", window, fraction)
                        with allure.step(f"cut {i}/{power_cuts}: {at:.2f} s into an update"):
                            cut = support.run_and_cut(bench, command, at)
                            row.update(cut_after_s=cut["cut_after_s"], command_state=_command_state(cut))
                            failure = _check_after_cut(bench, test_facts, probe, row, why)
                        if not failure and row["version_after"] not in (before, header.version):
                            row["outcome"] = "FAIL: unexpected firmware"
                            failure = (f"after {why} the DUT runs {row['version_after']}, neither the old {before} "
                                       f"nor the new {header.version}")
                        if failure:
                            failed(failure)
                            break

        # (c) at a random moment of normal operation, then at a random moment of the boot that follows;
        # the window is 1.5 times the slowest power-on-to-SSH time seen so far
        if not stopped:
            with allure.step("phase c: power cuts at random moments of operation and boot"):
                failure, _ = _prepare(bench, probe, plan.values["c"], "before the random cuts (phase c)")
                up = [r["boot_banner_s"] + r["ssh_back_s"] for r in rows if "ssh_back_s" in r]
                window = 1.5 * (max(up) if up else test_facts.boot_seconds)
                if failure:
                    failed(failure)
                else:
                    for i, (f_run, f_boot) in enumerate(plan.c, start=1):
                        running, booting = f_run * window, f_boot * window
                        why = (f"a power cut {running:.2f} s into normal operation, then another {booting:.2f} s "
                               f"after power-on (random cut {i} of {power_cuts})")
                        row = new_row("c", f"operation, then boot (cut {booting:.2f} s after power-on)", window, f_run)
                        row.update(boot_at_fraction=round(f_boot, 4), boot_cut_after_s=round(booting, 3))
                        with allure.step(f"cut {i}/{power_cuts}: {running:.2f} s into operation, "
                                         f"{booting:.2f} s into boot"):
                            time.sleep(running)
                            bench.strategy.transition(BenchState.OFF)  # cut while working
                            bench.ssh.close()
                            time.sleep(1.0)
                            bench.power.on()
                            time.sleep(booting)
                            bench.strategy.transition(BenchState.OFF)  # cut while booting
                            row.update(cut_after_s=round(running, 3), command_state="-")
                            failure = _check_after_cut(bench, test_facts, probe, row, why)
                        if failure:
                            failed(failure)
                            break
    except DutError as exc:  # the DUT did not come back (from a cut or a genuine update): nothing more can be tried
        if rows and "outcome" not in rows[-1]:
            rows[-1]["outcome"] = "FAIL: did not come back"
        failures.append(str(exc))
    except LabFault as exc:
        if not failures:
            raise  # nothing was shown about the DUT: INCONCLUSIVE
        notes.append(f"the remaining phases were not run: {exc}")  # what the DUT already did wrong stands
    finally:
        evidence.json("power-cuts", {
            "power_cuts_per_phase": power_cuts, "first_read": first_read,
            "drawn_fractions": {"a": [round(f, 4) for f in plan.a], "b": [round(f, 4) for f in plan.b],
                                "c": [[round(f, 4) for f in pair] for pair in plan.c]},
            "cuts": rows, "failures": failures, "notes": notes})
        evidence.text("power-cuts.txt", _table(rows))
        if recovery_log:
            evidence.text("recovery.txt", "\n\n".join(recovery_log) + "\n")

    if not failures and initial is not None:
        with allure.step("put the probe setting back"):
            probe.write(bench, initial)
    if missing_update and not failures:
        raise CertlabError(missing_update + " (phases a and c recovered cleanly)")
    if failures:
        unclean = sum(1 for r in rows if str(r.get("outcome", "")).startswith("FAIL"))
        head = f"{unclean} of {len(rows)} power cut(s) left the DUT unclean"
        if len(failures) > unclean:
            head += f"; {len(failures) - unclean} failure(s) outside the cuts"
        raise DutError(head + ": " + " | ".join(failures + notes))


# --- network outages (5.9-3-2, 5.9-1-2) ---------------------------------------------------------

MARGIN_S = 2.0  # the lab's margin on a documented interval (as the 5.5 capture window)
NO_OUTGOING_WATCH_S = 10.0  # a device the IXIT says never connects out: how long the lab watches that it does not


def _outgoing(ixit) -> list:
    """The 11-ComMech mechanisms the DUT opens itself (remote_access false) on a documented TCP port."""
    unknown = [m.id for m in ixit.com_mech if m.remote_access is None]
    if unknown:
        raise CertlabError(f"ixit: 11-ComMech {unknown[0]} does not say remote_access; the lab needs it to tell the "
                           "connections the DUT opens from those made to it")
    return [m for m in ixit.com_mech if m.remote_access is False and m.port and (m.transport or "tcp") == "tcp"]


def _is_syn_from(packet, address: str) -> tuple[float, int] | None:
    """(time, client port) of a connection-opening SYN the DUT sent, else None."""
    tcp, ip = packet.getlayer("TCP"), packet.getlayer("IP")
    if tcp is None or ip is None or ip.src != address or int(tcp.flags) & 0x12 != 0x02:
        return None
    return float(packet.time), int(tcp.sport)


def _tcp_from(packet, address: str) -> tuple[float, int] | None:
    """(time, client port) of any TCP packet the DUT sent."""
    tcp, ip = packet.getlayer("TCP"), packet.getlayer("IP")
    if tcp is None or ip is None or ip.src != address:
        return None
    return float(packet.time), int(tcp.sport)


def _carries_data_from(packet, address: str) -> bool:
    tcp, ip = packet.getlayer("TCP"), packet.getlayer("IP")
    if tcp is None or ip is None or ip.src != address:
        return False
    return int(ip.len) - 4 * int(ip.ihl) - 4 * int(tcp.dataofs) > 0  # by the headers: Ethernet padding is no data


def _watch_no_outgoing(bench, evidence, name: str) -> dict:
    """For a DUT whose IXIT lists no outgoing mechanism: the link is cut and restored, then the lab watches
    that the DUT opens no connection at all (no reconnection, hence no storm). FAIL on any SYN it sends."""
    address = bench.config.network.address
    syns: list[tuple[float, int, int]] = []

    def seen(packet) -> None:
        syn = _is_syn_from(packet, address)
        if syn:
            syns.append((*syn, int(packet.getlayer("TCP").dport)))

    with bench.net.link_cut():
        time.sleep(1.0)
    with bench.net.capture(evidence.path(f"{name}.pcap"), bpf_filter="tcp", on_packet=seen):
        time.sleep(NO_OUTGOING_WATCH_S)
    record = {"outgoing_mechanisms": [], "watched_s": NO_OUTGOING_WATCH_S,
              "connections_opened": [{"at": round(t, 3), "sport": sp, "dport": dp} for t, sp, dp in syns]}
    evidence.json(name, record)
    if syns:
        ports = sorted({dp for _, _, dp in syns})
        raise DutError(f"11-ComMech lists no connection the DUT opens itself, yet after its link returned it opened "
                       f"{len(syns)} connection(s) to port(s) {ports} within {NO_OUTGOING_WATCH_S:g} s")
    return record


@pytest.mark.etsi("5.9-3-2")
def test_5_9_3_2_orderly_reconnection(dut, bench, ixit, test_facts, evidence):
    """The DUT reconnects with its documented back-off and jitter, not in a storm, when its peer refuses it.

    For each mechanism the DUT opens itself (11-ComMech, remote_access false, TCP), the lab refuses
    the DUT's connections to the documented port on the lab PC (a TCP reset, as a peer that is down;
    only that port, only from this DUT, on this bench's interface) and records each connection
    attempt (its first SYN) in a capture: the first failed one within the documented interval
    (test_facts.telemetry_interval_seconds) plus a margin, then the retries over the window the
    documented policy needs (11-ComMech `reconnect`: initial_seconds, factor, max_seconds, jitter).
    An attempt failed only when the DUT sent nothing but its SYN on it: the refusal takes a moment
    to be in force (seconds on a loaded lab PC), and an exchange that went through meanwhile is
    no failure to count retries from. A retry sooner after the first failure than the documented
    waits before it allow (less jitter and a tolerance; timed from the first failure, not the
    retry before, so a retry the lab saw late never makes the next look early), fewer retries
    than the policy gives, or documented jitter that never shows FAILs; so does no attempt at all.
    The TS also asks for all samples powered on at once: benches of one run test in parallel but
    are not synchronised, so the lab judges each sample's own retries (the jitter is what keeps
    samples powered on together from retrying in step). A device whose IXIT lists no outgoing
    mechanism has its link cut and restored and must then open no connection for 10 s.
    Side effects: the DUT's outgoing connections fail for a few seconds.
    """
    mechs = _outgoing(ixit)
    if not mechs:
        _watch_no_outgoing(bench, evidence, "reconnection")
        return
    interval = test_facts.need("telemetry_interval_seconds")
    address = bench.config.network.address
    problems: list[str] = []
    unjudged: list[str] = []  # mechanisms the lab could not judge (its fault, not the DUT's)
    for mech in mechs:
        policy = mech.reconnect
        if policy is None:
            raise CertlabError(f"ixit: 11-ComMech {mech.id} has no reconnect (initial_seconds, factor, max_seconds, "
                               f"jitter); the lab needs the documented retry policy (resilience_measures says: "
                               f"{mech.resilience_measures or 'nothing'!r})")
        needed = gaps_needed(policy)
        first_bound, window = interval + MARGIN_S, retry_window(policy, needed)
        syns: list[tuple[float, int]] = []
        first, enough = threading.Event(), threading.Event()
        others: list[tuple[float, int]] = []  # the DUT's other packets: which connections went through
        refused_since: list[float] = []  # when the lab asked for the refusal, then when it was in force

        def seen(packet) -> None:
            syn = _is_syn_from(packet, address)
            if syn and refused_since and syn[0] >= refused_since[0]:
                syns.append(syn)
                in_force = [(at, sport) for at, sport in syns if len(refused_since) > 1 and at >= refused_since[1]]
                if in_force:  # attempts before the refusal was in force may have gone through: no clock starts
                    first.set()
                if len(attempts(in_force)) > needed + 1:  # one more: the first may prove to have gone through
                    enough.set()
            elif not syn and (sent := _tcp_from(packet, address)):
                others.append(sent)

        with allure.step(f"refuse {mech.id} (tcp/{mech.port}) and record the DUT's attempts"):
            with bench.net.capture(evidence.path(f"reconnect-{mech.id}.pcap"), bpf_filter=f"tcp dst port {mech.port}",
                                   on_packet=seen):
                refused_since.append(time.time())
                with bench.net.refuse_peer(mech.port, "tcp") as rules:
                    refused_since.append(time.time())
                    started = time.monotonic()
                    first.wait(first_bound)
                    first_after = time.monotonic() - started if first.is_set() else None
                    if first.is_set():
                        enough.wait(window)
        found = attempts_since(list(syns), list(others), refused_since[0], policy)
        record = {"mechanism": mech.id, "port": mech.port, "policy": policy.model_dump(), "rules": rules,
                  "refusal_in_force_after_s": round(refused_since[1] - refused_since[0], 3),
                  "first_attempt_within_s": first_bound, "retry_window_s": round(window, 3),
                  "retries_needed": needed, "attempts": [{"at": round(a.at - found[0].at, 3), "sport": a.sport}
                                                         for a in found]}
        if not found:
            evidence.json(f"reconnect-{mech.id}", record)
            through = went_through(syns, others, refused_since[1])
            if through:  # it did try: the lab's refusal let it through, so its back-off was never shown
                unjudged.append(f"{mech.id}: the lab's refusal of tcp/{mech.port} did not hold: {len(through)} "
                                f"connection attempt(s) after it was in force completed their handshake")
                continue
            problems.append(f"{mech.id}: the DUT made no connection attempt to port {mech.port} within {first_bound:g} s "
                            f"(test_facts.telemetry_interval_seconds {interval:g} s + {MARGIN_S:g} s), so its reconnection "
                            "could not be shown")
            continue
        judged = judge_backoff(found, policy, needed, mech.id)
        record.update(first_attempt_after_s=round(first_after or 0.0, 3), judgement=judged.as_dict(policy))
        evidence.json(f"reconnect-{mech.id}", record)
        problems += judged.problems
    if problems:
        raise DutError("the reconnection is not orderly as documented: " + "; ".join(problems)
                       + (f" (not judged: {'; '.join(unjudged)})" if unjudged else ""))
    if unjudged:
        raise LabFault("the reconnection could not be judged: " + "; ".join(unjudged))


def _console_run(bench, command: str, timeout: float) -> tuple[int, str]:
    """Run `command` at the console's shell prompt: (exit status, what it printed between two markers)."""
    mark = f"certlab{secrets.token_hex(4)}"
    bench.console.read_until_quiet(quiet=0.3, timeout=3)
    bench.console.sendline(f'echo {mark}-"BEGIN"; {command}; echo {mark}-"END"-$?')
    bench.console.expect(f"{mark}-BEGIN\r?\n", timeout=timeout)
    end = bench.console.expect(f"{mark}-END-([0-9]+)\r?\n", timeout=timeout)
    return int(end.match.group(1)), end.before


def _local_functions(bench, test_facts, value: str) -> tuple[list[dict], list[str]]:
    """The documented local functions on the console while the link is cut: the version command, and a
    configuration write and read-back when the IXIT documents them. (log, failures)."""
    timeout = bench.config.console.timeout
    log: list[dict] = []
    failures: list[str] = []
    status, out = _console_run(bench, test_facts.version_command, timeout)
    log.append({"command": test_facts.version_command, "exit_status": status, "output": out[-400:]})
    if status != 0 or not re.search(test_facts.version_pattern, out):
        failures.append(f"`{test_facts.version_command}` on the console exited {status} and printed {out.strip()[:120]!r} "
                        f"(documented pattern {test_facts.version_pattern!r})")
    if test_facts.config_set_command and test_facts.config_get_command:
        key = shlex.quote(test_facts.config_probe_key)
        set_cmd = test_facts.config_set_command.format(key=key, value=shlex.quote(value))
        get_cmd = test_facts.config_get_command.format(key=key)
        s_status, s_out = _console_run(bench, set_cmd, timeout)
        g_status, g_out = _console_run(bench, get_cmd, timeout)
        log += [{"command": set_cmd, "exit_status": s_status, "output": s_out[-400:]},
                {"command": get_cmd, "exit_status": g_status, "output": g_out[-400:]}]
        if s_status != 0 or g_status != 0 or value not in g_out:
            failures.append(f"the configuration did not work on the console: `{set_cmd}` exited {s_status}, `{get_cmd}` "
                            f"exited {g_status} and printed {g_out.strip()[:120]!r}")
    return log, failures


@pytest.mark.etsi("5.9-1-2")
def test_5_9_1_2_resilient_to_network_loss(dut, bench, ixit, test_facts, evidence):
    """Without its network the DUT keeps its local functions; when the network returns, so does its traffic.

    The lab cuts the DUT's link (the bench interface down: the DUT loses its carrier) for the
    documented telemetry interval plus a margin (test_facts.telemetry_interval_seconds), so the
    DUT has had to send during the loss. Meanwhile, on the serial console, the documented local
    functions must work: the version command (test_facts.version_command/version_pattern) and,
    where documented, a configuration write and read-back (config_set/get_command, the probe key).
    The link then returns: the DUT must answer over SSH again (the lab's new session) and each
    mechanism it opens itself (11-ComMech, remote_access false) must carry data again within its
    interval plus its longest documented retry wait (11-ComMech reconnect max_seconds) plus a
    margin, seen in a capture, counted from the link's return. A capture cannot span a link cut,
    so the lab refuses those mechanisms' peer ports (as in 5.9-3-2) from before the cut until its
    capture runs after it, a fraction of a second: the first transmission is then never missed. This is also the network half of 5.9-2-2 (recovery from a loss of
    network), recorded as such in the evidence. A DUT whose traffic did not resume is power-cycled
    afterwards, so the next test finds it working.
    Side effects: the link is down for one interval; the probe setting is written on the console
    and put back to its earlier value when it had one; the lab's SSH session is reopened.
    """
    mechs = _outgoing(ixit)
    interval = test_facts.need("telemetry_interval_seconds") if mechs else None
    hold = (interval + MARGIN_S) if interval else 1.0
    address = bench.config.network.address
    value = f"certlab-offline-{secrets.token_hex(4)}"
    before = None
    if test_facts.config_get_command and test_facts.config_set_command:
        got = bench.ssh.run(test_facts.config_get_command.format(key=shlex.quote(test_facts.config_probe_key)),
                            timeout=30)
        before = got.stdout.strip() if got.exit_status == 0 else None
    bench.console.open()
    bench.ssh.drop("the lab cuts the DUT's link (5.9-1-2)")
    failures: list[str] = []
    record: dict = {"covers": "5.9-1-2, and the network half of 5.9-2-2 (recovery after a loss of network)",
                    "link_down_s": hold, "outgoing_mechanisms": [m.id for m in mechs]}
    # a capture cannot span a link cut, so the peer ports stay refused from before the cut until the
    # capture after it runs: the DUT's first transmission after the link's return cannot slip past it
    refusing = contextlib.ExitStack()
    with allure.step(f"cut the link for {hold:g} s and use the console meanwhile"):
        try:
            for mech in mechs:
                refusing.enter_context(bench.net.refuse_peer(mech.port, "tcp"))
            with bench.net.link_cut() as cut:
                log, local = _local_functions(bench, test_facts, value)
                record["console_during_cut"] = log
                failures += [f"while the link was cut, {f}" for f in local]
                time.sleep(max(0.0, cut.down_at + hold - time.monotonic()))
        except BaseException:
            refusing.close()
            raise
    resumed: dict[str, float] = {}
    waiting = {m.port: m for m in mechs}
    done = threading.Event()

    def seen(packet) -> None:
        tcp = packet.getlayer("TCP")
        if tcp is not None and _carries_data_from(packet, address) and int(tcp.dport) in waiting:
            mech = waiting.pop(int(tcp.dport))
            resumed[mech.id] = time.monotonic() - cut.up_at
            if not waiting:
                done.set()

    bound = max((resume_bound(interval, m.reconnect, MARGIN_S) for m in mechs), default=0.0)
    with allure.step("the link is back: SSH answers and the documented traffic resumes"):
        ports = " or ".join(f"dst port {m.port}" for m in mechs)
        with contextlib.ExitStack() as stack:
            stack.enter_context(refusing)
            if mechs:
                stack.enter_context(bench.net.capture(evidence.path("after-link-loss.pcap"),
                                                      bpf_filter=f"tcp and ({ports})", on_packet=seen))
                record["capture_from_s"] = round(time.monotonic() - cut.up_at, 3)
            refusing.close()  # the peers answer again: the DUT's next retry is inside the capture
            record["peers_answer_from_s"] = round(time.monotonic() - cut.up_at, 3)
            try:
                bench.ssh.run(test_facts.version_command, timeout=30)
                record["ssh_back_after_s"] = round(time.monotonic() - cut.up_at, 3)
            except SSHUnreachable as exc:
                failures.append(f"after the link returned (the lab's route to {address} was back) the DUT did not "
                                f"answer over SSH: {exc.cause}")
            if mechs:
                done.wait(max(0.0, cut.up_at + bound - time.monotonic()))
    record.update(resume_bound_s=bound, resumed_after_s={k: round(v, 3) for k, v in resumed.items()})
    for mech in waiting.values():
        failures.append(f"{mech.id} (tcp/{mech.port}) did not resume within {bound:g} s of the link's return "
                        f"(interval {interval:g} s + longest documented retry wait + {MARGIN_S:g} s)")
    evidence.json("network-loss", record)
    if waiting:
        with allure.step("power-cycle the DUT so that it works again for the next test"):
            bench.strategy.invalidate()
            bench.strategy.transition(BenchState.SHELL)
    elif before is not None:
        support.ssh_output(bench, test_facts.config_set_command.format(key=shlex.quote(test_facts.config_probe_key),
                                                                      value=shlex.quote(before)))
    if failures:
        raise DutError("the DUT is not resilient to a loss of network: " + "; ".join(failures))
