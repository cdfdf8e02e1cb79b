"""lab/web/pages.py on small pages: visible text, phrases, dates, login walls."""

from __future__ import annotations

from datetime import date

import pytest

from lab.web.fetch import Hop, Page
from lab.web.pages import dates_in, has_password_field, login_wall, missing_phrases, normalise, visible_text


def _page(body: str, *, status: int = 200, ctype: str = "text/html; charset=utf-8", hops=(), headers=()) -> Page:
    return Page("https://v.test/p", "https://v.test/final" if hops else "https://v.test/p", status, "OK",
                (("Content-Type", ctype), *headers), body.encode(), "2026-01-01T00:00:00+00:00", tuple(hops))


HTML = """<!doctype html><html><head><title>Policy</title><style>p{color:red}</style>
<script>var hidden = "within 90 days";</script></head>
<body><h1>Vulnerability&nbsp;disclosure</h1><p>Write to <a href="mailto:s@v.test">s@v.test</a>.
We answer   within 5
working days.</p><noscript>enable js</noscript></body></html>"""


def test_visible_text_drops_markup_scripts_and_styles():
    text = visible_text(_page(HTML))
    assert "Vulnerability disclosure" in text and "s@v.test." in text
    assert "var hidden" not in text and "color" not in text and "enable js" not in text and "Policy" not in text


def test_phrases_are_compared_normalised():
    text = visible_text(_page(HTML))
    assert missing_phrases(text, ["WITHIN 5 working days", "within 90 days"]) == ["within 90 days"]
    assert normalise("Don\u2019t\u00a0stop \u2013 ever") == "don't stop - ever"


def test_plain_text_is_kept_as_is():
    assert visible_text(_page("Contact: <x>\n\n  a  b ", ctype="text/plain")) == "Contact: <x>\na b"


@pytest.mark.parametrize("text,expect", [
    ("until 2030-12-31.", date(2030, 12, 31)),
    ("Security updates until 31 December 2030", date(2030, 12, 31)),
    ("until the 31st of December, 2030", date(2030, 12, 31)),
    ("until December 31, 2030", date(2030, 12, 31)),
    ("until Dec. 31 2030", date(2030, 12, 31)),
    ("bis 31.12.2030", date(2030, 12, 31)),
    ("until 30 June 2027", date(2027, 6, 30)),
])
def test_dates(text, expect):
    assert dates_in(text) == [expect]


def test_dates_in_order_and_impossible_ones_dropped():
    assert dates_in("from 1 January 2025 to 2029-12-31, not 31.02.2030") == [date(2025, 1, 1), date(2029, 12, 31)]


def test_login_walls():
    form = '<form><input name="user"><input type="password" name="pw"/></form>'
    assert has_password_field(_page(form))
    assert "redirects to a login form" in login_wall(_page(form, hops=[Hop("https://v.test/p", 302, "/login")]))
    assert "authentication" in login_wall(_page("no", status=401))
    assert "forbidden" in login_wall(_page("no", status=403))
    assert "authentication" in login_wall(_page("x", headers=[("WWW-Authenticate", "Basic")]))
    assert login_wall(_page(HTML)) is None
    assert login_wall(_page(form)) is None  # a login box on the public page itself is no wall
    assert login_wall(_page(HTML, hops=[Hop("https://v.test/p", 301, "/final")])) is None
