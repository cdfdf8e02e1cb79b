"""The firmware actions (lab.actions.firmware): only the booking's manufacturer uploads, the signature
is checked against the IXIT's update key (valid / invalid with why / unchecked with why), the same
bytes are kept once, a booking under test takes no image, and the image's bytes are read only by its
manufacturer or the lab."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from inputs_lab import add_booking, caller, services, set_status
from webui import make_app

from lab.actions import firmware
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from lab.firmware import build_image
from lab.sim.vendor import build_release


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    client = make_app(tmp_path_factory.mktemp("firmware"))
    yield client.app  # type: ignore[misc]
    services(client.app).store.close()  # type: ignore[arg-type]


def upload(app: FastAPI, booking_id: int, data: bytes, who: str = "maker", name: str = "fw.clfw") -> firmware.Upload:
    return firmware.upload_firmware(services(app), caller(app, who), booking_id, io.BytesIO(data), name)


def test_the_signature_is_valid_invalid_or_unchecked_with_why(app: FastAPI) -> None:
    bid = add_booking(app)
    good = upload(app, bid, build_release("TH-100", "1.4.0", 3, size=2048), name="dir/TH-100-1.4.0.clfw")
    assert good.created and (good.firmware.signature, good.firmware.version) == ("valid", "1.4.0")
    assert good.firmware.filename == "TH-100-1.4.0.clfw" and "7-UpdMech" in good.firmware.signature_detail
    forged = build_image(model="TH-100", version="1.4.1", security_version=3, payload=b"e" * 64,
                         private_key=Ed25519PrivateKey.generate())
    bad = upload(app, bid, forged).firmware
    assert bad.signature == "invalid" and "another key" in bad.signature_detail
    junk = upload(app, bid, b"\x7fELF junk").firmware
    assert junk.signature == "unchecked" and firmware.NOT_AN_IMAGE in junk.signature_detail
    with pytest.raises(Invalid) as exc:
        upload(app, bid, build_image(model="XY-9", version="1", security_version=1, payload=b"q" * 8, private_key=None))
    assert exc.value.field == "file" and "XY-9" in exc.value.msg
    with pytest.raises(Invalid):
        upload(app, bid, b"")
    again = upload(app, bid, build_release("TH-100", "1.4.0", 3, size=2048))
    assert not again.created and again.firmware.id == good.firmware.id

    panel = firmware.booking_firmware(services(app), caller(app, "maker"), bid)
    assert [i.firmware.signature for i in panel.items] == ["valid", "invalid", "unchecked"]
    assert panel.can_upload and panel.can_download and [i.uploaded_by for i in panel.items] == ["maker"] * 3
    lab = firmware.booking_firmware(services(app), caller(app, "lab"), bid)
    assert not lab.can_upload and lab.can_download and lab.frozen is None


def test_an_ixit_without_an_update_key_leaves_it_unchecked(app: FastAPI) -> None:
    bid = add_booking(app, ixit="product: {model: TH-100}\n7-UpdMech: []\n")
    row = upload(app, bid, build_release("TH-100", "1.4.0", 3, size=512)).firmware
    assert row.signature == "unchecked" and "signing key" in row.signature_detail


@pytest.mark.parametrize("name", ["lab", "cert"])
def test_only_the_manufacturer_uploads(app: FastAPI, name: str) -> None:
    with pytest.raises(Forbidden):
        upload(app, add_booking(app), b"x", who=name)


def test_another_tenant_and_a_frozen_booking(app: FastAPI) -> None:
    bid = add_booking(app)
    with pytest.raises(NotFound):
        upload(app, bid, b"x", who="rival")
    row = upload(app, bid, b"image bytes").firmware
    with pytest.raises(NotFound):
        firmware.get_firmware(services(app), caller(app, "rival"), row.id)
    with pytest.raises(NotFound):
        firmware.booking_firmware(services(app), caller(app, "rival"), bid)
    with pytest.raises(Forbidden):
        firmware.firmware_file(services(app), caller(app, "cert"), row.id)
    path, same = firmware.firmware_file(services(app), caller(app, "lab"), row.id)
    assert path.read_bytes() == b"image bytes" and same.id == row.id
    set_status(app, bid, "running")
    with pytest.raises(Conflict):
        upload(app, bid, b"later")
    panel = firmware.booking_firmware(services(app), caller(app, "maker"), bid)
    assert not panel.can_upload and "running" in (panel.frozen or "")
    path.unlink()
    with pytest.raises(firmware.Gone):
        firmware.firmware_file(services(app), caller(app, "maker"), row.id)


def test_an_upload_over_the_limit_is_too_large_and_leaves_nothing(app: FastAPI) -> None:
    import dataclasses

    svc = services(app)
    before = svc.settings
    svc.settings = dataclasses.replace(before, max_upload_bytes=1024)
    try:
        with pytest.raises(TooLarge) as exc:
            upload(app, add_booking(app), b"x" * 2048)
        assert "upload limit of 1024 bytes" in str(exc.value)
    finally:
        svc.settings = before
    assert not [p for p in (before.firmware_dir / "tmp").iterdir()]
