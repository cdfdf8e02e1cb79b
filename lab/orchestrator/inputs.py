"""What a run was given, kept beside its results: its part of the inventory, each model's ICS, IXIT
and assessments (with the evidence of the test cases the assessor performed by hand, under
`evidence/assessor/`), and the hashes of its models' firmware releases (with a re-test's
`--release` image first, also under `release`: file, source, SHA-256, model, version).

A report is written after the run, maybe long after, maybe elsewhere; it must describe the
inputs the tests really had, not whatever the files say by then. The copies sit in the run
directory, so the signed manifest covers them too.

The run directory is handed to the manufacturer and its certifiers (`GET /runs/{id}/report/archive`),
so it keeps nothing of the rest of the lab: `inputs/inventory.yaml` is not the lab's inventory
but its reduction to the run's benches (`reduced_inventory`: lab name, operator, lab profile, and
per bench its equipment and sample; no secret references, simulator settings, playbooks, prompts
or other benches), and the firmware list holds only the releases of the run's models (and those
their IXITs name, such as a component's images, which carry a model of their own). The lab's
whole inventory is pinned by its SHA-256 alone (`lab_inventory_sha256` in `inputs.json`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml

from lab.firmware import parse_image
from lab.ixit import load_ixit
from lab.errors import CertlabError
from lab.inputfile import sha256_file
from lab.install import read_release, release_path, with_release
from lab.inventory import BenchConfig, Inventory
from lab.ownerfiles import copy_private, private_dir, write_private
from lab.orchestrator.rundir import option_value, write_json
from lab.products import KINDS, find_product_file, product_folder

INPUTS_DIR = "inputs"
INDEX_FILE = "inputs.json"
ASSESSOR_EVIDENCE = "evidence/assessor"  # evidence of the test cases the assessor performed by hand
MAX_RELEASE_BYTES = 512 << 20  # a release file larger than this is not read (nor listed)


def explicit_files(options: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--ics F`, `--ixit F`, `--assessments F` among a run's pytest options."""
    given = {kind: option_value(options, f"--{kind}") for kind in KINDS}
    return {kind: value for kind, value in given.items() if value is not None}


def record_inputs(run_dir: Path, inventory: Inventory, *, benches: tuple[str, ...] | list[str], edition: str,
                  options: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Copy the run's inputs into `inputs/` and index them with their SHA-256; returns the index."""
    folder = private_dir(run_dir / INPUTS_DIR)
    models = sorted({inventory.benches[b].dut.model for b in benches if b in inventory.benches})
    given = release_path(options)
    release = read_release(given) if given else None
    copy = folder / "inventory.yaml"
    # a re-test's samples run the release it installs first: the report's items name that version
    write_private(copy, reduced_inventory(with_release(inventory, release) if release else inventory, benches))
    index: dict[str, Any] = {
        "inventory": {"source": str(Path(inventory.path).resolve()), "file": copy.relative_to(run_dir).as_posix(),
                      "sha256": sha256_file(copy)},
        "lab_inventory_sha256": sha256_file(Path(inventory.path)),  # the whole file, for the lab's own records
        "products": {}}
    explicit = explicit_files(options)
    named: set[str] = set()  # release files the products' IXITs name, e.g. a component's (its own image model)
    for model in models:
        entry: dict[str, Any] = {}
        for kind in KINDS:
            source = Path(explicit[kind]) if kind in explicit else \
                find_product_file(product_folder(inventory.base_dir, model), kind, edition)
            if source is not None and source.is_file():
                entry[kind] = _copy(source, folder / "products" / model / f"{kind}.yaml", run_dir)
                if kind == "ixit":
                    named |= _named_releases(source)
                    beside = [{"ref": ref, **_copy(path, folder / "products" / model / ref, run_dir)}
                              for ref, path in ixit_companions(source) if path.is_file()]
                    if beside:
                        entry["ixit_files"] = beside
                if kind == "assessments":
                    copied = _assessor_evidence(source, run_dir, model, edition)
                    if copied:
                        index.setdefault("assessor_evidence", {})[model] = copied
        index["products"][model] = entry
    index["firmware"] = _releases(inventory, models, named)
    if release is not None:  # first: the report finds the installed release by model and version
        entry = release.as_json()
        index["release"] = entry
        index["firmware"].insert(0, {k: entry[k] for k in ("file", "sha256", "size", "model", "version", "security_version")})
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
    private_dir(target.parent)
    try:
        copy_private(source, target)
    except OSError as exc:
        raise CertlabError(f"{source}: cannot keep a copy with the run ({exc.strerror}); fix: make it readable") from None
    return {"source": str(source.resolve()), "file": target.relative_to(run_dir).as_posix(), "sha256": sha256_file(target)}


def reduced_inventory(inventory: Inventory, benches: Sequence[str]) -> str:
    """The run's part of the inventory, as an inventory file `load_inventory` reads: what the report
    (`lab.reports.conformance`, `find_profile`) takes from it and nothing else. Not runnable: a
    resume and the workers read the lab's own file (run.json names it)."""
    hosts = {name: {"certlab": _bench_entry(inventory.benches[name])} for name in benches if name in inventory.benches}
    lab = {"lab": inventory.lab, "operator": inventory.operator, "lab_profile": inventory.lab_profile}
    doc = {"all": {"vars": {"certlab": {k: v for k, v in lab.items() if v is not None}},
                   "children": {"benches": {"hosts": hosts}}}}
    return ("# The part of the lab's inventory this run's report needs: its benches' equipment and samples.\n"
            "# Reduced by certlab run (lab/orchestrator/inputs.py); the lab's whole file is pinned by\n"
            "# lab_inventory_sha256 in inputs.json.\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def _bench_entry(cfg: BenchConfig) -> dict[str, Any]:
    """A bench's equipment and sample as the report lists them; never its secrets or simulator settings."""
    power = cfg.power.model_dump(mode="json", exclude_none=True)  # every backend's own fields (secrets only by where they live)
    entry: dict[str, Any] = {
        "power": power,
        "console": {"url": cfg.console.url, "baud": cfg.console.baud},
        "network": {k: v for k, v in (("address", cfg.network.address), ("interface", cfg.network.interface))
                    if v is not None},
        "dut": cfg.dut.model_dump(mode="json", exclude={"label_password"}, exclude_none=True),
    }
    if cfg.capabilities:
        entry["capabilities"] = list(cfg.capabilities)
    return entry


def ixit_companions(ixit_file: Path) -> list[tuple[str, Path]]:
    """The files an IXIT names by a path relative to itself (security.txt's OpenPGP key): (the path
    as written, where it is). They are inputs of the tests as much as the IXIT: kept beside its copy,
    at the same relative path, so the copy reads as the original did. An absolute path or one leaving
    the IXIT's folder is not copied (the copy still names the same file)."""
    try:
        sec = load_ixit(ixit_file).user_info.publication.security_txt
    except (CertlabError, AttributeError):
        return []
    ref = sec.openpgp_key if sec is not None else None
    if not ref or Path(ref).is_absolute() or ".." in Path(ref).parts:
        return []
    return [(ref, ixit_file.parent / ref)]


def _named_releases(ixit_file: Path) -> set[str]:
    """The release files an IXIT's test facts name: the main firmware's and each component's."""
    try:
        facts = load_ixit(ixit_file).test_facts
    except CertlabError:
        return set()  # preflight has refused it already; nothing to add
    if facts is None:
        return set()
    return set(facts.update_images.values()) | {f for c in facts.component_updates.values() for f in c.images.values()}


def _releases(inventory: Inventory, models: Collection[str], named: Collection[str] = ()) -> list[dict[str, Any]]:
    """The release files of the run's `models` (or named by their IXITs) in the lab's firmware folder: name,
    hash, model and version. Another model's file, or one certlab cannot read as an image (so cannot tell
    whose it is), is left out."""
    if not inventory.firmware_dir:
        return []
    folder = inventory.resolve_path(inventory.firmware_dir)
    if not folder.is_dir():
        return []
    releases = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        size = path.stat().st_size
        if size > MAX_RELEASE_BYTES:
            continue
        try:
            image = parse_image(path.read_bytes())
        except (CertlabError, ValueError):
            continue
        if image.model in models or path.name in named:
            releases.append({"file": path.name, "sha256": sha256_file(path), "size": size, "model": image.model,
                             "version": image.version, "security_version": image.security_version})
    return releases
