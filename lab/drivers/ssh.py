"""SSH driver (paramiko): run commands on the DUT, copy files, measure login attempts.

Password authentication only, no keys and no agent: the lab logs in the way the product's
documentation says, and nothing from the lab PC's ~/.ssh leaks into a measurement. Host keys are
accepted and recorded (a DUT gets a new key when reflashed), their fingerprint kept as evidence.
A TCP-level failure is `SSHUnreachable` (lab fault); what the DUT answers is the DUT's business.

One connection is kept warm for the lab's own commands: one paramiko Transport per bench, a new
channel per command (no pty, no env, no compression), TCP_NODELAY so that small SSH packets are
not held back by Nagle's algorithm against delayed ACKs. A transport found dead is reconnected
once, and the transcript says so (a DUT that restarted behind the lab's back stays visible); the
bench strategy drops the connection whenever it switches power. Login attempts (`try_login`)
and raw probes always use connections of their own.

After the strategy powered the DUT on, the first use of SSH waits until the server answers (its
banner), bounded by the boot timeout counted from power-on: "connection refused" while the DUT
boots is waiting, not an answer. The strategy attaches that wait (`attach_readiness`).
"""

from __future__ import annotations

import select
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
EXIT_WITHOUT_EOF_GRACE = 0.5  # s: a server that sent the exit status but never EOF nor close
STATUS_AFTER_EOF_WAIT = 5.0  # s at most for the exit status once all output is in (it follows EOF)


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


@dataclass(frozen=True)
class AuthTiming:
    """One failed-login timing: only the authentication exchanges, on one connection.

    `baseline` is the round trip of an unauthenticated ("none") request, which the server's
    authentication code answers at once without checking a password: the network and the
    server's own turnaround. `attempt` is the round trip of one password attempt. Their
    difference is what a password attempt costs beyond an immediate answer.
    """

    user: str
    outcome: str  # of the password attempt: one of LOGIN_OUTCOMES
    baseline: float | None
    attempt: float | None
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
        self._readiness: Callable[[], None] | None = None  # the strategy's wait after a power-on
        self.reconnects = 0  # kept connections found dead and replaced (each one noted as evidence)

    def attach_readiness(self, wait: Callable[[], None] | None) -> None:
        """`wait` runs before every new connection; the bench strategy makes it wait for SSH after
        a power-on (once per boot) and return at once otherwise."""
        self._readiness = wait

    def _ready(self) -> None:
        if self._readiness is not None:
            self._readiness()

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
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except (TimeoutError, socket.timeout):
            raise SSHUnreachable(f"{self.where} did not answer a TCP connect within {timeout} s{self._source(timeout)}",
                                 bench=self.bench) from None
        except OSError as exc:
            raise SSHUnreachable(f"{self.where}: TCP connect failed ({exc.strerror or exc})",
                                 bench=self.bench) from None
        _nodelay(sock)
        return sock

    def _source(self, timeout: float) -> str:
        return f" ({self.timeout_source})" if self.timeout_source and timeout == self.timeout else ""

    def connect(self) -> paramiko.SSHClient:
        """The live client, (re)connecting if there is none or its transport died."""
        self._ready()  # outside the lock: the strategy may drop the connection while it waits
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return self._client
                self._lost("its transport is no longer active")
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

    def _lost(self, why: str, client: paramiko.SSHClient | None = None) -> None:
        """A kept connection died without the lab closing it: say so, it may be a DUT that restarted."""
        with self._lock:
            if self._client is None or (client is not None and client is not self._client):
                return  # another thread has already replaced it
            self.reconnects += 1
            self._note(f"kept connection to {self.where} lost ({why}); the DUT may have restarted since the "
                       f"last command; reconnecting")
            self._drop()

    def drop(self, why: str) -> None:
        """Close the kept connection because the lab changed the DUT's power (noted, not a loss)."""
        with self._lock:
            if self._client is not None:
                self._note(f"connection to {self.where} closed: {why}")
            self._drop()

    def _drop(self, client: paramiko.SSHClient | None = None) -> None:
        """Close the kept client (only `client`, when given: a newer one made meanwhile stays)."""
        with self._lock:
            if self._client is None or (client is not None and client is not self._client):
                return
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
        """One command on a new channel of the kept transport: (exit status, stdout, stderr, seconds).

        The exit status is -1 when the session ended without one. Waiting is on the channel's
        pipe (data, EOF, close), never a poll loop, so a command costs its round trips only.
        """
        for fresh in (False, True):
            reused = self._client is not None
            client = self.connect()
            start = time.monotonic()
            try:
                chan = client.get_transport().open_session(timeout=self.timeout)
                chan.settimeout(timeout)  # bounds sending stdin into a full window; reads wait on fileno()
                chan.exec_command(command)
                break
            except (paramiko.SSHException, EOFError, OSError, AttributeError) as exc:
                # A kept connection may belong to a DUT that has restarted since: the command never
                # started, so one retry on a new connection is safe (and noted).
                if fresh or not reused:
                    self._drop(client)
                    raise SSHUnreachable(f"{self.where}: could not start {command!r} ({exc})", bench=self.bench) from None
                self._lost(f"opening a channel failed: {exc or type(exc).__name__}", client)
        try:
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            chan.close()
            self._drop(client)
            raise SSHUnreachable(f"{self.where}: could not start {command!r} ({exc})", bench=self.bench) from None
        out, err = bytearray(), bytearray()
        deadline = start + timeout
        exited_at = 0.0
        try:
            fd = chan.fileno()  # readable on stdout or stderr data, EOF and close
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.eof_received or chan.closed:
                    if not (chan.recv_ready() or chan.recv_stderr_ready()):
                        break
                    continue
                now = time.monotonic()
                if chan.exit_status_ready():
                    exited_at = exited_at or now
                    if now - exited_at > EXIT_WITHOUT_EOF_GRACE:
                        break
                if now > deadline:
                    transport = client.get_transport()
                    if transport is None or not transport.is_active():
                        self._drop(client)
                        raise SSHUnreachable(f"{self.where}: connection lost while running {command!r}",
                                             bench=self.bench)
                    raise CommandFailed(
                        f"{command!r} on {self.where} did not finish within {timeout} s; "
                        f"output so far: {bytes(out[-300:]).decode(errors='replace')!r}"
                    )
                select.select([fd], [], [], max(0.0, min(deadline - now, 0.05 if exited_at else 0.5)))
            if not chan.status_event.wait(max(0.0, min(deadline - time.monotonic(), STATUS_AFTER_EOF_WAIT))):
                self._note(f"{command!r}: output ended but no exit status arrived")
            status = chan.exit_status if chan.exit_status_ready() else -1
            if status == -1 and chan.closed and not chan.eof_received:
                transport = client.get_transport()
                if transport is None or not transport.is_active():
                    self._drop(client)
                    raise SSHUnreachable(f"{self.where}: connection lost while running {command!r}", bench=self.bench)
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
        start = 0.0  # set once the DUT is ready: a boot still under way is not part of the attempt

        def done(outcome: str, detail: str = "") -> LoginAttempt:
            attempt = LoginAttempt(user, outcome, time.monotonic() - start, detail)
            self._note(f"login attempt as {user!r}: {outcome} in {attempt.seconds:.3f} s"
                       + (f" ({detail})" if detail else ""))
            return attempt

        if self.transcript is not None:
            if secret:  # a public factory default (admin, 1234) is evidence, not a secret
                self.transcript.add_secret(password)
        self._ready()
        start = time.monotonic()
        with self._steps.step("ssh login attempt", bench=self.bench, user=user):
            return done(*self._on_fresh_connection(lambda t: _auth_password(t, user, password), timeout))

    def time_auth(self, user: str, password: str, *, attempt_first: bool = False, timeout: float = 10) -> AuthTiming:
        """Time a password attempt against a "none" request on one fresh connection.

        Connecting and the key exchange are not timed: on a slow device they vary by more than
        the delay being measured, and an attacker pays them once per connection, not per guess.
        `attempt_first` alternates the order between calls, so a drift hits both alike.
        """
        if self.transcript is not None:
            self.transcript.add_secret(password)
        self._ready()
        timings: dict[str, float] = {}

        def done(outcome: str, detail: str = "") -> AuthTiming:
            t = AuthTiming(user, outcome, timings.get("none"), timings.get("password"), detail)
            self._note(f"timed login as {user!r}: none request {_ms(t.baseline)}, password attempt {outcome} in "
                       f"{_ms(t.attempt)}" + (f" ({detail})" if detail else ""))
            return t

        def none(transport: paramiko.Transport) -> str:
            start = time.monotonic()
            try:
                transport.auth_none(user)
                return "the server accepted an unauthenticated login"
            except paramiko.BadAuthenticationType:
                return ""  # the expected answer: "none" refused, the methods listed
            except paramiko.AuthenticationException as exc:
                return "" if "timeout" not in str(exc).lower() else f"none request: {exc}"
            finally:
                timings["none"] = time.monotonic() - start

        def attempt(transport: paramiko.Transport) -> str:
            start = time.monotonic()
            try:
                return _auth_password(transport, user, password)[0]
            finally:
                timings["password"] = time.monotonic() - start

        def timed(transport: paramiko.Transport) -> tuple[str, str]:
            if attempt_first:
                outcome = attempt(transport)
                return outcome, (none(transport) if outcome == "rejected" else "")
            problem = none(transport)
            return (attempt(transport) if not problem else "error"), problem

        with self._steps.step("ssh timed login attempt", bench=self.bench, user=user):
            return done(*self._on_fresh_connection(timed, timeout))

    def _on_fresh_connection(self, use: Callable[[paramiko.Transport], tuple[str, str]],
                             timeout: float) -> tuple[str, str]:
        """Connect, exchange keys, then `use` the transport; (outcome, detail), never an exception.

        A connection of its own, never the kept one: what a login attempt costs is part of what is
        measured, and a failed attempt must not spoil the lab's own session.
        """
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except (TimeoutError, socket.timeout):
            return "timeout", "no TCP answer"
        except ConnectionRefusedError:
            return "refused", "TCP connection refused"
        except OSError as exc:
            return "error", f"TCP connect failed: {exc}"
        _nodelay(sock)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        try:
            transport.start_client(timeout=timeout)
            self._saw_host_key(transport.get_remote_server_key())
            return use(transport)
        except (TimeoutError, socket.timeout) as exc:
            return "timeout", str(exc) or "timed out"
        except paramiko.SSHException as exc:
            text = str(exc)
            return ("timeout" if "timeout" in text.lower() or "banner" in text.lower() else "error"), text
        except (EOFError, OSError) as exc:
            return "error", f"connection closed: {exc or type(exc).__name__}"
        finally:
            transport.close()
            sock.close()

    def probe_banner(self, timeout: float) -> tuple[bool, str]:
        """One look: does the SSH server send its banner within `timeout`? (answered, what was seen)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                banner = sock.recv(256)
                if banner.startswith(b"SSH-") or b"\nSSH-" in banner:
                    return True, banner.split(b"\n", 1)[0].strip().decode(errors="replace")
                return False, f"no SSH banner (got {banner[:40]!r})"
        except (TimeoutError, socket.timeout):
            return False, "timed out"
        except OSError as exc:
            return False, exc.strerror or str(exc)

    def wait_reachable(self, timeout: float = 60.0, *, interval: float = 0.5) -> float:
        """Seconds until the DUT's SSH server sent its banner; `SSHUnreachable` after `timeout`.

        After a power-on by the strategy, its wait (bounded by the boot timeout) comes first.
        """
        self._ready()
        start = time.monotonic()
        deadline = start + timeout
        last = "no attempt"
        with self._steps.step("ssh wait reachable", bench=self.bench, timeout=timeout):
            for _ in range(int(timeout / max(interval, 0.05)) + 2):  # bounded in count as in time
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                answered, last = self.probe_banner(min(max(remaining, 0.1), 3.0))
                if answered:
                    seconds = time.monotonic() - start
                    self._note(f"{self.where} reachable after {seconds:.2f} s")
                    return seconds
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        raise SSHUnreachable(f"{self.where} not reachable within {timeout} s (last: {last})", bench=self.bench)

    # --- evidence --------------------------------------------------------------------------
    def note(self, text: str) -> None:
        """A line of evidence in this driver's transcript (e.g. the strategy's wait for SSH)."""
        self._note(text)

    def _record_sent(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.record_sent(text)

    def _note(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.note(text)


def _nodelay(sock: socket.socket) -> None:
    """Send SSH packets at once: with Nagle's algorithm a channel request waits for the ACK of the
    previous packet, which the peer delays (40 ms on Linux), on every command."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _auth_password(transport: paramiko.Transport, user: str, password: str) -> tuple[str, str]:
    """One password attempt on a connected transport: (outcome, detail)."""
    try:
        transport.auth_password(user, password)
        return ("accepted" if transport.is_authenticated() else "rejected"), ""
    except paramiko.BadAuthenticationType as exc:
        return "rejected", f"password authentication not offered (allowed: {exc.allowed_types})"
    except paramiko.AuthenticationException as exc:
        text = str(exc)
        return ("timeout" if "timeout" in text.lower() else "rejected"), text


def _ms(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds * 1000:.1f} ms"
