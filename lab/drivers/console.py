"""Serial console driver: send lines, wait for patterns, keep every byte as evidence.

A background reader thread drains the port continuously, so nothing the DUT prints is lost
while a test is busy elsewhere, and every chunk lands in the transcript with its arrival time.
The verdict rule lives here because only the driver knows whether bytes ever arrived: a port
that cannot be opened, or that stayed silent since it was opened, is a `ConsoleFault` (lab);
bytes without the expected pattern are an `ExpectTimeout` (the DUT's fault).
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from lab.errors import ConsoleFault, ExpectTimeout
from lab.steps import NullSteps, StepRecorder
from lab.transcript import Transcript

Pattern = str | re.Pattern[str]


@dataclass(frozen=True)
class ExpectMatch:
    index: int  # which of the patterns matched
    match: re.Match[str]
    before: str  # text received before the match (consumed with it)


class ConsoleDriver:
    """One serial console (`/dev/ttyUSB0`, a pty path, `socket://h:p`, `rfc2217://h:p`)."""

    def __init__(self, url: str, baud: int = 115200, *, transcript: Transcript | None = None,
                 timeout: float = 10.0, newline: str = "\n", max_buffer: int = 65536,
                 bench: str | None = None, steps: StepRecorder | None = None,
                 timeout_source: str | None = None) -> None:
        self.url = url
        self.baud = baud
        self.timeout = timeout
        self.timeout_source = timeout_source  # e.g. "console.timeout in the inventory", for reasons
        self.newline = newline
        self.max_buffer = max_buffer
        self.transcript = transcript
        self.bench = bench
        self._steps = steps or NullSteps()
        self._port = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._buffer = ""  # received, not yet consumed by expect (bounded to max_buffer)
        self._bytes = 0
        self._opened_at = 0.0
        self._reader_error: str | None = None
        self._open_lock = threading.Lock()
        self._partial = ""  # received text not yet in the transcript: the line is still arriving
        self._partial_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._port is not None

    @property
    def bytes_received(self) -> int:
        """Bytes received since the port was (last) opened."""
        return self._bytes

    def open(self) -> None:
        with self._open_lock:
            if self._port is not None:
                return
            import serial

            try:
                port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.05)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise ConsoleFault(f"console at {self.url} cannot be opened: {exc}", bench=self.bench) from None
            self._port = port
            self._stop.clear()
            self._bytes = 0
            self._reader_error = None
            self._opened_at = time.monotonic()
            with self._cond:
                self._buffer = ""
            self._note(f"console {self.url} opened at {self.baud} baud")
            self._reader = threading.Thread(target=self._read_loop, args=(port,), daemon=True,
                                            name=f"console-reader-{self.bench or self.url}")
            self._reader.start()

    def close(self) -> None:
        with self._open_lock:
            if self._port is None:
                return
            self._stop.set()
            if self._reader is not None:
                self._reader.join(timeout=2.0)
            try:
                self._port.close()
            except Exception:  # noqa: BLE001 - closing a vanished device may fail
                pass
            self._port = None
            self._reader = None
            self._note(f"console {self.url} closed")

    def __enter__(self) -> ConsoleDriver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sending ---------------------------------------------------------------------------
    def write(self, text: str, *, secret: bool = False) -> None:
        self.open()
        import serial

        if secret and self.transcript is not None:
            self.transcript.add_secret(text.strip("\r\n"))  # before the DUT can echo it back
        try:
            self._port.write(text.encode("utf-8"))
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise ConsoleFault(f"console at {self.url}: write failed: {exc}", bench=self.bench) from None
        if self.transcript is not None:
            self._flush_partial()  # what the DUT said before we answered comes first
            self.transcript.record_sent(text, secret=secret)

    def sendline(self, text: str = "", secret: bool = False) -> None:
        with self._steps.step("console send", bench=self.bench, line="********" if secret else text):
            self.write(text + self.newline, secret=secret)

    # --- receiving -------------------------------------------------------------------------
    def clear(self) -> str:
        """Forget what was received so far (it stays in the transcript); returns it."""
        with self._cond:
            text, self._buffer = self._buffer, ""
            return text

    def expect(self, patterns: Pattern | Sequence[Pattern], timeout: float | None = None) -> ExpectMatch:
        """Wait for the first of `patterns` (regexes); the earliest match in the buffer wins.

        Text up to the end of the match is consumed. `$` means the end of what arrived so far,
        so a prompt pattern like `login:\\s*$` matches only when the DUT is waiting for input.
        """
        self.open()
        plist = [patterns] if isinstance(patterns, (str, re.Pattern)) else list(patterns)
        if not plist:
            raise ValueError("expect() needs at least one pattern")
        regexes = [p if isinstance(p, re.Pattern) else re.compile(p) for p in plist]
        timeout = self.timeout if timeout is None else timeout
        shown = [r.pattern for r in regexes]
        with self._steps.step("console expect", bench=self.bench, patterns=shown, timeout=timeout):
            deadline = time.monotonic() + timeout
            with self._cond:
                while True:
                    found = self._search(regexes)
                    if found is not None:
                        return found
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._reader_error is not None:
                        break
                    self._cond.wait(min(remaining, 0.5))
                tail = self._buffer[-500:]
            raise self._timeout_error(shown, timeout, tail)

    def read_until_quiet(self, quiet: float = 0.3, timeout: float = 5.0) -> str:
        """Wait until nothing arrived for `quiet` s (or `timeout` passed); consume and return it."""
        self.open()
        deadline = time.monotonic() + timeout
        with self._cond:
            last = self._bytes
            quiet_since = time.monotonic()
            while True:
                now = time.monotonic()
                if self._bytes != last:
                    last, quiet_since = self._bytes, now
                if now - quiet_since >= quiet or now >= deadline or self._reader_error:
                    break
                self._cond.wait(min(quiet - (now - quiet_since), deadline - now, 0.1))
            text, self._buffer = self._buffer, ""
        return text

    # --- internals -------------------------------------------------------------------------
    def _search(self, regexes: list[re.Pattern[str]]) -> ExpectMatch | None:
        best: tuple[int, int, re.Match[str]] | None = None
        for index, regex in enumerate(regexes):
            m = regex.search(self._buffer)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), index, m)
        if best is None:
            return None
        _, index, m = best
        before = self._buffer[: m.start()]
        self._buffer = self._buffer[m.end():]
        return ExpectMatch(index, m, before)

    def _timeout_error(self, shown: list[str], timeout: float, tail: str) -> Exception:
        """The verdict rule: no byte since open is the lab's fault; bytes without the pattern the DUT's."""
        if self._reader_error is not None:
            return ConsoleFault(f"console at {self.url} lost: {self._reader_error}", bench=self.bench)
        if self._bytes == 0:
            silent = time.monotonic() - self._opened_at
            self._note(f"silent: no byte in {silent:.1f} s")
            return ConsoleFault(f"console at {self.url} silent: no byte in {silent:.1f} s", bench=self.bench)
        self._note(f"expect timed out after {timeout} s waiting for {shown}")
        where = f"bench {self.bench}: " if self.bench else ""
        return ExpectTimeout(
            f"{where}console at {self.url}: none of {shown} within {timeout} s{self._source(timeout)}; "
            f"last output: {tail[-200:]!r}",
            tail=tail,
        )

    def _source(self, timeout: float) -> str:
        """Where a wait's length came from, when it is the configured one: a reader can then
        tell a product slower than its IXIT says from a lab whose setting is too tight."""
        return f" ({self.timeout_source})" if self.timeout_source and timeout == self.timeout else ""

    def _read_loop(self, port) -> None:
        import serial

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while not self._stop.is_set():
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if self._stop.is_set():
                    return
                with self._cond:
                    self._reader_error = str(exc) or type(exc).__name__
                    self._cond.notify_all()
                self._note(f"console read failed: {self._reader_error}")
                return
            if not data:
                self._flush_partial()  # a quiet line: a prompt waiting for input, say
                continue
            text = decoder.decode(data)
            self._record_received(text)
            with self._cond:
                self._bytes += len(data)
                self._buffer += text
                if len(self._buffer) > self.max_buffer:
                    self._buffer = self._buffer[-self.max_buffer:]
                self._cond.notify_all()

    def _record_received(self, text: str) -> None:
        """Whole lines into the transcript as they complete; a partial line waits (bounded)."""
        if self.transcript is None or not text:
            return
        with self._partial_lock:
            self._partial += text
            head, sep, tail = self._partial.rpartition("\n")
            if sep:
                self.transcript.record_received(head + sep)
                self._partial = tail
            if len(self._partial) > 4096:
                self.transcript.record_received(self._partial)
                self._partial = ""

    def _flush_partial(self) -> None:
        if self.transcript is None:
            return
        with self._partial_lock:
            if self._partial:
                self.transcript.record_received(self._partial)
                self._partial = ""

    def _note(self, text: str) -> None:
        if self.transcript is not None:
            self._flush_partial()
            self.transcript.note(text)
