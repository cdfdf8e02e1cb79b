"""The certifier's conformance report (ISO/IEC 17025 7.8 test report) as one self-contained HTML file.

The data comes from `conformance.json` ("certlab.conformance/2", built elsewhere); this module only
presents it. The HTML carries its CSS inline and fetches nothing, so it opens the same from a run
directory, an archive or a mail attachment, and `lab.reports.pdf` prints it with headless Chromium.

Every string of the document is untrusted text (a DUT's banner can end up in a reason): autoescape
is on and nothing from the document is marked safe. The document is checked against its typed
model (lab/reports/document.py) first, and the template runs with StrictUndefined: a missing or
misspelt key stops the report with a ReportError instead of printing a blank into it.

Speed: one pass over the results, no per-result work beyond dictionary lookups and escaping;
10,000 results (9.5 MB of HTML) render in about 0.7-1 s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, UndefinedError, select_autoescape
from markupsafe import Markup

from lab import resources
from lab.reports.document import SCHEMA, checked
from lab.reports.errors import ReportError

TEMPLATES = resources.templates_dir()
TEMPLATE = "conformance.html.j2"

# verdict -> (css class, label as printed); the label carries the meaning, colour only helps
VERDICTS: Mapping[str, tuple[str, str]] = {
    "PASS": ("v-pass", "PASS"),
    "FAIL": ("v-fail", "FAIL"),
    "INCONCLUSIVE": ("v-inc", "INCONCLUSIVE"),
    "NOT_APPLICABLE": ("v-na", "NOT APPLICABLE"),
    "NOT_ASSESSED": ("v-nass", "NOT ASSESSED"),
}
VERDICT_ORDER = tuple(VERDICTS)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CSS_PLAIN = re.compile(r"[A-Za-z0-9 _.,:;/()+\-]")


def render_html(doc: Mapping[str, Any]) -> str:
    """The report as one HTML string (UTF-8 text, CSS inline, no scripts, no external fetches)."""
    if not isinstance(doc, Mapping):
        raise ReportError("the conformance document is not a JSON object")
    doc = checked(dict(doc))
    env = _environment()
    css = (TEMPLATES / "conformance.css").read_text(encoding="utf-8")
    try:
        return env.get_template(TEMPLATE).render(doc=doc, view=_view(doc), css=Markup(css), verdicts=VERDICT_ORDER)
    except UndefinedError as exc:
        raise ReportError(f"{TEMPLATE}: {exc.message}; fix: the template names a field the document lacks "
                          f"(lab/reports/document.py)") from None


def write_html(doc: Mapping[str, Any], path: Path | str) -> Path:
    """Write atomically: a reader (or the signer) never sees half a report."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(render_html(doc), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        vclass=verdict_class, vlabel=verdict_label, size=human_size, date=fmt_date, datetime=fmt_datetime,
        basename=basename, href=path_href, url=safe_url, css_string=css_string, duration=fmt_duration,
    )
    return env


def _view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the template cannot cheaply compute: provisions grouped per chapter, result counts per provision."""
    summary = _mapping(doc.get("summary"))
    chapters: dict[str, dict[str, Any]] = {}
    for ch in _list(summary.get("chapters")):
        if isinstance(ch, Mapping) and ch.get("chapter") is not None:
            chapters[str(ch["chapter"])] = {"summary": ch, "chapter": str(ch["chapter"]), "provisions": []}
    total = 0
    samples: set[str] = set()
    for prov in _list(doc.get("provisions")):
        if not isinstance(prov, Mapping):
            continue
        counts = dict.fromkeys(VERDICT_ORDER, 0)
        serials: set[str] = set()
        n = 0
        for case in _list(prov.get("test_cases")):
            for result in _list(_mapping(case).get("results")):
                result = _mapping(result)
                verdict = result.get("verdict")
                counts[verdict] = counts.get(verdict, 0) + 1
                serials.add(str(result.get("dut_serial")))
                n += 1
        total += n
        samples |= serials
        chapter = str(prov.get("chapter") or str(prov.get("id", "")).rpartition("-")[0])
        entry = chapters.setdefault(chapter, {"summary": {"chapter": chapter}, "chapter": chapter, "provisions": []})
        entry["provisions"].append({"p": prov, "counts": counts, "results": n, "samples": len(serials)})
    report = _mapping(doc.get("report"))
    approval = doc.get("approval")
    approved = report.get("status") == "approved" and isinstance(approval, Mapping) and bool(approval.get("by"))
    deviations = [d for d in _list(doc.get("deviations")) if str(d).strip() and str(d).strip().lower() != "none"]
    other = [_mapping(r) for r in _list(doc.get("other_results"))]
    outside = sorted({str(r.get("test") or r.get("nodeid")) for r in other})
    return {"chapters": list(chapters.values()), "results": total, "approved": approved, "deviations": deviations,
            "other_results": len(other), "other_tests": outside}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list | tuple) else ()


# --- filters: cheap, total (never raise on odd input), return plain text for autoescape ---------

def verdict_class(verdict: Any) -> str:
    return VERDICTS.get(verdict, ("v-unknown", ""))[0]


def verdict_label(verdict: Any) -> str:
    entry = VERDICTS.get(verdict)
    return entry[1] if entry else str(verdict or "—")


def human_size(size: Any) -> str:
    """Binary units, as `ls -h` shows them; the exact byte count is in the manifest."""
    if not isinstance(size, int | float) or size < 0:
        return "—"
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
    return ""  # not reached


def fmt_date(value: Any) -> str:
    """ISO date as written (2026-11-26): unambiguous in every country a report travels to."""
    if not value:
        return "—"
    text = str(value)
    return text[:10] if re.match(r"\d{4}-\d\d-\d\d", text) else text


def fmt_datetime(value: Any) -> str:
    """'2026-11-26T03:12:00Z' -> '2026-11-26 03:12:00 UTC'; other offsets are kept, not converted."""
    if not value:
        return "—"
    text = str(value)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if t.tzinfo is None:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    offset = t.utcoffset()
    zone = "UTC" if offset is not None and not offset else t.strftime("UTC%z")
    return f"{t.strftime('%Y-%m-%d %H:%M:%S')} {zone}"


def fmt_duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def basename(path: Any) -> str:
    return str(path).rstrip("/").rpartition("/")[2]


def path_href(path: Any) -> str:
    """A relative file path as a link: percent-encoded so '#', '?' or spaces in a file name still resolve."""
    text = str(path)
    if _SCHEME.match(text) or text.startswith(("/", "\\")):
        return "#"  # never a link outside the run directory
    return quote(text, safe="/-._~")


def safe_url(url: Any) -> str:
    """A link kept as given (Allure's '#fragment' routes), except schemes that could run code."""
    text = str(url or "")
    match = _SCHEME.match(text)
    if match and match.group(0).lower() not in ("http:", "https:"):
        return "#"
    return text


def css_string(value: Any) -> Markup:
    """A CSS string literal for `@page` margin boxes; everything but plain characters is hex-escaped,
    so no quote, backslash or '</style>' in a report id or lab name can leave the string."""
    text = str(value or "")
    # the space after a hex escape ends it and is consumed by the CSS parser, so a real space survives
    out = [ch if _CSS_PLAIN.fullmatch(ch) else f"\\{ord(ch):x} " for ch in text]
    return Markup('"' + "".join(out) + '"')
