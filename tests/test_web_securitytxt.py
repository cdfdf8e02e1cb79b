"""lab/web/securitytxt.py: RFC 9116 checks and OpenPGP verification with throwaway keys made here."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lab.errors import CertlabError
from lab.web.securitytxt import parse, problems, verify

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
URL = "https://vendor.test/.well-known/security.txt"
GOOD = (f"Contact: mailto:security@vendor.test\nExpires: 2026-12-01T00:00:00Z\n"
        f"Policy: https://vendor.test/security/disclosure\nCanonical: {URL}\n")

def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback",
                           "--passphrase", "", *args], input=stdin, capture_output=True, check=True,
                          timeout=60).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two signers: the manufacturer's key (its public key file) and another one."""
    out = {}
    for who in ("vendor", "other"):
        home = tmp_path_factory.mktemp(f"gpg-{who}")
        home.chmod(0o700)
        _gpg(home, "--quick-gen-key", f"{who} test key (throwaway)", "ed25519", "sign", "never")
        pub = home / "pub.asc"
        pub.write_bytes(_gpg(home, "--armor", "--export"))
        out[who] = (home, pub)
    yield out
    for home, _ in out.values():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=10)


def _sign(keys, who: str, text: str) -> str:
    return _gpg(keys[who][0], "--clearsign", stdin=text.encode()).decode()


def test_valid_file_has_no_problems():
    assert problems(parse(GOOD), now=NOW, url=URL, content_type="text/plain; charset=utf-8") == []


def test_expired():
    text = GOOD.replace("2026-12-01T00:00:00Z", "2026-01-01T00:00:00Z")
    assert any(p.startswith("expired") for p in problems(parse(text), now=NOW, url=URL, content_type=None))


@pytest.mark.parametrize("drop,expect", [("Contact", "no Contact"), ("Expires", "no Expires")])
def test_missing_required_field(drop, expect):
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith(drop))
    assert any(expect in p for p in problems(parse(text), now=NOW, url=URL, content_type=None))


def test_duplicate_expires():
    text = GOOD + "Expires: 2026-11-01T00:00:00Z\n"
    assert any("2 Expires" in p for p in problems(parse(text), now=NOW, url=URL, content_type=None))


def test_other_findings():
    text = GOOD.replace("mailto:", "email ") + "Expires-ish garbage\n"
    found = problems(parse(text.replace(URL, "https://elsewhere.test/x")), now=NOW, url=URL, content_type="text/html")
    assert any("not text/plain" in p for p in found)
    assert any("is not a mailto:" in p for p in found)
    assert any("Canonical" in p for p in found)
    assert any("malformed" in p for p in found)


def test_expires_needs_an_offset():
    text = GOOD.replace("2026-12-01T00:00:00Z", "2026-12-01")
    assert any("RFC 3339" in p for p in problems(parse(text), now=NOW, url=URL, content_type=None))


def test_signed_file_reads_only_the_signed_part(keys):
    signed = _sign(keys, "vendor", "# comment\n-- dash line\n" + GOOD) + "Contact: mailto:attacker@evil.test\n"
    assert "\n- -- dash line" in signed  # gpg dash-escapes it; the parser reads it back unescaped
    st = parse(signed)
    assert st.signed and st.values("contact") == ["mailto:security@vendor.test"]
    assert len(st.malformed) == 1 and "'-- dash line'" in st.malformed[0]


def test_good_signature(keys):
    result = verify(_sign(keys, "vendor", GOOD), keys["vendor"][1])
    assert result.ok and "vendor test key" in result.detail


def test_signature_by_another_key(keys):
    result = verify(_sign(keys, "other", GOOD), keys["vendor"][1])
    assert not result.ok and "other than the one the IXIT names" in result.detail


def test_tampered_body(keys):
    signed = _sign(keys, "vendor", GOOD).replace("security@vendor.test", "security@evil.test")
    result = verify(signed, keys["vendor"][1])
    assert not result.ok and "altered" in result.detail


def test_unsigned_when_declared_signed(keys):
    assert not parse(GOOD).signed
    result = verify(GOOD, keys["vendor"][1])
    assert not result.ok and "no OpenPGP signature" in result.detail


def test_bad_key_file_names_the_ixit_field(keys, tmp_path):
    bad = tmp_path / "key.asc"
    bad.write_text("not a key\n")
    with pytest.raises(CertlabError, match="openpgp_key"):
        verify(_sign(keys, "vendor", GOOD), bad)
    with pytest.raises(CertlabError, match="no such file"):
        verify(GOOD, tmp_path / "absent.asc")


def test_simulator_key_pair_matches(tmp_path):
    """The committed FAKE simulator private key signs what TH-100's public key verifies."""
    root = Path(__file__).resolve().parent.parent
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    _gpg(home, "--import", str(root / "lab/sim/data/security-txt-signing-key.asc"))
    signed = _gpg(home, "--clearsign", stdin=GOOD.encode()).decode()
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=10)
    for model in ("TH-100", "TH-100T", "TH-10"):
        assert verify(signed, root / "inventory/products" / model / "security-txt-key.asc").ok
