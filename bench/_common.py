"""Shared set-up for the benchmark scripts: a private simulated lab, up for the duration."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.bench import Bench  # noqa: E402
from lab.inventory import Inventory, load_inventory  # noqa: E402
from lab.sim.genlab import write_sim_inventory  # noqa: E402
from lab.sim.lab import SimLab  # noqa: E402


@contextlib.contextmanager
def sim_lab(lab: str, benches: int, *, scpi_port: int, subnet: int, **kwargs) -> Iterator[tuple[Inventory, SimLab]]:
    netns = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix=f"certlab-bench-{lab}-") as tmp:
        path = write_sim_inventory(Path(tmp), lab, benches, scpi_port=scpi_port, subnet=subnet, netns=netns,
                                   ssh_base_port=scpi_port + 100, **kwargs)
        inv = load_inventory(path)
        sim = SimLab(inv)
        try:
            yield inv, sim
        finally:
            sim.down()


def open_bench(inv: Inventory, name: str, tmp: Path) -> Bench:
    return Bench(inv, name, evidence_dir=tmp / name)


def median(values: list[float]) -> float:
    return statistics.median(values)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
