"""lab/resources.py: shipped files found as package data, and no default that points at the sample lab."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lab import resources
from lab.errors import CertlabError
from lab.inventory import load_inventory

LAB = Path(__file__).resolve().parents[1] / "lab"


def test_the_shipped_suites_and_sample_lab_are_found_as_packages() -> None:
    assert (resources.assessment_suites() / "test_5_1_passwords.py").is_file()
    assert (resources.example_suites() / "test_examples.py").is_file()
    assert resources.suites_root().name == "testsuites"  # suite paths read testsuites/... installed or not
    assert load_inventory(resources.sim_inventory()).benches
    assert (resources.example("products/TH-100") / "ics.yaml").is_file()
    assert resources.default_playbook().is_file()
    assert (resources.templates_dir() / "conformance.css").is_file()
    assert resources.sim_data("security-txt-signing-key.asc").is_file()
    assert (resources.import_root() / "lab" / "resources.py").is_file()


def test_a_missing_package_is_one_line_naming_the_fix() -> None:
    with pytest.raises(CertlabError, match=r"package certlab_nope is not installed: .*reinstall it"):
        resources.package_dir("certlab_nope")


def test_inventory_comes_from_the_option_or_the_environment_never_a_default() -> None:
    given = Path("mine.yaml")
    assert resources.inventory_path(given, env={"CERTLAB_INVENTORY": "/x.yaml"}) == given
    assert resources.inventory_path(None, env={"CERTLAB_INVENTORY": "/lab/x.yaml"}) == Path("/lab/x.yaml")
    for env in ({}, {"CERTLAB_INVENTORY": ""}):
        with pytest.raises(CertlabError, match=r"^no inventory: pass -i FILE or set CERTLAB_INVENTORY$"):
            resources.inventory_path(None, env=env)


def test_reports_go_to_the_current_folder_unless_the_environment_says() -> None:
    assert resources.default_reports_dir(env={}) == Path("reports")
    assert resources.default_reports_dir(env={"CERTLAB_REPORTS_DIR": "/srv/reports"}) == Path("/srv/reports")


def test_a_suite_named_under_testsuites_is_the_shipped_one_from_any_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resources.resolve_suite("testsuites/examples") == resources.example_suites()
    assert resources.resolve_suite("testsuites/en303645/test_5_1_passwords.py").is_file()
    (tmp_path / "mine").mkdir()
    assert resources.resolve_suite("mine") == Path("mine")  # a lab's own suite, relative to where it runs
    assert resources.resolve_suite("nowhere") == Path("nowhere")  # the caller names what is missing


def test_no_module_finds_the_source_tree_through_its_own_file() -> None:
    """`Path(__file__).parents[...]` is how code reaches testsuites/ or inventory/ of a checkout: an
    installed wheel has neither there. Only the store's migrations (inside their own package) may."""
    allowed = {LAB / "store" / "migrations" / "__init__.py"}
    offenders = []
    for path in sorted(LAB.rglob("*.py")):
        if path in allowed:
            continue
        text = path.read_text(encoding="utf-8")
        if "__file__" not in text:
            continue
        tree = ast.parse(text)
        if any(isinstance(node, ast.Name) and node.id == "__file__" for node in ast.walk(tree)):
            offenders.append(str(path.relative_to(LAB.parent)))
    assert offenders == [], f"use lab.resources instead of __file__ in {offenders}"
