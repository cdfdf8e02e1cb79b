"""Console throughput: lines per second from a simulated DUT's shell through the pty to pyserial.

A file of N lines is put on the DUT over SFTP, then `cat` on the serial console; the clock runs
from the command to the last line seen by the console driver (every byte also goes into the
evidence transcript, as in a real test).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import open_bench, sim_lab

from lab.strategy import BenchState


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=5000)
    args = parser.parse_args()
    n = max(10, min(args.lines, 100_000))
    with sim_lab("bct", 1, scpi_port=16225, subnet=163) as (inv, sim):
        sim.up()
        with tempfile.TemporaryDirectory() as tmp:
            bench = open_bench(inv, "b1", Path(tmp))
            bench.strategy.transition(BenchState.SHELL)
            bench.ssh.wait_reachable(timeout=60)
            src = Path(tmp) / "lines.txt"
            src.write_text("".join(f"line {i:06d} certlab console throughput probe\n" for i in range(n)))
            bench.ssh.put(str(src), "/data/lines.txt")
            bench.console.read_until_quiet(quiet=0.3, timeout=5)
            t0 = time.monotonic()
            bench.console.sendline("cat /data/lines.txt")
            try:
                bench.console.expect(f"line {n - 1:06d} certlab", timeout=60)
            except Exception as exc:
                raise SystemExit(f"console throughput: last line never arrived ({bench.console.bytes_received} bytes received): {str(exc)[:300]}")
            seconds = time.monotonic() - t0
            bench.close()
    print(f"lines={n} seconds={seconds:.3f}")
    print(f"console_lines_per_s={n / seconds:.0f}")
    print(f"console_bytes_per_s={n * 47 / seconds:.0f} (baud 115200 would carry {115200 // 10} bytes/s)")


if __name__ == "__main__":
    main()
