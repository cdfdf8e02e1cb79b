"""5.13-1-2 (TS 103 701 V2.1.1: 5.13-1B-2 network, 5.13-1A-2 user interfaces): input is validated.

EN 303 645 5.13-1 requires the device software to validate data input via user interfaces or
transferred via APIs and between networks. TS 103 701 asks the lab to feed each interface
unexpected input (fuzzing stateless protocols, malformed requests) and to see it rejected. The
lab's observable criterion: after malformed input the device rejects it and keeps serving; a
device whose service dies or hangs on it does not validate that input.

- 5.13-1B-2: every enabled network interface of 15-Intf (and 28-ExtAPI, 29-InpVal) gets a few
  dozen seeded malformed inputs (`--seed`), each on its own connection with a short timeout.
  For SSH: garbage and over-long identification lines, binary packets with absurd lengths,
  random bytes. Before each input the interface must still answer (SSH: its identification
  line); the one after which it stopped answering is named. At the end an SSH login and a
  documented command must work.
- 5.13-1A-2: the console (a user interface of 27-UserIntf) gets over-long lines, control
  characters, escape sequences and non-ASCII bytes at the shell prompt and must keep showing
  its prompt and running documented commands; the documented input validation of 29-InpVal
  for `config set` (test_facts.config_set_command) must reject invalid keys.

Side effects: none on a conforming DUT. A DUT whose SSH service or console died is power-cycled
afterwards so that the next test finds it usable (the FAIL stands).
"""

from __future__ import annotations

import random
import shlex
import socket
import time
from dataclasses import dataclass

import allure
import pytest

import support
from lab.errors import DutError, ExpectTimeout, LabFault, SSHUnreachable
from lab.strategy import BenchState

pytestmark = pytest.mark.bench_state("shell")

CASE_TIMEOUT_S = 2.0  # per malformed input: connect, send, wait for the answer or the close
RECOVER_S = 15.0  # an interface that stopped answering gets this long to come back before it FAILs
CONSOLE_CASE_S = 5.0
DANGEROUS_CONTROLS = {0x03, 0x04, 0x0A, 0x0D, 0x11, 0x13, 0x1A, 0x1C}  # ^C ^D LF CR XON XOFF ^Z ^\ (session control)


@dataclass(frozen=True)
class Case:
    label: str
    data: bytes


@dataclass(frozen=True)
class Target:
    id: str
    protocol: str
    transport: str
    port: int


# --- the inputs ---------------------------------------------------------------------------


def ssh_cases(rng: random.Random) -> list[Case]:
    """Malformed SSH client input (RFC 4253 identification line and binary packet), seeded."""
    ident = b"SSH-2.0-certlab_fuzz\r\n"
    kexinit_bad_namelist = (struct_u32(1 + 1 + 16 + 4 + 4) + b"\x04" + b"\x14" + bytes(16)
                            + b"\x7f\xff\xff\xff" + b"\x00" * 4)
    cases = [
        Case("an HTTP request instead of an identification line", b"GET / HTTP/1.1\r\nHost: dut\r\n\r\n"),
        Case("an SSH 1.5 identification line", b"SSH-1.5-certlab_fuzz\r\n"),
        Case("an identification line without software version", b"SSH-2.0\r\n"),
        Case("an empty line", b"\r\n"),
        Case("a NUL byte inside the identification line", b"SSH-2.0-cert\x00lab\r\n"),
        Case("non-ASCII bytes in the identification line", b"SSH-2.0-\xff\xfe\xfd\xc0\xaf\r\n"),
        Case("a format string as software version", b"SSH-2.0-%s%s%s%n%n%x%x\r\n"),
        Case("an over-long identification line (300 bytes)", b"SSH-2.0-" + b"A" * 290 + b"\r\n"),
        Case("an over-long identification line (8 KiB, no line end)", b"SSH-2.0-" + b"B" * 8192),
        Case("64 KiB of 'A' without a line end", b"A" * 65536),
        Case("valid identification, then packet length 0xFFFFFFFF", ident + b"\xff\xff\xff\xff" + bytes(12)),
        Case("valid identification, then packet length 0", ident + bytes(16)),
        Case("valid identification, then a KEXINIT with a 2 GiB name-list", ident + kexinit_bad_namelist),
    ]
    for i in range(12):
        size = rng.choice([1, 16, 255, 256, 1024, 4096])
        blob = rng.randbytes(size)
        end = b"\r\n" if i % 2 else b""
        cases.append(Case(f"random bytes #{i + 1} ({size} bytes{', then CR LF' if end else ''})", blob + end))
    for i in range(6):
        size = rng.randint(200, 2000)
        text = bytes(rng.randrange(0x21, 0x7F) for _ in range(size))
        cases.append(Case(f"identification with a {size}-byte random software version #{i + 1}", b"SSH-2.0-" + text + b"\r\n"))
    for i in range(4):
        size = rng.choice([64, 512, 4096])
        cases.append(Case(f"valid identification, then {size} random bytes #{i + 1}", ident + rng.randbytes(size)))
    return cases


def generic_cases(rng: random.Random) -> list[Case]:
    """For a TCP service whose protocol the lab does not speak: over-long lines and random bytes."""
    cases = [Case("an over-long line (8 KiB)", b"A" * 8192 + b"\r\n"), Case("64 KiB without a line end", b"B" * 65536),
             Case("NUL bytes", bytes(1024)), Case("a format string", b"%s%s%n%n%x\r\n" * 8)]
    cases += [Case(f"random bytes #{i + 1}", rng.randbytes(rng.choice([16, 256, 4096]))) for i in range(8)]
    return cases


def struct_u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def console_cases(rng: random.Random) -> list[Case]:
    """Malformed console lines; no session-control characters (they log out or stop the UART by design)."""
    controls = "".join(chr(c) for c in range(1, 32) if c not in DANGEROUS_CONTROLS)
    safe = [c for c in range(0x20, 0x7F) if chr(c) not in "#"] + [c for c in range(1, 32) if c not in DANGEROUS_CONTROLS]
    cases = [
        Case("an over-long line (4 KiB)", b"A" * 4096),
        Case("an over-long line (16 KiB)", b"x" * 16384),
        Case("every control character except session control", controls.encode()),
        Case("terminal escape sequences", b"\x1b[6n\x1b]0;certlab\x07\x1b[2J\x1bc\x1b[999;999H"),
        Case("a format string", b"%s%s%n%n%x%x" * 20),
        Case("unbalanced quotes and shell metacharacters", b"'\"`$(${x:?}|&;<>"),
        Case("non-ASCII characters", "".join(chr(rng.randrange(0x80, 0x800)) for _ in range(256)).encode()),
    ]
    for i in range(6):
        size = rng.choice([64, 512, 2048])
        cases.append(Case(f"random printable and control bytes #{i + 1} ({size})", bytes(rng.choice(safe) for _ in range(size))))
    return cases


# --- network ------------------------------------------------------------------------------


def network_targets(ixit) -> list[Target]:
    """Enabled network interfaces with a TCP port (15-Intf, 28-ExtAPI), once per port."""
    seen: dict[int, Target] = {}
    for intf in ixit.network_interfaces():
        if intf.transport == "tcp" and intf.port:
            seen.setdefault(intf.port, Target(intf.id, intf.protocol.lower(), "tcp", intf.port))
    for api in ixit.ext_api:
        if api.transport == "tcp" and api.port:
            seen.setdefault(api.port, Target(api.id, api.protocol.lower(), "tcp", api.port))
    return list(seen.values())


def _answers(address: str, target: Target, timeout: float) -> tuple[bool, str, socket.socket | None]:
    """Is the service there? Returns (answers, detail, open socket for the next input or None)."""
    try:
        sock = socket.create_connection((address, target.port), timeout=timeout)
    except OSError as exc:
        return False, f"TCP connect failed ({exc.strerror or exc})", None
    if "ssh" not in target.protocol:
        return True, "TCP connect accepted", sock
    sock.settimeout(timeout)
    try:
        banner = sock.recv(256)
    except OSError as exc:
        sock.close()
        return False, f"no identification line ({exc or 'timed out'})", None
    if not banner.startswith(b"SSH-"):
        sock.close()
        return False, f"no identification line (got {banner[:40]!r})", None
    return True, banner.split(b"\r\n")[0].decode("ascii", "replace"), sock


def _send(sock: socket.socket, data: bytes) -> str:
    """Send one malformed input, half-close, read the answer until the DUT closes or time is up."""
    reply, note = b"", ""
    try:
        sock.settimeout(CASE_TIMEOUT_S)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + CASE_TIMEOUT_S
        while time.monotonic() < deadline and len(reply) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                note = "closed by the DUT"
                break
            reply += chunk
        else:
            note = "still open after the timeout"
    except OSError as exc:
        note = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    return f"{note}; answered {reply[:60]!r}" if reply else note


def _wait_back(address: str, target: Target) -> tuple[bool, str, float]:
    start = time.monotonic()
    detail = ""
    while time.monotonic() - start < RECOVER_S:
        ok, detail, sock = _answers(address, target, CASE_TIMEOUT_S)
        if sock is not None:
            sock.close()
        if ok:
            return True, detail, time.monotonic() - start
        time.sleep(0.5)
    return False, detail, time.monotonic() - start


def _restore(bench, test_facts, evidence) -> None:
    """The DUT lost a service because of our input: power-cycle it so the next test can run."""
    with allure.step("power-cycle the DUT to restore its services (after the FAIL)"):
        try:
            seconds = support.power_cycle_and_login(bench, test_facts, why="the malformed-input test")
            evidence.json("restore", {"power_cycled": True, "back_after_s": round(seconds, 2)})
        except (AssertionError, LabFault) as exc:
            evidence.text("restore-failed.txt", f"{exc}\n")


@pytest.mark.etsi("5.13-1-2", v3="5.13-1B-2")
def test_5_13_1_2_network_input_validation(dut, bench, ixit, test_facts, rng, evidence):
    """Malformed input on every exposed network interface is rejected and the services keep answering."""
    address = bench.config.network.address
    targets = network_targets(ixit)
    with allure.step("the interfaces answer before any input (else the lab cannot test them)"):
        bench.ssh.wait_reachable(timeout=10)  # SSHUnreachable here is a lab fault: nothing was sent yet
        for target in targets:
            ok, detail, sock = _answers(address, target, 5.0)
            if sock is not None:
                sock.close()
            if not ok:
                raise SSHUnreachable(f"{target.id} ({target.transport}/{target.port}) does not answer before the test: "
                                     f"{detail}", bench=bench.name)
    log: list[dict] = []
    killed: tuple[Target, Case, str] | None = None
    for target in targets:
        cases = ssh_cases(rng) if "ssh" in target.protocol else generic_cases(rng)
        with allure.step(f"{len(cases)} malformed inputs to {target.id} ({target.transport}/{target.port})"):
            previous: Case | None = None
            for case in cases + [None]:  # the extra round: does it answer after the last input?
                ok, detail, sock = _answers(address, target, CASE_TIMEOUT_S)
                if not ok:
                    back, detail2, waited = _wait_back(address, target)
                    log.append({"interface": target.id, "after": previous.label if previous else None,
                                "answers": False, "detail": detail, "recovered": back, "waited_s": round(waited, 1)})
                    if not back:
                        killed = (target, previous, detail2 or detail)
                        break
                    ok, detail, sock = _answers(address, target, CASE_TIMEOUT_S)
                    if not ok:
                        killed = (target, previous, detail)
                        break
                if case is None:
                    if sock is not None:
                        sock.close()
                    break
                started = time.monotonic()
                outcome = _send(sock, case.data)
                log.append({"interface": target.id, "input": case.label, "bytes": len(case.data),
                            "outcome": outcome, "seconds": round(time.monotonic() - started, 3)})
                previous = case
        if killed:
            break
    evidence.json("inputs", {"seed_note": "inputs drawn from the test's rng (--seed)", "targets": [vars(t) for t in targets],
                             "log": log})
    if killed:
        target, case, detail = killed
        _restore(bench, test_facts, evidence)
        raise DutError(f"{target.id} ({target.transport}/{target.port}) stopped answering after {case.label if case else 'the first input'} "
                       f"and did not come back within {RECOVER_S:.0f} s ({detail}): the input was not validated")
    with allure.step("SSH login and a documented command still work"):
        bench.ssh.close()
        try:
            out = support.ssh_output(bench, test_facts.version_command)
        except SSHUnreachable as exc:  # it answered before and after each input: a failure now is the DUT's
            _restore(bench, test_facts, evidence)
            raise DutError(f"after {sum(1 for e in log if 'input' in e)} malformed inputs, SSH login no longer works: "
                           f"{exc.cause}") from None
        evidence.text("after.txt", f"$ {test_facts.version_command}\n{out}")


# --- console (user interface) -------------------------------------------------------------


def _hang(what: str, check: support.PromptCheck, timeout: float) -> str:
    """The FAIL reason for a console that stayed without a prompt: exactly what the lab tried."""
    last = check.steps[-1]["received"][-120:] if check.steps else ""
    return (f"the console showed no prompt after {what}: the lab pressed {check.tried()} (each time waiting up to "
            f"{timeout:.0f} s for the console to settle) and it never ended in the shell or login prompt "
            f"(last output {last!r}): the console hangs on this input")


@pytest.mark.etsi("5.13-1-2", v3="5.13-1A-2")
def test_5_13_1_2_user_interface_input_validation(dut, bench, console, ssh, ixit, test_facts, rng, evidence):
    """Malformed console lines and invalid documented inputs (29-InpVal) are rejected; the shell keeps working.

    After each line the console is brought back to a known prompt as an engineer would (Enter,
    then ^C + Enter, bounded): a shell waiting for the rest of a quote or here-document has not
    failed to validate it. Only a crash, a hang (no prompt after the recovery), a reboot or a
    documented command that no longer works is a finding.
    """
    prompts = bench.prompts
    log: list[dict] = []
    cases = console_cases(rng)
    baud = bench.config.console.baud or 115200
    with allure.step(f"{len(cases)} malformed lines at the console's shell prompt"):
        console.read_until_quiet(quiet=0.2, timeout=2.0)
        for case in cases:
            text = case.data.decode("utf-8")
            console.clear()
            console.sendline(text)
            wait = CONSOLE_CASE_S + len(case.data) * 10 / baud  # the UART needs time for long lines
            check = support.console_back_to_prompt(console, prompts, timeout=wait)
            log.append({"input": case.label, "bytes": len(case.data), "prompt": check.state or "none",
                        "recovery": check.steps})
            if check.rebooted:
                evidence.json("console-inputs", log)
                raise DutError(f"the DUT rebooted (boot banner {prompts.boot_banner!r} on the console) after "
                               f"{case.label}: the input was not validated")
            if check.state is None:
                evidence.json("console-inputs", log)
                _restore(bench, test_facts, evidence)
                raise DutError(_hang(case.label, check, wait))
            if check.state == "login":  # logged out: legitimate, but the shell must come back with the lab's login
                bench.strategy.state = BenchState.BOOTED
                bench.strategy.transition(BenchState.SHELL)
    with allure.step(f"the console still runs `{test_facts.version_command}`"):
        tries: list[dict] = []
        for attempt in range(2):  # a second try after another recovery: one lost keystroke is not a finding
            check = support.console_back_to_prompt(console, prompts, timeout=CONSOLE_CASE_S)
            tries.append({"recovery": check.steps, "prompt": check.state or "none"})
            if check.state is None:
                evidence.json("console-inputs", {"inputs": log, "version_command": tries})
                _restore(bench, test_facts, evidence)
                raise DutError(_hang(f"all {len(cases)} malformed lines", check, CONSOLE_CASE_S))
            if check.state == "login":
                bench.strategy.state = BenchState.BOOTED
                bench.strategy.transition(BenchState.SHELL)
            console.clear()
            console.sendline(test_facts.version_command)
            try:
                console.expect(test_facts.version_pattern, timeout=CONSOLE_CASE_S)
                tries[-1]["version"] = "printed"
                break
            except ExpectTimeout as exc:
                tries[-1]["version"] = f"not printed: {exc}"
        else:
            evidence.json("console-inputs", {"inputs": log, "version_command": tries})
            _restore(bench, test_facts, evidence)
            raise DutError(f"after {len(cases)} malformed console lines the console is back at its shell prompt, but "
                           f"`{test_facts.version_command}` printed no version twice (each after Enter and ^C + "
                           f"Enter): documented commands no longer work") from None
        console.expect(prompts.shell_prompt, timeout=CONSOLE_CASE_S)
    evidence.json("console-inputs", {"inputs": log, "version_command": tries})

    if not test_facts.config_set_command:
        evidence.text("config-input.txt", "test_facts.config_set_command not given: 29-InpVal config input not tested\n")
        return
    bad_keys = ["", "k" * 1024, "bad key", "key;id", "../etc/passwd", "$(id)", "key\x01", "key/slash", "*"]
    refused, accepted = [], []
    with allure.step(f"29-InpVal: `{test_facts.config_set_command}` with {len(bad_keys)} invalid keys"):
        for key in bad_keys:
            command = test_facts.config_set_command.format(key=shlex.quote(key), value=shlex.quote("certlab-invalid"))
            result = ssh.run(command, timeout=15)
            (refused if result.exit_status != 0 else accepted).append(
                {"key": key, "exit_status": result.exit_status, "stderr": result.stderr.strip()[:200]})
    evidence.json("config-input", {"refused": refused, "accepted": accepted})
    verb = test_facts.config_set_command.split("{")[0].strip()
    documented = [f"{v.id}: {v.on_invalid}" for v in ixit.inp_val if any(i.startswith(verb) for i in v.inputs)]
    assert not accepted, (f"`{test_facts.config_set_command}` accepted invalid keys "
                          f"{[a['key'][:40] for a in accepted]!r}; 29-InpVal says: {'; '.join(documented) or 'nothing'}")
