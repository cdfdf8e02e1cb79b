"""`certlab catalog`: show the provisions and test cases of an edition, as a table or JSON.

The lead mounts `catalog` on the main app (`app.command("catalog")(catalog)`); `app` here also
runs on its own (`python -m lab.catalog.cli --edition v3 --coverage automated`). Bad filter
values raise CatalogError, which the main CLI turns into one line and exit status 2.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from lab.catalog import Catalog, Provision, TestCase, load_catalog, matching_cases

_RANK = {"confirmed": 0, "derived": 1, "unconfirmed": 2}
_COVERAGE_STYLE = {"automated": "green", "assisted": "yellow", "manual": "dim"}


def _weakest(*levels: str) -> str:
    return max(levels, key=_RANK.__getitem__)


def provision_dict(cat: Catalog, prov: Provision, cases: tuple[TestCase, ...]) -> dict[str, Any]:
    """A provision as plain JSON-able data, conditions spelt out, only the given test cases."""
    status = prov.status
    return {
        "id": prov.id,
        "chapter": prov.chapter,
        "title": prov.title,
        "confidence": prov.confidence,
        "status": {
            "code": status.code(),
            "requirement": status.requirement,
            "level": status.level,
            "conditional": status.conditional,
            "conditions": [{"id": c, "text": cat.conditions[c].text} for c in status.conditions],
            "features": [{"id": f, "text": cat.features[f].text} for f in status.features],
            "confidence": status.confidence,
            "note": status.note,
        },
        "test_group": prov.test_group,
        "test_cases": [c.model_dump(exclude={"provision"}) for c in cases],
        "replaces": list(prov.replaces),
        "ics_optional": prov.ics_optional,
        "mapping": prov.mapping.model_dump() if prov.mapping else None,
        "note": prov.note,
    }


def catalog_json(cat: Catalog, provisions: tuple[Provision, ...], kind: str | None, coverage: str | None) -> str:
    rows = [provision_dict(cat, p, matching_cases(p, kind, coverage)) for p in provisions]
    doc = {
        "edition": cat.edition, "en": cat.en, "ts": cat.ts, "confidence": cat.confidence,
        "counts": {"provisions": len(rows), "test_cases": sum(len(r["test_cases"]) for r in rows)},
        "provisions": rows,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def catalog_table(cat: Catalog, provisions: tuple[Provision, ...], kind: str | None, coverage: str | None) -> Table:
    shown = [(p, matching_cases(p, kind, coverage)) for p in provisions]
    n_cases = sum(len(c) for _, c in shown)
    table = Table(title=f"{cat.en} / {cat.ts}: {len(shown)} provisions, {n_cases} test cases")
    for col in ("id", "title", "status", "case", "kind", "coverage", "conf."):
        if col == "title":
            table.add_column(col, overflow="fold", min_width=24, ratio=1)
        else:
            table.add_column(col, no_wrap=True)
    tally: Counter[str] = Counter()
    for prov, cases in shown:
        head = [prov.id, prov.title or "[i](unknown)[/i]", prov.status.code()]
        if not cases:
            table.add_row(*head, "-", "-", "-", _weakest(prov.confidence, prov.status.confidence))
        for i, case in enumerate(cases):
            tally[case.coverage] += 1
            style = _COVERAGE_STYLE[case.coverage]
            table.add_row(*(head if i == 0 else ["", "", ""]), case.id, case.kind,
                          f"[{style}]{case.coverage}[/{style}]",
                          _weakest(prov.confidence, prov.status.confidence, case.confidence))
    table.caption = ", ".join(f"{k} {tally[k]}" for k in ("automated", "assisted", "manual")) + (
        f"; edition confidence: {cat.confidence}")
    return table


def catalog(
    edition: Annotated[str, typer.Option("--edition", "-e", help="v2 (EN 303 645 V2.1.1 / TS 103 701 V1.1.1) or v3 (V3.1.3 / V2.1.1)")] = "v2",
    chapter: Annotated[Optional[str], typer.Option("--chapter", help="clause, e.g. 5.1, 5 or 6")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="mandatory, recommended, conditional or unconditional")] = None,
    kind: Annotated[Optional[str], typer.Option("--kind", help="conceptual, functional or both")] = None,
    coverage: Annotated[Optional[str], typer.Option("--coverage", help="automated, assisted or manual")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List the provisions and test cases of an edition, and how certlab covers each."""
    cat = load_catalog(edition)
    provisions = cat.select(chapter=chapter, status=status, kind=kind, coverage=coverage)
    if as_json:
        typer.echo(catalog_json(cat, provisions, kind, coverage))
    else:
        Console().print(catalog_table(cat, provisions, kind, coverage))


app = typer.Typer(add_completion=False, help="The EN 303 645 / TS 103 701 catalogue.")
app.command("catalog")(catalog)

def main() -> None:
    """Run `app` on its own, with the main CLI's rule: bad input is one line and exit status 2."""
    import sys

    from lab.errors import CertlabError

    try:
        app(standalone_mode=False)
    except CertlabError as exc:
        Console(stderr=True).print(f"certlab: error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
