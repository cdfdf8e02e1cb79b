"""lab/web/publication.py: the judgements of 5.2-1-2, 5.3-13-2 and 5.3-14-2 on small pages."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from lab.web.fetch import Hop, Page
from lab.web.publication import (key_path, non_updatable_findings, page_findings, policy_findings,
                                 security_txt_findings, support_period_findings)
from lab.web.securitytxt import Verification, parse

URL = "https://v.test/.well-known/security.txt"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
TXT = f"Contact: mailto:sec@v.test\nExpires: 2026-12-01T00:00:00Z\nCanonical: {URL}\n"


def _page(body: str, *, status: int = 200, ctype: str = "text/html", url: str = "https://v.test/p", hops=()) -> Page:
    return Page(url, url + "/x" if hops else url, status, "Not Found" if status == 404 else "OK",
                (("Content-Type", ctype),), body.encode(), "2026-06-01T00:00:00+00:00", tuple(hops))


def test_public_page_has_no_findings():
    assert page_findings(_page("<p>hello</p>"), "the policy") == []


def test_page_errors_and_walls():
    assert "HTTP 404 Not Found" in page_findings(_page("x", status=404), "the policy")[0]
    walled = _page('<form><input type="password"></form>', hops=[Hop("https://v.test/p", 302, "/login")])
    assert page_findings(walled, "the policy")[0].startswith("the policy is not public")
    assert "no visible text" in page_findings(_page("<script>x</script>"), "the policy")[0]


def test_policy_contact_and_timelines():
    text = "Write to SEC@v.test. We answer within 5  working days."
    assert policy_findings(text, "sec@v.test", ("within 5 working days",)) == []
    found = policy_findings(text, "psirt@v.test", ("within 5 working days", "within 90 days"))
    assert len(found) == 2 and "psirt@v.test" in found[0] and "within 90 days" in found[1]


def test_security_txt_good_and_contact():
    page = _page(TXT, url=URL, ctype="text/plain; charset=utf-8")
    ok = Verification(True, "good")
    assert security_txt_findings(page, parse(TXT), now=NOW, declared_signed=False, verification=None,
                                 contact="sec@v.test") == []
    found = security_txt_findings(page, parse(TXT), now=NOW, declared_signed=False, verification=ok,
                                  contact="other@v.test")
    assert len(found) == 1 and "other@v.test" in found[0]


def test_security_txt_expired_unsigned_and_bad_signature():
    page = _page(TXT, url=URL, ctype="text/plain")
    late = datetime(2027, 1, 1, tzinfo=timezone.utc)
    found = security_txt_findings(page, parse(TXT), now=late, declared_signed=True, verification=None, contact=None)
    assert any("expired" in f for f in found) and any("not OpenPGP-signed" in f for f in found)
    signed = parse("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + TXT + "-----BEGIN PGP SIGNATURE-----\nx\n")
    found = security_txt_findings(page, signed, now=NOW, declared_signed=True,
                                  verification=Verification(False, "signed by a key other than the one the IXIT names"),
                                  contact=None)
    assert found == [f"security.txt ({URL}): its OpenPGP signature does not verify with the IXIT's key: "
                     "signed by a key other than the one the IXIT names"]


def test_support_period():
    text = "Support for the TH-100 and TH-100T. Security updates until 31 December 2030."
    assert support_period_findings(text, date(2030, 12, 31), "TH-100") == []
    found = support_period_findings(text.replace("31 December 2030", "30 June 2027"), date(2030, 12, 31), "TH-100")
    assert found == ["the support page does not state the end of the support period the IXIT gives (2030-12-31); "
                     "dates it states: 2027-06-30"]
    assert "does not name the model 'TH-10X'" in support_period_findings(text, date(2030, 12, 31), "TH-10X")[0]


def test_non_updatable():
    text = ("The TH-10 is supported until 31 December 2029. It cannot be updated because of OTP memory. "
            "We send a free replacement unit.")
    assert non_updatable_findings(text, "cannot be updated because", "replacement unit", date(2029, 12, 31)) == []
    bare = "The TH-10 is supported, without software updates, until 31 December 2029."
    found = non_updatable_findings(bare, "cannot be updated because", "replacement unit", date(2029, 12, 31))
    assert len(found) == 2 and "rationale" in found[0] and "replacement" in found[1]
    assert "end of the support period" in non_updatable_findings(text, "because", "unit", date(2030, 1, 1))[0]


def test_key_path_is_relative_to_the_ixit():
    assert key_path(Path("/p/TH-10/ixit.yaml"), "k.asc") == Path("/p/TH-10/k.asc")
    assert key_path(Path("/p/TH-10/ixit.yaml"), "/abs/k.asc") == Path("/abs/k.asc")
