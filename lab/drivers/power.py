"""Power drivers: switch a bench's DUT on and off through its relay, and prove it happened.

Every switch is confirmed by reading the relay's state back, because a relay that silently
ignored a command would turn a lab problem into a wrong verdict. Transient errors (timeouts, a
reset connection) are retried a bounded number of times; then a `PowerFault` names the relay,
the command and what went wrong, in words a lab engineer can act on.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from lab.drivers.registry import PowerBackend, PowerContext
from lab.errors import PowerFault
from lab.inventory import RelayBoardPowerConfig, ScpiPowerConfig
from lab.steps import NullSteps, StepRecorder

T = TypeVar("T")


@runtime_checkable
class PowerDriver(Protocol):
    """What a strategy needs from any power switch."""

    def on(self) -> None: ...
    def off(self) -> None: ...
    def is_on(self) -> bool: ...
    def cycle(self, off_time: float = 1.0) -> None: ...
    def identify(self) -> str: ...
    def close(self) -> None: ...


class _Transient(Exception):
    """One attempt failed in a way worth retrying; `what` says how, for the final message."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _RetryingPower:
    """Shared retry/step plumbing; subclasses implement `_set`, `_get`, `_identify`, `_drop`."""

    where: str

    def __init__(self, channel: int, *, timeout: float, retries: int, bench: str | None,
                 steps: StepRecorder | None) -> None:
        if channel < 1:
            raise ValueError(f"relay channel must be 1 or more, not {channel}")
        self.channel = channel
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.bench = bench
        self._steps = steps or NullSteps()
        self._lock = threading.RLock()
        self.identity: str | None = None  # the instrument's answer to identify(), for the report's equipment list

    # --- PowerDriver -----------------------------------------------------------------------
    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def is_on(self) -> bool:
        with self._steps.step("power state", bench=self.bench, relay=self.where, channel=self.channel):
            return self._attempts(f"read the state of channel {self.channel}", self._get)

    def cycle(self, off_time: float = 1.0) -> None:
        """Off, wait, on: `off_time` lets the DUT's capacitors drain, as a real power loss would."""
        with self._steps.step("power cycle", bench=self.bench, relay=self.where, channel=self.channel,
                              off_time=off_time):
            self.off()
            time.sleep(off_time)
            self.on()

    def identify(self) -> str:
        with self._steps.step("power identify", bench=self.bench, relay=self.where):
            self.identity = self._attempts("identify it", self._identify)
            return self.identity

    # --- internals -------------------------------------------------------------------------
    def _exclusive(self, func: Callable[[], T]) -> T:
        """Run one transaction; backends shared by several processes override this to lock."""
        return func()

    def _switch(self, on: bool) -> None:
        word = "on" if on else "off"

        def attempt() -> None:
            self._set(on)
            state = self._get()
            if state != on:
                raise _Transient(f"kept channel {self.channel} {'on' if state else 'off'} after switching it {word}")

        with self._steps.step(f"power {word}", bench=self.bench, relay=self.where, channel=self.channel):
            self._attempts(f"switch channel {self.channel} {word}", attempt)

    def _attempts(self, action: str, func: Callable[[], T]) -> T:
        """Run `func` up to 1 + retries times; a fresh session after each transient failure."""
        attempts = self.retries + 1
        last = ""
        with self._lock:
            for n in range(1, attempts + 1):
                try:
                    return self._exclusive(func)
                except _Transient as exc:
                    last = exc.what
                    self._drop()
                    if n < attempts:
                        time.sleep(min(0.2 * n, 1.0))
        raise PowerFault(f"{self.where} {last} ({attempts} attempts to {action})", bench=self.bench)


# for plugin backends (docs/power-drivers.md): read-back, bounded retries and steps come with the base class
RetryingPower = _RetryingPower
TransientPowerError = _Transient


class ScpiPower(_RetryingPower):
    """A SCPI switch unit or power supply reached through pyvisa (pyvisa-py backend).

    `route` dialect: switch units (`ROUT:CLOS (@n)`); `output` dialect: multi-channel supplies
    (`INST:NSEL n; OUTP ON`). After every set the error queue (`SYST:ERR?`) is checked and the
    state read back; an instrument error is not retried (it will not go away by itself).
    """

    def __init__(self, resource: str, channel: int, *, dialect: Literal["route", "output"] = "route",
                 timeout: float = 2.0, retries: int = 2, bench: str | None = None,
                 steps: StepRecorder | None = None) -> None:
        super().__init__(channel, timeout=timeout, retries=retries, bench=bench, steps=steps)
        if dialect not in ("route", "output"):
            raise ValueError(f"unknown SCPI dialect {dialect!r}; use 'route' or 'output'")
        self.resource = resource
        self.dialect = dialect
        self.where = f"relay at {resource}"
        self._rm = None
        self._inst = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # --- session ---------------------------------------------------------------------------
    def _session(self):
        if self._inst is None:
            import pyvisa  # imported here: a bench without SCPI power never loads pyvisa

            try:
                self._rm = pyvisa.ResourceManager("@py")
                self._inst = self._rm.open_resource(
                    self.resource, read_termination="\n", write_termination="\n",
                    timeout=int(self.timeout * 1000), open_timeout=int(self.timeout * 1000),
                )
            except Exception as exc:  # noqa: BLE001 - pyvisa raises many types for a bad address
                self._drop()
                raise _Transient(f"could not be opened ({type(exc).__name__}: {exc})") from exc
        return self._inst

    def _drop(self) -> None:
        for obj in (self._inst, self._rm):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - a dead session may fail to close
                    pass
        self._inst = self._rm = None

    def _io(self, command: str, query: bool) -> str:
        from pyvisa.errors import VisaIOError

        inst = self._session()
        try:
            if query:
                return inst.query(command).strip()
            inst.write(command)
            return ""
        except VisaIOError as exc:
            if "TMO" in str(exc) or "Timeout" in str(exc):
                raise _Transient(f"did not answer {command} within {self.timeout} s") from exc
            raise _Transient(f"failed on {command} (VISA error {exc})") from exc
        except ConnectionRefusedError as exc:
            raise _Transient(f"refused the connection ({exc.strerror})") from exc
        except (ConnectionError, OSError) as exc:
            raise _Transient(f"lost the connection during {command} ({exc})") from exc

    def _query(self, command: str) -> str:
        return self._io(command, True)

    def _write(self, command: str) -> None:
        self._io(command, False)

    def _errors(self) -> list[str]:
        """Drain the error queue (bounded): errors that are not `0,...`."""
        found = []
        for _ in range(16):
            reply = self._query("SYST:ERR?")
            code = reply.split(",", 1)[0].strip()
            if code in ("0", "+0"):
                return found
            found.append(reply)
        return found

    # --- dialects --------------------------------------------------------------------------
    def _set(self, on: bool) -> None:
        self._errors()  # stale errors (another client, an earlier typo) must not be blamed on us
        if self.dialect == "route":
            command = f"ROUT:{'CLOS' if on else 'OPEN'} (@{self.channel})"
            self._write(command)
        else:
            # One line, so another client of the same supply cannot re-select between the two.
            command = f":INST:NSEL {self.channel};:OUTP {'ON' if on else 'OFF'}"
            self._write(command)
        errors = self._errors()
        if errors:
            raise PowerFault(f"{self.where} refused {command}: {'; '.join(errors)}", bench=self.bench)

    def _get(self) -> bool:
        if self.dialect == "route":
            command = f"ROUT:CLOS? (@{self.channel})"
            reply = self._query(command)
        else:
            command = f":INST:NSEL {self.channel};:OUTP?"
            reply = self._query(command)
        value = reply.split(",", 1)[0].strip().upper()
        if value in ("1", "+1", "ON"):
            return True
        if value in ("0", "+0", "OFF"):
            return False
        raise PowerFault(f"{self.where} answered {command} with {reply!r}, not 1 or 0", bench=self.bench)

    def _identify(self) -> str:
        return self._query("*IDN?")


try:  # a board that vanished (USB unplugged, its pty closed) fails tcflush with termios.error, not OSError
    import termios

    _TERMIOS_ERRORS: tuple[type[BaseException], ...] = (termios.error,)
except ImportError:  # pragma: no cover - not POSIX
    _TERMIOS_ERRORS = ()

_STATUS_LINE = re.compile(rb"CH(\d+)\s*:\s*(ON|OFF)", re.IGNORECASE)


class RelayBoardPower(_RetryingPower):
    """An LCUS-style USB relay board (CH340 serial) driven through pyserial.

    Set frame `A0 ch st sum` gets no reply, so every switch is confirmed with the status query
    (`FF` -> `CH1:ON\\r\\nCH2:OFF\\r\\n...`). `url` is anything `serial_for_url` accepts.
    """

    def __init__(self, url: str, channel: int, *, baud: int = 9600, timeout: float = 2.0, retries: int = 2,
                 settle: float = 0.05, bench: str | None = None, steps: StepRecorder | None = None) -> None:
        super().__init__(channel, timeout=timeout, retries=retries, bench=bench, steps=steps)
        if channel > 0xFF:
            raise ValueError(f"an LCUS board has at most 255 channels, not {channel}")
        self.url = url
        self.baud = baud
        self.settle = settle  # cheap boards drop a command that follows the previous one too fast
        self.where = f"relay board at {url}"
        self._port = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    @staticmethod
    def frame(channel: int, on: bool) -> bytes:
        state = 0x01 if on else 0x00
        return bytes([0xA0, channel, state, (0xA0 + channel + state) & 0xFF])

    def status(self) -> dict[int, bool]:
        """Every channel's state, as the board reports it."""
        with self._lock:
            return self._attempts("read its status", self._status)

    # --- internals -------------------------------------------------------------------------
    def _open(self):
        if self._port is None:
            import serial

            try:
                self._port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.05,
                                                   write_timeout=self.timeout)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise _Transient(f"could not be opened ({exc})") from exc
        return self._port

    def _drop(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # noqa: BLE001
                pass
            self._port = None

    def _send(self, data: bytes) -> None:
        import serial

        port = self._open()
        try:
            port.reset_input_buffer()
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS) as exc:
            raise _Transient(f"could not be written to ({exc})") from exc

    def _status(self) -> dict[int, bool]:
        import serial

        self._send(b"\xff")
        port = self._open()
        buf = b""
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                buf += port.read(port.in_waiting or 1)
                lines = buf.split(b"\n")
                states = {int(m.group(1)): m.group(2).upper() == b"ON"
                          for line in lines[:-1] for m in [_STATUS_LINE.search(line)] if m}
                if self.channel in states:
                    time.sleep(self.settle)
                    buf += port.read(port.in_waiting)  # the rest of the report, if any
                    states.update({int(m.group(1)): m.group(2).upper() == b"ON"
                                   for m in _STATUS_LINE.finditer(buf)})
                    return states
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS) as exc:
            raise _Transient(f"could not be read ({exc})") from exc
        if buf:
            raise _Transient(f"sent a status reply without CH{self.channel} within {self.timeout} s: {buf[-80:]!r}")
        raise _Transient(f"did not answer the status query (FF) within {self.timeout} s")

    def _exclusive(self, func: Callable[[], T]) -> T:
        """Hold an advisory lock on the port for one transaction.

        Several benches share one board (one channel each), often from several pytest
        processes; without the lock one bench's status reply is read, or flushed, by another.
        """
        import fcntl

        port = self._open()
        fileno = getattr(port, "fileno", None)
        try:
            fd = fileno() if fileno else None
        except Exception:  # noqa: BLE001 - socket:// and rfc2217:// ports have no fd to lock
            fd = None
        if fd is None:
            return func()
        deadline = time.monotonic() + self.timeout * 3
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _Transient(f"stayed busy (locked by another bench) for {self.timeout * 3:.1f} s") from None
                time.sleep(0.01)
        try:
            return func()
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                pass

    def _set(self, on: bool) -> None:
        self._send(self.frame(self.channel, on))
        time.sleep(self.settle)

    def _get(self) -> bool:
        return self._status()[self.channel]

    def _identify(self) -> str:
        states = self._status()
        listing = ", ".join(f"CH{ch}:{'ON' if st else 'OFF'}" for ch, st in sorted(states.items()))
        return f"LCUS relay board at {self.url} ({len(states)} channels: {listing})"


# --- backends (registered in pyproject.toml under the `certlab.power` entry points) -------------


def _open_scpi(cfg: Any, ctx: PowerContext) -> ScpiPower:
    return ScpiPower(cfg.resource, cfg.channel, dialect=cfg.dialect, timeout=cfg.timeout, retries=cfg.retries,
                     bench=ctx.bench, steps=ctx.steps)


def _open_relay_board(cfg: Any, ctx: PowerContext) -> RelayBoardPower:
    return RelayBoardPower(cfg.url, cfg.channel, baud=cfg.baud, timeout=cfg.timeout, retries=cfg.retries,
                           bench=ctx.bench, steps=ctx.steps)


SCPI = PowerBackend(ScpiPowerConfig, _open_scpi, "a SCPI switch unit or power supply (pyvisa)")
RELAY_BOARD = PowerBackend(RelayBoardPowerConfig, _open_relay_board, "an LCUS-style USB relay board (pyserial)")
