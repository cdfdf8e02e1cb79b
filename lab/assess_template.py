"""`certlab assess template`: the skeleton of the assessor's record a lab fills for one product.

Every test case certlab does not automate, for the provisions the product's ICS puts in scope
(an N/A provision and a recommendation answered N need no record), grouped by provision with
what the case is for. Conceptual cases go under `decisions:`, functional ones the lab performs
by hand under `performed:`; a case that is both appears in each. Empty values are left for the
assessor: the file loads only once each entry is filled (or deleted), so nothing is decided by
leaving a default in place.
"""

from __future__ import annotations

import datetime as dt
import json

from lab.automation import automated_by, marked_tests
from lab.catalog import Catalog, CHAPTER_TITLES, Provision, TestCase
from lab.ics import Ics

_CONCEPTUAL = "in the design the ICS and IXIT describe (conceptual)"
_FUNCTIONAL = "on the product as delivered, examined by the lab on the samples (functional, by hand)"


def render_template(catalog: Catalog, ics: Ics, model: str, *, today: dt.date | None = None) -> str:
    """The YAML skeleton (text with comments) for `model`, assessed under `catalog`'s edition."""
    marked = marked_tests(catalog.edition)
    skipped: list[str] = []
    decisions: list[str] = []
    performed: list[str] = []
    chapter = None
    for prov in catalog.provisions:
        entry = ics.entry(prov.id)
        if entry is not None and (entry.support == "N/A" or (prov.status.requirement == "R" and entry.support == "N")):
            skipped.append(f"{prov.id} ({'N/A' if entry.support == 'N/A' else 'recommendation answered N'})")
            continue
        manual = [tc for tc in prov.test_cases if not automated_by(catalog, tc.id, marked) or tc.kind == "both"]
        if not manual:
            continue
        if prov.chapter != chapter:
            chapter = prov.chapter
            heading = f"  # --- {chapter} {CHAPTER_TITLES.get(chapter, '')}".rstrip()
            decisions.append(heading)
            performed.append(heading)
        for tc in manual:
            if tc.kind in ("conceptual", "both"):
                decisions += _decision(prov, tc)
            if tc.kind in ("functional", "both") and not automated_by(catalog, tc.id, marked):
                performed += _performed(prov, tc)
    head = [
        f"# The assessor's record of {model} against {catalog.en}, tested per {catalog.ts}.",
        "# Fill every entry (or delete the ones the lab has not decided yet: their provisions stay",
        "# NOT_ASSESSED in the report). certlab automates the other test cases of this edition.",
        *_wrapped("# Not in scope by the ICS, so not listed:", skipped or ["none"]),
        f"edition: {catalog.edition}",
        f"model: {json.dumps(model)}",
        'assessor: {name: "", role: ""}   # who decided, e.g. {name: "Dana Reuter", role: "lead assessor"}',
        f"date: {(today or dt.date.today()).isoformat()}",
        "",
        "# Conceptual test cases: verdict PASS or FAIL, the reasoning (at least 10 characters) and the",
        "# IXIT entries relied on, e.g. ixit_refs: [\"1-AuthMech root-password\"].",
        "decisions:" + ("" if any(not line.lstrip().startswith("#") for line in decisions) else " {}"),
        *decisions,
        "",
        "# Functional test cases the lab performs by hand: verdict PASS, FAIL or INCONCLUSIVE, the reason,",
        "# the date, the DUT serials it was performed on, and the evidence files (photos, screenshots,",
        "# captures, notes) by path relative to this file. The assessor defaults to the one above.",
        "performed:" + ("" if any(not line.lstrip().startswith("#") for line in performed) else " {}"),
        *performed,
    ]
    return "\n".join(head) + "\n"


def _wrapped(lead: str, items: list[str], width: int = 100) -> list[str]:
    """A comment listing `items`, wrapped between items (never inside one)."""
    lines, line = [], lead
    for i, item in enumerate(items):
        word = item + ("," if i < len(items) - 1 else ".")
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "#  "
        line += " " + word
    return [*lines, line]


def _about(prov: Provision, tc: TestCase, what: str) -> list[str]:
    """The provision and what the case checks: the catalogue's purpose of the case (certlab's
    paraphrase of TS 103 701), else its paraphrase of the provision, and the catalogue's note."""
    title = prov.title or "the provision is met"
    purpose = getattr(tc, "purpose", None) or f"{title[0].lower()}{title[1:]}"  # the catalogue's, where it has one
    lines = [f"  # {prov.id} ({prov.status.code()}, {prov.status.level}): {title}",
             f"  # {tc.id} purpose: check that {purpose}, {what}" + (f"; {tc.note}" if tc.note else "")]
    return lines


def _decision(prov: Provision, tc: TestCase) -> list[str]:
    return [*_about(prov, tc, _CONCEPTUAL), f'  "{tc.id}":', "    verdict:        # PASS or FAIL",
            '    reasoning: ""', "    ixit_refs: []"]


def _performed(prov: Provision, tc: TestCase) -> list[str]:
    return [*_about(prov, tc, _FUNCTIONAL), f'  "{tc.id}":', "    verdict:        # PASS, FAIL or INCONCLUSIVE",
            '    reason: ""', "    date:           # YYYY-MM-DD", "    samples: []     # DUT serials, e.g. [SN0001]",
            "    evidence: []    # e.g. [photos/" + tc.id + "-label.jpg]"]
