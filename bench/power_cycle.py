"""Power-cycle-to-shell time on one simulated bench: median of N cycles (default 20).

Measures what a lab waits for before every test that needs a fresh DUT: relay off, relay on,
boot banner on the console, login, shell prompt. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import median, open_bench, pct, sim_lab

from lab.strategy import BenchState


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--boot-seconds", type=float, default=1.5, help="the simulated DUT's boot time")
    args = parser.parse_args()
    with sim_lab("bpc", 1, scpi_port=16025, subnet=161, sim={"boot_seconds": args.boot_seconds}) as (inv, sim):
        sim.up()
        with tempfile.TemporaryDirectory() as tmp:
            bench = open_bench(inv, "b1", Path(tmp))
            times, banners = [], []
            for _ in range(max(1, min(args.cycles, 200))):
                t0 = time.monotonic()
                banners.append(bench.strategy.power_cycle(off_time=0.2))
                bench.strategy.transition(BenchState.SHELL)
                times.append(time.monotonic() - t0)
            bench.close()
    print(f"cycles={len(times)} simulated_boot_seconds={args.boot_seconds}")
    print(f"power_cycle_to_banner_median_s={median(banners):.3f}")
    print(f"power_cycle_to_shell_median_s={median(times):.3f} p90_s={pct(times, 90):.3f} max_s={max(times):.3f}")
    print(f"overhead_vs_boot_ratio={median(times) / max(args.boot_seconds, 1e-9):.2f}")


if __name__ == "__main__":
    main()
