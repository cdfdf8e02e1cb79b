"""SSH driver (paramiko): run commands on the DUT, copy files, measure login attempts.

Password authentication only, no keys and no agent: the lab logs in the way the product's
documentation says, and nothing from the lab PC's ~/.ssh leaks into a measurement. Host keys are
accepted and recorded (a DUT gets a new key when reflashed), their fingerprint kept as evidence.
A TCP-level failure is `SSHUnreachable` (lab fault); what the DUT answers is the DUT's business.
"""

from __future__ import annotations

import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from lab.errors import CommandFailed, LabLoginRejected, SSHUnreachable
from lab.steps import NullSteps, StepRecorder
from lab.transcript import Transcript

Password = str | Callable[[], str | None] | None
LOGIN_OUTCOMES = ("accepted", "rejected", "timeout", "refused", "error")


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class LoginAttempt:
    user: str
    outcome: str  # one of LOGIN_OUTCOMES
    seconds: float
    detail: str = ""


class _RecordingPolicy(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host key into the client's in-memory store and remember it."""

    def __init__(self, driver: SSHDriver) -> None:
        self._driver = driver

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self._driver._saw_host_key(key)


class SSHDriver:
    def __init__(self, host: str, port: int = 22, user: str = "root", password: Password = None, *,
                 transcript: Transcript | None = None, timeout: float = 10.0,
                 bench: str | None = None, steps: StepRecorder | None = None,
                 timeout_source: str | None = None, password_source: str | None = None) -> None:
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.transcript = transcript
        self.timeout = timeout
        self.timeout_source = timeout_source  # named in reasons of waits that last self.timeout
        self.password_source = password_source or "the lab's password"  # named when the login is rejected
        self.bench = bench
        self._steps = steps or NullSteps()
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.RLock()
        self.host_key: str | None = None  # "ssh-ed25519 SHA256:..." of the last key seen
        self.server_version: str | None = None  # the DUT's SSH banner, for the report's equipment list

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # --- connection ------------------------------------------------------------------------
    def _resolve_password(self) -> str | None:
        value = self._password() if callable(self._password) else self._password
        if value and self.transcript is not None:
            self.transcript.add_secret(value)
        return value

    def _saw_host_key(self, key: paramiko.PKey) -> None:
        seen = f"{key.get_name()} {key.fingerprint}"
        if self.host_key is not None and seen != self.host_key:
            self._note(f"host key of {self.where} changed: was {self.host_key}, now {seen}")
        elif self.host_key is None:
            self._note(f"host key of {self.where}: {seen} (accepted and recorded)")
        self.host_key = seen

    def _tcp(self, timeout: float) -> socket.socket:
        try:
            return socket.create_connection((self.host, self.port), timeout=timeout)
        except (TimeoutError, socket.timeout):
            raise SSHUnreachable(f"{self.where} did not answer a TCP connect within {timeout} s{self._source(timeout)}",
                                 bench=self.bench) from None
        except OSError as exc:
            raise SSHUnreachable(f"{self.where}: TCP connect failed ({exc.strerror or exc})",
                                 bench=self.bench) from None

    def _source(self, timeout: float) -> str:
        return f" ({self.timeout_source})" if self.timeout_source and timeout == self.timeout else ""

    def connect(self) -> paramiko.SSHClient:
        """The live client, (re)connecting if there is none or its transport died."""
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return self._client
                self._note(f"connection to {self.where} lost; reconnecting")
                self._drop()
            password = self._resolve_password()
            sock = self._tcp(self.timeout)
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_RecordingPolicy(self))
            try:
                client.connect(self.host, self.port, username=self.user, password=password, sock=sock,
                               timeout=self.timeout, banner_timeout=self.timeout, auth_timeout=self.timeout,
                               allow_agent=False, look_for_keys=False)
            except paramiko.AuthenticationException as exc:
                client.close()
                # the lab's own login (not a password test's try_login): the inventory or the sample's
                # state is wrong, not the product, so the lab cannot decide anything over SSH
                raise LabLoginRejected(f"the lab cannot log in with {self.password_source}: ssh {self.user}@{self.where} "
                                       f"rejected the lab's credentials ({exc})", bench=self.bench) from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                client.close()
                raise SSHUnreachable(f"{self.where} accepted TCP but the SSH handshake failed ({exc}; "
                                     f"handshake and login wait {self.timeout} s{self._source(self.timeout)})",
                                     bench=self.bench) from None
            key = client.get_transport().get_remote_server_key()
            self.server_version = client.get_transport().remote_version
            self._saw_host_key(key)
            self._note(f"logged in to {self.where} as {self.user}")
            self._client = client
            return client

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001
                pass
            self._client = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # --- commands --------------------------------------------------------------------------
    def _exec(self, command: str, timeout: float, stdin: bytes | None) -> tuple[int, bytes, bytes, float]:
        for fresh in (False, True):
            reused = self._client is not None
            client = self.connect()
            start = time.monotonic()
            try:
                chan = client.get_transport().open_session(timeout=self.timeout)
                chan.settimeout(0.2)
                chan.exec_command(command)
                break
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._drop()
                # A kept connection may belong to a DUT that has rebooted since: the command never
                # started, so one retry on a new connection is safe.
                if fresh or not reused:
                    raise SSHUnreachable(f"{self.where}: could not start {command!r} ({exc})", bench=self.bench) from None
        try:
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._drop()
            raise SSHUnreachable(f"{self.where}: could not start {command!r} ({exc})", bench=self.bench) from None
        out, err = bytearray(), bytearray()
        deadline = start + timeout
        exited_at = 0.0
        try:
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    exited_at = exited_at or time.monotonic()
                    if chan.eof_received or chan.closed or time.monotonic() - exited_at > 0.5:
                        break
                if time.monotonic() > deadline:
                    transport = client.get_transport()
                    if transport is None or not transport.is_active():
                        self._drop()
                        raise SSHUnreachable(f"{self.where}: connection lost while running {command!r}",
                                             bench=self.bench)
                    chan.close()
                    raise CommandFailed(
                        f"{command!r} on {self.where} did not finish within {timeout} s; "
                        f"output so far: {bytes(out[-300:]).decode(errors='replace')!r}"
                    )
                chan.status_event.wait(0.05)
            status = chan.recv_exit_status()
        finally:
            chan.close()
        return status, bytes(out), bytes(err), time.monotonic() - start

    def run(self, command: str, *, timeout: float = 30, check: bool = False,
            stdin: str | bytes | None = None) -> CommandResult:
        """Run one command; `check=True` turns a non-zero exit into `CommandFailed`."""
        data = stdin.encode() if isinstance(stdin, str) else stdin
        with self._steps.step("ssh run", bench=self.bench, command=command):
            self._record_sent(f"$ {command}")
            status, out, err, seconds = self._exec(command, timeout, data)
            result = CommandResult(command, status, out.decode(errors="replace"), err.decode(errors="replace"),
                                   seconds)
            if self.transcript is not None:
                if result.stdout:
                    self.transcript.record_received(result.stdout)
                if result.stderr:
                    self.transcript.record_received("[stderr] " + result.stderr)
            self._note(f"exit status {status} after {seconds:.3f} s")
        if check and status != 0:
            raise CommandFailed(f"{command!r} on {self.where} exited {status}: {result.stderr.strip()[-300:]}")
        return result

    # --- files -----------------------------------------------------------------------------
    def put(self, local: str | Path, remote: str) -> None:
        """Copy a file to the DUT (SFTP; `cat >` over exec when the DUT has no SFTP server)."""
        local = Path(local)
        with self._steps.step("ssh put", bench=self.bench, local=str(local), remote=remote):
            sftp = self._sftp()
            if sftp is not None:
                with sftp:
                    sftp.put(str(local), remote)
            else:
                status, _, err, _ = self._exec(f"cat > {shlex.quote(remote)}", 120, local.read_bytes())
                if status != 0:
                    raise CommandFailed(f"copying {local} to {self.where}:{remote} failed: {err.decode(errors='replace')}")
            self._note(f"put {local} -> {remote} ({local.stat().st_size} bytes)")

    def get(self, remote: str, local: str | Path) -> None:
        local = Path(local)
        with self._steps.step("ssh get", bench=self.bench, remote=remote, local=str(local)):
            sftp = self._sftp()
            if sftp is not None:
                with sftp:
                    sftp.get(remote, str(local))
            else:
                status, out, err, _ = self._exec(f"cat {shlex.quote(remote)}", 120, None)
                if status != 0:
                    raise CommandFailed(f"copying {self.where}:{remote} failed: {err.decode(errors='replace')}")
                local.write_bytes(out)
            self._note(f"get {remote} -> {local} ({local.stat().st_size} bytes)")

    def _sftp(self) -> paramiko.SFTPClient | None:
        client = self.connect()
        try:
            return client.open_sftp()
        except (paramiko.SSHException, EOFError) as exc:
            self._note(f"no SFTP on {self.where} ({exc}); copying over exec")
            return None

    # --- measurements ----------------------------------------------------------------------
    def try_login(self, user: str, password: str, *, timeout: float = 10, secret: bool = True) -> LoginAttempt:
        """One password login on a fresh connection; the outcome, never an exception."""
        start = time.monotonic()

        def done(outcome: str, detail: str = "") -> LoginAttempt:
            attempt = LoginAttempt(user, outcome, time.monotonic() - start, detail)
            self._note(f"login attempt as {user!r}: {outcome} in {attempt.seconds:.3f} s"
                       + (f" ({detail})" if detail else ""))
            return attempt

        if self.transcript is not None:
            if secret:  # a public factory default (admin, 1234) is evidence, not a secret
                self.transcript.add_secret(password)
        with self._steps.step("ssh login attempt", bench=self.bench, user=user):
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout)
            except (TimeoutError, socket.timeout):
                return done("timeout", "no TCP answer")
            except ConnectionRefusedError:
                return done("refused", "TCP connection refused")
            except OSError as exc:
                return done("error", f"TCP connect failed: {exc}")
            transport = paramiko.Transport(sock)
            transport.banner_timeout = timeout
            transport.auth_timeout = timeout
            try:
                transport.start_client(timeout=timeout)
                self._saw_host_key(transport.get_remote_server_key())
                transport.auth_password(user, password)
                return done("accepted" if transport.is_authenticated() else "rejected")
            except paramiko.BadAuthenticationType as exc:
                return done("rejected", f"password authentication not offered (allowed: {exc.allowed_types})")
            except paramiko.AuthenticationException as exc:
                text = str(exc)
                if "timeout" in text.lower():
                    return done("timeout", text)
                return done("rejected", text)
            except (TimeoutError, socket.timeout) as exc:
                return done("timeout", str(exc) or "timed out")
            except paramiko.SSHException as exc:
                outcome = "timeout" if "timeout" in str(exc).lower() or "banner" in str(exc).lower() else "error"
                return done(outcome, str(exc))
            except (EOFError, OSError) as exc:
                return done("error", f"connection closed: {exc or type(exc).__name__}")
            finally:
                transport.close()
                sock.close()

    def wait_reachable(self, timeout: float = 60.0, *, interval: float = 0.5) -> float:
        """Seconds until the DUT's SSH server sent its banner; `SSHUnreachable` after `timeout`."""
        start = time.monotonic()
        deadline = start + timeout
        last = "no attempt"
        with self._steps.step("ssh wait reachable", bench=self.bench, timeout=timeout):
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    with socket.create_connection((self.host, self.port), timeout=min(remaining, 3.0)) as sock:
                        sock.settimeout(min(max(remaining, 0.1), 3.0))
                        banner = sock.recv(256)
                        if banner.startswith(b"SSH-") or b"\nSSH-" in banner:
                            seconds = time.monotonic() - start
                            self._note(f"{self.where} reachable after {seconds:.2f} s")
                            return seconds
                        last = f"no SSH banner (got {banner[:40]!r})"
                except (TimeoutError, socket.timeout):
                    last = "timed out"
                except OSError as exc:
                    last = exc.strerror or str(exc)
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        raise SSHUnreachable(f"{self.where} not reachable within {timeout} s (last: {last})", bench=self.bench)

    # --- evidence --------------------------------------------------------------------------
    def _record_sent(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.record_sent(text)

    def _note(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.note(text)
