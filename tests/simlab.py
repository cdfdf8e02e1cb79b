"""A simulated lab for one test: up for a `with` block and down after it, whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from lab.inventory import load_inventory
from lab.sim.lab import SimLab


@contextlib.contextmanager
def simulated(path: Path) -> Iterator[Path]:
    sim = SimLab(load_inventory(path))
    sim.up()
    try:
        yield path
    finally:
        sim.down()
