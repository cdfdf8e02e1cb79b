"""Write simulated-lab inventories of any size, for certlab's own tests and benchmarks.

The shipped inventories are hand-written; tests and benchmarks need labs with unique names,
ports and subnets so that several can run side by side without touching each other.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import yaml

from lab import resources

PROMPTS = {
    "baud": 115200,
    "boot_banner": "Starting kernel",
    "login_prompt": r"login:\s*$",
    "password_prompt": r"Password:\s*$",
    "shell_prompt": "# $",
}


def _password() -> str:
    alpha = string.ascii_letters + string.digits
    return "-".join("".join(secrets.choice(alpha) for _ in range(4)) for _ in range(3))


def write_sim_inventory(
    folder: Path,
    lab: str,
    benches: int,
    *,
    scpi_port: int,
    subnet: int = 100,
    netns: bool = True,
    relay: str = "scpi",
    sim: dict | None = None,
    per_bench_sim: dict[int, dict] | None = None,
    ssh_base_port: int = 0,
    boot_timeout: float | None = None,
) -> Path:
    """Write `<folder>/<lab>.yaml` (+ password files) with `benches` simulated benches.

    relay: "scpi" (one SCPI switch), "lcus" (one LCUS board, at most 8 channels) or "mixed"
    (odd benches on SCPI, even on LCUS). `subnet` (100-250) keeps labs apart: with netns, bench i is
    10.203.<subnet>.<4i+2>/30 in its own namespace; without, it listens on 127.0.<subnet>.<i+1>
    at port `ssh_base_port + i` (or 22). `boot_timeout` (s) is how long the console waits for the
    boot banner (inventory default 60): tests of a silent console set it low.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "secrets").mkdir(exist_ok=True)
    products = folder / "products"  # the shipped ICS/IXIT of the simulated models
    if not products.exists():
        products.symlink_to(resources.example("products"), target_is_directory=True)
    hosts: dict[str, dict] = {}
    for i in range(1, benches + 1):
        name = f"b{i}"
        pw_file = folder / "secrets" / f"{lab}-{name}.password"
        pw_file.write_text(_password() + "\n")
        on_lcus = relay == "lcus" or (relay == "mixed" and i % 2 == 0)
        if on_lcus:
            power = {"driver": "relay_board", "url": f"/tmp/certlab-sim/{lab}/relays/lcus0", "channel": (i + 1) // 2 if relay == "mixed" else i}
        else:
            power = {"driver": "scpi", "resource": f"TCPIP::127.0.0.1::{scpi_port}::SOCKET",
                     "channel": (i + 1) // 2 if relay == "mixed" else i}
        if netns:
            # a /30 per bench inside 10.203.<subnet>.0/24: only ever on our own veth pairs
            address = f"10.203.{subnet}.{4 * i + 2}"
            network = {"address": address, "netns": f"cl-{lab}-{name}", "interface": f"clh{subnet}x{i}"[:15],
                       "gateway": f"10.203.{subnet}.{4 * i + 1}", "prefix": 30}
            ssh_port = 22
        else:
            address = f"127.0.{subnet}.{i + 1}"
            network = {"address": address}
            ssh_port = (ssh_base_port + i) if ssh_base_port else 22
        bench_sim = {"flaws": [], "lab_faults": [], "boot_seconds": 0.5, **(sim or {}), **((per_bench_sim or {}).get(i, {}))}
        hosts[name] = {
            "ansible_host": address,
            "certlab": {
                "power": power,
                "console": {**PROMPTS, "url": f"/tmp/certlab-sim/{lab}/{name}/console",
                            **({"boot_timeout": boot_timeout} if boot_timeout else {})},
                "network": network,
                "ssh": {"user": "root", "port": ssh_port, "password": {"file": str(pw_file)}},
                "dut": {"model": "TH-100", "serial": f"{lab.upper()}-{i:04d}", "mac": f"02:c1:{subnet % 256:02x}:00:00:{i:02x}",
                        "firmware": "1.4.0", "label_password": {"file": str(pw_file)}},
                "sim": bench_sim,
            },
        }
    doc = {
        "all": {
            "vars": {
                "certlab": {"lab": lab, "firmware_dir": f"/tmp/certlab-sim/{lab}/firmware"},
                "ansible_user": "root",
                "ansible_connection": "paramiko",
            },
            "children": {"benches": {"hosts": hosts}},
        }
    }
    path = folder / f"{lab}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
