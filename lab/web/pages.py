"""What a public page says: its visible text, the phrases and dates in it, and whether it is behind
a login. Plain functions on strings and `Page` records, no network."""

from __future__ import annotations

import html.parser
import re
import unicodedata
from datetime import date

from lab.web.fetch import Page

_HIDDEN = {"script", "style", "noscript", "template", "head", "svg"}
_BLOCK = {"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
          "header", "footer", "main", "nav", "ul", "ol", "table", "dt", "dd", "blockquote", "pre", "hr", "form"}


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.password_field = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
        if tag == "input" and any(k == "type" and (v or "").lower() == "password" for k, v in attrs):
            self.password_field = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:  # <br/>, <input/>: no end tag to balance
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def is_html(page: Page) -> bool:
    ctype = (page.header("Content-Type") or "").lower()
    return "html" in ctype or (not ctype and page.text.lstrip()[:15].lower().startswith(("<!doctype", "<html")))


def visible_text(page: Page) -> str:
    """The text a visitor reads: HTML without markup, scripts and styles; plain text as it is.

    One line per block, whitespace within a line collapsed."""
    if not is_html(page):
        raw = page.text
    else:
        parser = _Text()
        parser.feed(page.text)
        parser.close()
        raw = "".join(parser.parts)
    lines = (" ".join(line.split()) for line in raw.splitlines())
    return "\n".join(line for line in lines if line)


def has_password_field(page: Page) -> bool:
    if not is_html(page):
        return False
    parser = _Text()
    parser.feed(page.text)
    parser.close()
    return parser.password_field


def normalise(text: str) -> str:
    """Case-folded, NFKC (no-break spaces, ligatures), typographic quotes and dashes made plain,
    whitespace collapsed: how the IXIT's phrases are compared with a page."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                         "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-"}))
    return " ".join(text.split())


def missing_phrases(text: str, phrases: list[str] | tuple[str, ...]) -> list[str]:
    """The phrases (as given) that `text` does not contain, compared normalised."""
    haystack = normalise(text)
    return [p for p in phrases if normalise(p) not in haystack]


_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
_MONTHS.update({name[:3]: num for name, num in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_FORMS = [
    re.compile(r"\b(?P<year>\d{4})-(?P<mon>\d{2})-(?P<day>\d{2})\b"),
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r",?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b" + _MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b(?P<day>\d{1,2})\.(?P<mon>\d{1,2})\.(?P<year>\d{4})\b"),
]


def dates_in(text: str) -> list[date]:
    """Every calendar date written in `text` as 2030-12-31, 31 December 2030, December 31, 2030,
    31 Dec 2030 or 31.12.2030, in order of appearance, impossible dates left out."""
    found: list[tuple[int, date]] = []
    for form in _DATE_FORMS:
        for m in form.finditer(text):
            groups = m.groupdict()
            month = int(groups["mon"]) if groups.get("mon") else _MONTHS[groups["month"].lower()]
            try:
                found.append((m.start(), date(int(groups["year"]), month, int(groups["day"]))))
            except ValueError:
                continue
    return [d for _, d in sorted(found, key=lambda item: item[0])]


def login_wall(page: Page) -> str | None:
    """Why `page` is not public (401/403, an HTTP authentication challenge, a redirect to a login
    form), or None when an anonymous visitor got it."""
    if page.status in (401, 407) or page.header("WWW-Authenticate"):
        return f"{page.url} asks for authentication (HTTP {page.status})"
    if page.status == 403:
        return f"{page.url} is forbidden to an anonymous visitor (HTTP 403)"
    if page.hops and has_password_field(page):
        return f"{page.url} redirects to a login form at {page.final_url}"
    return None
