"""Time to bring up N simulated benches (default 8) and the memory each simulated DUT takes.

`lab up` alone (relays, bench hosts, namespaces), then every bench powered on and reachable
over SSH, in parallel. Memory is the resident set of each DUT's process group, read from /proc.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import median, open_bench, sim_lab

from lab.sim.lab import processes_mentioning


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benches", type=int, default=8)
    args = parser.parse_args()
    n = max(1, min(args.benches, 16))
    with sim_lab("bup", n, scpi_port=16125, subnet=162, relay="mixed") as (inv, sim):
        t0 = time.monotonic()
        sim.up()
        up_s = time.monotonic() - t0
        with tempfile.TemporaryDirectory() as tmp:
            benches = [open_bench(inv, name, Path(tmp)) for name in inv.benches]

            def boot(b):
                b.power.on()
                return b.ssh.wait_reachable(timeout=60)

            t1 = time.monotonic()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(boot, benches))
            reach_s = time.monotonic() - t1
            procs = {pid: cmdline(pid) for pid in processes_mentioning("/tmp/certlab-sim/bup/")}
            dut_rss = []
            for name in inv.benches:
                dut = [pid for pid, cmd in procs.items() if "lab.sim.dut" in cmd and f"/bup/{name} " in cmd + " "]
                dut_rss.append(sum(rss_kib(p) for p in dut))
            host_rss = [rss_kib(p) for p, cmd in procs.items() if "bench_host" in cmd]
            relay_rss = [rss_kib(p) for p, cmd in procs.items() if "lab.sim.relay" in cmd]
            for b in benches:
                b.close()
    print(f"benches={n} root={os.geteuid() == 0}")
    print(f"lab_up_s={up_s:.2f}")
    print(f"power_on_to_all_ssh_reachable_s={reach_s:.2f}")
    print(f"lab_up_plus_boot_all_s={up_s + reach_s:.2f}")
    print(f"dut_rss_mib_median={median(dut_rss) / 1024:.1f} max={max(dut_rss) / 1024:.1f}")
    if host_rss:
        print(f"bench_host_rss_mib_median={median(host_rss) / 1024:.1f}")
    if relay_rss:
        print(f"relay_rss_mib_median={median(relay_rss) / 1024:.1f} relays={len(relay_rss)}")


if __name__ == "__main__":
    main()
