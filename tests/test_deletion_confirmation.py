"""5.11-4-1's judgement (lab.deletion) and the typed IXIT facts it and 5.9-3-2 read, without a DUT."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.deletion import confirmation_shown
from lab.errors import CertlabError
from lab.ixit import Reconnect, load_ixit

TH100 = Path(__file__).resolve().parents[1] / "inventory" / "products" / "TH-100" / "ixit.yaml"


def test_the_documented_confirmation_is_found_in_what_the_command_printed() -> None:
    out = "factory-reset: erasing configuration and user data\r\nfactory-reset: done; rebooting\r\n"
    assert confirmation_shown(out, "factory-reset: done")
    assert confirmation_shown("\x1b[32mfactory-reset: done\x1b[0m\r\n", "^factory-reset: done")


def test_silence_or_another_text_is_no_confirmation() -> None:
    assert not confirmation_shown("", "factory-reset: done")
    assert not confirmation_shown("factory-reset: erasing configuration and user data\n", "factory-reset: done")


def _with(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(TH100.read_text())
    edit(data)
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_simulated_products_document_what_the_lab_checks() -> None:
    ixit = load_ixit(TH100)
    assert [f.confirmation_pattern for f in ixit.del_func if f.command] == ["factory-reset: done"]
    assert ixit.com_mech[0].reconnect == Reconnect(initial_seconds=0.25, factor=2, max_seconds=1, jitter=0.5)


def test_a_confirmation_pattern_that_is_no_regular_expression_is_one_line_naming_the_field(tmp_path: Path) -> None:
    path = _with(tmp_path, lambda d: d["25-DelFunc"][0].update(confirmation_pattern="done ("))
    with pytest.raises(CertlabError) as err:
        load_ixit(path)
    assert "confirmation_pattern" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("reconnect", [{"initial_seconds": 2, "max_seconds": 1}, {"initial_seconds": 1, "max_seconds": 2,
                                       "jitter": 1.5}, {"max_seconds": 2}])
def test_a_reconnect_policy_that_cannot_be_is_refused_naming_the_field(tmp_path: Path, reconnect: dict) -> None:
    path = _with(tmp_path, lambda d: d["11-ComMech"][0].update(reconnect=reconnect))
    with pytest.raises(CertlabError) as err:
        load_ixit(path)
    assert "reconnect" in str(err.value) and "\n" not in str(err.value)
