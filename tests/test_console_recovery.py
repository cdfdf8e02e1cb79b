"""A console brought back to a known prompt (5.13-1-2) and the simulated shell's continuation lines.

A POSIX shell sent an unterminated quote or a here-document waits at its PS2 prompt; ash's line
editor redraws its prompt in the middle of an echo. The recovery must not take either for a
prompt, must bring the shell back with ^C and Enter, and must name what it tried when it cannot.
"""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace

import pytest
from suitelib import load_suite_module  # tests/suitelib.py

from lab.sim.shell import PS2, LineReader, TerminalIO, heredoc_delimiters, pending_construct, read_command, run_session

PROMPTS = SimpleNamespace(shell_prompt=r"# $", login_prompt=r"login:\s*$", boot_banner="Starting kernel")


@pytest.fixture(scope="module")
def support():
    return load_suite_module("support.py", "certlab_suite_support")


# --- the simulated shell reads a command as a POSIX shell does --------------------------------


def _io(*chunks: bytes) -> tuple[TerminalIO, list[bytes]]:
    data = list(chunks)
    out: list[bytes] = []
    reader = LineReader(lambda: data.pop(0) if data else b"", out.append)
    return TerminalIO(out.append, reader), out


def test_pending_construct_names_what_the_shell_waits_for():
    assert pending_construct("echo 'abc") == "quote"
    assert pending_construct('echo "a\'b') == "quote"
    assert pending_construct("echo abc\\") == "backslash"
    assert pending_construct("echo abc\\\\") is None
    assert pending_construct("echo 'a' \"b\"") is None
    assert heredoc_delimiters("cat <<EOF >/dev/null") == [("EOF", False)]
    assert heredoc_delimiters("cat <<-'E O' ; x") == [("E O", True)]
    assert heredoc_delimiters("echo 'a<<b'") == []


def test_an_unterminated_quote_takes_continuation_lines_at_ps2():
    io, out = _io(b"echo 'a\r", b"b'\r")
    assert read_command(io, "# ") == "echo 'a\nb'"
    assert PS2.encode() in b"".join(out)


def test_a_here_document_reads_until_its_delimiter():
    io, out = _io(b"cat <<END\r", b"one\r", b"END\r", b"next\r")
    assert read_command(io, "# ") == "cat <<END"
    assert b"".join(out).count(PS2.encode()) == 2
    assert read_command(io, "# ") == "next"


def test_ctrl_c_abandons_the_whole_construct():
    io, _ = _io(b"x 'unbalanced\r", b"more\r", b"\x03", b"after\r")
    assert read_command(io, "# ") == ""
    assert read_command(io, "# ") == "after"


def test_continuation_is_bounded():
    lines = [b"x '\r"] + [b"y\r"] * 2000
    io, _ = _io(*lines)
    text = read_command(io, "# ")
    assert text.count("\n") < 1000


# --- the recovery, on the simulated shell over a live session ---------------------------------


class LiveConsole:
    """A console driver's reading half over a session running `run_session` in a thread."""

    newline = "\n"

    def __init__(self, answer):
        self._in: queue.Queue[bytes] = queue.Queue()
        self._out = bytearray()
        self._lock = threading.Lock()
        self.sent: list[str] = []
        reader = LineReader(self._recv, self._send)
        term = TerminalIO(self._send, reader)
        shell = SimpleNamespace(status=0, run_line=lambda line: term.write(answer(line)))
        self._thread = threading.Thread(target=run_session, args=(shell, term, lambda: "# ", lambda: False), daemon=True)
        self._thread.start()

    def _recv(self) -> bytes:
        return self._in.get()

    def _send(self, data: bytes) -> None:
        with self._lock:
            self._out += data

    def write(self, text: str) -> None:
        self.sent.append(text)
        self._in.put(text.encode())

    def sendline(self, text: str = "") -> None:
        self.write(text + self.newline)

    def read_until_quiet(self, quiet: float = 0.3, timeout: float = 5.0) -> str:
        deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            with self._lock:
                size = len(self._out)
            if size != last:
                last, since = size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            time.sleep(0.02)
        with self._lock:
            text, self._out = self._out.decode("utf-8", "replace"), bytearray()
        return text

    def close(self) -> None:
        self._in.put(b"")


@pytest.mark.parametrize("junk", ["a 'unterminated quote", "x <<EOF y", 'say "half'])
def test_a_shell_waiting_for_more_is_brought_back_and_runs_the_next_command(support, junk):
    console = LiveConsole(lambda line: "VERSION_ID=2.3.0\n" if line == "cat /etc/os-release" else "sh: nope\n")
    try:
        console.read_until_quiet(quiet=0.1, timeout=1)
        console.sendline(junk)
        check = support.console_back_to_prompt(console, PROMPTS, quiet=0.1, timeout=1.0)
        assert check.state == "shell", check.steps
        assert "^C" in check.tried(), "a shell at PS2 was taken for a prompt"
        console.sendline("cat /etc/os-release")
        assert "VERSION_ID=2.3.0" in console.read_until_quiet(quiet=0.1, timeout=1)
    finally:
        console.close()


def test_a_healthy_prompt_needs_only_enter(support):
    console = LiveConsole(lambda line: "")
    try:
        console.sendline("echo fine")
        check = support.console_back_to_prompt(console, PROMPTS, quiet=0.1, timeout=1.0)
        assert check.state == "shell" and check.tried() == "Enter"
    finally:
        console.close()


class Scripted:
    """A console that answers each keystroke from a script (what ash's line editor did)."""

    newline = "\n"

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.pending = ""
        self.sent: list[str] = []

    def write(self, text: str) -> None:
        self.sent.append(text)
        queue_ = self.answers.get(text) or [""]
        self.pending += queue_.pop(0) if len(queue_) > 1 else queue_[0]

    def read_until_quiet(self, quiet: float = 0.3, timeout: float = 5.0) -> str:
        text, self.pending = self.pending, ""
        return text


def test_a_prompt_redrawn_mid_echo_is_not_taken_for_the_prompt(support):
    # ash redraws "root@dut:~# " while echoing; the line then leaves it at PS2
    console = Scripted({"\n": ["\r\x1b[1Aroot@dut:~# 'abc\r\n> ", "\r\nroot@dut:~# "], "\x03": ["^C\r\nroot@dut:~# "]})
    check = support.console_back_to_prompt(console, PROMPTS, quiet=0.0, timeout=0.0)
    assert check.state == "shell"
    assert [s["sent"] for s in check.steps] == ["Enter", "^C", "Enter"]


def test_a_console_that_never_comes_back_is_a_hang_naming_what_was_tried(support):
    console = Scripted({"\n": ["> "], "\x03": [""]})
    check = support.console_back_to_prompt(console, PROMPTS, quiet=0.0, timeout=0.0, attempts=3)
    assert check.state is None
    assert check.tried() == "Enter, ^C, Enter, ^C, Enter, ^C, Enter"
    assert console.sent.count("\x03") == 3  # bounded


def test_a_reboot_while_recovering_is_seen(support):
    console = Scripted({"\n": ["\r\nStarting kernel ...\r\nlogin: "]})
    check = support.console_back_to_prompt(console, PROMPTS, quiet=0.0, timeout=0.0)
    assert check.rebooted and check.state == "login"
