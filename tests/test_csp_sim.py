"""The simulated DUT's secrets at rest and host key, conforming and flawed, read the way 5.4-1-2 / 5.4-3-2 read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.csp import keys, storage
from lab.sim import vendor
from test_sim_dut import MODEL, booted, make_dut  # noqa: F401 - make_dut is a fixture

pytestmark = pytest.mark.timeout(60)

WIFI = "Wifi-Key-0123456789"


@pytest.mark.parametrize("flaw", [None, "secrets_in_clear_at_rest"])
def test_wifi_key_at_rest(make_dut, flaw: str | None) -> None:
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    assert dut.run(f"config set wifi_psk {WIFI}")[0] == 0
    with dut.ssh() as client, client.open_sftp() as sftp:
        listing = storage.walk(sftp, ["/data", "/etc/certlab", "/root"])
        sealed = None if flaw else sftp.stat("/etc/certlab/secrets.json").st_mode & 0o777
    assert listing.incomplete == []
    found = storage.find_secrets(listing.files, [storage.Secret("wifi-key", WIFI)])
    if flaw:
        assert [(f.path, f.form, f.mode & 0o004) for f in found] == [("/etc/certlab/config.json", "in clear", 0o004)]
        assert "cloud_token" in dut.run("config show")[1]
    else:
        assert found == [] and sealed == 0o600
        assert dut.run("config get wifi_psk")[0] == 1  # never shown back


@pytest.mark.parametrize("flaw", [None, "shared_host_key"])
def test_host_key_baked_into_the_release_image(make_dut, tmp_path: Path, flaw: str | None) -> None:
    dut = booted(make_dut, flaws=[flaw] if flaw else [])
    dut.run("true")
    assert keys.offered_host_key_algorithms("127.0.0.1", dut.ssh_port, 5) == ["ssh-ed25519"]
    mine, missing = keys.fetch_host_keys("127.0.0.1", dut.ssh_port, 5)
    assert [k.algorithm for k in mine] == ["ssh-ed25519"] and missing == {}
    vendor.write_releases(tmp_path / "fw", MODEL)
    image = (tmp_path / "fw" / vendor.release_filename(MODEL, "1.5.0")).read_bytes()
    problems = keys.image_problems(keys.scan_image("TH-100-1.5.0.clfw", image, mine))
    if flaw:
        assert len(problems) == 1 and f"the private half of the device's host key {mine[0].describe()}" in problems[0]
    else:
        assert problems == []
