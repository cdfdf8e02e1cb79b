"""TS 103 701 5.2-1-2, 5.3-13-2 and 5.3-14-2: what the manufacturer publishes on the web.

The lab visits the pages the IXIT names (2-UserInfo.publication) as an anonymous visitor, through
the bench's `web` resource (lab/web/fetch.py: no login, no cookies, only the IXIT's hosts, bounded
redirects, size and time), keeps every page as evidence (body, headers, SHA-256, time) and checks
that each is public and says what the IXIT states it says. The DUT is not touched, so these tests
ask for no bench state (the bench's health check still runs once per session).

What stays a person's judgement (is the policy clear, complete, adequate; is the rationale
convincing) is not decided here: it is the assessor's decision on the conceptual case (5.2-1-1,
5.3-13-1, 5.3-14-1) in the product's assessor's record (lab/assessments.py), reported beside these.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import allure
import pytest

from fixtures.etsi import settings
from lab.errors import CertlabError, DutError
from lab.web.fetch import Page, fetch, web_target
from lab.web.pages import visible_text
from lab.web.publication import (key_path, non_updatable_findings, page_findings, policy_findings,
                                 security_txt_findings, support_period_findings)
from lab.web.securitytxt import parse, verify

ASSESSOR_NOTE = ("whether the published text is clear, complete and adequate is the assessor's decision on the "
                 "conceptual case {case} in the assessor's record (assessments.yaml), not decided here")


@pytest.fixture
def ixit_path(request: pytest.FixtureRequest, bench) -> Path:
    """The IXIT file the run read for this bench's model (its openpgp_key is relative to it)."""
    return settings(request.config).ixit_file_for(bench.inventory, bench.config.dut.model)


def _url(ixit, field: str) -> str:
    url = ixit.user_info.publication.url_of(field)
    if url is None:
        value = getattr(ixit.user_info.publication, field)
        raise CertlabError(f"2-UserInfo.publication.{field} is {value!r}, not a web address the lab can visit: give "
                           "its http(s) URL in the IXIT, or record the case as performed by hand in the assessor's "
                           "record (performed:)")
    return url


def _keep(evidence, name: str, page: Page) -> dict:
    """The page's body as its own evidence file, its record (status, headers, hash, time) beside it."""
    body = evidence.path(f"{name}.body")
    body.write_bytes(page.body)
    record = {**page.record(), "body_file": body.name}
    evidence.json(name, record)
    return record


def _visit(target, evidence, name: str, url: str, what: str) -> tuple[Page, list[str]]:
    with allure.step(f"visit {what}: {url}"):
        page = fetch(target, url)
        _keep(evidence, name, page)
        return page, page_findings(page, what)


@pytest.mark.etsi("5.2-1-2")
def test_5_2_1_2_disclosure_policy_published(bench, ixit, ixit_path, evidence):
    """The disclosure policy is public (no login), names the IXIT's contact and timelines; the declared
    security.txt is valid under RFC 9116, signed by the IXIT's key where declared, and gives that contact."""
    publication = ixit.user_info.publication
    policy_url = _url(ixit, "vulnerability_disclosure_policy")
    statements = publication.statements.vulnerability_disclosure_policy
    if statements is None:
        raise CertlabError("the IXIT does not say what the disclosure policy states: add "
                           "2-UserInfo.publication.statements.vulnerability_disclosure_policy {contact, timelines}")
    sectxt = publication.security_txt
    target = web_target(bench, [policy_url, sectxt.url if sectxt else None], hosts_field="2-UserInfo.publication")
    page, findings = _visit(target, evidence, "policy", policy_url, "the vulnerability disclosure policy")
    if not findings:
        findings += policy_findings(visible_text(page), statements.contact, statements.timelines)
    summary = {"policy_url": policy_url, "contact": statements.contact, "timelines": list(statements.timelines),
               "security_txt": None, "assessor": ASSESSOR_NOTE.format(case="5.2-1-1")}
    if sectxt is None:
        summary["security_txt"] = "the IXIT declares none (2-UserInfo.publication.security_txt): not checked"
    else:
        txt, txt_findings = _visit(target, evidence, "security-txt", sectxt.url, "security.txt")
        if not txt_findings:
            st = parse(txt.text)
            verification = None
            if sectxt.signed:
                if not sectxt.openpgp_key:
                    raise CertlabError("2-UserInfo.publication.security_txt.signed is true but openpgp_key names no "
                                       "key file: give the armored public key that signs it")
                with allure.step("verify the OpenPGP signature with the IXIT's key"):
                    verification = verify(txt.text, key_path(ixit_path, sectxt.openpgp_key))
            txt_findings = security_txt_findings(txt, st, now=datetime.now(timezone.utc),
                                                 declared_signed=sectxt.signed, verification=verification,
                                                 contact=statements.contact)
            summary["security_txt"] = {
                "url": sectxt.url, "fields": [[f.name, f.value] for f in st.fields], "signed": st.signed,
                "signature": None if verification is None else {"ok": verification.ok, "detail": verification.detail,
                                                                "gpgv_status": list(verification.status)}}
        findings += txt_findings
    summary["findings"] = findings
    evidence.json("summary", summary)
    if findings:
        raise DutError("; ".join(findings))


@pytest.mark.etsi("5.3-13-2")
def test_5_3_13_2_support_period_published(bench, ixit, evidence):
    """The support page the IXIT names is public, names the model and states the IXIT's end of the
    defined support period."""
    url = _url(ixit, "support_period")
    end = ixit.user_info.support_period.end
    designation = ixit.user_info.model_designation.designation
    target = web_target(bench, [url], hosts_field="2-UserInfo.publication.support_period")
    page, findings = _visit(target, evidence, "support-page", url, "the support period's publication")
    if not findings:
        findings = support_period_findings(visible_text(page), end, designation)
    evidence.json("summary", {"url": url, "ixit_end": end.isoformat(), "designation": designation,
                              "findings": findings, "assessor": ASSESSOR_NOTE.format(case="5.3-13-1")})
    if findings:
        raise DutError("; ".join(findings))


@pytest.mark.etsi("5.3-14-2")
def test_5_3_14_2_non_updatable_published(bench, ixit, evidence):
    """For a product that cannot be updated: the page the IXIT names is public and gives the rationale,
    the hardware replacement and the support period's end."""
    url = _url(ixit, "non_updatable")
    statements = ixit.user_info.publication.statements.non_updatable
    if statements is None:
        raise CertlabError("the IXIT does not say what the non-updatable page states: add "
                           "2-UserInfo.publication.statements.non_updatable {rationale, replacement}")
    end = ixit.user_info.support_period.end
    target = web_target(bench, [url], hosts_field="2-UserInfo.publication.non_updatable")
    page, findings = _visit(target, evidence, "non-updatable-page", url, "the non-updatable product's publication")
    if not findings:
        findings = non_updatable_findings(visible_text(page), statements.rationale, statements.replacement, end)
    evidence.json("summary", {"url": url, "rationale": statements.rationale, "replacement": statements.replacement,
                              "ixit_end": end.isoformat(), "findings": findings,
                              "assessor": ASSESSOR_NOTE.format(case="5.3-14-1")})
    if findings:
        raise DutError("; ".join(findings))
