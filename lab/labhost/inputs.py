"""The run's product files travel with the work item, so a lab host tests with exactly them.

On one machine a worker reads the ICS, IXIT and assessor's record where the orchestrator found
them. A lab host may have another copy of the lab folder, or none for a booking's uploaded
files, and a verdict must rest on the inputs the run recorded. So the orchestrator attaches
each input file, with the other files of its folder (an IXIT names key files beside it), and
the host writes them into the item's spool and points the options there.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

from lab.errors import CertlabError
from lab.inventory import Inventory
from lab.orchestrator.inputs import explicit_files
from lab.orchestrator.workitem import WorkItem
from lab.products import KINDS, find_product_file, product_folder

MAX_FOLDER_BYTES = 4 * 1024 * 1024  # a product folder's files travel whole; more is not a product folder
MAX_FOLDER_FILES = 64
INPUTS_DIR = ".certlab-inputs"  # in the item's spool; not sent back (the run directory has its inputs/)


def _option(options: list[str], flag: str, value: str) -> list[str]:
    out, i = [], 0
    while i < len(options):
        opt = options[i]
        if opt == flag and i + 1 < len(options):
            i += 2
            continue
        if not opt.startswith(flag + "="):
            out.append(opt)
        i += 1
    return out + [flag, value]


def attach_inputs(item: WorkItem, inventory: Inventory) -> WorkItem:
    """The item with its bench model's input files attached (explicit options, else the product folder's)."""
    options = list(item.options)
    edition = options[options.index("--edition") + 1] if "--edition" in options[:-1] else "v2"
    explicit = explicit_files(options)
    model = inventory.bench(item.bench).dut.model
    attachments: dict[str, dict] = {}
    for kind in KINDS:
        source = Path(explicit[kind]) if kind in explicit else \
            find_product_file(product_folder(inventory.base_dir, model), kind, edition)
        if source is None or not source.is_file():
            continue
        attachments[f"--{kind}"] = {"file": source.name, "files": _folder(source.parent)}
    return replace(item, attachments=attachments)


def _folder(folder: Path) -> dict[str, str]:
    files, size = {}, 0
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        size += path.stat().st_size
        if len(files) >= MAX_FOLDER_FILES or size > MAX_FOLDER_BYTES:
            raise CertlabError(f"{folder}: more than {MAX_FOLDER_FILES} files or {MAX_FOLDER_BYTES >> 20} MiB; an ICS/IXIT "
                               f"is sent to lab hosts with its folder: fix: keep the product's files in a folder of their own")
        files[path.name] = base64.b64encode(path.read_bytes()).decode("ascii")
    return files


def materialize_inputs(item: WorkItem, workdir: Path) -> WorkItem:
    """On the lab host: write the attached files under the spool and point the options at them."""
    options = list(item.options)
    for i, (flag, attached) in enumerate(sorted(item.attachments.items())):
        folder = workdir / INPUTS_DIR / f"{i}-{flag.strip('-')}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, body in attached["files"].items():
            if "/" in name or name in ("", ".", ".."):
                raise CertlabError(f"work item {item.key}: attached file name {name!r} is not a plain name")
            (folder / name).write_bytes(base64.b64decode(body))
        options = _option(options, flag, str(folder / attached["file"]))
    return replace(item, options=tuple(options), attachments={})
