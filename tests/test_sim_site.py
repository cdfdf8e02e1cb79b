"""The simulated manufacturer's pages: what each says, the four site flaws, and security.txt
signed with the FAKE vendor key so that the public key shipped beside TH-100's IXIT verifies it."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from lab.sim import vendor
from lab.sim.site import Site, clearsign, security_txt

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_KEY = ROOT / "inventory" / "products" / "TH-100" / "security-txt-key.asc"
NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.timezone.utc)

pytestmark = pytest.mark.timeout(60)
needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="gnupg is a system package (system-packages.txt)")


def text(site: Site, path: str) -> str:
    page = site.get(path)
    assert page.status == 200, (path, page.status)
    return page.body.decode()


def test_pages_say_what_the_ixit_quotes() -> None:
    site = Site(frozenset(), "unsigned")
    policy = text(site, "/security/disclosure")
    assert "security@sim-devices.certlab.test" in policy
    assert "within 5 working days" in policy and "within 90 days" in policy
    assert "Security updates until 31 December 2030" in text(site, "/support/th-100")
    assert "TH-100 and TH-100T" in text(site, "/support/th-100")
    th10 = text(site, "/support/th-10")
    assert "31 December 2029" in th10 and "cannot be updated because" in th10 and "replacement unit" in th10
    assert 'type="password"' in text(site, "/login")
    assert site.get("/nothing-here").status == 404
    assert text(site, "/.well-known/security.txt?x=1") == "unsigned"


def test_flaw_disclosure_policy_behind_login() -> None:
    page = Site(frozenset({"disclosure_policy_behind_login"}), "").get("/security/disclosure")
    assert page.status == 302 and page.location == "/login?next=%2Fsecurity%2Fdisclosure"


def test_flaw_support_period_mismatch_only_on_the_updatable_page() -> None:
    site = Site(frozenset({"support_period_mismatch"}), "")
    assert "Security updates until 30 June 2027" in text(site, "/support/th-100")
    assert "31 December 2030" not in text(site, "/support/th-100")
    assert "31 December 2029" in text(site, "/support/th-10")


def test_flaw_non_updatable_rationale_missing_keeps_the_period() -> None:
    th10 = text(Site(frozenset({"non_updatable_rationale_missing"}), ""), "/support/th-10")
    assert "31 December 2029" in th10
    assert "cannot be updated because" not in th10 and "replacement unit" not in th10


def test_security_txt_fields_and_the_expired_flaw() -> None:
    fresh = security_txt(NOW, expired=False)
    assert "Contact: mailto:security@sim-devices.certlab.test\n" in fresh
    assert "Expires: 2027-06-05T12:00:00Z\n" in fresh
    assert "Policy: https://sim-devices.certlab.test/security/disclosure\n" in fresh
    assert "Canonical: https://sim-devices.certlab.test/.well-known/security.txt\n" in fresh
    assert "Expires: 2026-11-27T12:00:00Z\n" in security_txt(NOW, expired=True)


def _verify(signed: str) -> subprocess.CompletedProcess[bytes]:
    home = tempfile.mkdtemp(prefix="certlab-gpgt-")
    env = {**os.environ, "GNUPGHOME": home}
    try:
        subprocess.run(["gpg", "--batch", "--quiet", "--import", str(PUBLIC_KEY)], env=env, check=True,
                       capture_output=True, timeout=20)
        return subprocess.run(["gpg", "--batch", "--verify"], input=signed.encode(), env=env,
                              capture_output=True, timeout=20)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, timeout=20)
        shutil.rmtree(home, ignore_errors=True)


@needs_gpg
def test_security_txt_is_signed_and_verifies_with_the_published_key() -> None:
    signed = clearsign(security_txt(NOW, expired=True), vendor.SECURITY_TXT_KEY)
    assert signed is not None and signed.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    assert "Expires: 2026-11-27T12:00:00Z" in signed
    assert _verify(signed).returncode == 0
    tampered = signed.replace("2026-11-27", "2036-11-27")
    assert _verify(tampered).returncode != 0
    page = Site.build(frozenset()).get("/.well-known/security.txt")
    assert page.body.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----") and _verify(page.body.decode()).returncode == 0


def test_without_a_usable_key_security_txt_is_served_unsigned(tmp_path: Path) -> None:
    bad = tmp_path / "no-key.asc"
    bad.write_text("not a key\n")
    assert clearsign("Contact: mailto:x@y\n", bad) is None
    page = Site.build(frozenset(), key_file=bad).get("/.well-known/security.txt")
    assert page.body.startswith(b"Contact: mailto:security@sim-devices.certlab.test")
