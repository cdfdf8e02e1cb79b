"""The device's small POSIX-ish shell, its virtual filesystem and its terminal line discipline.

One interpreter serves the serial console, SSH exec, the SSH interactive shell and the debug
service, so every way in behaves the same. It never raises on input: garbage, binary and huge
lines end in an error message and a non-zero status, as on a real shell.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import stat as stat_mod
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab.sim.flash import Flash, FlashError
from lab.sim.updater import RadioAgent, UpdateAgent

log = logging.getLogger("certlab.sim.shell")

MAX_LINE = 64 * 1024  # characters a shell line may have
MAX_TERMINAL_LINE = 4096  # characters a terminal line may have (the rest is dropped)
MAX_FILE = 64 * 1024 * 1024  # bytes `cat`/`update` read from a file
MAX_CAT = 1024 * 1024  # bytes `cat` prints
MAX_SLEEP = 30.0
HOME = "/root"


class ShellExit(Exception):
    """`exit`/`logout`: the session ends with `status`."""

    def __init__(self, status: int = 0):
        super().__init__(status)
        self.status = status


class ConfigCorrupt(Exception):
    """config.json cannot be read as a JSON object."""


# --- what the shell needs from the device --------------------------------------------------


class DeviceHost(Protocol):
    hostname: str
    model: str
    vfs: "Vfs"

    def version_line(self) -> str: ...
    def uptime(self) -> float: ...
    def check_password(self, password: str) -> bool: ...
    def set_password(self, password: str) -> None: ...
    def config_read(self) -> dict[str, object]: ...  # raises ConfigCorrupt
    def config_set(self, key: str, value: object) -> None: ...  # raises ConfigCorrupt
    def factory_reset(self, say: Callable[[str], None]) -> None: ...
    def update_agent(self) -> UpdateAgent: ...
    def request_reboot(self, reason: str) -> None: ...
    def radio_agent(self) -> RadioAgent: ...
    def radio_version_line(self) -> str: ...
    def place_in_inactive_slot(self, data: bytes) -> str: ...
    def tamper_alert(self) -> str: ...
    def tamper_clear(self) -> bool: ...
    def update_settings_lines(self) -> list[str]: ...


class ShellIO(Protocol):
    def write(self, text: str) -> None: ...
    def write_err(self, text: str) -> None: ...
    def read_line(self, prompt: str, *, echo: bool = True) -> str | None: ...


# --- virtual filesystem --------------------------------------------------------------------


class VfsError(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Node:
    path: str  # normalised absolute virtual path
    kind: str  # "flash" | "ram" | "vdir" | "vfile" | "null"
    target: str  # flash-relative path, real path, or "" for virtual nodes


@dataclass(frozen=True)
class VStat:
    size: int
    is_dir: bool
    mtime: float
    perm: int = 0o644  # a flash file's permission bits: those of its real file (the device sets them)

    @property
    def mode(self) -> int:
        return (stat_mod.S_IFDIR | 0o755) if self.is_dir else (stat_mod.S_IFREG | self.perm)


class Vfs:
    """Maps the device's paths onto flash partitions, a RAM directory and virtual files.

    /data -> flash data/, /etc/certlab -> flash config/, /root -> flash home/, /tmp -> RAM.
    `specials` provides the content of read-only virtual files such as /proc/uptime.
    """

    MOUNTS = {"/data": "data", "/etc/certlab": "config", "/root": "home"}
    VDIRS = {
        "/": ["bin", "data", "dev", "etc", "proc", "root", "tmp"],
        "/bin": [],
        "/dev": ["null"],
        "/etc": ["certlab", "hostname", "version"],
        "/proc": ["uptime"],
    }

    def __init__(self, flash: Flash, ram_dir: Path, specials: dict[str, Callable[[], bytes]]):
        self.flash = flash
        self.ram_dir = Path(ram_dir)
        self.specials = specials

    def resolve(self, path: str, cwd: str = HOME) -> Node:
        if path.startswith("~"):
            path = HOME + path[1:]
        full = posixpath.normpath(posixpath.join(cwd, path)) if path else cwd
        if full.startswith("//"):
            full = "/" + full.lstrip("/")
        if full == "/dev/null":
            return Node(full, "null", "")
        if full in self.specials:
            return Node(full, "vfile", "")
        if full in self.VDIRS:
            return Node(full, "vdir", "")
        if full == "/tmp" or full.startswith("/tmp/"):
            rel = full[len("/tmp") :].lstrip("/")
            return Node(full, "ram", str(self.ram_dir / rel) if rel else str(self.ram_dir))
        for mount, part in sorted(self.MOUNTS.items(), key=lambda kv: -len(kv[0])):
            if full == mount or full.startswith(mount + "/"):
                return Node(full, "flash", part + full[len(mount) :])
        return Node(full, "none", "")

    # -- queries --

    def exists(self, node: Node) -> bool:
        if node.kind in ("vdir", "vfile", "null"):
            return True
        if node.kind == "flash":
            return self.flash.exists(node.target)
        if node.kind == "ram":
            return Path(node.target).exists()
        return False

    def is_dir(self, node: Node) -> bool:
        if node.kind == "vdir":
            return True
        if node.kind == "flash":
            return self.flash.is_dir(node.target)
        if node.kind == "ram":
            return Path(node.target).is_dir()
        return False

    def stat(self, node: Node) -> VStat:
        if node.kind == "vdir":
            return VStat(0, True, time.time())
        if node.kind in ("vfile", "null"):
            return VStat(len(self.read(node)), False, time.time())
        if not self.exists(node):
            raise VfsError(node.path, "No such file or directory")
        if node.kind == "flash":
            is_dir = self.flash.is_dir(node.target)
            perm = 0o755 if is_dir else stat_mod.S_IMODE(os.stat(self.flash.root / node.target).st_mode)
            return VStat(0 if is_dir else self.flash.size(node.target), is_dir, self.flash.mtime(node.target), perm)
        st = os.stat(node.target)
        return VStat(st.st_size, stat_mod.S_ISDIR(st.st_mode), st.st_mtime)

    def listdir(self, node: Node) -> list[str]:
        if node.kind == "vdir":
            return list(self.VDIRS[node.path])
        if not self.exists(node):
            raise VfsError(node.path, "No such file or directory")
        if not self.is_dir(node):
            raise VfsError(node.path, "Not a directory")
        if node.kind == "flash":
            return [n for n in self.flash.listdir(node.target) if ".tmp-" not in n]
        return sorted(os.listdir(node.target))

    def read(self, node: Node) -> bytes:
        if node.kind == "null":
            return b""
        if node.kind == "vfile":
            return self.specials[node.path]()
        if node.kind == "vdir" or self.is_dir(node):
            raise VfsError(node.path, "Is a directory")
        if not self.exists(node):
            raise VfsError(node.path, "No such file or directory")
        if node.kind == "flash":
            if self.flash.size(node.target) > MAX_FILE:
                raise VfsError(node.path, "File too large")
            return self.flash.read(node.target)
        if os.path.getsize(node.target) > MAX_FILE:
            raise VfsError(node.path, "File too large")
        return Path(node.target).read_bytes()

    # -- changes --

    def _writable(self, node: Node) -> None:
        if node.kind in ("vdir", "vfile"):
            raise VfsError(node.path, "Read-only file system")
        if node.kind == "none":
            raise VfsError(node.path, "No such file or directory")

    def write(self, node: Node, data: bytes, *, append: bool = False) -> None:
        if node.kind == "null":
            return
        self._writable(node)
        if self.is_dir(node):
            raise VfsError(node.path, "Is a directory")
        try:
            if node.kind == "flash":
                self.flash.write(node.target, data, append=append)
            else:
                with open(node.target, "ab" if append else "wb") as f:
                    f.write(data)
        except (FlashError, FileNotFoundError):
            raise VfsError(node.path, "No such file or directory") from None

    def pwrite(self, node: Node, offset: int, data: bytes) -> None:
        if node.kind == "null":
            return
        self._writable(node)
        if offset + len(data) > MAX_FILE:
            raise VfsError(node.path, "No space left on device")
        try:
            if node.kind == "flash":
                self.flash.pwrite(node.target, offset, data)
            else:
                with open(node.target, "r+b" if os.path.exists(node.target) else "w+b") as f:
                    f.seek(offset)
                    f.write(data)
        except (FlashError, FileNotFoundError):
            raise VfsError(node.path, "No such file or directory") from None

    def truncate(self, node: Node, size: int = 0) -> None:
        self._writable(node)
        if node.kind == "flash":
            self.flash.truncate(node.target, size)
        elif node.kind == "ram":
            with open(node.target, "r+b" if os.path.exists(node.target) else "w+b") as f:
                f.truncate(size)

    def mkdir(self, node: Node, *, parents: bool = False) -> None:
        if node.kind in ("vdir", "vfile", "null") or (node.kind != "none" and self.exists(node)):
            if parents and self.is_dir(node):
                return
            raise VfsError(node.path, "File exists")
        self._writable(node)
        try:
            if node.kind == "flash":
                self.flash.mkdir(node.target, parents=parents, exist_ok=parents)
            else:
                Path(node.target).mkdir(parents=parents, exist_ok=parents)
        except (FlashError, FileNotFoundError):
            raise VfsError(node.path, "No such file or directory") from None

    def is_mount_point(self, node: Node) -> bool:
        return node.path in self.MOUNTS or node.path == "/tmp"

    def unlink(self, node: Node) -> None:
        self._writable(node)
        if node.kind == "null":
            raise VfsError(node.path, "Permission denied")
        if not self.exists(node):
            raise VfsError(node.path, "No such file or directory")
        if self.is_dir(node):
            raise VfsError(node.path, "Is a directory")
        if node.kind == "flash":
            self.flash.unlink(node.target)
        else:
            os.unlink(node.target)

    def rmdir(self, node: Node) -> None:
        self._writable(node)
        if self.is_mount_point(node):
            raise VfsError(node.path, "Device or resource busy")
        if not self.is_dir(node):
            raise VfsError(node.path, "Not a directory")
        if self.listdir(node):
            raise VfsError(node.path, "Directory not empty")
        if node.kind == "flash":
            self.flash.rmdir(node.target)
        else:
            os.rmdir(node.target)

    def rmtree(self, node: Node) -> None:
        self._writable(node)
        if self.is_mount_point(node):  # rm -r /data empties the partition, keeps the mount
            for name in self.listdir(node):
                self.rmtree(self.resolve(name, node.path))
            return
        if node.kind == "flash":
            self.flash.remove_tree(node.target)
        elif os.path.isdir(node.target):
            shutil.rmtree(node.target, ignore_errors=True)
        else:
            os.unlink(node.target)

    def rename(self, src: Node, dst: Node) -> None:
        self._writable(src)
        self._writable(dst)
        if src.kind != dst.kind:
            raise VfsError(dst.path, "Invalid cross-device link")
        if not self.exists(src):
            raise VfsError(src.path, "No such file or directory")
        if src.kind == "flash":
            self.flash.rename(src.target, dst.target)
        else:
            os.replace(src.target, dst.target)


# --- terminal line discipline --------------------------------------------------------------


class LineReader:
    """Cooked-mode input over a byte stream: echo, backspace, ^C, ^U, ^D, CR/LF/CRLF line ends.

    `recv()` returns b"" at end of stream (then `eof` is set for good); ^D on an empty line
    also returns None but leaves the stream open. `send` is None for a stream without a
    terminal (SSH exec stdin), in which case nothing is echoed.
    """

    def __init__(self, recv: Callable[[], bytes], send: Callable[[bytes], None] | None, *, max_line: int = MAX_TERMINAL_LINE):
        self._recv = recv
        self._send = send
        self._pending = b""
        self._last_cr = False
        self._max = max_line
        self.eof = False
        self.interrupted = False  # the last line was abandoned with ^C

    def _echo(self, data: bytes) -> None:
        if self._send is not None and data:
            self._send(data)

    def read_line(self, *, echo: bool = True) -> str | None:
        """One line without its terminator; None at end of stream."""
        self.interrupted = False
        line = bytearray()
        esc = 0  # 1: after ESC, 2: inside a CSI sequence
        while True:
            if not self._pending:
                if self.eof:
                    return None
                data = self._recv()
                if not data:
                    self.eof = True
                    return line.decode("utf-8", "replace") if line else None
                self._pending = data
            data, self._pending = self._pending, b""
            for i, b in enumerate(data):
                last_cr, self._last_cr = self._last_cr, b == 0x0D
                if esc == 1:
                    esc = 2 if b == 0x5B else 0
                    continue
                if esc == 2:
                    if 0x40 <= b <= 0x7E:
                        esc = 0
                    continue
                if b in (0x0D, 0x0A):
                    if b == 0x0A and last_cr:
                        continue
                    self._pending = data[i + 1 :]
                    self._echo(b"\r\n")
                    return line.decode("utf-8", "replace")
                if b in (0x08, 0x7F):
                    if line:
                        # drop a whole UTF-8 sequence
                        while line and (line[-1] & 0xC0) == 0x80:
                            line.pop()
                        if line:
                            line.pop()
                        if echo:
                            self._echo(b"\b \b")
                elif b == 0x03:  # ^C: abandon the line
                    self._pending = data[i + 1 :]
                    self.interrupted = True
                    self._echo(b"^C\r\n")
                    return ""
                elif b == 0x15:  # ^U: kill the line
                    if echo:
                        self._echo(b"\b \b" * len(line.decode("utf-8", "replace")))
                    line.clear()
                elif b == 0x04:  # ^D on an empty line: end of this session's input
                    if not line:
                        self._pending = data[i + 1 :]
                        self._echo(b"\r\n")
                        return None
                elif b == 0x1B:
                    esc = 1
                elif b < 0x20 and b != 0x09:
                    continue
                elif len(line) < self._max:
                    line.append(b)
                    if echo:
                        self._echo(bytes([b]))


class TerminalIO:
    """ShellIO over a terminal (console, SSH pty, debug port): CRLF output, echoed input."""

    def __init__(self, send: Callable[[bytes], None], reader: LineReader, *, crlf: bool = True):
        self._send = send
        self.reader = reader
        self._crlf = crlf

    def write(self, text: str) -> None:
        if self._crlf:
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        self._send(text.encode("utf-8", "replace"))

    write_err = write

    def read_line(self, prompt: str, *, echo: bool = True) -> str | None:
        if prompt:
            self.write(prompt)
        return self.reader.read_line(echo=echo)


class _Capture:
    """Redirected stdout/stderr: collects text, reads still come from the real session."""

    def __init__(self, inner: ShellIO, *, out: bool, err: bool, err_to_out: bool = False):
        self.inner = inner
        self.out_buf: list[str] = []
        self._out, self._err, self._err_to_out = out, err, err_to_out

    def write(self, text: str) -> None:
        (self.out_buf.append if self._out else self.inner.write)(text)

    def write_err(self, text: str) -> None:
        if self._err_to_out:
            self.write(text)
        elif not self._err:
            self.inner.write_err(text)

    def read_line(self, prompt: str, *, echo: bool = True) -> str | None:
        return self.inner.read_line(prompt, echo=echo)


# --- lexer and parser ----------------------------------------------------------------------


class ShellSyntaxError(Exception):
    pass


_VAR = re.compile(r"\$(?:(\?)|([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")
_PLACEHOLDER = re.compile(r"\0([^\0]*)\0")


def tokenize(line: str) -> list[tuple[str, str]]:
    """POSIX-style words and operators: ("w", word) or ("op", op). Quotes and \\ are honoured."""
    tokens: list[tuple[str, str]] = []
    word: list[str] = []
    in_word = quoted = False
    i, n = 0, len(line)

    def variable(at: int) -> int:
        """`$?`, `$NAME`, `${NAME}` at line[at] == "$": appends a placeholder, returns the next index."""
        m = _VAR.match(line, at)
        if not m:
            word.append("$")
            return at + 1
        word.append(f"\0{m.group(1) or m.group(2) or m.group(3)}\0")
        return m.end()

    def end_word() -> None:
        nonlocal in_word, quoted
        if in_word:
            tokens.append(("w", "".join(word)))
        word.clear()
        in_word = quoted = False

    while i < n:
        c = line[i]
        if c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated quoted string")
            word.append(line[i + 1 : j])
            in_word = quoted = True
            i = j + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                c = line[i]
                if c == '"':
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '"\\$`\n':
                    word.append(line[i + 1])
                    i += 2
                    continue
                if c == "$":
                    i = variable(i)
                    continue
                word.append(c)
                i += 1
            in_word = quoted = True
            i += 1
        elif c == "\\":
            if i + 1 < n:
                word.append(line[i + 1])
                in_word = quoted = True
            i += 2
        elif c in " \t\r\n":
            end_word()
            i += 1
        elif c == "#" and not in_word:
            break
        elif c == "$":
            i = variable(i)
            in_word = True
        elif c in ";&|":
            end_word()
            two = line[i : i + 2]
            op = two if two in ("&&", "||") else c
            tokens.append(("op", op))
            i += len(op)
        elif c in "<>":
            fd = ""
            if in_word and not quoted and "".join(word) in ("1", "2"):
                fd = "".join(word)
                word.clear()
                in_word = False
            end_word()
            op = c
            if c == ">" and line[i : i + 2] == ">>":
                op = ">>"
            elif c == "<" and line[i : i + 2] == "<<":
                op = "<<-" if line[i : i + 3] == "<<-" else "<<"
            elif c == ">" and line[i + 1 : i + 3] in ("&1", "&2"):
                op = ">" + line[i + 1 : i + 3]
            tokens.append(("op", fd + op))
            i += len(op)
        else:
            word.append(c)
            in_word = True
            i += 1
    end_word()
    return tokens


@dataclass
class Command:
    argv: list[str]
    redirects: list[tuple[str, str]]  # (op, target) with op in >, >>, 2>, 2>>, 2>&1, >&2, <


def parse(line: str) -> list[tuple[str, Command]]:
    """[(connector, command)]: connector is how it depends on the previous one (";", "&&", "||")."""
    result: list[tuple[str, Command]] = []
    connector = ";"
    cmd = Command([], [])
    tokens = tokenize(line)
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "w":
            cmd.argv.append(value)
        elif value in ("2>&1", ">&2", "1>&2"):
            cmd.redirects.append((value, ""))
        elif value in (">", ">>", "1>", "1>>", "2>", "2>>", "<", "<<", "<<-"):
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "w":
                raise ShellSyntaxError(f"syntax error near unexpected token `{value}'")
            cmd.redirects.append((value.removeprefix("1"), tokens[i + 1][1]))
            i += 1
        elif value == "|":
            raise ShellSyntaxError("pipes are not supported on this device")
        else:  # ; && || &
            if not cmd.argv and not cmd.redirects:
                if value in ("&&", "||") or result:
                    raise ShellSyntaxError(f"syntax error near unexpected token `{value}'")
            else:
                result.append((connector, cmd))
            connector = ";" if value == "&" else value
            cmd = Command([], [])
        i += 1
    if cmd.argv or cmd.redirects:
        result.append((connector, cmd))
    elif connector in ("&&", "||"):
        raise ShellSyntaxError("syntax error: unexpected end of line")
    return result


# --- the interpreter -----------------------------------------------------------------------

SH_NAMES = {"sh", "/bin/sh", "bash", "/bin/bash", "ash", "/bin/ash"}
BIN_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/")


class Shell:
    """One session's interpreter (its own cwd and last status)."""

    def __init__(self, host: DeviceHost, io: ShellIO):
        self.host = host
        self.io = io
        self.cwd = HOME
        self.status = 0
        self._depth = 0
        self._commands: dict[str, Callable[[list[str], ShellIO], int]] = {
            name.removeprefix("cmd_").replace("_", "-"): getattr(self, name)
            for name in dir(self)
            if name.startswith("cmd_")
        }

    # -- entry points --

    def run_line(self, line: str, io: ShellIO | None = None) -> int:
        """Run one line; returns its status. Raises ShellExit on exit/logout, nothing else."""
        io = io or self.io
        try:
            if len(line) > MAX_LINE:
                io.write_err("sh: line too long\n")
                self.status = 2
                return 2
            line = line.replace("\x00", "")
            try:
                commands = parse(line)
            except ShellSyntaxError as exc:
                io.write_err(f"sh: {exc}\n")
                self.status = 2
                return 2
            for connector, cmd in commands:
                if connector == "&&" and self.status != 0:
                    continue
                if connector == "||" and self.status == 0:
                    continue
                self.status = self._run_command(cmd, io)
            return self.status
        except ShellExit:
            raise
        except Exception:  # never crash a session on input
            log.exception("shell error on line %r", line[:200])
            io.write_err("sh: internal error\n")
            self.status = 1
            return 1

    def _expand(self, word: str) -> str:
        if "\0" not in word:
            return word
        env = {"?": str(self.status), "HOME": HOME, "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh",
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PWD": self.cwd, "HOSTNAME": self.host.hostname}
        return _PLACEHOLDER.sub(lambda m: env.get(m.group(1), ""), word)

    def _run_command(self, cmd: Command, io: ShellIO) -> int:
        cmd = Command([self._expand(w) for w in cmd.argv], [(op, self._expand(t)) for op, t in cmd.redirects])
        out_target: tuple[str, str] | None = None
        capture_out = capture_err = err_to_out = False
        vfs = self.host.vfs
        for op, target in cmd.redirects:
            if op in (">", ">>"):
                node = vfs.resolve(target, self.cwd)
                try:
                    if op == ">" or not vfs.exists(node):
                        vfs.write(node, b"")
                except VfsError as exc:
                    io.write_err(f"sh: cannot create {target}: {exc.reason}\n")
                    return 1
                out_target, capture_out = (target, op), True
            elif op in ("2>", "2>>"):
                node = vfs.resolve(target, self.cwd)
                if node.kind != "null":
                    try:
                        if op == "2>" or not vfs.exists(node):
                            vfs.write(node, b"")
                    except VfsError as exc:
                        io.write_err(f"sh: cannot create {target}: {exc.reason}\n")
                        return 1
                capture_err = True  # stderr to a file other than /dev/null is dropped
            elif op == "2>&1":
                err_to_out = True
            elif op == "<":
                node = vfs.resolve(target, self.cwd)
                if not vfs.exists(node):
                    io.write_err(f"sh: cannot open {target}: No such file\n")
                    return 1
        if not cmd.argv:
            return 0
        run_io: ShellIO = io
        cap: _Capture | None = None
        if capture_out or capture_err or err_to_out:
            cap = _Capture(io, out=capture_out, err=capture_err, err_to_out=err_to_out)
            run_io = cap
        try:
            status = self._exec(cmd.argv, run_io)
        finally:
            if cap is not None and out_target is not None:
                data = "".join(cap.out_buf).encode()
                node = vfs.resolve(out_target[0], self.cwd)
                try:
                    vfs.write(node, data, append=True)
                except VfsError as exc:
                    io.write_err(f"sh: write error: {exc.reason}\n")
        return status

    def _exec(self, argv: list[str], io: ShellIO) -> int:
        name = argv[0]
        if name in SH_NAMES:
            return self._sh(argv, io)
        for prefix in BIN_DIRS:
            if name.startswith(prefix) and name[len(prefix) :] in self._commands:
                name = name[len(prefix) :]
        func = self._commands.get(name)
        if func is None:
            io.write_err(f"sh: {name}: not found\n")
            return 127
        return func(argv[1:], io)

    def _sh(self, argv: list[str], io: ShellIO) -> int:
        """`sh -c SCRIPT` (what Ansible's raw module sends) runs SCRIPT in this shell."""
        args = argv[1:]
        while args and args[0].startswith("-") and args[0] != "-c":
            args = args[1:]  # -e, -l, ...
        if len(args) >= 2 and args[0] == "-c":
            if self._depth > 8:
                io.write_err("sh: too many nested shells\n")
                return 2
            self._depth += 1
            try:
                return self.run_line(args[1], io)
            except ShellExit as exc:  # `sh -c 'exit 3'` ends the child shell, not this one
                return exc.status
            finally:
                self._depth -= 1
        if not args:
            io.write_err("sh: nested interactive shells are not supported\n")
            return 2
        io.write_err(f"sh: {args[0]}: not found\n")
        return 127

    # -- helpers --

    def _node(self, path: str) -> Node:
        return self.host.vfs.resolve(path, self.cwd)

    @staticmethod
    def _flags(args: list[str], allowed: str) -> tuple[set[str], list[str]] | str:
        flags: set[str] = set()
        rest: list[str] = []
        only_args = False
        for a in args:
            if not only_args and a == "--":
                only_args = True
            elif not only_args and a.startswith("-") and len(a) > 1:
                for ch in a[1:]:
                    if ch not in allowed:
                        return ch
                    flags.add(ch)
            else:
                rest.append(a)
        return flags, rest

    # -- commands (cmd_x-y is the command "x-y") --

    def cmd_help(self, args: list[str], io: ShellIO) -> int:
        io.write("Built-in commands:\n  " + " ".join(sorted(self._commands)) + "\n")
        return 0

    def cmd_true(self, args: list[str], io: ShellIO) -> int:
        return 0

    def cmd_false(self, args: list[str], io: ShellIO) -> int:
        return 1

    def cmd_exit(self, args: list[str], io: ShellIO) -> int:
        try:
            status = int(args[0]) & 0xFF if args else self.status
        except ValueError:
            status = 2
        raise ShellExit(status)

    cmd_logout = cmd_exit

    def cmd_echo(self, args: list[str], io: ShellIO) -> int:
        newline = True
        if args and args[0] == "-n":
            newline, args = False, args[1:]
        io.write(" ".join(args) + ("\n" if newline else ""))
        return 0

    def cmd_id(self, args: list[str], io: ShellIO) -> int:
        io.write("uid=0(root) gid=0(root) groups=0(root)\n")
        return 0

    def cmd_whoami(self, args: list[str], io: ShellIO) -> int:
        io.write("root\n")
        return 0

    def cmd_hostname(self, args: list[str], io: ShellIO) -> int:
        io.write(self.host.hostname + "\n")
        return 0

    def cmd_uname(self, args: list[str], io: ShellIO) -> int:
        if "-a" in args:
            io.write(f"Linux {self.host.hostname} 6.1.55-certlab #1 SMP PREEMPT armv7l GNU/Linux\n")
        else:
            io.write("Linux\n")
        return 0

    def cmd_uptime(self, args: list[str], io: ShellIO) -> int:
        up = int(self.host.uptime())
        clock = time.strftime("%H:%M:%S", time.gmtime())
        io.write(f" {clock} up {up // 60} min,  1 user,  load average: 0.00, 0.00, 0.00\n")
        return 0

    def cmd_date(self, args: list[str], io: ShellIO) -> int:
        io.write(time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime()) + "\n")
        return 0

    def cmd_sleep(self, args: list[str], io: ShellIO) -> int:
        try:
            seconds = float(args[0]) if args else -1.0
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds < float("inf"):
            io.write_err("sleep: invalid time interval\n")
            return 1
        time.sleep(min(seconds, MAX_SLEEP))
        return 0

    def cmd_pwd(self, args: list[str], io: ShellIO) -> int:
        io.write(self.cwd + "\n")
        return 0

    def cmd_cd(self, args: list[str], io: ShellIO) -> int:
        node = self._node(args[0] if args else HOME)
        if not self.host.vfs.is_dir(node):
            io.write_err(f"sh: cd: can't cd to {args[0] if args else HOME}\n")
            return 1
        self.cwd = node.path
        return 0

    def cmd_sync(self, args: list[str], io: ShellIO) -> int:
        self.host.vfs.flash.sync()
        return 0

    def cmd_cat(self, args: list[str], io: ShellIO) -> int:
        status = 0
        for path in args or []:
            try:
                data = self.host.vfs.read(self._node(path))
            except VfsError as exc:
                io.write_err(f"cat: {path}: {exc.reason}\n")
                status = 1
                continue
            io.write(data[:MAX_CAT].decode("utf-8", "replace"))
        return status

    def cmd_ls(self, args: list[str], io: ShellIO) -> int:
        parsed = self._flags(args, "la1")
        if isinstance(parsed, str):
            io.write_err(f"ls: invalid option -- '{parsed}'\n")
            return 2
        flags, paths = parsed
        vfs = self.host.vfs
        status = 0
        for path in paths or ["."]:
            node = self._node(path)
            try:
                if vfs.is_dir(node):
                    names = [n for n in vfs.listdir(node) if "a" in flags or not n.startswith(".")]
                    entries = [(n, vfs.resolve(n, node.path)) for n in names]
                else:
                    vfs.stat(node)
                    entries = [(path, node)]
            except VfsError as exc:
                io.write_err(f"ls: {path}: {exc.reason}\n")
                status = 1
                continue
            if len(paths) > 1 and vfs.is_dir(node):
                io.write(f"{path}:\n")
            for name, child in entries:
                if "l" in flags:
                    try:
                        st = vfs.stat(child)
                    except VfsError:
                        continue
                    kind = stat_mod.filemode(st.mode)
                    when = time.strftime("%b %d %H:%M", time.gmtime(st.mtime))
                    io.write(f"{kind}    1 root     root     {st.size:>8} {when} {name}\n")
                else:
                    io.write(name + "\n")
        return status

    def cmd_rm(self, args: list[str], io: ShellIO) -> int:
        parsed = self._flags(args, "rRf")
        if isinstance(parsed, str):
            io.write_err(f"rm: invalid option -- '{parsed}'\n")
            return 1
        flags, paths = parsed
        if not paths and "f" not in flags:
            io.write_err("rm: missing operand\n")
            return 1
        vfs = self.host.vfs
        status = 0
        for path in paths:
            node = self._node(path)
            try:
                if not vfs.exists(node) or node.kind == "none":
                    if "f" not in flags:
                        raise VfsError(path, "No such file or directory")
                    continue
                if vfs.is_dir(node):
                    if not flags & {"r", "R"}:
                        raise VfsError(path, "Is a directory")
                    vfs.rmtree(node)
                else:
                    vfs.unlink(node)
            except VfsError as exc:
                io.write_err(f"rm: cannot remove '{path}': {exc.reason}\n")
                status = 1
        return status

    def cmd_mkdir(self, args: list[str], io: ShellIO) -> int:
        parsed = self._flags(args, "p")
        if isinstance(parsed, str):
            io.write_err(f"mkdir: invalid option -- '{parsed}'\n")
            return 1
        flags, paths = parsed
        if not paths:
            io.write_err("mkdir: missing operand\n")
            return 1
        status = 0
        for path in paths:
            try:
                self.host.vfs.mkdir(self._node(path), parents="p" in flags)
            except VfsError as exc:
                io.write_err(f"mkdir: cannot create directory '{path}': {exc.reason}\n")
                status = 1
        return status

    def cmd_version(self, args: list[str], io: ShellIO) -> int:
        io.write(self.host.version_line() + "\n")
        return 0

    def cmd_config(self, args: list[str], io: ShellIO) -> int:
        usage = "usage: config get KEY | config set KEY VALUE | config show\n"
        try:
            if args[:1] == ["show"] and len(args) == 1:
                io.write(json.dumps(self.host.config_read(), indent=2, sort_keys=True) + "\n")
                return 0
            if args[:1] == ["get"] and len(args) == 2:
                cfg = self.host.config_read()
                if args[1] not in cfg:
                    io.write_err(f"config: {args[1]}: no such key\n")
                    return 1
                value = cfg[args[1]]
                io.write((value if isinstance(value, str) else json.dumps(value)) + "\n")
                return 0
            if args[:1] == ["set"] and len(args) == 3:
                key = args[1]
                if not key or len(key) > 64 or not all(c.isalnum() or c in "_.-" for c in key):
                    io.write_err(f"config: invalid key {key!r}\n")
                    return 1
                try:
                    value: object = json.loads(args[2])
                    if isinstance(value, (dict, list)):
                        value = args[2]
                except ValueError:
                    value = args[2]
                self.host.config_set(key, value)
                return 0
        except ConfigCorrupt:
            io.write_err("config: /etc/certlab/config.json is corrupt\n")
            return 1
        io.write_err(usage)
        return 2

    def cmd_passwd(self, args: list[str], io: ShellIO) -> int:
        current = io.read_line("Current password: ", echo=False)
        if current is None or not self.host.check_password(current):
            io.write_err("passwd: Authentication token manipulation error\n")
            return 1
        new = io.read_line("New password: ", echo=False)
        again = io.read_line("Retype new password: ", echo=False)
        if new is None or again is None:
            io.write_err("passwd: Authentication token manipulation error\n")
            return 1
        if new != again:
            io.write_err("passwd: passwords do not match\n")
            return 1
        if len(new) < 8 or new == current:
            io.write_err("passwd: password too weak\n")
            return 1
        self.host.set_password(new)
        io.write("passwd: password updated successfully\n")
        return 0

    def cmd_reboot(self, args: list[str], io: ShellIO) -> int:
        io.write("reboot: the system is going down for reboot NOW\n")
        self.host.request_reboot("reboot command")
        return 0

    def cmd_factory_reset(self, args: list[str], io: ShellIO) -> int:
        self.host.factory_reset(lambda text: io.write(text + "\n"))
        self.host.request_reboot("factory reset")
        return 0

    def cmd_update(self, args: list[str], io: ShellIO) -> int:
        if len(args) != 1:
            io.write_err("usage: update PATH\n")
            return 2
        try:
            data = self.host.vfs.read(self._node(args[0]))
        except VfsError as exc:
            io.write_err(f"update: {args[0]}: {exc.reason}\n")
            return 1
        status = self.host.update_agent().install(data, lambda text: io.write(text + "\n"))
        if status == 0:
            self.host.request_reboot("firmware update")
        return status

    def _image_arg(self, name: str, args: list[str], io: ShellIO) -> bytes | None:
        if len(args) != 1:
            io.write_err(f"usage: {name} PATH\n")
            return None
        try:
            return self.host.vfs.read(self._node(args[0]))
        except VfsError as exc:
            io.write_err(f"{name}: {args[0]}: {exc.reason}\n")
            return None

    def cmd_radio_update(self, args: list[str], io: ShellIO) -> int:
        """Install a signed radio co-processor image (no reboot: the co-processor restarts)."""
        data = self._image_arg("radio-update", args, io)
        if data is None:
            return 2 if len(args) != 1 else 1
        return self.host.radio_agent().install(data, lambda text: io.write(text + "\n"))

    def cmd_radio_version(self, args: list[str], io: ShellIO) -> int:
        io.write(self.host.radio_version_line() + "\n")
        return 0

    def cmd_slot_write(self, args: list[str], io: ShellIO) -> int:
        """Service write of an image, unverified, into the inactive boot slot, selected for the next boot."""
        data = self._image_arg("slot-write", args, io)
        if data is None:
            return 2 if len(args) != 1 else 1
        slot = self.host.place_in_inactive_slot(data)
        io.write(f"slot-write: {len(data)} bytes written to slot {slot}, selected for the next boot (verified at boot)\n")
        return 0

    def cmd_tamper_status(self, args: list[str], io: ShellIO) -> int:
        if args == ["--clear"]:
            cleared = self.host.tamper_clear()
            io.write("tamper: alert acknowledged; telemetry resumes\n" if cleared else "tamper: no alert to acknowledge\n")
            return 0
        if args:
            io.write_err("usage: tamper-status [--clear]\n")
            return 2
        alert = self.host.tamper_alert()
        if alert:
            io.write(f"tamper: DETECTED: {alert}\nnetwork: restricted (telemetry suspended until tamper-status --clear)\n")
        else:
            io.write("tamper: none\nnetwork: normal\n")
        return 0

    def cmd_update_settings(self, args: list[str], io: ShellIO) -> int:
        """The update settings the app service sent with its last telemetry reply."""
        if args:
            io.write_err("usage: update-settings\n")
            return 2
        io.write("".join(line + "\n" for line in self.host.update_settings_lines()))
        return 0


# --- reading one command: continuation lines, as a POSIX shell does ----------------------------

PS2 = "> "
MAX_CONTINUATION = 1000  # continuation and here-document lines one command may take


def _interrupted(io: ShellIO) -> bool:
    """Did the terminal's last line end with ^C? (A stream without a LineReader never does.)"""
    return bool(getattr(getattr(io, "reader", None), "interrupted", False))


def pending_construct(text: str) -> str | None:
    """What an interactive shell still waits for at the end of `text`: "quote", "backslash" or None."""
    try:
        tokenize(text)
    except ShellSyntaxError as exc:
        return "quote" if "unterminated" in str(exc) else None
    trailing = len(text) - len(text.rstrip("\\"))
    return "backslash" if trailing % 2 else None


def heredoc_delimiters(text: str) -> list[tuple[str, bool]]:
    """(delimiter, strip leading tabs) for each `<<WORD` / `<<-WORD` in a complete command line."""
    try:
        tokens = tokenize(text)
    except ShellSyntaxError:
        return []
    found = []
    for (kind, value), nxt in zip(tokens, tokens[1:]):
        if kind == "op" and value in ("<<", "<<-") and nxt[0] == "w":
            found.append((_PLACEHOLDER.sub(lambda m: "$" + m.group(1), nxt[1]), value == "<<-"))
    return found


def read_command(io: ShellIO, prompt: str) -> str | None:
    """One command as an interactive POSIX shell reads it: an unterminated quote, a trailing
    backslash or a here-document takes more lines at the PS2 prompt ("> "); ^C abandons the whole
    command (returns ""). None at end of input. Bounded by MAX_LINE and MAX_CONTINUATION.
    """
    line = io.read_line(prompt)
    if line is None or _interrupted(io):
        return line
    text, lines = line, 1
    while (waiting := pending_construct(text)) and lines < MAX_CONTINUATION and len(text) <= MAX_LINE:
        more = io.read_line(PS2)
        if more is None:
            return text  # end of input inside the construct: run_line reports it
        if _interrupted(io):
            return ""
        text = text[:-1] + more if waiting == "backslash" else text + "\n" + more
        lines += 1
    for delimiter, strip_tabs in heredoc_delimiters(text):
        while lines < MAX_CONTINUATION:
            body = io.read_line(PS2)
            if body is None:
                return text  # as sh: end of input ends the here-document
            if _interrupted(io):
                return ""
            lines += 1
            if (body.lstrip("\t") if strip_tabs else body) == delimiter:
                break
    return text


def run_session(shell: Shell, io: ShellIO, prompt: Callable[[], str], stop: Callable[[], bool]) -> int:
    """Prompt, read, run, until exit/logout, end of input or `stop()` (the device rebooting)."""
    while not stop():
        line = read_command(io, prompt())
        if line is None or stop():
            return shell.status
        try:
            shell.run_line(line)
        except ShellExit as exc:
            return exc.status
    return shell.status
