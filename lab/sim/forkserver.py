"""The lab's pre-imported simulated-DUT server: one process per lab, forking one child per power-on.

A power-on used to start `ip netns exec <ns> python -m lab.sim.dut`: a fresh interpreter that
imports paramiko, cryptography and the simulator (~0.3 s of CPU) at every boot, so a lab
cycling power on 8 benches saturated 2 cores. This server, started by `lab up`, imports
lab.sim.device once and forks. Each child leads its own session and process group (power-off
stays a SIGKILL of that group, a reboot stays exit status 3), enters its bench's network
namespace as `ip netns exec` does (setns, a private mount namespace with the namespace's
/sys, /etc/netns/<ns>/* bound over /etc), and runs lab.sim.dut's `main`. Code changes in the
simulator therefore need the lab restarted (`lab down` + `lab up`) to take effect.

    python -m lab.sim.forkserver --socket /tmp/certlab-sim/<lab>/forkserver.sock

Protocol, one unix-socket connection per boot: the bench host sends one JSON line (BootRequest)
with the DUT's end of the UART attached (SCM_RIGHTS); the server answers `{"pid": N}` or
`{"error": "..."}`, then `{"exit": code}` once the child is reaped (code as Popen.returncode:
3 = reboot, -9 = killed). The bench host closing the connection early is a power cut: the
server SIGKILLs that child's group.

Fork safety: the server is single-threaded (it refuses to fork otherwise), the child closes
every inherited fd but stdio and its UART, resets signals, reseeds `random`, and drops the
server's logging handlers so lab.sim.dut configures its own DIR/dut.log.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import importlib
import json
import logging
import os
import random
import selectors
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

log = logging.getLogger("certlab.sim.forkserver")

DEFAULT_ENTRY = "lab.sim.dut:main"
PRELOAD = ("lab.sim.device",)  # what every boot imports, imported once here
REQUEST_LIMIT = 64 * 1024  # a boot request is a few hundred bytes
REQUEST_TIMEOUT = 2.0  # seconds a connected bench host has to send its request
REPLY_TIMEOUT = 10.0  # seconds a bench host waits for the pid before calling the server broken
NETNS_DIR = Path("/var/run/netns")
ETC_NETNS_DIR = Path("/etc/netns")
_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_BIND = 4096
_MS_REC = 16384
_MS_SLAVE = 1 << 19
_MNT_DETACH = 2
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36


class ForkServerError(Exception):
    """The server could not boot a DUT (unreachable, refused, or answered nonsense)."""


@dataclass(frozen=True)
class BootRequest:
    """What one boot needs besides the UART fd: where the bench lives and how the child runs."""

    bench_dir: str
    netns: str | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> "BootRequest":
        """Parse one request line; anything malformed is a ForkServerError naming the field."""
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise ForkServerError(f"boot request is not JSON: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("bench_dir"), str) or not raw["bench_dir"]:
            raise ForkServerError("boot request needs 'bench_dir' (a path)")
        netns, cwd, env = raw.get("netns"), raw.get("cwd"), raw.get("env") or {}
        if netns is not None and (not isinstance(netns, str) or not netns or "/" in netns or netns in (".", "..")):
            raise ForkServerError(f"boot request field 'netns' must be a namespace name, not {netns!r}")
        if cwd is not None and not isinstance(cwd, str):
            raise ForkServerError("boot request field 'cwd' must be a path")
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ForkServerError("boot request field 'env' must map names to strings")
        return cls(raw["bench_dir"], netns, cwd, dict(env))


def exit_code(wait_status: int) -> int:
    """A waitpid status as Popen.returncode says it: the exit status, or -signal when killed."""
    return os.waitstatus_to_exitcode(wait_status)


def parse_reply(line: bytes, key: str) -> int:
    """The integer under `key` in one reply line; an error reply or garbage is a ForkServerError."""
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and isinstance(reply.get(key), int) and not isinstance(reply[key], bool):
        return int(reply[key])
    if isinstance(reply, dict) and isinstance(reply.get("error"), str):
        raise ForkServerError(reply["error"])
    raise ForkServerError(f"unexpected reply {line[:200]!r} (wanted {key!r})")


def load_entry(spec: str) -> Callable[[list[str]], int]:
    """`module:function` -> the function; a bad spec is a ForkServerError saying which part."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ForkServerError(f"--entry {spec!r}: write it as module:function, e.g. {DEFAULT_ENTRY}")
    try:
        func = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ForkServerError(f"--entry {spec!r}: {exc}") from None
    if not callable(func):
        raise ForkServerError(f"--entry {spec!r} is not a function")
    return func


# --- the child: what `ip netns exec` and a fresh interpreter would have given it ---------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_netns(name: str) -> None:
    """What iproute2's netns_switch does: setns, a slave mount namespace, this namespace's /sys, /etc binds."""
    libc = _libc()
    fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc.setns(fd, _CLONE_NEWNET), f"setns to network namespace {name!r}")
    finally:
        os.close(fd)
    _check(libc.unshare(_CLONE_NEWNS), "unshare the mount namespace")
    _check(libc.mount(b"", b"/", b"none", ctypes.c_ulong(_MS_SLAVE | _MS_REC), None), "make / a slave mount")
    flags = 0
    if libc.umount2(b"/sys", _MNT_DETACH) != 0:  # cannot unmount: overlay it, read-only if it was
        try:
            flags = _MS_RDONLY if os.statvfs("/sys").f_flag & os.ST_RDONLY else 0
        except OSError:
            pass
    _check(libc.mount(name.encode(), b"/sys", b"sysfs", ctypes.c_ulong(flags), None), "mount /sys")
    etc = ETC_NETNS_DIR / name
    if etc.is_dir():
        for entry in sorted(etc.iterdir()):
            src, dst = str(entry).encode(), f"/etc/{entry.name}".encode()
            _check(libc.mount(src, dst, b"none", ctypes.c_ulong(_MS_BIND), None), f"bind {entry} over /etc/{entry.name}")


def _close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _run_child(entry: Callable[[list[str]], int], req: BootRequest, uart_fd: int, owned: list[Any]) -> NoReturn:
    """In the forked child: become a fresh DUT process, run the entry, exit with its status."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for obj in owned:  # the server's sockets, selector and wake-up pipe, closed through their owners
            obj.close()
        os.setsid()  # leader of a new session and process group: power-off kills exactly this group
        out = os.open(Path(req.bench_dir) / "dut.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        _close_fds_except({0, 1, 2, uart_fd})
        _libc().prctl(_PR_SET_NAME, f"dut {Path(req.bench_dir).name}"[:15].encode(), 0, 0, 0)
        if req.netns:
            enter_netns(req.netns)
        if req.cwd:
            os.chdir(req.cwd)
        os.environ.update(req.env)
        random.seed()
        root = logging.getLogger()
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        status = entry(["--bench-dir", req.bench_dir, "--uart-fd", str(uart_fd)])
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    os._exit(status if isinstance(status, int) and 0 <= status < 256 else 1)


# --- the server ---------------------------------------------------------------------------------


class ForkServer:
    """Single-threaded: accepts boot requests, forks children, reports their exit, reaps orphans."""

    def __init__(self, path: Path, entry: Callable[[list[str]], int]):
        self.path = path
        self.entry = entry
        self.sel = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}  # pid -> the bench host's connection
        self.stopping = False

    def listen(self) -> socket.socket:
        """Bind the socket (OSError if the folder is missing or not ours); only its owner may connect."""
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        except OSError:
            listener.close()
            raise
        finally:
            os.umask(old)
        listener.listen(64)
        return listener

    def serve(self, listener: socket.socket) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.sel.register(listener, selectors.EVENT_READ, "accept")
        self.sel.register(wake_r, selectors.EVENT_READ, "signal")
        self._owned = [listener, self.sel]
        self._wake = (wake_r, wake_w)
        log.info("fork server ready on %s (pid %d, %d threads)", self.path, os.getpid(), threading.active_count())
        try:
            while not self.stopping:
                for key, _ in self.sel.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept(listener)
                    elif key.data == "signal":
                        try:
                            os.read(wake_r, 4096)
                        except BlockingIOError:
                            pass
                    else:
                        self._peer_event(key.fileobj, key.data)  # type: ignore[arg-type]
                self._reap()
        finally:
            for pid in list(self.children):
                self._kill_group(pid)
            self.path.unlink(missing_ok=True)

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(REQUEST_TIMEOUT)
            data, fds, _, _ = socket.recv_fds(conn, REQUEST_LIMIT, 1)
            while data and not data.endswith(b"\n") and len(data) < REQUEST_LIMIT:
                more = conn.recv(REQUEST_LIMIT)
                if not more:
                    break
                data += more
            if len(fds) != 1:
                raise ForkServerError("boot request must carry exactly one fd (the UART)")
            req = BootRequest.decode(data)
            if threading.active_count() != 1:
                raise ForkServerError(f"refusing to fork with {threading.active_count()} threads alive")
            pid = self._fork(req, fds[0], conn)
        except (ForkServerError, OSError) as exc:
            log.warning("boot request refused: %s", exc)
            try:
                conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            except OSError:
                pass
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        try:
            conn.setblocking(False)
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:
            self._kill_group(pid)  # nobody holds its power any more
        self.children[pid] = conn
        self.sel.register(conn, selectors.EVENT_READ, pid)
        log.info("booted %s: pid %d", req.bench_dir, pid)

    def _fork(self, req: BootRequest, uart_fd: int, conn: socket.socket) -> int:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(self.entry, req, uart_fd, [*self._owned, *self.children.values(), conn,
                                                  _Fd(self._wake[0]), _Fd(self._wake[1])])
        return pid

    def _peer_event(self, conn: socket.socket, pid: int) -> None:
        """Bytes from a bench host are ignored; its end closing is a power cut for that child."""
        try:
            if conn.recv(4096):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self.sel.unregister(conn)
        if self.children.get(pid) is conn:
            log.info("bench host of pid %d went away: killing its group", pid)
            self._kill_group(pid)

    @staticmethod
    def _kill_group(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap(self) -> None:
        """Collect every exited child (ours, or orphans handed to us as subreaper) and report ours."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            try:
                self.sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            try:
                conn.sendall(json.dumps({"exit": exit_code(status)}).encode() + b"\n")
            except OSError:
                pass
            conn.close()


@dataclass
class _Fd:
    """A bare fd the child must close, with the same `close()` as the sockets beside it."""

    fd: int

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


# --- the bench host's side --------------------------------------------------------------------


class ForkedDut:
    """A DUT forked by the server, with the part of asyncio.subprocess.Process the bench host uses."""

    def __init__(self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.pid = pid
        self._writer = writer
        self._status: asyncio.Task[int] = asyncio.get_running_loop().create_task(self._read_status(reader))

    async def _read_status(self, reader: asyncio.StreamReader) -> int:
        try:
            line = await reader.readline()
            return parse_reply(line, "exit")
        except (ForkServerError, OSError) as exc:
            log.warning("fork server lost track of DUT %d (%s): waiting for it to go", self.pid, exc)
        while _alive(self.pid):  # the server died: the orphan is someone else's to reap
            await asyncio.sleep(0.05)
        return -1

    async def wait(self) -> int:
        status = await asyncio.shield(self._status)
        self._writer.close()
        return status


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def boot(path: Path, req: BootRequest, uart_fd: int, timeout: float = REPLY_TIMEOUT) -> ForkedDut:
    """Ask the lab's server for a DUT; ForkServerError (nothing left running) if it cannot give one."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, str(path)), timeout)
        socket.send_fds(sock, [req.encode()], [uart_fd])
        reader, writer = await asyncio.open_unix_connection(sock=sock)
    except (OSError, asyncio.TimeoutError) as exc:
        sock.close()
        raise ForkServerError(f"cannot reach {path}: {exc or 'timed out'}") from None
    try:
        pid = parse_reply(await asyncio.wait_for(reader.readline(), timeout), "pid")
    except (ForkServerError, OSError, asyncio.TimeoutError) as exc:
        writer.close()  # if it forked after all, the closed connection makes it kill the child
        raise ForkServerError(f"{path}: {exc or 'no pid within the reply timeout'}") from None
    return ForkedDut(pid, reader, writer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.sim.forkserver", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, type=Path, help="unix socket to listen on")
    parser.add_argument("--entry", default=DEFAULT_ENTRY, help=f"module:function each child runs (default {DEFAULT_ENTRY})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s forkserver %(levelname)s %(message)s")
    try:
        entry = load_entry(args.entry)
        if args.entry == DEFAULT_ENTRY:
            for module in PRELOAD:
                importlib.import_module(module)
    except ForkServerError as exc:
        print(f"certlab-sim-forkserver: {exc}", file=sys.stderr)
        return 2
    try:
        _check(_libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "become a child subreaper")
    except (OSError, AttributeError) as exc:
        log.warning("%s; a killed DUT's children may linger as zombies", exc)
    server = ForkServer(args.socket, entry)
    try:
        listener = server.listen()
    except OSError as exc:
        print(f"certlab-sim-forkserver: cannot listen on {args.socket}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    gc.freeze()  # the imported modules stay shared with every child instead of being copied by the GC
    server.serve(listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
