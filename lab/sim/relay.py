"""A simulated power relay: a SCPI switch on TCP or an LCUS-style USB relay board on a pty.

It speaks the instrument's own wire protocol, so certlab's real power drivers (pyvisa-py,
pyserial) drive it exactly as they would drive hardware. A closed contact is a powered bench:
each switch is forwarded as `ON`/`OFF` to that bench host's power.sock, and state queries ask
the bench host, so relay and bench can never disagree, even after a relay restart.

    python -m lab.sim.relay --config relays/<id>.json

Config: {"id", "kind": "scpi"|"lcus", "host", "port" | "pty_link", "channels": {"1": sock},
"faults": [...], "die_after": 4, "size": 8}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import re
import signal
import tty
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("certlab.sim.relay")

IDN = "CERTLAB,SIM-SWITCH-8,{id},1.0"
LCUS_SET, LCUS_STATUS = 0xA0, 0xFF
_POWER_TIMEOUT = 5.0


@dataclass(frozen=True)
class RelayConfig:
    id: str
    kind: str
    channels: dict[int, Path]
    faults: frozenset[str] = frozenset()
    die_after: int = 4
    size: int = 8
    host: str = "127.0.0.1"
    port: int = 0
    pty_link: Path | None = None

    @classmethod
    def load(cls, path: Path) -> "RelayConfig":
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(id=raw["id"], kind=raw["kind"],
                   channels={int(ch): Path(sock) for ch, sock in raw.get("channels", {}).items()},
                   faults=frozenset(raw.get("faults", [])), die_after=int(raw.get("die_after", 4)),
                   size=int(raw.get("size", 8)), host=raw.get("host", "127.0.0.1"),
                   port=int(raw.get("port", 0)),
                   pty_link=Path(raw["pty_link"]) if raw.get("pty_link") else None)

    @property
    def unresponsive(self) -> bool:
        return "relay_unresponsive" in self.faults

    def valid_channel(self, channel: int) -> bool:
        return channel in self.channels or 1 <= channel <= self.size


def open_pty_link(link: Path) -> tuple[int, int]:
    """A raw pty whose slave is reachable at `link`; the caller keeps both fds open.

    Holding the slave open keeps the master readable after a client closes the port (otherwise
    the master reports EIO/HUP until the next open, which would spin an event loop).
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.ttyname(slave))
    os.replace(tmp, link)
    return master, slave


# --- contacts -------------------------------------------------------------------------------


class Contacts:
    """The relay's contacts; switching one powers its bench through the bench host's socket."""

    def __init__(self, cfg: RelayConfig):
        self._cfg = cfg
        self._local: dict[int, bool] = {}
        self._switches = 0
        self._lock = asyncio.Lock()  # one switch at a time, in arrival order, across clients

    async def _ask(self, channel: int, word: str) -> str | None:
        sock = self._cfg.channels.get(channel)
        if sock is None:
            return None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(sock)), _POWER_TIMEOUT)
            writer.write(f"{word}\n".encode())
            reply = (await asyncio.wait_for(reader.readline(), _POWER_TIMEOUT)).decode().strip()
            writer.close()
            return reply
        except (OSError, asyncio.TimeoutError) as exc:
            log.warning("bench on channel %d did not answer %s: %s", channel, word, exc)
            return "ERR unreachable"

    async def set(self, channel: int, on: bool) -> bool:
        """Close (on) or open a contact; False when the bench behind it did not confirm."""
        async with self._lock:
            word = "ON" if on else "OFF"
            reply = await self._ask(channel, word)
            self._local[channel] = on
            log.info("channel %d %s -> %s", channel, word, reply or "no bench")
            self._switches += 1
            if "bench_dies_midrun" in self._cfg.faults and self._switches >= self._cfg.die_after:
                log.error("fault bench_dies_midrun: exiting after switch %d", self._switches)
                logging.shutdown()
                if self._cfg.pty_link:  # an unplugged USB board's device node vanishes with it
                    self._cfg.pty_link.unlink(missing_ok=True)
                os._exit(70)  # abrupt: no reply, no cleanup, sockets reset by the kernel
            return reply is None or reply == f"OK {word}"

    async def get(self, channel: int) -> bool:
        reply = await self._ask(channel, "STATE")
        if reply in ("OK ON", "OK OFF"):
            return reply == "OK ON"
        return self._local.get(channel, False)

    async def open_all(self) -> None:
        for channel in sorted(set(self._cfg.channels) | set(range(1, self._cfg.size + 1))):
            async with self._lock:
                await self._ask(channel, "OFF")
                self._local[channel] = False


# --- SCPI -----------------------------------------------------------------------------------


class ScpiError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(f'{code},"{text}"')


UNDEFINED_HEADER = (-113, "Undefined header")
OUT_OF_RANGE = (-222, "Data out of range")
MISSING_PARAMETER = (-109, "Missing parameter")
ILLEGAL_VALUE = (-224, "Illegal parameter value")
HARDWARE_ERROR = (-240, "Hardware error")
DEVICE_ERROR = (-300, "Device-specific error")


def _node(token: str, long: str) -> bool:
    """SCPI mnemonic match: the short form (its capitals) or the long form, any case."""
    short = "".join(c for c in long if c.isupper() or c == "*")
    return token.upper() in (short.upper(), long.upper())


def _path(header: str, *forms: tuple[str, ...]) -> bool:
    nodes = header.lstrip(":").split(":")
    return any(len(nodes) == len(form) and all(_node(t, f) for t, f in zip(nodes, form)) for form in forms)


def _channel_list(arg: str) -> list[int]:
    m = re.fullmatch(r"\(\s*@\s*([0-9:,\s]+)\)", arg.strip())
    if not m:
        raise ScpiError(*MISSING_PARAMETER) if not arg.strip() else ScpiError(*ILLEGAL_VALUE)
    channels: list[int] = []
    for part in m.group(1).split(","):
        lo, _, hi = part.strip().partition(":")
        if not lo.strip():
            raise ScpiError(*ILLEGAL_VALUE)
        channels += range(int(lo), int(hi or lo) + 1)
    return channels


@dataclass
class ScpiSession:
    """Per-connection state: selected channel and error queue (so benches sharing a switch
    never read each other's errors or race on INST:NSEL)."""

    cfg: RelayConfig
    contacts: Contacts
    selected: int = 1
    errors: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=32))

    def _check(self, channels: list[int]) -> list[int]:
        if not channels or not all(self.cfg.valid_channel(ch) for ch in channels):
            raise ScpiError(*OUT_OF_RANGE)
        return channels

    async def _switch(self, channels: list[int], on: bool) -> None:
        for ch in self._check(channels):
            if not await self.contacts.set(ch, on):
                raise ScpiError(*HARDWARE_ERROR)

    async def line(self, text: str) -> str | None:
        """Execute one line (commands separated by ';'); the reply line, if any query ran."""
        replies: list[str] = []
        for command in filter(None, (c.strip() for c in text.split(";"))):
            try:
                reply = await self._command(command)
            except ScpiError as exc:
                self.errors.append(str(exc))
                log.info("scpi error %s for %r", exc, command)
                continue
            except Exception:  # a bug here must not look like a dead instrument
                log.exception("internal error on %r", command)
                self.errors.append(str(ScpiError(*DEVICE_ERROR)))
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    async def _command(self, command: str) -> str | None:
        header, _, arg = command.partition(" ")
        arg = arg.strip()
        query = header.endswith("?")
        header = header.rstrip("?")
        if _path(header, ("*IDN",)) and query:
            return IDN.format(id=self.cfg.id)
        if _path(header, ("*RST",)) and not query:
            self.selected = 1
            await self.contacts.open_all()
            return None
        if _path(header, ("*CLS",)) and not query:
            self.errors.clear()
            return None
        if _path(header, ("*OPC",)):
            return "1" if query else None
        if _path(header, ("SYSTem", "ERRor"), ("SYSTem", "ERRor", "NEXT")) and query:
            return self.errors.popleft() if self.errors else '0,"No error"'
        if _path(header, ("ROUTe", "CLOSe"), ("ROUTe", "CLOSe", "STATe")):
            channels = self._check(_channel_list(arg))
            if query:
                return ",".join(["1" if await self.contacts.get(ch) else "0" for ch in channels])
            await self._switch(channels, True)
            return None
        if _path(header, ("ROUTe", "OPEN")):
            channels = self._check(_channel_list(arg))
            if query:
                return ",".join(["0" if await self.contacts.get(ch) else "1" for ch in channels])
            await self._switch(channels, False)
            return None
        if _path(header, ("INSTrument", "NSELect")):
            if query:
                return str(self.selected)
            if not arg:
                raise ScpiError(*MISSING_PARAMETER)
            if not arg.isdigit():
                raise ScpiError(*ILLEGAL_VALUE)
            self.selected = self._check([int(arg)])[0]
            return None
        if _path(header, ("OUTPut",), ("OUTPut", "STATe")):
            if query:
                return "1" if await self.contacts.get(self.selected) else "0"
            value = arg.upper()
            if not value:
                raise ScpiError(*MISSING_PARAMETER)
            if value not in ("ON", "OFF", "1", "0"):
                raise ScpiError(*ILLEGAL_VALUE)
            await self._switch([self.selected], value in ("ON", "1"))
            return None
        raise ScpiError(*UNDEFINED_HEADER)


async def serve_scpi(cfg: RelayConfig, contacts: Contacts) -> asyncio.AbstractServer:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ScpiSession(cfg, contacts)
        try:
            while raw := await reader.readline():
                if cfg.unresponsive:
                    continue  # swallow everything: a hung instrument
                reply = await session.line(raw.decode("ascii", errors="replace").strip())
                if reply is not None:
                    writer.write(reply.encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, cfg.host, cfg.port, reuse_address=True)


# --- LCUS board -----------------------------------------------------------------------------


class LcusBoard:
    """Frames `A0 ch st sum` switch a channel (no reply); a lone `FF` asks for every channel."""

    def __init__(self, cfg: RelayConfig, contacts: Contacts, master: int):
        self._cfg, self._contacts, self._master = cfg, contacts, master
        self._buf = bytearray()
        self._queue: asyncio.Queue[tuple[str, int, bool]] = asyncio.Queue()

    def on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if self._cfg.unresponsive:
            return
        self._buf += data
        while self._buf:
            if self._buf[0] == LCUS_STATUS:
                del self._buf[0]
                self._queue.put_nowait(("status", 0, False))
            elif self._buf[0] == LCUS_SET:
                if len(self._buf) < 4:
                    return
                _, ch, st, checksum = self._buf[:4]
                if checksum == (LCUS_SET + ch + st) & 0xFF and st in (0, 1):
                    del self._buf[:4]
                    if self._cfg.valid_channel(ch):
                        self._queue.put_nowait(("set", ch, st == 1))
                else:
                    del self._buf[0]  # bad frame: resynchronise on the next byte
            else:
                del self._buf[0]

    async def work(self) -> None:
        while True:
            what, ch, on = await self._queue.get()
            if what == "set":
                await self._contacts.set(ch, on)
                continue
            states = [await self._contacts.get(c) for c in range(1, self._cfg.size + 1)]
            text = "".join(f"CH{c}:{'ON' if s else 'OFF'}\r\n" for c, s in enumerate(states, 1))
            try:
                os.write(self._master, text.encode())
            except BlockingIOError:
                log.warning("status reply dropped: nobody reads the board's port")


# --- process --------------------------------------------------------------------------------


async def run(cfg: RelayConfig) -> None:
    contacts = Contacts(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if cfg.kind == "scpi":
        server = await serve_scpi(cfg, contacts)
        log.info("SCPI switch %s on %s:%d, faults %s", cfg.id, cfg.host, cfg.port, sorted(cfg.faults))
        async with server:
            await stop.wait()
        return
    assert cfg.pty_link is not None, "an lcus relay needs pty_link"
    master, slave = open_pty_link(cfg.pty_link)
    board = LcusBoard(cfg, contacts, master)
    loop.add_reader(master, board.on_readable)
    worker = asyncio.create_task(board.work())
    log.info("LCUS board %s on %s, faults %s", cfg.id, cfg.pty_link, sorted(cfg.faults))
    try:
        await stop.wait()
    finally:
        worker.cancel()
        loop.remove_reader(master)
        if cfg.pty_link.is_symlink():
            cfg.pty_link.unlink()
        os.close(master)
        os.close(slave)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s")
    asyncio.run(run(RelayConfig.load(args.config)))


if __name__ == "__main__":
    main()
