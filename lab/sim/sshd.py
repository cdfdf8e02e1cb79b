"""The device's SSH server (paramiko): password login as root, exec, shell and SFTP.

Everything a session does goes through the same shell and virtual filesystem as the console.
Brute-force protection is device-wide (not per connection), as on a product that locks its
login after repeated failures; the `no_bruteforce_protection` flaw switches it off.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from hashlib import sha1
from typing import Protocol

import paramiko
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from paramiko.kex_group14 import KexGroup14SHA256

from lab.sim.shell import DeviceHost, LineReader, Shell, ShellExit, TerminalIO, Vfs, VfsError, run_session

log = logging.getLogger("certlab.sim.sshd")

MAX_CONNECTIONS = 8
MAX_CHANNELS = 10
LOGIN_GRACE_SECONDS = 30.0
STDIN_TIMEOUT = 60.0
SERVER_VERSION = "OpenSSH_9.2p1"
OTHER_SERVER_VERSION = "dropbear_2019.78"  # the `undocumented_security_impl` build's SSH server
CLOSE_DELAY = 0.05


class SessionHost(DeviceHost, Protocol):
    def motd(self) -> str: ...
    def prompt(self, shell: Shell) -> str: ...
    def is_rebooting(self) -> bool: ...


def generate_host_key_pem() -> str:
    """A new Ed25519 host key in OpenSSH format (done once, at manufacture)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()


def load_host_key(pem: str) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))


class AuthGuard:
    """Counts consecutive failed logins; after `attempts` of them refuses all for `seconds`."""

    def __init__(self, attempts: int, seconds: float, *, enabled: bool = True):
        self.attempts = attempts
        self.seconds = seconds
        self.enabled = enabled
        self._lock = threading.Lock()
        self._failures = 0
        self._locked_until = 0.0

    def attempt(self, check: Callable[[], bool]) -> bool:
        with self._lock:
            if self.enabled and time.monotonic() < self._locked_until:
                return False
        ok = check()
        with self._lock:
            if ok:
                self._failures = 0
            else:
                self._failures += 1
                if self.enabled and self._failures >= self.attempts:
                    self._locked_until = time.monotonic() + self.seconds
                    self._failures = 0
                    log.warning("login locked for %.0f s after %d failures", self.seconds, self.attempts)
        return ok


class _ExecIO:
    """ShellIO for an exec channel: stdout/stderr streams, stdin as plain lines."""

    def __init__(self, channel: paramiko.Channel, reader: LineReader):
        self.channel = channel
        self.reader = reader

    def write(self, text: str) -> None:
        _safe(self.channel.sendall, text.encode("utf-8", "replace"))

    def write_err(self, text: str) -> None:
        _safe(self.channel.sendall_stderr, text.encode("utf-8", "replace"))

    def read_line(self, prompt: str, *, echo: bool = True) -> str | None:
        if prompt:
            self.write(prompt)
        return self.reader.read_line(echo=False)


def _safe(func: Callable[[bytes], object], data: bytes) -> None:
    try:
        func(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass


def _recv(channel: paramiko.Channel) -> Callable[[], bytes]:
    def recv() -> bytes:
        try:
            return channel.recv(4096)
        except (OSError, EOFError, paramiko.SSHException):  # socket.timeout is an OSError
            return b""

    return recv


# --- SFTP ----------------------------------------------------------------------------------


def _sftp_error(exc: VfsError) -> int:
    return paramiko.sftp.SFTP_NO_SUCH_FILE if "No such" in exc.reason else paramiko.sftp.SFTP_PERMISSION_DENIED


def _attrs(vfs: Vfs, node, name: str | None = None) -> paramiko.SFTPAttributes:
    st = vfs.stat(node)
    attr = paramiko.SFTPAttributes()
    attr.st_size, attr.st_mode = st.size, st.mode
    attr.st_uid = attr.st_gid = 0
    attr.st_mtime = attr.st_atime = int(st.mtime)
    if name is not None:
        attr.filename = name
    return attr


class _VfsHandle(paramiko.SFTPHandle):
    def __init__(self, vfs: Vfs, node, flags: int):
        super().__init__(flags)
        self.vfs, self.node = vfs, node
        self.append = bool(flags & os.O_APPEND)
        self.writable = bool(flags & (os.O_WRONLY | os.O_RDWR))
        self._snapshot: bytes | None = None

    def read(self, offset: int, length: int):
        try:
            if self._snapshot is None or self.writable:
                self._snapshot = self.vfs.read(self.node)
        except VfsError as exc:
            return _sftp_error(exc)
        return self._snapshot[offset : offset + length]

    def write(self, offset: int, data: bytes) -> int:
        if not self.writable:
            return paramiko.sftp.SFTP_PERMISSION_DENIED
        try:
            if self.append:
                offset = self.vfs.stat(self.node).size
            self.vfs.pwrite(self.node, offset, data)
        except VfsError as exc:
            return _sftp_error(exc)
        return paramiko.sftp.SFTP_OK

    def stat(self):
        try:
            return _attrs(self.vfs, self.node)
        except VfsError as exc:
            return _sftp_error(exc)

    def chattr(self, attr) -> int:
        return paramiko.sftp.SFTP_OK


class VfsSftp(paramiko.SFTPServerInterface):
    """SFTP onto the device's virtual filesystem (paths as the shell sees them)."""

    def __init__(self, server: "_Server", *args, **kwargs):
        super().__init__(server, *args, **kwargs)
        self.vfs: Vfs = server.service.host.vfs

    def _node(self, path: str):
        return self.vfs.resolve(path)

    def canonicalize(self, path: str) -> str:
        return self._node(path).path

    def list_folder(self, path: str):
        node = self._node(path)
        try:
            return [_attrs(self.vfs, self.vfs.resolve(n, node.path), n) for n in self.vfs.listdir(node)]
        except VfsError as exc:
            return _sftp_error(exc)

    def stat(self, path: str):
        try:
            return _attrs(self.vfs, self._node(path))
        except VfsError as exc:
            return _sftp_error(exc)

    lstat = stat

    def open(self, path: str, flags: int, attr):
        node = self._node(path)
        try:
            exists = self.vfs.exists(node)
            if exists and self.vfs.is_dir(node):
                return paramiko.sftp.SFTP_FAILURE
            if not exists and not flags & os.O_CREAT:
                return paramiko.sftp.SFTP_NO_SUCH_FILE
            if (not exists) or flags & os.O_TRUNC:
                self.vfs.write(node, b"")
        except VfsError as exc:
            return _sftp_error(exc)
        return _VfsHandle(self.vfs, node, flags)

    def remove(self, path: str) -> int:
        try:
            self.vfs.unlink(self._node(path))
        except VfsError as exc:
            return _sftp_error(exc)
        return paramiko.sftp.SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        try:
            self.vfs.rename(self._node(oldpath), self._node(newpath))
        except (VfsError, OSError) as exc:
            return _sftp_error(exc) if isinstance(exc, VfsError) else paramiko.sftp.SFTP_FAILURE
        return paramiko.sftp.SFTP_OK

    posix_rename = rename

    def mkdir(self, path: str, attr) -> int:
        try:
            self.vfs.mkdir(self._node(path))
        except VfsError as exc:
            return _sftp_error(exc)
        return paramiko.sftp.SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            self.vfs.rmdir(self._node(path))
        except VfsError as exc:
            return _sftp_error(exc)
        return paramiko.sftp.SFTP_OK

    def chattr(self, path: str, attr) -> int:
        return paramiko.sftp.SFTP_OK

    def symlink(self, target_path: str, path: str) -> int:
        return paramiko.sftp.SFTP_PERMISSION_DENIED

    def readlink(self, path: str):
        return paramiko.sftp.SFTP_OP_UNSUPPORTED


#: algorithms paramiko offers by default that no conforming product should (3DES, MD5 MACs)
BROKEN_ALGORITHMS: dict[str, list[str]] = {"ciphers": ["3des-cbc"], "macs": ["hmac-md5", "hmac-md5-96"]}

#: what the TH-100's IXIT documents (1-AuthMech ssh_algorithms): a conforming build offers exactly these
DEVICE_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "kex": ("curve25519-sha256@libssh.org", "ecdh-sha2-nistp256"),
    "ciphers": ("aes128-ctr", "aes192-ctr", "aes256-ctr"),
    "macs": ("hmac-sha2-256", "hmac-sha2-512", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"),
}


def _disabled_beyond(allowed: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """paramiko's disabled_algorithms that leave exactly `allowed` of its defaults."""
    defaults = {"kex": paramiko.Transport._preferred_kex, "ciphers": paramiko.Transport._preferred_ciphers,
                "macs": paramiko.Transport._preferred_macs}
    return {kind: [a for a in names if a not in allowed[kind]] for kind, names in defaults.items()}


class _KexGroup14Sha1(KexGroup14SHA256):
    """diffie-hellman-group14-sha1 (RFC 4253 8.2), dropped by paramiko: the `weak_auth_crypto` flaw's legacy key exchange."""

    name = "diffie-hellman-group14-sha1"
    hash_algo = sha1


class _LegacyKexTransport(paramiko.Transport):
    """The `weak_auth_crypto` build: also negotiates the SHA-1 key exchange, which the IXIT does not document."""

    _preferred_kex = (*paramiko.Transport._preferred_kex, _KexGroup14Sha1.name)
    _kex_info = {**paramiko.Transport._kex_info, _KexGroup14Sha1.name: _KexGroup14Sha1}


# --- the `crashes_on_malformed_input` flaw -------------------------------------------------

IDENT_BUFFER = 255  # RFC 4253 4.2: an identification line is at most 255 characters with CR LF


class ServiceCrash(Exception):
    """The SSH daemon died (what a segfault in a C daemon does): the service is gone."""


class _IdentLoggingSocket:
    """The flawed build's connection logger, between the socket and paramiko.

    It copies the client's identification line into a fixed IDENT_BUFFER-byte buffer and reads
    the software version after `SSH-2.0-` to log it, trusting both: a line longer than the buffer
    or without the `SSH-2.0-` prefix is a parser bug that kills the whole daemon, as a buffer
    overflow or a NULL dereference in a C sshd would. A conforming build has no such logger.
    """

    def __init__(self, sock: socket.socket, crash: Callable[[str], None]):
        self._sock = sock
        self._crash = crash
        self._buf = b""
        self._parsed = False

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if not self._parsed:
            self._buf += data
            if b"\n" in self._buf or len(self._buf) > IDENT_BUFFER or (not data and self._buf):
                self._parsed = True
                line = self._buf.split(b"\n", 1)[0].rstrip(b"\r")
                if len(line) > IDENT_BUFFER or not line.startswith(b"SSH-2.0-"):
                    self._crash(f"client identification {line[:40]!r} ({len(line)} bytes)")
                    raise ServiceCrash("sshd crashed")
                log.info("ssh client software: %s", line[8:].decode("ascii", "replace"))
        return data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


# --- sessions ------------------------------------------------------------------------------


class _Server(paramiko.ServerInterface):
    def __init__(self, service: "SshService", peer: str):
        self.service = service
        self.peer = peer
        self.ptys: set[int] = set()
        # Accepted channels, held by reference: a dropped paramiko Channel closes itself (__del__).
        self.channels: list[paramiko.Channel] = []

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_none(self, username: str) -> int:
        """Refused, unless the device is open (`unauthenticated_network_function`, `settings_change_without_auth`)."""
        is_open = getattr(self.service.host, "accepts_none_auth", None)
        ok = username == "root" and is_open is not None and is_open()
        log.info("ssh none authentication for %r from %s: %s", username, self.peer, "accepted" if ok else "rejected")
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        host = self.service.host
        ok = self.service.guard.attempt(lambda: username == "root" and host.check_password(password))
        log.info("ssh password login for %r from %s: %s", username, self.peer, "accepted" if ok else "rejected")
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        self.channels = [c for c in self.channels if not c.closed]
        if kind != "session" or len(self.channels) >= MAX_CHANNELS:  # like OpenSSH's MaxSessions
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        return paramiko.OPEN_SUCCEEDED

    def check_channel_pty_request(self, channel, term, width, height, pixelwidth, pixelheight, modes) -> bool:
        self.ptys.add(channel.get_id())
        return True

    def check_channel_window_change_request(self, channel, width, height, pixelwidth, pixelheight) -> bool:
        return True

    def check_channel_env_request(self, channel, name, value) -> bool:
        return True

    def check_channel_shell_request(self, channel) -> bool:
        pty = channel.get_id() in self.ptys
        threading.Thread(target=self.service.shell_session, args=(channel, pty), daemon=True).start()
        return True

    def check_channel_exec_request(self, channel, command: bytes) -> bool:
        threading.Thread(target=self.service.exec_session, args=(channel, command), daemon=True).start()
        return True


class SshService:
    """Listens on (address, port); one thread per connection, at most MAX_CONNECTIONS."""

    def __init__(self, host: SessionHost, address: str, port: int, host_key: paramiko.PKey, guard: AuthGuard,
                 *, fragile_ident_parser: bool = False, weak_algorithms: bool = False, legacy_kex: bool = False,
                 version: str = SERVER_VERSION):
        self.host = host
        self.address = address
        self.port = port
        self.host_key = host_key
        self.guard = guard
        self.fragile_ident_parser = fragile_ident_parser  # the `crashes_on_malformed_input` flaw
        # the IXIT promises AES-CTR with HMAC-SHA2: paramiko's broken defaults stay only with `weak_ssh_algorithms`
        self.disabled_algorithms = {} if weak_algorithms else _disabled_beyond(DEVICE_ALGORITHMS)
        self.transport_class = _LegacyKexTransport if legacy_kex else paramiko.Transport  # `weak_auth_crypto`
        self.version = version  # the software version in the identification line (`undocumented_security_impl`)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._sock: socket.socket | None = None
        self._dead = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def crash(self, why: str) -> None:
        """The daemon dies: listening socket and every connection gone, nothing restarts it."""
        if self._dead.is_set():
            return
        self._dead.set()
        log.error("sshd crashed parsing %s; the SSH service is down until the next boot", why)
        if self._sock is not None:
            for action in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._sock.close):  # wakes accept()
                try:
                    action()
                except OSError:
                    pass
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def start(self, *, bind_timeout: float = 5.0) -> None:
        """Bind (retrying while a previous incarnation's socket lingers) and serve in a thread."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        deadline = time.monotonic() + bind_timeout
        while True:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.address, self.port))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        sock.listen(16)
        self._sock = sock
        threading.Thread(target=self._accept_loop, name="sshd", daemon=True).start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._dead.is_set():
            try:
                conn, peer = self._sock.accept()
            except OSError:
                if self._dead.is_set():
                    return
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("ssh connection from %s refused: too many connections", peer[0])
                conn.close()
                continue
            threading.Thread(target=self._connection, args=(conn, peer[0]), daemon=True).start()

    def _connection(self, conn: socket.socket, peer: str) -> None:
        transport: paramiko.Transport | None = None
        with self._conns_lock:
            self._conns.add(conn)
        try:
            # A real sshd (OpenSSH, dropbear) writes the packets of one loop turn (output, EOF, exit
            # status, close) in one write; paramiko sends each alone, and Nagle's algorithm would hold
            # the exit status back until the client's delayed ACK (40 ms), a delay no product has.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            wire = _IdentLoggingSocket(conn, self.crash) if self.fragile_ident_parser else conn
            transport = self.transport_class(wire, disabled_algorithms=self.disabled_algorithms)
            transport.local_version = f"SSH-2.0-{self.version}"
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, VfsSftp)
            server = _Server(self, peer)
            transport.start_server(server=server)
            deadline = time.monotonic() + LOGIN_GRACE_SECONDS
            while transport.is_active():
                if not transport.is_authenticated() and time.monotonic() > deadline:
                    log.info("ssh connection from %s: login grace time over", peer)
                    break
                channel = transport.accept(timeout=0.5)
                if channel is not None:
                    server.channels.append(channel)
        except Exception as exc:  # a bad client must never take the server down
            log.info("ssh connection from %s ended: %s", peer, exc)
        finally:
            if transport is not None:
                transport.close()
            conn.close()
            with self._conns_lock:
                self._conns.discard(conn)
            self._slots.release()

    def exec_session(self, channel: paramiko.Channel, command: bytes) -> None:
        channel.settimeout(STDIN_TIMEOUT)
        exec_io = _ExecIO(channel, LineReader(_recv(channel), None))
        shell = Shell(self.host, exec_io)
        line = command.decode("utf-8", "replace")
        log.info("ssh exec: %r", line[:200])
        try:
            status = shell.run_line(line)
        except ShellExit as exc:
            status = exc.status
        self._close(channel, status)

    def shell_session(self, channel: paramiko.Channel, pty: bool) -> None:
        send = lambda data: _safe(channel.sendall, data)  # noqa: E731
        term = TerminalIO(send, LineReader(_recv(channel), send if pty else None), crlf=pty)
        shell = Shell(self.host, term)
        term.write(self.host.motd())
        status = run_session(shell, term, lambda: self.host.prompt(shell), self.host.is_rebooting)
        self._close(channel, status)

    @staticmethod
    def _close(channel: paramiko.Channel, status: int) -> None:
        try:
            channel.send_exit_status(status)
            channel.shutdown_write()
            # paramiko answers the exec/shell request only after our callback returned; a close
            # sent before that answer would make the client fail with "Channel closed".
            time.sleep(CLOSE_DELAY)
            channel.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass
