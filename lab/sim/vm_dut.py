"""A simulated DUT that is a real Linux kernel booting in a qemu virtual machine.

    python -m lab.sim.vm_dut --bench-dir DIR --uart-fd N

The same process contract as `lab.sim.dut` and `lab.sim.ots_dut` (docs/architecture.md): the
bench host starts it in a new session inside the bench's network namespace, its UART is a
socketpair end, power-off is `killpg(SIGKILL)`. This launcher only prepares the "flash" and then
*becomes* qemu (exec, same pid, same process group), so a power cut kills the machine at once.

What runs is not ours: Debian's kernel (`lab.sim.vm_kernel`), and in its initramfs busybox init,
getty, login, ash, syslogd, telnetd and dropbear from Debian's packages (`lab.sim.rootfs`, the
same root filesystem the off-the-shelf DUT chroots into). Ours are the flash image (an initramfs
written by `lab.sim.initramfs`), /etc/inittab and the boot script rcS, which mounts the pseudo
filesystems, loads the network driver modules, configures eth0 from the inventory and lets
busybox init start the services in inittab order, racing as they do on a real product.

The console is the machine's first 16550 UART (`-serial` on qemu's stdio, whose stdin and stdout
are the UART socket). The network is a tap device in the bench's namespace, bridged to the veth
that leads to the host (`lab.sim.netns.attach_tap`), so the guest kernel owns the DUT address and
answers every port itself: an open port accepts, a closed one answers RST.

The unit's own state (root password hash, dropbear host keys) is set by the factory step once per
unit and lives on a small ext4 "flash partition" (DIR/flash/data.img, a virtio disk) that rcS
mounts on /flash; /etc/shadow and /etc/dropbear link there, so host keys and a password set
with passwd persist across power cycles, and a power cut mid-write meets ext4's journal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab.sim import initramfs
from lab.sim.rootfs import HOST_KEYS, PATH, build_rootfs, provision, write_atomic
from lab.sim.vm_kernel import kvm_usable

GUEST_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "crc32c_generic", "ext4")
FLASH_MB = 8
FLASH_STATE = ("etc/shadow", "etc/certlab-factory", *(f"etc/dropbear/dropbear_{k}_host_key" for k in HOST_KEYS))
DEFAULT_MEMORY_MB = 192
TAP = "vmtap0"


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} vm_dut[{os.getpid()}] {msg}", file=sys.stderr, flush=True)


# --- what the image holds beyond the shared root filesystem ---------------------------------


def inittab(cfg: dict[str, Any]) -> str:
    """busybox init's table: boot script, then services in this order, console last."""
    flaws = set(cfg.get("flaws") or [])
    keys = " ".join(f"-r /etc/dropbear/dropbear_{k}_host_key" for k in HOST_KEYS)
    lines = [
        "::sysinit:/etc/init.d/rcS",
        "::respawn:/sbin/syslogd -n -O /var/log/messages",
        f"::respawn:/usr/sbin/dropbear -F -p {int(cfg.get('ssh_port', 22))} -P /run/dropbear.pid {keys}",
    ]
    if "open_debug_service" in flaws:  # an undocumented root shell, no login
        lines.append(f"::respawn:/usr/sbin/telnetd -F -p {int(cfg.get('debug_port') or 23)} -l /bin/sh")
    if "cleartext_telnet_login" in flaws:  # a telnet service asking for the root password in clear text
        lines.append(f"::respawn:/usr/sbin/telnetd -F -p {int(cfg.get('telnet_port') or 23)} -l /bin/login")
    if "unauthenticated_console" in flaws:  # a root shell on the console, no login
        lines.append("ttyS0::respawn:-/bin/sh")
    else:
        lines.append("ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100")
    lines += ["::ctrlaltdel:/sbin/reboot", "::shutdown:/bin/umount -a -r"]
    return "\n".join(lines) + "\n"


def rcs(cfg: dict[str, Any], modules: list[str]) -> str:
    """The boot script: pseudo filesystems, drivers, the flash partition, eth0 as the inventory says."""
    address, prefix, gateway = str(cfg["address"]), int(cfg.get("prefix") or 24), cfg.get("gateway")
    insmods = "\n".join(f"insmod /lib/modules/{m}" for m in modules)
    route = f"ip route add default via {gateway}\n" if gateway else ""
    return f"""#!/bin/sh
export PATH={PATH}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts
mount -t devpts -o gid=5,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
touch /run/utmp /var/log/lastlog
hostname -F /etc/hostname
{insmods}
mount -t ext4 -o noatime /dev/vda /flash || echo "flash: /dev/vda does not mount; logins will fail"
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
ip addr add {address}/{prefix} dev eth0
ip link set eth0 up
{route}dmesg -n 1
"""


def image_entries(root: Path, cfg: dict[str, Any], module_files: list[Path], release: str):
    """Every member of the initramfs: the root filesystem, the kernel's modules, init's files."""
    yield from (e for e in initramfs.tree(root) if e.path not in FLASH_STATE and e.path != "etc/dropbear")
    for d in ("sys", "proc", "dev", "run", "tmp", "flash", "lib/modules", "etc/init.d"):
        yield initramfs.directory(d, 0o1777 if d == "tmp" else 0o755)
    # the unit's own state lives on its flash partition (mounted by rcS), as on a real product
    yield initramfs.symlink("etc/shadow", "/flash/etc/shadow")
    yield initramfs.symlink("etc/dropbear", "/flash/etc/dropbear")
    yield initramfs.symlink("etc/certlab-factory", "/flash/etc/certlab-factory")
    yield initramfs.chardev("dev/console", 5, 1)
    yield initramfs.chardev("dev/null", 1, 3, 0o666)
    yield initramfs.symlink("init", "/bin/busybox")  # the kernel runs /init: busybox init
    names = []
    for ko in module_files:
        yield initramfs.file(f"lib/modules/{ko.name}", ko.read_bytes())
        names.append(ko.name)
    yield initramfs.file("etc/release-kernel", release + "\n")
    yield initramfs.file("etc/inittab", inittab(cfg))
    yield initramfs.file("etc/init.d/rcS", rcs(cfg, names), 0o755)


def flash_partition(flash: Path, root: Path) -> Path:
    """DIR/flash/data.img: an ext4 image of the unit's state (password hash, host keys).

    Made from the factory's files when the unit is provisioned (again only if the factory step
    changed them: another unit or label); afterwards only the guest writes it, so a password set
    with passwd survives power cycles, and a power cut meets ext4's journal as on real flash.
    """
    disk, stamp = flash / "data.img", flash / "data.factory"
    factory = (root / "etc" / "certlab-factory").read_text(encoding="utf-8")
    if disk.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == factory:
        return disk
    staging = flash / "data.staging"
    shutil.rmtree(staging, ignore_errors=True)
    for rel in FLASH_STATE:
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, staging / rel)
    os.chmod(staging / "etc/dropbear", 0o700)
    tmp = flash / "data.img.new"
    tmp.unlink(missing_ok=True)
    mkfs = subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "flash", "-E", "root_owner=0:0", "-d", str(staging),
                           str(tmp), f"{FLASH_MB}M"], capture_output=True, text=True, timeout=60)
    shutil.rmtree(staging, ignore_errors=True)
    if mkfs.returncode != 0:
        raise SystemExit(f"mke2fs failed ({mkfs.stderr.strip()}): install e2fsprogs")
    os.replace(tmp, disk)
    write_atomic(stamp, factory)
    log(f"factory: flash partition {disk} written ({FLASH_MB} MiB ext4)")
    return disk


def build_image(bench_dir: Path, cfg: dict[str, Any]) -> tuple[Path, Path]:
    """DIR/flash/initramfs.cpio (written whole or not at all) and the flash partition."""
    flash = bench_dir / "flash"
    flash.mkdir(parents=True, exist_ok=True)
    root = build_rootfs(flash)
    provision(root, cfg, os_id="certlab-vm")
    disk = flash_partition(flash, root)
    vm = cfg["vm"]
    index = initramfs.module_index(Path(vm["modules"]))
    try:
        modules = initramfs.module_load_order(index, GUEST_MODULES)
    except KeyError as exc:
        raise SystemExit(f"{exc.args[0]} under {vm['modules']}: the guest would have no network or flash") from None
    blob = initramfs.archive(image_entries(root, cfg, modules, str(vm["release"])), mtime=int(time.time()))
    image = flash / "initramfs.cpio"
    tmp = image.with_name(image.name + ".new")
    tmp.write_bytes(blob)
    os.replace(tmp, image)
    return image, disk


# --- the machine ----------------------------------------------------------------------------


def kernel_cmdline() -> str:
    """The kernel's command line: console on the first UART, only warnings and worse on it."""
    return "console=ttyS0,115200 loglevel=6 panic=5"


def qemu_argv(qemu: str, kernel: str, initrd: str, *, accel: str, mac: str, tap: str = TAP,
              memory_mb: int = DEFAULT_MEMORY_MB, flash: str | None = None) -> list[str]:
    """qemu's command line: no default devices, UART on stdio, virtio NIC on the bench's tap,
    the flash partition as a virtio disk (its writes reach the file when the guest flushes)."""
    cpu = "host" if accel == "kvm" else "max"
    return [
        qemu, "-name", "certlab-vm-dut", "-nodefaults", "-no-user-config", "-display", "none",
        "-monitor", "none", "-accel", accel, "-cpu", cpu, "-smp", "1", "-m", str(memory_mb),
        "-chardev", "stdio,id=uart0,signal=off", "-serial", "chardev:uart0",
        "-kernel", kernel, "-initrd", initrd, "-append", kernel_cmdline(),
        "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={mac}",
        *(["-drive", f"file={flash},format=raw,if=none,id=flash0,cache=writeback",
           "-device", "virtio-blk-pci,drive=flash0"] if flash else []),
    ]


def unit_mac(cfg: dict[str, Any]) -> str:
    """The inventory's MAC; without one a fixed, locally administered one derived from the serial."""
    if cfg.get("mac"):
        return str(cfg["mac"])
    digest = hashlib.sha256(str(cfg["serial"]).encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, required=True)
    parser.add_argument("--uart-fd", type=int, required=True)
    args = parser.parse_args(argv)
    bench_dir = args.bench_dir.resolve()
    cfg = json.loads((bench_dir / "dut.json").read_text(encoding="utf-8"))
    vm = cfg.get("vm")
    if not vm:
        raise SystemExit("dut.json has no 'vm' section: start this DUT with `certlab lab up` (sim: {dut: vm})")
    if not Path("/sys/class/net", vm.get("tap", TAP)).exists():
        raise SystemExit(f"no tap device {vm.get('tap', TAP)} in this network namespace: start the lab with "
                         "`certlab lab up`, which makes it")
    started = time.monotonic()
    image, disk = build_image(bench_dir, cfg)
    accel = "kvm" if vm.get("accel", "auto") in ("auto", "kvm") and kvm_usable() else "tcg"
    cmd = qemu_argv(str(vm["qemu"]), str(vm["kernel"]), str(image), accel=accel, mac=unit_mac(cfg),
                    tap=str(vm.get("tap", TAP)), memory_mb=int(vm.get("memory_mb") or DEFAULT_MEMORY_MB),
                    flash=str(disk))
    log(f"image {image} ({image.stat().st_size // 1024} KiB) built in {time.monotonic() - started:.2f} s; "
        f"kernel {vm['release']}; accelerator: {accel} ({vm.get('accel_reason', 'probe skipped')})")
    log("exec " + " ".join(cmd))
    os.dup2(args.uart_fd, 0)
    os.dup2(args.uart_fd, 1)
    if args.uart_fd > 2:
        os.close(args.uart_fd)
    os.execv(cmd[0], cmd)  # same pid, same process group: killpg is a power cut


if __name__ == "__main__":
    main()
