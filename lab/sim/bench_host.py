"""One simulated bench's host process: console port, mains power, and the vendor cloud.

Everything a real bench's wiring does is here, so the DUT process can be killed at any instant
(a power cut) while the console port, the power socket and the cloud stay up, exactly as the
serial adapter, the relay wiring and the internet stay up when a real device loses power.

    python -m lab.sim.bench_host --bench-dir DIR        (reads DIR/host.json, written by `lab up`)

host.json: {"bench", "console_link", "netns", "dut_command": [...], "faults": [...],
"cloud": {"host", "port", "ca_file", "cert_file", "key_file"} | null, "cwd", "env": {...},
"forkserver": path | null, "web": {"host", "port", "serial", "model", "pairing_code", "flaws"} | null}.
With "web", one HTTPS server (lab.sim.web) serves the manufacturer's site and app API beside the
cloud, sharing the app service's state (accounts, consent, readings) with the telemetry server. With "forkserver", power-on asks the lab's pre-imported server
(lab.sim.forkserver) to fork the DUT; without it, or when that server cannot, dut_command starts a
fresh interpreter. Either way the DUT leads its own process group (killed whole at power-off)
and exit status 3 asks for a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lab.sim import forkserver
from lab.sim.appservice import AppService
from lab.sim.cloud import CloudPki, CloudServer
from lab.sim.netns import exec_prefix
from lab.sim.relay import open_pty_link
from lab.sim.site import Site
from lab.sim.web import WebServer

log = logging.getLogger("certlab.sim.bench_host")

REBOOT_STATUS = 3  # the DUT exits with 3 to ask for a restart while power stays on
_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Orphaned DUT children come back to us, so a killed process group can be fully reaped."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("cannot become a child subreaper; a killed DUT's children may linger as zombies")


def _reap_group(pgid: int, deadline: float) -> None:
    """Wait for every member of a SIGKILLed group, so killpg(pgid, 0) fails once we answer."""
    while time.monotonic() < deadline:
        try:
            os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    log.warning("process group %d still has members after SIGKILL", pgid)


PENDING_LIMIT = 4 * 1024 * 1024  # console bytes kept for a reader that is behind; older ones are lost


class DutProcess(Protocol):
    """A DUT process as the host needs it: forked by the lab's server, or a subprocess of ours."""

    pid: int

    async def wait(self) -> int: ...


@dataclass(eq=False)
class Dut:
    """One powered DUT: its process (leader of its own group) and our end of its UART."""

    proc: DutProcess
    uart: socket.socket


class BenchHost:
    def __init__(self, bench_dir: Path, cfg: dict[str, Any]):
        self.dir = bench_dir
        self.cfg = cfg
        self.silent = "console_silent" in cfg.get("faults", [])
        self.powered = False
        self.dut: Dut | None = None
        self._lock = asyncio.Lock()
        self._master = -1
        self._pending = bytearray()  # console bytes the pty could not take yet
        self._writer_armed = False

    # --- console: pty master <-> DUT UART ---------------------------------------------------

    def _from_console(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if self.dut is not None:  # typed while the DUT is off: lost, as on a real UART
            try:
                self.dut.uart.send(data)
            except (BlockingIOError, OSError):
                pass

    def _from_dut(self, dut: Dut) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = dut.uart.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(dut.uart.fileno())
            return
        if self.silent:
            return
        self._pending += data
        if len(self._pending) > PENDING_LIMIT:  # nobody has read the port for a long while: a UART drops
            del self._pending[: len(self._pending) - PENDING_LIMIT]
        self._flush_console()

    def _flush_console(self) -> None:
        """Write what the DUT sent to the pty, as fast as the reader takes it, never blocking the loop."""
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                written = os.write(self._master, self._pending)
                if written <= 0:
                    break
                del self._pending[:written]
        except BlockingIOError:
            pass
        except OSError:
            self._pending.clear()
        if self._pending and not self._writer_armed:
            loop.add_writer(self._master, self._flush_console)
            self._writer_armed = True
        elif not self._pending and self._writer_armed:
            loop.remove_writer(self._master)
            self._writer_armed = False

    # --- power --------------------------------------------------------------------------------

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc: DutProcess | None = None
        if server := self.cfg.get("forkserver"):
            req = forkserver.BootRequest(str(self.dir), self.cfg.get("netns"), self.cfg.get("cwd"),
                                         dict(self.cfg.get("env", {})))
            try:
                proc = await forkserver.boot(Path(server), req, theirs.fileno())
            except forkserver.ForkServerError as exc:
                log.warning("fork server: %s; starting the DUT with a fresh interpreter instead", exc)
                ours.close()
                theirs.close()
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if proc is None:
            cmd = [*exec_prefix(self.cfg.get("netns")), *self.cfg["dut_command"],
                   "--bench-dir", str(self.dir), "--uart-fd", str(theirs.fileno())]
            env = {**os.environ, **self.cfg.get("env", {})}
            with open(self.dir / "dut.log", "ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    *cmd, pass_fds=(theirs.fileno(),), start_new_session=True, stdin=asyncio.subprocess.DEVNULL,
                    stdout=out, stderr=out, cwd=self.cfg.get("cwd"), env=env)
        theirs.close()
        ours.setblocking(False)
        dut = Dut(proc, ours)
        self.dut = dut
        loop.add_reader(ours.fileno(), self._from_dut, dut)
        (self.dir / "dut.pid").write_text(f"{proc.pid}\n")
        log.info("DUT started, pid %d", proc.pid)
        asyncio.create_task(self._watch(dut))

    def _forget(self, dut: Dut) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(dut.uart.fileno())
        dut.uart.close()
        if self.dut is dut:
            self.dut = None
            (self.dir / "dut.pid").unlink(missing_ok=True)

    async def _watch(self, dut: Dut) -> None:
        status = await dut.proc.wait()
        if self.dut is not dut:
            return  # killed by a power-off, which cleans up itself
        async with self._lock:
            if self.dut is not dut:
                return
            self._forget(dut)
            _reap_group(dut.proc.pid, time.monotonic() + 1.0)
            if status == REBOOT_STATUS and self.powered:
                log.info("DUT asked for a reboot (exit %d): restarting", status)
                await self._spawn()
            else:
                log.warning("DUT exited with status %s; power stays %s", status, "on" if self.powered else "off")

    async def power_on(self) -> None:
        async with self._lock:
            if not self.powered:  # closing a closed relay does not power-cycle a hung DUT
                self.powered = True
                await self._spawn()

    async def power_off(self) -> None:
        """A power cut: SIGKILL to the whole group at once, no shutdown hook, then reap it."""
        async with self._lock:
            self.powered = False
            dut = self.dut
            if dut is None:
                return
            self._forget(dut)
            try:
                os.killpg(dut.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await dut.proc.wait()
            _reap_group(dut.proc.pid, time.monotonic() + 2.0)
            log.info("power off: DUT group %d killed", dut.proc.pid)

    async def _power_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while raw := await reader.readline():
                word = raw.decode("ascii", errors="replace").strip().upper()
                if word == "ON":
                    await self.power_on()
                elif word == "OFF":
                    await self.power_off()
                elif word != "STATE":
                    writer.write(b"ERR unknown command; use ON, OFF or STATE\n")
                    continue
                writer.write(b"OK ON\n" if self.powered else b"OK OFF\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    # --- process ------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        link = Path(self.cfg["console_link"])
        self._master, slave = open_pty_link(link)
        loop.add_reader(self._master, self._from_console)
        app = self._app()
        cloud = self._start_cloud(app)
        web = self._start_web(app)
        sock_path = self.dir / "power.sock"
        sock_path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._power_client, path=str(sock_path))
        log.info("bench %s ready: console %s, faults %s", self.cfg.get("bench"), link, self.cfg.get("faults"))
        try:
            await stop.wait()
        finally:
            server.close()
            await self.power_off()
            if cloud:
                cloud.close()
            if web:
                web.close()
            sock_path.unlink(missing_ok=True)
            if link.is_symlink():
                link.unlink()
            os.close(self._master)
            os.close(slave)

    def _app(self) -> AppService | None:
        """The manufacturer's app service for this bench's sample (only with a "web" section)."""
        w = self.cfg.get("web")
        if not w:
            return None
        return AppService({str(w["serial"]): w.get("pairing_code")}, frozenset(w.get("flaws", [])))

    def _start_cloud(self, app: AppService | None) -> CloudServer | None:
        c = self.cfg.get("cloud")
        if not c:
            return None
        pki = CloudPki(Path(c["ca_file"]), Path(c["cert_file"]), Path(c["key_file"]))
        cloud = CloudServer(c["host"], int(c["port"]), pki, self.dir / "cloud.log",
                            on_line=app.telemetry if app else None)
        cloud.start()
        log.info("cloud endpoint on %s:%d", c["host"], c["port"])
        return cloud

    def _start_web(self, app: AppService | None) -> WebServer | None:
        """The HTTPS site + API; signing security.txt (gpg, bounded) happens here, once per start."""
        w, c = self.cfg.get("web"), self.cfg.get("cloud")
        if not (w and c and app):
            return None
        pki = CloudPki(Path(c["ca_file"]), Path(c["cert_file"]), Path(c["key_file"]))
        web = WebServer(w["host"], int(w["port"]), pki, app, Site.build(frozenset(w.get("flaws", []))),
                        self.dir / "web.log")
        try:
            web.start()
        except OSError as exc:  # the bench's console, power and cloud still work; the web cases find no site
            log.error("manufacturer site and app API NOT started on %s:%s: %s (sim.web_port)", w["host"], w["port"], exc)
            web.close()
            return None
        log.info("manufacturer site and app API on https://%s:%d", w["host"], w["port"])
        return web


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s host %(levelname)s %(message)s")
    _become_subreaper()
    cfg = json.loads((args.bench_dir / "host.json").read_text(encoding="utf-8"))
    asyncio.run(BenchHost(args.bench_dir, cfg).run())


if __name__ == "__main__":
    main()
