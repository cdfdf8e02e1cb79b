"""5.8-2-2's scope from the IXIT: sensitive 21-PersData entries, their mechanisms and their clear-text markers."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from lab.errors import CertlabError
from lab.ixit import load_ixit
from lab.traffic.sensitive import sensitive_scope

from pathlib import Path

PRODUCTS = Path(__file__).resolve().parent.parent / "inventory" / "products"


def mech(mid: str, sensitive: bool = False):
    return NS(id=mid, carries=NS(sensitive_personal_data=sensitive))


def pers(pid: str, sensitive: bool, mechs=(), appears_as=()):
    return NS(id=pid, sensitive=sensitive, communication_mechanisms=tuple(mechs), appears_as=tuple(appears_as))


def test_th100_scope_is_the_occupancy_in_its_telemetry():
    scope = sensitive_scope(load_ixit(PRODUCTS / "TH-100" / "ixit.yaml"))
    assert scope.entries == ("occupancy-schedule",)
    assert scope.mechanisms == ("telemetry",)
    [(what, rx)] = scope.markers
    assert "occupancy-schedule" in what
    assert rx.search(b'{"Occupancy": "07:00-08:00"}') and not rx.search(b'{"temperature": 21.5}')


@pytest.mark.parametrize("model", ["OTS-1", "VM-1"])
def test_products_without_sensitive_data_have_an_empty_scope(model):
    scope = sensitive_scope(load_ixit(PRODUCTS / model / "ixit.yaml"))
    assert scope.entries == () and scope.mechanisms == () and scope.markers == ()


def test_a_mechanism_flagged_sensitive_is_in_scope_without_an_entry():
    ixit = NS(com_mech=[mech("a"), mech("b", sensitive=True)], pers_data=[pers("p", False, ["a"])])
    assert sensitive_scope(ixit).mechanisms == ("b",)


def test_sensitive_entry_without_appears_as_names_the_field():
    ixit = NS(com_mech=[mech("a")], pers_data=[pers("health", True, ["a"])])
    with pytest.raises(CertlabError, match="21-PersData entry 'health'.*appears_as"):
        sensitive_scope(ixit)


def test_sensitive_entry_naming_an_unknown_mechanism_names_it():
    ixit = NS(com_mech=[mech("a")], pers_data=[pers("health", True, ["nope"], ["pulse"])])
    with pytest.raises(CertlabError, match="'nope'.*11-ComMech"):
        sensitive_scope(ixit)
