"""The IXIT facts 5.4-1-2 reads: 10-SecParam's typed storage fields and test_facts.persistent_storage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.ixit import IxitError, load_ixit

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml"


def test_shipped_product_documents_its_secret_storage() -> None:
    ixit = load_ixit(SHIPPED)
    wifi = next(p for p in ixit.sec_param if p.id == "wifi-key")
    assert (wifi.config_key, wifi.stored_in, wifi.file_mode) == ("wifi_psk", ("/etc/certlab/secrets.json",), "0600")
    assert ixit.test_facts.persistent_storage == ("/data", "/etc/certlab", "/root")


@pytest.mark.parametrize("where, value, words", [
    ("stored_in", ["etc/secrets.json"], "10-SecParam[{i}].stored_in"),
    ("file_mode", "rw-------", "10-SecParam[{i}].file_mode"),
    ("file_mode", 600, "10-SecParam[{i}].file_mode"),
    ("persistent_storage", ["data"], "test_facts.persistent_storage"),
    ("persistent_storage", [], "test_facts.persistent_storage"),
])
def test_bad_storage_fields_give_one_line(tmp_path: Path, where: str, value: object, words: str) -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    if where == "persistent_storage":
        raw["test_facts"][where] = value
    else:
        (i,) = [n for n, p in enumerate(raw["10-SecParam"]) if p["id"] == "wifi-key"]
        raw["10-SecParam"][i][where] = value
        words = words.format(i=i)
    path = tmp_path / "ixit.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(IxitError) as exc:
        load_ixit(path)
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and words in text, text
