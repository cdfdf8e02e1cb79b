"""Judging what a manufacturer publishes against what its IXIT says (5.2-1-2, 5.3-13-2, 5.3-14-2).

Each function returns the findings (sentences a certifier can read), empty when the page
conforms. Only what can be decided mechanically is judged here: the page is public, it says
the IXIT's statements in so many words, the dates match. Whether a policy is clear and complete
stays the assessor's (the conceptual case's decision in the assessor's record).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from lab.web.fetch import Page
from lab.web.pages import dates_in, login_wall, missing_phrases, normalise, visible_text
from lab.web.securitytxt import SecurityTxt, Verification, problems


def page_findings(page: Page, what: str) -> list[str]:
    """Is `page` public and there? (login wall, HTTP error) `what` names it, e.g. 'the disclosure policy'."""
    wall = login_wall(page)
    if wall:
        return [f"{what} is not public: {wall}"]
    if page.status != 200:
        return [f"{what} at {page.url} answers HTTP {page.status} {page.reason}".rstrip()
                + (f" (after redirects to {page.final_url})" if page.hops else "")]
    if not visible_text(page).strip():
        return [f"{what} at {page.url} has no visible text"]
    return []


def policy_findings(text: str, contact: str, timelines: tuple[str, ...]) -> list[str]:
    """The policy's visible text must name the IXIT's contact and each of its timeline phrases."""
    found = []
    if missing_phrases(text, [contact]):
        found.append(f"the disclosure policy does not name the contact {contact!r} the IXIT states")
    for phrase in missing_phrases(text, list(timelines)):
        found.append(f"the disclosure policy does not state the timeline {phrase!r} the IXIT states")
    return found


def security_txt_findings(page: Page, st: SecurityTxt, *, now: datetime, declared_signed: bool,
                          verification: Verification | None, contact: str | None) -> list[str]:
    """RFC 9116 problems, the signature the IXIT declares, and the IXIT's contact among its Contact fields."""
    url = page.url
    found = [f"security.txt ({url}): {p}" for p in
             problems(st, now=now, url=url, content_type=page.header("Content-Type"))]
    if declared_signed:
        if not st.signed:
            found.append(f"security.txt ({url}) is not OpenPGP-signed, though the IXIT says it is")
        elif verification is not None and not verification.ok:
            found.append(f"security.txt ({url}): its OpenPGP signature does not verify with the IXIT's key: "
                         f"{verification.detail}")
    if contact:
        wanted = {normalise(contact), normalise(f"mailto:{contact}")}
        if not any(normalise(c) in wanted for c in st.values("contact")):
            found.append(f"security.txt ({url}) does not give the IXIT's contact {contact!r} among its Contact "
                         f"fields {st.values('contact')}")
    return found


def support_period_findings(text: str, end: date, designation: str) -> list[str]:
    """The page names the model and states the IXIT's end of the support period (any common date form)."""
    found = []
    if missing_phrases(text, [designation]):
        found.append(f"the support page does not name the model {designation!r}")
    dates = dates_in(text)
    if end not in dates:
        stated = ", ".join(d.isoformat() for d in dates) or "none"
        found.append(f"the support page does not state the end of the support period the IXIT gives "
                     f"({end.isoformat()}); dates it states: {stated}")
    return found


def non_updatable_findings(text: str, rationale: str, replacement: str, end: date) -> list[str]:
    """The page gives the rationale, the replacement (the IXIT's phrases) and the support period's end."""
    found = []
    if missing_phrases(text, [rationale]):
        found.append(f"the page does not give the rationale for the absence of updates (the IXIT's phrase "
                     f"{rationale!r} is missing)")
    if missing_phrases(text, [replacement]):
        found.append(f"the page does not describe the hardware replacement (the IXIT's phrase {replacement!r} "
                     "is missing)")
    if end not in dates_in(text):
        found.append(f"the page does not state the end of the support period ({end.isoformat()})")
    return found


def key_path(ixit_file: Path, openpgp_key: str) -> Path:
    """The IXIT's key file, relative to the IXIT file."""
    path = Path(openpgp_key).expanduser()
    return path if path.is_absolute() else ixit_file.parent / path
