"""The simulated manufacturer's public web pages, from lab.sim.vendor's data.

Pages: the vulnerability disclosure policy, one support page per product family (support period;
for the non-updatable TH-10 also why and how it is replaced), /.well-known/security.txt
(RFC 9116, OpenPGP cleartext-signed with the FAKE vendor key in lab/sim/data) and a login form.
Flaws: `disclosure_policy_behind_login`, `security_txt_expired`, `support_period_mismatch`,
`non_updatable_rationale_missing`.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from lab.sim import vendor

log = logging.getLogger("certlab.sim.site")

SIGN_TIMEOUT = 20.0  # seconds for each gpg call
SECURITY_TXT_LIFETIME = dt.timedelta(days=180)
EXPIRED_BY = dt.timedelta(days=10)  # the `security_txt_expired` flaw


@dataclass(frozen=True)
class Page:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None


def security_txt(now: dt.datetime, expired: bool) -> str:
    """The RFC 9116 fields (unsigned)."""
    expires = now - EXPIRED_BY if expired else now + SECURITY_TXT_LIFETIME
    base = f"https://{vendor.SITE_HOST}"
    return (f"Contact: mailto:{vendor.SECURITY_CONTACT}\n"
            f"Expires: {expires.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
            f"Policy: {base}{vendor.DISCLOSURE_PATH}\n"
            f"Canonical: {base}{vendor.SECURITY_TXT_PATH}\n"
            "Preferred-Languages: en\n")


def clearsign(text: str, key_file: Path, timeout: float = SIGN_TIMEOUT) -> str | None:
    """`text` as an OpenPGP cleartext-signed message, or None (logged) when gpg is missing or fails.

    A throwaway GNUPGHOME holds the key for the two gpg calls; its agent is stopped afterwards.
    """
    gpg = shutil.which("gpg")
    if gpg is None:
        log.warning("gpg is not installed: security.txt is served unsigned")
        return None
    home = tempfile.mkdtemp(prefix="certlab-gpg-")  # short path: the agent's socket lives in it
    env = {**os.environ, "GNUPGHOME": home}
    try:
        subprocess.run([gpg, "--batch", "--quiet", "--import", str(key_file)], env=env, check=True,
                       capture_output=True, timeout=timeout)
        done = subprocess.run([gpg, "--batch", "--quiet", "--yes", "--pinentry-mode", "loopback", "--passphrase", "",
                               "--armor", "--clearsign"], input=text.encode(), env=env, check=True,
                              capture_output=True, timeout=timeout)
        return done.stdout.decode()
    except (OSError, subprocess.SubprocessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        log.warning("signing security.txt failed (%s %s): served unsigned", exc, err.decode(errors="replace")[:300])
        return None
    finally:
        if gpgconf := shutil.which("gpgconf"):
            try:
                subprocess.run([gpgconf, "--kill", "all"], env=env, capture_output=True, timeout=timeout)
            except (OSError, subprocess.SubprocessError):
                pass
        shutil.rmtree(home, ignore_errors=True)


def _html(title: str, *paragraphs: str) -> bytes:
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>\n"
            f"<body><header><a href=\"/\">Sim Devices</a></header>\n<main><h1>{html.escape(title)}</h1>\n{body}\n</main>\n"
            "</body></html>\n").encode()


class Site:
    """The pages of one bench's manufacturer site; `security_txt_body` is made once at start."""

    def __init__(self, flaws: frozenset[str], security_txt_body: str):
        self._flaws = flaws
        self._security_txt = security_txt_body.encode()

    @classmethod
    def build(cls, flaws: frozenset[str], key_file: Path = vendor.SECURITY_TXT_KEY) -> Site:
        text = security_txt(dt.datetime.now(dt.timezone.utc), "security_txt_expired" in flaws)
        return cls(flaws, clearsign(text, key_file) or text)

    def get(self, target: str) -> Page:
        path = urllib.parse.urlsplit(target).path
        if path == vendor.SECURITY_TXT_PATH:
            return Page(200, self._security_txt, "text/plain; charset=utf-8")
        if path == vendor.DISCLOSURE_PATH:
            if "disclosure_policy_behind_login" in self._flaws:
                return Page(302, _html("Log in"), location="/login?next=" + urllib.parse.quote(path, safe=""))
            return Page(200, self._disclosure())
        if path == "/login":
            return Page(200, self._login_form())
        if path == "/":
            return Page(200, _html("Sim Devices", "Smart thermostats: TH-100, TH-100T and TH-10.",
                                   f"Security: {vendor.DISCLOSURE_PATH}"))
        for support in vendor.SUPPORT_PAGES:
            if path == support.path:
                return Page(200, self._support(support))
        return Page(404, _html("Not found", f"There is no page {path}."))

    def _disclosure(self) -> bytes:
        first, second = vendor.DISCLOSURE_TIMELINES
        return _html("Vulnerability disclosure policy",
                     f"Report security vulnerabilities in any Sim Devices product or service to {vendor.SECURITY_CONTACT} "
                     "(OpenPGP key on request). No account is needed and reports may be anonymous.",
                     f"We acknowledge every report {first} and keep the reporter informed of our progress.",
                     f"We aim to release a fix {second} of the report and credit the reporter unless asked not to.",
                     "We will not take legal action against anyone who reports in good faith under this policy.")

    def _support(self, page: vendor.SupportPage) -> bytes:
        models = " and ".join(page.models)
        end = vendor.MISMATCHED_SUPPORT_END if "support_period_mismatch" in self._flaws and page.rationale is None \
            else page.end
        paragraphs = [f"Support for the {models}."]
        if page.rationale is None:
            paragraphs.append(f"Security updates until {end}.")
        else:
            paragraphs.append(f"The {models} is supported, without software updates, until {end}.")
            if "non_updatable_rationale_missing" not in self._flaws:
                paragraphs += [page.rationale, f"Hardware replacement: {page.replacement}"]
        return _html(f"{models} support", *paragraphs)

    @staticmethod
    def _login_form() -> bytes:
        return (b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in</title></head><body>\n"
                b"<form method=\"post\" action=\"/login\"><label>Email <input name=\"email\" type=\"email\"></label>\n"
                b"<label>Password <input name=\"password\" type=\"password\"></label>\n"
                b"<button type=\"submit\">Log in</button></form></body></html>\n")
