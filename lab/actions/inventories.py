"""The lab's inventory as a page reads it: parsed once per version of the file (~80 ms a parse),
held by the app's `Services`, never by a module. Launching a run still loads it afresh."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from lab.inventory import Inventory, load_inventory


@dataclass
class InventoryCache:
    """Inventory by (path, mtime, size): a changed file is parsed again; an unusable one is not kept."""

    _seen: dict[Path, tuple[tuple[int, int], Inventory]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, path: Path | str) -> Inventory:
        """The inventory at `path`; CertlabError as `load_inventory` raises it."""
        where = Path(path).resolve()
        stat = where.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            kept = self._seen.get(where)
        if kept is not None and kept[0] == version:
            return kept[1]
        inventory = load_inventory(where)
        with self._lock:
            self._seen[where] = (version, inventory)
        return inventory
