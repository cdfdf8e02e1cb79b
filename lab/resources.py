"""Where the files certlab ships are: found through importlib.resources, never the source tree.

certlab runs the same from a source checkout (editable install) and from a wheel installed into
any venv, from any directory. Everything it ships is package data, so one lookup finds it in both:

* `testsuites` (the repo's testsuites/): the assessment suites (en303645) and the examples;
* `certlab_examples` (the repo's inventory/, mapped by setup.py): the sample lab: simulated
  inventories, their products and secrets, the lab profile, the example playbook;
* `lab.sim/data`, `lab.reports/templates`: the simulator's and the report's own files.

What is not shipped is never looked up here: a lab's own inventory comes from `-i` or
CERTLAB_INVENTORY (`inventory_path`), reports go to `./reports` or CERTLAB_REPORTS_DIR.

    resources.assessment_suites()      # .../testsuites/en303645
    resources.example("sim.yaml")      # .../certlab_examples/sim.yaml (the repo's inventory/sim.yaml)
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from lab.errors import CertlabError

__all__ = [
    "EXAMPLES_PACKAGE", "INVENTORY_ENV", "REPORTS_ENV", "SUITES_PACKAGE", "assessment_suites", "default_playbook",
    "default_reports_dir", "example", "example_suites", "examples_root", "import_root", "inventory_path",
    "package_dir", "resolve_suite", "sim_data", "sim_inventory", "suites_root", "templates_dir",
]

SUITES_PACKAGE = "testsuites"
EXAMPLES_PACKAGE = "certlab_examples"
INVENTORY_ENV = "CERTLAB_INVENTORY"
REPORTS_ENV = "CERTLAB_REPORTS_DIR"
NO_INVENTORY = f"no inventory: pass -i FILE or set {INVENTORY_ENV}"


def package_dir(package: str) -> Path:
    """The folder of an installed package, as a real path (pytest, ansible and yaml read files)."""
    try:
        found = resources.files(package)
    except ModuleNotFoundError:
        raise CertlabError(f"package {package} is not installed: certlab is incomplete; reinstall it "
                           f"(pip install certlab, or `sh scripts/setup.sh` in a checkout)") from None
    path = Path(str(found))
    if not path.is_dir():  # a zipped install: the suites and the sample lab must be real files
        raise CertlabError(f"package {package} is not a folder ({found}); install certlab unzipped (pip install)")
    return path


def suites_root() -> Path:
    """The shipped suites' folder (`testsuites`): en303645/ and examples/ are in it."""
    return package_dir(SUITES_PACKAGE)


def assessment_suites() -> Path:
    """EN 303 645 as TS 103 701 tests it: what `certlab run` assesses unless --suite says otherwise."""
    return suites_root() / "en303645"


def example_suites() -> Path:
    """The examples suite: a short tour of a bench (power, console, SSH), for the demo and a first run."""
    return suites_root() / "examples"


NAMED_SUITES: dict[str, str] = {"en303645": "testsuites/en303645", "examples": "testsuites/examples"}
"""The suites a booking or a queued run may name -> their `--suite` path (see `resolve_suite`)."""


def resolve_suite(path: str) -> Path:
    """A --suite path as given: as is when it exists (relative to the current folder), else inside the
    shipped suites when it starts with testsuites/ (so `--suite testsuites/examples` works anywhere)."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    parts = given.parts
    if parts and parts[0] == SUITES_PACKAGE:
        return suites_root().joinpath(*parts[1:])
    return given


def examples_root() -> Path:
    """The sample lab (the repo's inventory/): simulated inventories, products, secrets, lab profile."""
    return package_dir(EXAMPLES_PACKAGE)


def example(name: str) -> Path:
    """A file of the sample lab, e.g. example("sim.yaml") or example("products/TH-100")."""
    return examples_root() / name


def sim_inventory() -> Path:
    """The simulated lab `certlab demo` brings up: four samples of one thermostat."""
    return example("sim.yaml")


def default_playbook() -> Path:
    """The provisioning playbook a bench without its own `playbook` gets."""
    return example("playbooks/example-provision.yaml")


def sim_data(name: str) -> Path:
    """A file the simulator ships (lab/sim/data), e.g. the fake security.txt signing key."""
    return package_dir("lab.sim") / "data" / name


def templates_dir() -> Path:
    """The report's HTML templates (lab/reports/templates)."""
    return package_dir("lab.reports") / "templates"


def import_root() -> Path:
    """The folder `lab` is imported from: what a child Python needs on its path when it starts elsewhere."""
    return package_dir("lab").parent


def default_reports_dir(env: dict[str, str] | None = None) -> Path:
    """Where runs go without --out: CERTLAB_REPORTS_DIR, else ./reports of the current folder."""
    value = (os.environ if env is None else env).get(REPORTS_ENV)
    return Path(value).expanduser() if value else Path("reports")


def inventory_path(given: Path | None, env: dict[str, str] | None = None) -> Path:
    """The inventory of a command: -i, else CERTLAB_INVENTORY; never a silent default (the simulated lab
    is for `certlab demo` only)."""
    if given is not None:
        return given
    value = (os.environ if env is None else env).get(INVENTORY_ENV)
    if not value:
        raise CertlabError(NO_INVENTORY)
    return Path(value).expanduser()
