"""What a run was given, kept beside its results: the inventory, each model's ICS, IXIT and
assessments (with the evidence of the test cases the assessor performed by hand, under
`evidence/assessor/`), and the hashes of the firmware releases delivered with the samples.

A report is written after the run, maybe long after, maybe elsewhere; it must describe the
inputs the tests really had, not whatever the files say by then. The copies sit in the run
directory, so the signed manifest covers them too.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from lab.firmware import parse_image
from lab.errors import CertlabError
from lab.inventory import Inventory
from lab.orchestrator.rundir import write_json
from lab.products import KINDS, find_product_file, product_folder

INPUTS_DIR = "inputs"
INDEX_FILE = "inputs.json"
ASSESSOR_EVIDENCE = "evidence/assessor"  # evidence of the test cases the assessor performed by hand
MAX_RELEASE_BYTES = 512 << 20  # a release file larger than this is listed without its header


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def explicit_files(options: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--ics F`, `--ixit F`, `--assessments F` among a run's pytest options."""
    found: dict[str, str] = {}
    opts = list(options)
    for i, opt in enumerate(opts):
        for kind in KINDS:
            if opt == f"--{kind}" and i + 1 < len(opts):
                found[kind] = opts[i + 1]
            elif opt.startswith(f"--{kind}="):
                found[kind] = opt.split("=", 1)[1]
    return found


def record_inputs(run_dir: Path, inventory: Inventory, *, benches: tuple[str, ...] | list[str], edition: str,
                  options: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Copy the run's inputs into `inputs/` and index them with their SHA-256; returns the index."""
    folder = run_dir / INPUTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"inventory": _copy(Path(inventory.path), folder / "inventory.yaml", run_dir),
                             "products": {}, "firmware": _releases(inventory)}
    explicit = explicit_files(options)
    models = sorted({inventory.benches[b].dut.model for b in benches if b in inventory.benches})
    for model in models:
        entry: dict[str, Any] = {}
        for kind in KINDS:
            source = Path(explicit[kind]) if kind in explicit else \
                find_product_file(product_folder(inventory.base_dir, model), kind, edition)
            if source is not None and source.is_file():
                entry[kind] = _copy(source, folder / "products" / model / f"{kind}.yaml", run_dir)
                if kind == "assessments":
                    copied = _assessor_evidence(source, run_dir, model, edition)
                    if copied:
                        index.setdefault("assessor_evidence", {})[model] = copied
        index["products"][model] = entry
    write_json(folder / INDEX_FILE, index)
    return index


def _assessor_evidence(source: Path, run_dir: Path, model: str, edition: str) -> dict[str, list[dict[str, str]]]:
    """Copy the evidence of the functional cases the assessor performed by hand into
    `evidence/assessor/<model>/<case>/`, so the run's signature covers it; case -> copied files."""
    from lab.assessments import load_assessments  # the record is validated again: it is what the run keeps

    try:
        record = load_assessments(source, edition, model=model)
    except CertlabError:
        # `certlab run` refuses a bad record before the run directory exists; on any other path the
        # copy above is kept as given and the report refuses a performed result without its evidence
        return {}
    copied: dict[str, list[dict[str, str]]] = {}
    for case, performed in sorted(record.data.performed.items()):
        for ref in performed.evidence:
            target = run_dir / ASSESSOR_EVIDENCE / model / case / Path(ref).name
            copied.setdefault(case, []).append({"ref": ref, **_copy(record.evidence_path(ref), target, run_dir)})
    return copied


def _copy(source: Path, target: Path, run_dir: Path) -> dict[str, str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise CertlabError(f"{source}: cannot keep a copy with the run ({exc.strerror}); fix: make it readable") from None
    return {"source": str(source.resolve()), "file": target.relative_to(run_dir).as_posix(), "sha256": sha256_file(target)}


def _releases(inventory: Inventory) -> list[dict[str, Any]]:
    """The release files in the lab's firmware folder: name, hash and, for a readable image, model and version."""
    if not inventory.firmware_dir:
        return []
    folder = inventory.resolve_path(inventory.firmware_dir)
    if not folder.is_dir():
        return []
    releases = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        entry: dict[str, Any] = {"file": path.name, "sha256": sha256_file(path), "size": path.stat().st_size}
        if entry["size"] <= MAX_RELEASE_BYTES:
            try:
                image = parse_image(path.read_bytes())
                entry.update(model=image.model, version=image.version, security_version=image.security_version)
            except (CertlabError, ValueError):
                pass  # not an image of a format certlab reads: listed by name and hash only
        releases.append(entry)
    return releases
