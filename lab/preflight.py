"""One check of everything a run is given, before any bench moves.

A bad ICS found after both benches were power-cycled costs a day of lab time and leaves a
hundred INCONCLUSIVE results; found here it costs one line. Every entry point that starts or
accepts work calls this module (`certlab run`, `certlab queue add/work`, `certlab product
check`, the API's booking and run start), so they cannot disagree about what is valid:

- the inventory (already parsed) and the run's benches;
- the edition's catalogue;
- per DUT model of the run: the ICS (Table B.1 rules), the IXIT, both describing that model,
  the ICS's N/A answers against the IXIT's facts (lab/conditions.py), and the assessor's record
  (lab/assessments.for_run: its evidence files and sample serials);
- the lab profile the report will need.

The first problem raises CertlabError: one line naming the file, the field and the fix.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from lab.assessments import Assessments, for_run
from lab.catalog import Catalogs, normalise_edition
from lab.conditions import check_conditions
from lab.errors import CertlabError
from lab.ics import Ics, IcsError, load_ics
from lab.inventory import Inventory
from lab.ixit import Ixit, IxitError, load_ixit
from lab.products import find_product_file, product_folder

MAX_SUITE_FILES = 2000  # a suite tree larger than this is not certlab's


@dataclass(frozen=True)
class ProductInputs:
    """What the manufacturer and the assessor gave for one DUT model, validated."""

    model: str
    ics: Ics | None
    ixit: Ixit | None
    assessments: Assessments | None = None


@dataclass(frozen=True)
class Checked:
    """The outcome of a preflight: the run's inputs, each validated once."""

    edition: str
    benches: tuple[str, ...]
    products: dict[str, ProductInputs] = field(default_factory=dict)


def product_files(inventory_dir: Path, model: str, edition: str, *, ics: Path | None = None,
                  ixit: Path | None = None) -> tuple[Path | None, Path | None]:
    """The ICS and IXIT of `model`: the given files, else `products/<model>/` beside the inventory."""
    folder = product_folder(inventory_dir, model)
    return (ics if ics is not None else find_product_file(folder, "ics", edition),
            ixit if ixit is not None else find_product_file(folder, "ixit", edition))


def check_product(model: str, edition: str, *, ics_path: Path | None, ixit_path: Path | None,
                  folder: Path | None = None, catalogs: Catalogs | None = None,
                  ixit_name: str | None = None) -> tuple[Ics, Ixit]:
    """The ICS and IXIT of one product: each valid, both of `model`, and the ICS's N/A answers
    consistent with the IXIT's facts (`ixit_name`: how the IXIT is named in that line)."""
    where = folder if folder is not None else Path("products") / model
    if ics_path is None:
        raise IcsError(f"no ICS for model {model!r}: put the manufacturer's ICS at {where / 'ics.yaml'} or pass "
                       "--ics FILE")
    if ixit_path is None:
        raise IxitError(f"no IXIT for model {model!r}: put the manufacturer's IXIT at {where / 'ixit.yaml'} or pass "
                        "--ixit FILE")
    ics = load_ics(ics_path, edition, catalogs=catalogs)
    ixit = load_ixit(ixit_path)
    for kind, doc, path, error in (("ics", ics, ics_path, IcsError), ("ixit", ixit, ixit_path, IxitError)):
        if doc.product.model != model:
            raise error(f"{path}: {kind}: product.model: {doc.product.model!r}, but the product is {model!r}; "
                        f"fix: give the {kind.upper()} of {model}")
    check_conditions(ics, ixit, ixit_name=ixit_name or f"the IXIT ({ixit_path})")
    return ics, ixit


def suites_assess(suites: list[str] | tuple[str, ...] | None) -> bool:
    """Whether the suites hold ETSI test cases (`@pytest.mark.etsi`), which need each product's ICS
    and IXIT; None (not known yet) counts as yes. Read as source, never imported."""
    if suites is None:
        return True
    files: list[Path] = []
    for suite in suites:
        path = Path(str(suite).partition("::")[0])
        files += sorted(path.rglob("test_*.py"))[:MAX_SUITE_FILES] if path.is_dir() else [path]
    for path in files[:MAX_SUITE_FILES]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            return True  # pytest will say what is wrong with it; do not skip the checks because of it
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "etsi":
                return True
    return False


def preflight(inventory: Inventory, benches: list[str] | tuple[str, ...], edition: str, *,
              ics: Path | None = None, ixit: Path | None = None, assessments: Path | None = None,
              suites: list[str] | tuple[str, ...] | None = None, catalogs: Catalogs | None = None,
              release: Path | None = None) -> Checked:
    """Validate everything a run on `benches` is given; CertlabError (one line) on the first problem.

    `ics`/`ixit`/`assessments`: files given for the run (else each model's files beside the
    inventory). Without ETSI test cases in `suites` a missing ICS or IXIT is no problem (a file
    that is there is still checked). `release`: the image a re-test installs first (lab.install):
    it must be there, be an image, and be for every bench's model.
    """
    try:
        edition = normalise_edition(edition)
    except CertlabError as exc:
        raise CertlabError(f"--edition {edition}: {exc}") from None
    catalogs = catalogs or Catalogs()  # the catalogue parsed once for the ICS, IXIT and record checks
    catalogs.get(edition)
    if not benches:
        raise CertlabError(f"{inventory.path}: the run has no bench; name one with --bench or add benches")
    for name in benches:
        inventory.bench(name)
    if release is not None:
        from lab.install import check_release_models, read_release

        check_release_models(read_release(release), inventory, benches)
    check_lab_profile(inventory)
    needed = suites_assess(suites)
    models = sorted({inventory.benches[b].dut.model for b in benches})
    products: dict[str, ProductInputs] = {}
    for model in models:
        folder = product_folder(inventory.base_dir, model)
        ics_path, ixit_path = product_files(inventory.base_dir, model, edition, ics=ics, ixit=ixit)
        if needed or (ics_path and ixit_path):
            loaded_ics, loaded_ixit = check_product(model, edition, ics_path=ics_path, ixit_path=ixit_path,
                                                    folder=folder, catalogs=catalogs)
        else:
            loaded_ics = load_ics(ics_path, edition, catalogs=catalogs) if ics_path else None
            loaded_ixit = load_ixit(ixit_path) if ixit_path else None
        products[model] = ProductInputs(model, loaded_ics, loaded_ixit)
    if assessments is not None and not assessments.exists():
        raise CertlabError(f"--assessments {assessments}: file not found; fix: give the assessor's record "
                           "(products/<model>/assessments.yaml)")
    records = for_run(inventory, list(benches), edition, assessments, catalogs=catalogs)
    for model, record in records.items():
        if products[model].ixit is not None:
            record.check_refs(products[model].ixit)
        products[model] = ProductInputs(model, products[model].ics, products[model].ixit, record)
    return Checked(edition=edition, benches=tuple(benches), products=products)


def check_lab_profile(inventory: Inventory) -> None:
    """A run whose report cannot be written should fail before it starts, not after."""
    if inventory.lab_profile:
        from lab.reports.profile import load_profile

        load_profile(inventory.resolve_path(inventory.lab_profile))
