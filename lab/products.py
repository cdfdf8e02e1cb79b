"""Where a product's files live beside the inventory: `products/<model>/<kind>[.<edition>].yaml`.

The manufacturer's ICS and IXIT and the assessor's decisions are found the same way by the
plugin (to run the tests) and by the run record (to keep a copy of what the tests were given).
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("ics", "ixit", "assessments")


def product_folder(inventory_dir: Path, model: str) -> Path:
    return inventory_dir / "products" / model


def find_product_file(folder: Path, kind: str, edition: str) -> Path | None:
    """`<kind>.<edition>.yaml` before `<kind>.yaml`; None when the folder has neither."""
    for name in (f"{kind}.{edition}.yaml", f"{kind}.yaml"):
        if (folder / name).is_file():
            return folder / name
    return None
