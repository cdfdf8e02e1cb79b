"""The VM DUT's pure parts: the initramfs writer, module ordering, init's files, qemu's command
line, the kernel package lookup and the inventory rules for `sim: {dut: vm}`. No VM is started
(tests/test_vm_dut.py does that)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lab.errors import CertlabError, InventoryError
from lab.inventory import load_inventory
from lab.sim import initramfs, vm_dut, vm_kernel

ROOT = Path(__file__).resolve().parent.parent
CFG = {"address": "10.203.31.2", "prefix": 24, "gateway": "10.203.31.1", "ssh_port": 22, "debug_port": 2323,
       "flaws": [], "mac": "02:0f:76:00:00:01"}


def test_archive_round_trips_files_links_dirs_and_device_nodes():
    blob = initramfs.archive([
        initramfs.directory("etc"),
        initramfs.file("etc/inittab", "::sysinit:/etc/init.d/rcS\n"),
        initramfs.file("bin/busybox", b"\x7fELF" + b"x" * 5, 0o755),
        initramfs.symlink("init", "/bin/busybox"),
        initramfs.chardev("dev/console", 5, 1),
    ], mtime=1)
    assert blob.startswith(b"070701") and len(blob) % 4 == 0
    got = initramfs.read_archive(blob)
    assert got["etc/inittab"].data == b"::sysinit:/etc/init.d/rcS\n"
    assert stat.S_IMODE(got["bin/busybox"].mode) == 0o755 and got["bin/busybox"].data.startswith(b"\x7fELF")
    assert stat.S_ISLNK(got["init"].mode) and got["init"].data == b"/bin/busybox"
    assert stat.S_ISCHR(got["dev/console"].mode) and got["dev/console"].rdev == (5, 1)
    assert stat.S_ISDIR(got["etc"].mode)


def test_archive_later_entry_replaces_and_bad_paths_are_refused():
    got = initramfs.read_archive(initramfs.archive([initramfs.file("a", "1"), initramfs.file("a", "2")]))
    assert got["a"].data == b"2"
    with pytest.raises(ValueError, match="relative"):
        initramfs.archive([initramfs.file("../etc/passwd", "x")])


def test_tree_keeps_symlinks_as_links(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/busybox").write_bytes(b"bb")
    (tmp_path / "bin/sh").symlink_to("/bin/busybox")
    entries = {e.path: e for e in initramfs.tree(tmp_path)}
    assert stat.S_ISLNK(entries["bin/sh"].mode) and entries["bin/sh"].data == b"/bin/busybox"
    assert entries["bin/busybox"].data == b"bb"


def test_modules_load_dependencies_first_once_each(tmp_path):
    deps = {"virtio_net": ["virtio_ring", "virtio", "net_failover"], "net_failover": ["failover"],
            "virtio_pci": ["virtio_ring", "virtio"], "virtio": [], "virtio_ring": [], "failover": []}
    index = {name: tmp_path / f"{name}.ko" for name in deps}
    order = [p.stem for p in initramfs.module_load_order(index, ["virtio_pci", "virtio_net"],
                                                         depends=lambda p: deps[p.stem])]
    assert sorted(order) == sorted(deps) and len(order) == len(set(order))
    for name, needs in deps.items():
        assert all(order.index(d) < order.index(name) for d in needs)
    with pytest.raises(KeyError, match="e1000"):
        initramfs.module_load_order(index, ["e1000"], depends=lambda p: [])


def test_ko_depends_reads_the_modinfo_field():
    assert initramfs.ko_depends(b"\x00license=GPL\x00depends=virtio_ring,virtio,net-failover\x00vermagic=6.1") == \
        ["virtio_ring", "virtio", "net_failover"]
    assert initramfs.ko_depends(b"\x00depends=\x00") == [] and initramfs.ko_depends(b"nothing") == []


def test_inittab_services_and_flaws():
    plain = vm_dut.inittab(CFG)
    assert "ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100" in plain
    assert "/usr/sbin/dropbear -F -p 22" in plain and "telnetd" not in plain
    assert plain.index("dropbear") < plain.index("getty")  # inittab order; nobody waits for anybody
    flawed = vm_dut.inittab({**CFG, "flaws": ["open_debug_service", "unauthenticated_console"]})
    assert "/usr/sbin/telnetd -F -p 2323 -l /bin/sh" in flawed
    assert "ttyS0::respawn:-/bin/sh" in flawed and "getty" not in flawed
    telnet = vm_dut.inittab({**CFG, "flaws": ["cleartext_telnet_login"]})
    assert "/usr/sbin/telnetd -F -p 23 -l /bin/login" in telnet  # a login, in clear text


def test_rcs_configures_eth0_from_the_inventory():
    script = vm_dut.rcs(CFG, ["virtio.ko", "virtio_net.ko"])
    assert "ip addr add 10.203.31.2/24 dev eth0" in script
    assert "ip route add default via 10.203.31.1" in script
    assert script.index("insmod /lib/modules/virtio.ko") < script.index("insmod /lib/modules/virtio_net.ko")
    assert "[ $i -lt 50 ]" in script  # the wait for eth0 is bounded
    assert "mount -t ext4 -o noatime /dev/vda /flash" in script


def test_image_keeps_the_units_state_on_flash(tmp_path):
    root = tmp_path / "rootfs"
    for rel in ("bin/busybox", "etc/passwd", *vm_dut.FLASH_STATE):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    ko = tmp_path / "virtio.ko"
    ko.write_bytes(b"\x7fELF")
    got = initramfs.read_archive(initramfs.archive(vm_dut.image_entries(root, CFG, [ko], "6.1.0-99-amd64")))
    assert got["etc/passwd"].data == b"etc/passwd" and got["lib/modules/virtio.ko"].data == b"\x7fELF"
    assert got["etc/shadow"].data == b"/flash/etc/shadow" and stat.S_ISLNK(got["etc/shadow"].mode)
    assert got["etc/dropbear"].data == b"/flash/etc/dropbear" and stat.S_ISLNK(got["etc/dropbear"].mode)
    assert not [p for p in got if p.startswith("etc/dropbear/")]  # keys only on the flash partition
    assert got["init"].data == b"/bin/busybox" and got["dev/console"].rdev == (5, 1)


def test_qemu_argv_is_a_headless_machine_on_the_tap():
    argv = vm_dut.qemu_argv("/usr/bin/qemu-system-x86_64", "/k/vmlinuz-6.1", "/f/initramfs.cpio", accel="tcg",
                            mac="02:0f:76:00:00:01")
    line = " ".join(argv)
    for part in ("-nodefaults", "-display none", "-monitor none", "-accel tcg", "-serial chardev:uart0",
                 "stdio,id=uart0,signal=off", "tap,id=net0,ifname=vmtap0,script=no,downscript=no",
                 "virtio-net-pci,netdev=net0,mac=02:0f:76:00:00:01", "-kernel /k/vmlinuz-6.1"):
        assert part in line
    assert argv[argv.index("-append") + 1].startswith("console=ttyS0,115200")
    assert "-drive" not in argv
    kvm = " ".join(vm_dut.qemu_argv("q", "k", "i", accel="kvm", mac="02:00:00:00:00:01", flash="/f/data.img"))
    assert "-cpu host" in kvm
    assert "file=/f/data.img,format=raw,if=none,id=flash0" in kvm and "virtio-blk-pci,drive=flash0" in kvm


def test_mac_is_the_inventorys_or_fixed_per_serial():
    assert vm_dut.unit_mac({"mac": "02:0f:76:00:00:01", "serial": "S"}) == "02:0f:76:00:00:01"
    derived = vm_dut.unit_mac({"mac": None, "serial": "VM1-0009"})
    assert derived == vm_dut.unit_mac({"serial": "VM1-0009"}) != vm_dut.unit_mac({"serial": "VM1-0010"})
    assert derived.startswith("02:") and len(derived) == 17


def test_kernel_package_is_resolved_from_the_meta_package(monkeypatch):
    monkeypatch.setattr(vm_kernel, "_run", lambda cmd, what, **kw: (
        "linux-image-amd64\n  Depends: linux-image-6.1.0-99-amd64\n"))
    assert vm_kernel.package_name() == "linux-image-6.1.0-99-amd64"
    monkeypatch.setattr(vm_kernel, "_run", lambda cmd, what, **kw: "linux-image-amd64\n")
    with pytest.raises(CertlabError, match="names no linux-image"):
        vm_kernel.package_name()


def test_explicit_kernel_needs_its_modules(tmp_path):
    image = tmp_path / "boot" / "vmlinuz-6.1.0-99-amd64"
    image.parent.mkdir()
    image.write_bytes(b"k")
    with pytest.raises(CertlabError, match="no modules"):
        vm_kernel.from_image(image)
    (tmp_path / "lib/modules/6.1.0-99-amd64/kernel").mkdir(parents=True)
    assert vm_kernel.from_image(image).release == "6.1.0-99-amd64"
    with pytest.raises(CertlabError, match="vmlinuz-<release>"):
        vm_kernel.from_image(tmp_path / "bzImage")


def test_missing_qemu_is_one_line_naming_the_package(monkeypatch):
    monkeypatch.setattr(vm_kernel.shutil, "which", lambda name: None)
    with pytest.raises(CertlabError, match="apt-get install qemu-system-x86"):
        vm_kernel.qemu_binary()


def _inventory(tmp_path, sim: str, network: str) -> Path:
    path = tmp_path / "inv.yaml"
    path.write_text(f"""all:
  vars: {{certlab: {{lab: t}}}}
  hosts:
    b1:
      certlab:
        power: {{driver: scpi, resource: "TCPIP::127.0.0.1::15999::SOCKET", channel: 1}}
        console: {{url: /tmp/certlab-sim/t/b1/console}}
        network: {network}
        dut: {{model: VM-1, serial: S1, firmware: 1.0.0}}
        sim: {sim}
""")
    return path


def test_inventory_rules_for_vm_benches(tmp_path):
    netns = "{address: 10.203.99.2, netns: cl-t-1, interface: clh-t-1, gateway: 10.203.99.1}"
    assert load_inventory(_inventory(tmp_path, "{dut: vm, flaws: [open_debug_service]}", netns)).bench("b1").sim.dut == "vm"
    with pytest.raises(InventoryError, match="needs network.netns"):
        load_inventory(_inventory(tmp_path, "{dut: vm}", "{address: 127.0.0.1}"))
    with pytest.raises(InventoryError, match="cannot be switched on an off-the-shelf DUT"):
        load_inventory(_inventory(tmp_path, "{dut: vm, flaws: [rollback_allowed]}", netns))
    with pytest.raises(InventoryError, match="belong to a `sim: {dut: vm}` bench"):
        load_inventory(_inventory(tmp_path, "{dut: offtheshelf, accel: tcg}", netns))


def test_shipped_vm_inventory_is_valid():
    inv = load_inventory(ROOT / "inventory" / "sim-vm.yaml")
    assert {b.sim.dut for b in inv.benches.values()} == {"vm"}
    assert inv.bench("vm2").sim.flaws == ["universal_default_password", "open_debug_service"]
