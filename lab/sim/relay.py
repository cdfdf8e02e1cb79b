"""A simulated power relay: a SCPI switch on TCP, an LCUS-style USB relay board on a pty, a relay
driven by a control program (`ctl`: a unix socket `lab.sim.relayctl` talks to, for the `command`
power backend) or a network PDU speaking the NETIO JSON API over HTTP (`netio`, for `http-pdu`).

It speaks the instrument's own wire protocol, so certlab's real power drivers (pyvisa-py,
pyserial) drive it exactly as they would drive hardware. A closed contact is a powered bench:
each switch is forwarded as `ON`/`OFF` to that bench host's power.sock, and state queries ask
the bench host, so relay and bench can never disagree, even after a relay restart.

    python -m lab.sim.relay --config relays/<id>.json

Config: {"id", "kind": "scpi"|"lcus"|"ctl"|"netio", "host", "port" | "pty_link" | "socket",
"channels": {"1": sock}, "faults": [...], "die_after": 4, "size": 8}; netio also
"auth": {"user", "password"} | null (read-write), "auth_ro": the same (read-only: GET only) and
"tls": {"cert", "key"} | null.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import logging
import os
import re
import signal
import ssl
import time
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
    socket: Path | None = None  # ctl: the control socket
    auth: tuple[str, str] | None = None  # netio: the JSON API's user and password
    auth_ro: tuple[str, str] | None = None  # netio: a read-only user (GET only; POST answers 403)
    tls: tuple[Path, Path] | None = None  # netio: certificate and key files for HTTPS

    @classmethod
    def load(cls, path: Path) -> "RelayConfig":
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(id=raw["id"], kind=raw["kind"],
                   channels={int(ch): Path(sock) for ch, sock in raw.get("channels", {}).items()},
                   faults=frozenset(raw.get("faults", [])), die_after=int(raw.get("die_after", 4)),
                   size=int(raw.get("size", 8)), host=raw.get("host", "127.0.0.1"),
                   port=int(raw.get("port", 0)),
                   pty_link=Path(raw["pty_link"]) if raw.get("pty_link") else None,
                   socket=Path(raw["socket"]) if raw.get("socket") else None,
                   auth=(raw["auth"]["user"], raw["auth"]["password"]) if raw.get("auth") else None,
                   auth_ro=(raw["auth_ro"]["user"], raw["auth_ro"]["password"]) if raw.get("auth_ro") else None,
                   tls=(Path(raw["tls"]["cert"]), Path(raw["tls"]["key"])) if raw.get("tls") else None)

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


# --- control socket (the `command` backend's simulated relay) --------------------------------

_CTL_LINE = re.compile(r"(ON|OFF|STATE)\s+(\d{1,4})")


async def serve_ctl(cfg: RelayConfig, contacts: Contacts) -> asyncio.AbstractServer:
    """`ON n` / `OFF n` / `STATE n` lines on a unix socket; answers `OK ON|OFF` or `ERR why`."""
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while raw := await reader.readline():
                if cfg.unresponsive:
                    continue
                m = _CTL_LINE.fullmatch(raw.decode("ascii", errors="replace").strip().upper())
                if not m:
                    reply = "ERR expected ON n, OFF n or STATE n"
                elif not cfg.valid_channel(int(m.group(2))):
                    reply = f"ERR no channel {m.group(2)} (1 to {cfg.size})"
                elif m.group(1) == "STATE":
                    reply = f"OK {'ON' if await contacts.get(int(m.group(2))) else 'OFF'}"
                elif await contacts.set(int(m.group(2)), m.group(1) == "ON"):
                    reply = f"OK {m.group(1)}"
                else:
                    reply = f"ERR the bench on channel {m.group(2)} did not confirm {m.group(1)}"
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    assert cfg.socket is not None, "a ctl relay needs socket"
    cfg.socket.parent.mkdir(parents=True, exist_ok=True)
    cfg.socket.unlink(missing_ok=True)
    return await asyncio.start_unix_server(client, str(cfg.socket))


# --- NETIO JSON API (the `http-pdu` backend's simulated PDU) ---------------------------------

NETIO_ACTIONS = {0: "off", 1: "on", 2: "short off", 3: "short on", 4: "toggle", 5: "no change", 6: "ignored"}
_MAX_BODY = 64 * 1024


class NetioApi:
    """The NETIO JSON API (JSONVer 2.x) on one PDU: GET and POST /netio.json, HTTP basic auth."""

    def __init__(self, cfg: RelayConfig, contacts: Contacts) -> None:
        self._cfg, self._contacts = cfg, contacts
        self._started = time.monotonic()
        self._pulses: set[asyncio.Task[None]] = set()

    def _access(self, header: str | None) -> str | None:
        """"rw", "ro" or None (refused) for an Authorization header."""
        if self._cfg.auth is None:
            return "rw"
        for access, pair in (("rw", self._cfg.auth), ("ro", self._cfg.auth_ro)):
            if pair is not None and header is not None and header.strip() == \
                    "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode("ascii"):
                return access
        return None

    async def document(self) -> dict[str, object]:
        outputs = [{"ID": n, "Name": f"output_{n}", "State": int(await self._contacts.get(n)), "Action": 6, "Delay": 2000}
                   for n in range(1, self._cfg.size + 1)]
        return {"Agent": {"Model": "CERTLAB-SIM-PDU", "Version": "3.4.0", "JSONVer": "2.1", "DeviceName": self._cfg.id,
                          "VendorID": 0, "OemID": 0, "SerialNumber": f"SIM-{self._cfg.id}",
                          "Uptime": int(time.monotonic() - self._started),
                          "Time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "NumOutputs": self._cfg.size},
                "Outputs": outputs}

    async def _act(self, channel: int, action: int) -> bool:
        if action in (5, 6):
            return True
        current = await self._contacts.get(channel)
        target = {0: False, 1: True, 2: False, 3: True, 4: not current}[action]
        ok = await self._contacts.set(channel, target)
        if action in (2, 3):  # a pulse: back after the output's Delay (2 s)
            async def back() -> None:
                await asyncio.sleep(2.0)
                await self._contacts.set(channel, not target)
            task = asyncio.create_task(back())
            self._pulses.add(task)
            task.add_done_callback(self._pulses.discard)
        return ok

    async def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, object] | str]:
        if path.split("?", 1)[0] != "/netio.json":
            return 404, "Not Found"
        access = self._access(headers.get("authorization"))
        if access is None:
            return 401, "Unauthorized"
        if method == "GET":
            return 200, await self.document()
        if method != "POST":
            return 405, "Method Not Allowed"
        if access != "rw":
            return 403, "Forbidden"
        try:
            request = json.loads(body)
            outputs = request["Outputs"]
            commands = [(int(o["ID"]), int(o["Action"])) for o in outputs]
        except (ValueError, KeyError, TypeError):
            return 400, "Bad Request"
        if not commands or not all(1 <= ch <= self._cfg.size and act in NETIO_ACTIONS for ch, act in commands):
            return 400, "Bad Request"
        for channel, action in commands:
            if not await self._act(channel, action):
                return 500, "Internal Server Error"
        return 200, await self.document()


async def serve_netio(cfg: RelayConfig, contacts: Contacts) -> asyncio.AbstractServer:
    """HTTP/1.1 (one request per connection) on host:port, HTTPS when cfg.tls is set."""
    api = NetioApi(cfg, contacts)
    reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
               413: "Payload Too Large", 500: "Internal Server Error"}

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").split()
            headers: dict[str, str] = {}
            for _ in range(100):
                line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if cfg.unresponsive:
                await asyncio.sleep(3600)  # a hung PDU: the connection stays open, nothing comes back
            length = int(headers.get("content-length") or 0)
            if len(request_line) != 3 or length > _MAX_BODY or length < 0:
                status, payload = (413, "Payload Too Large") if length > _MAX_BODY else (400, "Bad Request")
            else:
                body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
                status, payload = await api.handle(request_line[0].upper(), request_line[1], headers, body)
            data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
            extra = 'WWW-Authenticate: Basic realm="netio"\r\n' if status == 401 else ""
            kind = "application/json" if isinstance(payload, dict) else "text/plain"
            writer.write(f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(data)}\r\n{extra}Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, ssl.SSLError):
            pass
        finally:
            writer.close()

    context = None
    if cfg.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cfg.tls[0]), str(cfg.tls[1]))
    return await asyncio.start_server(client, cfg.host, cfg.port, reuse_address=True, ssl=context)


# --- process --------------------------------------------------------------------------------


async def run(cfg: RelayConfig) -> None:
    contacts = Contacts(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if cfg.kind in ("scpi", "ctl", "netio"):
        serve = {"scpi": serve_scpi, "ctl": serve_ctl, "netio": serve_netio}[cfg.kind]
        server = await serve(cfg, contacts)
        log.info("%s relay %s on %s, faults %s", cfg.kind, cfg.id, cfg.socket or f"{cfg.host}:{cfg.port}", sorted(cfg.faults))
        async with server:
            await stop.wait()
        if cfg.socket is not None:
            cfg.socket.unlink(missing_ok=True)
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
