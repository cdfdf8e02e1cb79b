"""An off-the-shelf simulated DUT: Debian's dropbear and busybox, not code of ours.

    python -m lab.sim.ots_dut --bench-dir DIR --uart-fd N

The same process contract as `lab.sim.dut` (docs/architecture.md), so the bench host, the relay
and the console treat it alike. What is ours is only the "firmware build" and the boot:

1. Build, once, a tiny root filesystem in DIR/flash/rootfs: busybox and its applet links,
   dropbear and the shared libraries `ldd` lists, /etc (passwd, group, shells, os-release, ...),
   and ed25519/ecdsa host keys from `dropbearkey`. "Factory provisioning" writes /etc/shadow
   (root's password = the label password, or `admin` with `universal_default_password`), hashed
   by busybox's own `mkpasswd -m sha512`; it is redone only when dut.json's identity changes, so
   a password the user sets with `passwd` survives power cycles.
2. Re-exec under `unshare --mount --uts --pid --fork --kill-child`: this process becomes PID 1
   of a new PID namespace. dropbear and telnetd call setsid() for every session, so a process
   group cannot hold them; a PID namespace can: when its PID 1 dies (SIGKILL of our group = power
   cut), the kernel kills every process in it. Mounts (a tmpfs /dev with bound device nodes, a
   private devpts instance, proc, tmpfs /tmp and /run) exist only in the private mount namespace
   and vanish with it.
3. PID 1 ("init"): print the boot log on the UART, then run, chrooted into the rootfs, like an
   inittab: `dropbear -F -E -p ADDRESS:SSH_PORT`, with `open_debug_service` also
   `telnetd -F -b ADDRESS -p DEBUG_PORT -l /bin/sh`, with `cleartext_telnet_login`
   `telnetd -F -b ADDRESS -p TELNET_PORT -l /bin/login` (default 23), and on a pty of its own devpts
   `getty -L 115200 /dev/pts/N vt100` (busybox getty + login), or with `unauthenticated_console`
   a login shell `-sh` with no login. It bridges the pty master to the UART, reaps orphans and
   respawns what exits. busybox `reboot` (SIGTERM to PID 1) exits 3: the bench host reboots us.

Nothing ever authenticates against the host's /etc/passwd or /etc/shadow: every program of the
device runs chrooted in the rootfs. Needs root, util-linux `unshare`, dropbear-bin and busybox
(busybox-static for telnetd: Debian's dynamic busybox has no telnetd applet).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from lab import resources
from lab.sim.rootfs import (BUSYBOX, DROPBEAR, DROPBEARKEY, HOST_KEYS, PATH, build_rootfs, hostname,
                            provision)

REBOOT_STATUS = 3  # as lab.sim.dut: exit 3 asks the bench host to restart us with power on


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} ots_dut[{os.getpid()}] {msg}", file=sys.stderr, flush=True)


# --- PID 1 of the device (inside the new mount, UTS and PID namespaces) ----------------------

_libc = ctypes.CDLL(None, use_errno=True)
TIOCSPTLCK, TIOCGPTN = 0x40045431, 0x80045430  # <asm-generic/ioctls.h>; termios lacks them
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 4096, 16384, 1 << 18


def _mount(src: str, target: Path, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if _libc.mount(src.encode(), str(target).encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {target}: {os.strerror(err)}")


def mount_device_fs(root: Path) -> None:
    _mount("none", Path("/"), None, MS_REC | MS_PRIVATE)  # nothing propagates back to the host
    _mount("dev", root / "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        (root / "dev" / node).touch()
        _mount(f"/dev/{node}", root / "dev" / node, None, MS_BIND)
    (root / "dev/pts").mkdir()
    _mount("devpts", root / "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", root / "dev/ptmx")
    _mount("proc", root / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for d in ("tmp", "run"):
        _mount("tmpfs", root / d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" if d == "tmp" else "mode=0755")
    (root / "run/utmp").touch()


def open_console_pty(root: Path) -> tuple[int, int, str]:
    """A pty of the device's own devpts: (master, slave, slave path as seen inside the chroot)."""
    master = os.open(root / "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("i", fcntl.ioctl(master, TIOCGPTN, struct.pack("i", 0)))[0]
    slave = os.open(root / f"dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    return master, slave, f"/dev/pts/{n}"


class Service:
    """One inittab line: a program of the device, respawned when it exits."""

    def __init__(self, name: str, argv: list[str], delay: float, tty: int | None = None, env: dict | None = None):
        self.name, self.argv, self.delay, self.tty, self.env = name, argv, delay, tty, env or {}
        self.pid: int | None = None
        self.due = 0.0

    def spawn(self, root: Path) -> None:
        pid = os.fork()
        if pid == 0:  # child: chroot into the device, never back to the host's files
            try:
                os.chroot(root)
                os.chdir("/root" if self.tty is not None else "/")
                if self.tty is not None:
                    os.setsid()
                    for fd in (0, 1, 2):
                        os.dup2(self.tty, fd)
                    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
                else:
                    devnull = os.open("/dev/null", os.O_RDWR)
                    os.dup2(devnull, 0)
                env = {"PATH": PATH, "TERM": "vt100", "HOME": "/root", **self.env}
                os.execve(self.argv[0] if self.argv[0].startswith("/") else "/bin/sh", self.argv, env)
            finally:
                os._exit(127)
        self.pid = pid
        log(f"started {self.name} (pid {pid})")


def boot(bench_dir: Path, uart_fd: int, outer_mnt: str) -> int:
    cfg = json.loads((bench_dir / "dut.json").read_text(encoding="utf-8"))
    root = bench_dir / "flash" / "rootfs"
    if os.getpid() != 1 or os.readlink("/proc/self/ns/mnt") == outer_mnt:
        raise SystemExit("refusing to mount: not PID 1 of a private mount and PID namespace")
    mount_device_fs(root)
    socket.sethostname(hostname(cfg))
    os.set_inheritable(uart_fd, False)
    uart = socket.socket(fileno=uart_fd)
    master, slave, tty_path = open_console_pty(root)
    flaws = set(cfg.get("flaws") or [])

    def say(text: str) -> None:
        uart.sendall(text.replace("\n", "\r\n").encode())

    step = float(cfg.get("boot_seconds", 1.5)) / 3
    say(f"\nU-Boot 2022.01 ({cfg['model']})\nHit any key to stop autoboot:  0\nStarting kernel ...\n\n")
    time.sleep(step)
    say(f"[    0.000000] Linux version {os.uname().release} ({cfg['model']} firmware {cfg['firmware']})\n"
        f"[    0.000000] Machine model: {cfg['model']} serial {cfg['serial']}\n")
    time.sleep(step)
    addr, ssh_port = str(cfg["address"]), int(cfg.get("ssh_port", 22))
    keys = [a for k in HOST_KEYS for a in ("-r", f"/etc/dropbear/dropbear_{k}_host_key")]
    services = [Service("dropbear", ["/usr/sbin/dropbear", "-F", "-E", "-p", f"{addr}:{ssh_port}",
                                     "-P", "/run/dropbear.pid", *keys], delay=1.0)]
    if "open_debug_service" in flaws:
        port = int(cfg.get("debug_port") or 23)
        services.append(Service("telnetd", ["/usr/sbin/telnetd", "-F", "-b", addr, "-p", str(port),
                                            "-l", "/bin/sh"], delay=1.0))
    if "cleartext_telnet_login" in flaws:  # a telnet service asking for the root password in clear text
        port = int(cfg.get("telnet_port") or 23)
        services.append(Service("telnetd-login", ["/usr/sbin/telnetd", "-F", "-b", addr, "-p", str(port),
                                                  "-l", "/bin/login"], delay=1.0))
    if "unauthenticated_console" in flaws:
        console = Service("console", ["-sh"], delay=0.2, tty=slave,
                          env={"USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh"})
    else:
        console = Service("console", ["/sbin/getty", "-L", "115200", tty_path, "vt100"], delay=0.2, tty=slave)
    services.append(console)
    say("[    0.412000] Run /sbin/init as init process\n" +
        "".join(f"Starting {s.name}: OK\n" for s in services[:-1]))
    time.sleep(step)
    for s in services:
        s.spawn(root)
    return run_init(uart, master, services, root)


def run_init(uart: socket.socket, master: int, services: list[Service], root: Path) -> int:
    status: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: status.append(REBOOT_STATUS))  # busybox reboot
    signal.signal(signal.SIGUSR1, lambda *_: status.append(0))  # busybox halt
    signal.signal(signal.SIGUSR2, lambda *_: status.append(0))  # busybox poweroff
    sel = selectors.DefaultSelector()
    sel.register(uart, selectors.EVENT_READ, "uart")
    sel.register(master, selectors.EVENT_READ, "pty")
    by_pid = {s.pid: s for s in services}
    while not status:
        for key, _ in sel.select(timeout=0.2):
            try:
                if key.data == "uart":
                    data = uart.recv(4096)
                    if not data:
                        sel.unregister(uart)  # the bench host went away; power follows
                        continue
                    try:
                        os.write(master, data)
                    except BlockingIOError:
                        pass  # nobody reads the console: a UART drops bytes
                else:
                    uart.sendall(os.read(master, 65536))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
        while True:  # PID 1 reaps every orphan of the device
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if (s := by_pid.pop(pid, None)) is not None:
                log(f"{s.name} exited ({wstatus:#x}); respawning in {s.delay} s")
                s.pid, s.due = None, time.monotonic() + s.delay
        for s in services:
            if s.pid is None and time.monotonic() >= s.due:
                s.spawn(root)
                by_pid[s.pid] = s
    log(f"init: {'reboot' if status[0] == REBOOT_STATUS else 'halt'} requested")
    return status[0]


# --- entry ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, required=True)
    parser.add_argument("--uart-fd", type=int, required=True)
    parser.add_argument("--init", metavar="OUTER_MNT_NS", help=argparse.SUPPRESS)  # internal: PID 1 stage
    args = parser.parse_args(argv)
    bench_dir = args.bench_dir.resolve()
    if args.init:
        sys.exit(boot(bench_dir, args.uart_fd, args.init))
    if os.geteuid() != 0:
        raise SystemExit("the off-the-shelf DUT needs root (chroot, namespaces, mounts)")
    for tool in (BUSYBOX, DROPBEAR, DROPBEARKEY, shutil.which("unshare")):
        if not tool or not os.access(tool, os.X_OK):
            raise SystemExit(f"missing {tool or 'unshare'}: install dropbear-bin, busybox-static and util-linux")
    cfg = json.loads((bench_dir / "dut.json").read_text(encoding="utf-8"))
    telnet = sorted({"open_debug_service", "cleartext_telnet_login"} & set(cfg.get("flaws") or []))
    if telnet:
        listed = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, timeout=10).stdout.split()
        if "telnetd" not in listed:
            raise SystemExit(f"{BUSYBOX} has no telnetd applet ({', '.join(telnet)}); install busybox-static")
    (bench_dir / "flash").mkdir(parents=True, exist_ok=True)
    root = build_rootfs(bench_dir / "flash")
    provision(root, cfg)
    os.set_inheritable(args.uart_fd, True)
    here = str(resources.import_root())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    cmd = ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "private",
           sys.executable, "-m", "lab.sim.ots_dut", "--bench-dir", str(bench_dir), "--uart-fd",
           str(args.uart_fd), "--init", os.readlink("/proc/self/ns/mnt")]
    sys.stderr.flush()
    os.execvpe("unshare", cmd, env)  # same pid, same process group: killpg reaches PID 1 too


if __name__ == "__main__":
    main()
