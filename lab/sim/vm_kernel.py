"""The VM DUT's kernel: Debian's own linux-image package, fetched once with apt into a cache.

`lab up` calls `ensure_kernel()` for a bench with `sim: {dut: vm}` before anything starts, so a
missing tool or package is one clear line then, not a DUT that never boots. The package name is
resolved when fetching (`apt-cache depends linux-image-amd64` names the current ABI, e.g.
linux-image-6.1.0-57-amd64), downloaded with `apt-get download` and unpacked with
`dpkg-deb -x`: nothing comes from anywhere but Debian's archive. An inventory may instead name
a kernel file (`sim.kernel`); its modules are looked up beside it (an unpacked package's
lib/modules/<release>) or in /lib/modules/<release>.

The cache is $CERTLAB_VM_KERNEL_CACHE, else $XDG_CACHE_HOME/certlab/vm-kernel, else
~/.cache/certlab/vm-kernel: not the result store's folder, which tests make per test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.errors import CertlabError

META_PACKAGE = "linux-image-amd64"
QEMU = "qemu-system-x86_64"


@dataclass(frozen=True)
class Kernel:
    image: Path  # vmlinuz-<release>
    modules: Path  # lib/modules/<release>
    release: str


def cache_dir() -> Path:
    explicit = os.environ.get("CERTLAB_VM_KERNEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "certlab" / "vm-kernel"


def qemu_binary() -> str:
    """The qemu emulator, or a CertlabError naming the package to install."""
    found = shutil.which(QEMU)
    if not found:
        raise CertlabError(f"{QEMU} is not installed; a `sim: {{dut: vm}}` bench needs it: "
                           "apt-get install qemu-system-x86")
    return found


def from_image(image: Path) -> Kernel:
    """A kernel file named vmlinuz-<release> and its modules, beside it or the host's."""
    m = re.fullmatch(r"vmlinuz-(.+)", image.name)
    if not m or not image.is_file():
        raise CertlabError(f"{image}: not a kernel file named vmlinuz-<release>; name an unpacked "
                           f"Debian kernel (dpkg-deb -x linux-image-*.deb DIR) or drop sim.kernel")
    release = m.group(1)
    for modules in (image.parent.parent / "lib" / "modules" / release, Path("/lib/modules") / release):
        if (modules / "kernel").is_dir():
            return Kernel(image.resolve(), modules.resolve(), release)
    raise CertlabError(f"{image}: no modules for {release} in {image.parent.parent}/lib/modules "
                       f"or /lib/modules; unpack the whole linux-image package")


def cached(folder: Path) -> Kernel | None:
    """The newest kernel already unpacked in the cache, if any (no network needed then)."""
    images = sorted(folder.glob("*/boot/vmlinuz-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for image in images:
        try:
            return from_image(image)
        except CertlabError:
            continue
    return None


def _run(cmd: list[str], what: str, cwd: Path | None = None, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    except FileNotFoundError:
        raise CertlabError(f"{cmd[0]} is not installed; fetching the VM kernel needs apt and dpkg "
                           "(a Debian or Ubuntu machine), or give sim.kernel") from None
    except subprocess.TimeoutExpired:
        raise CertlabError(f"`{' '.join(cmd)}` took longer than {timeout:.0f} s ({what})") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit status " + str(proc.returncode)])[-1]
        raise CertlabError(f"{what}: `{' '.join(cmd)}` failed: {last}")
    return proc.stdout


def package_name() -> str:
    """linux-image-<abi>-amd64, the package the meta package depends on right now."""
    out = _run(["apt-cache", "depends", META_PACKAGE], f"resolving {META_PACKAGE}")
    found = re.findall(r"Depends:\s*(linux-image-[0-9][^\s<>]*)", out)
    if not found:
        raise CertlabError(f"`apt-cache depends {META_PACKAGE}` names no linux-image package; "
                           "run apt-get update, or give sim.kernel")
    return found[0]


def fetch(folder: Path) -> Kernel:
    """Download and unpack the current Debian kernel package into `folder`/<package>."""
    folder.mkdir(parents=True, exist_ok=True)
    package = package_name()
    with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # apt's _apt sandbox user must be able to write there
        _run(["apt-get", "download", "-q", package], f"downloading {package}", cwd=work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            raise CertlabError(f"apt-get download {package} left no .deb in {work}")
        unpacked = work / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], f"unpacking {debs[0].name}")
        target = folder / package
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)  # whole or not at all: a half-unpacked kernel is never found
    kernel = cached(folder)
    if kernel is None:
        raise CertlabError(f"{package} holds no boot/vmlinuz-*; give sim.kernel")
    return kernel


def ensure_kernel(explicit: Path | None = None) -> Kernel:
    """The kernel a VM bench boots: the inventory's, else the cache's, else fetched now."""
    qemu_binary()
    if explicit is not None:
        return from_image(explicit)
    folder = cache_dir()
    return cached(folder) or fetch(folder)


def kvm_usable() -> bool:
    """True if /dev/kvm opens read-write (it may exist yet be refused, e.g. in a container)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def choose_accel(kernel: Kernel, timeout: float = 6.0) -> tuple[str, str]:
    """("kvm" | "tcg", why): KVM only if /dev/kvm opens and really runs this kernel.

    /dev/kvm can open yet fail under nesting (qemu aborts on an MSR, or the guest never runs),
    so the kernel is started once under KVM with no init: a working KVM prints its
    "Linux version" banner on the UART in well under a second; otherwise emulation (TCG).
    """
    if not kvm_usable():
        return "tcg", "/dev/kvm cannot be opened read-write"
    cmd = [qemu_binary(), "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
           "-accel", "kvm", "-cpu", "host", "-m", "128", "-serial", "stdio", "-no-reboot",
           "-kernel", str(kernel.image), "-append", "console=ttyS0 panic=-1 rdinit=/nonexistent"]
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    if b"Linux version" in out:
        return "kvm", "KVM boots the kernel"
    why = err.decode(errors="replace").strip().splitlines()
    return "tcg", f"KVM did not boot the kernel in {timeout:.0f} s ({why[0] if why else 'no output'})"
