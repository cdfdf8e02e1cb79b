"""`certlab record ...` (the lab's side of product records) and `certlab verify-record`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

record_app = typer.Typer(no_args_is_help=True, help="Product records: open one from an approved report, list them.")


# --- certlab verify-record (owned by the chain helper) -----------------------------------------


def verify_record(
    source: Annotated[str, typer.Argument(help="the record's revisions: a saved file, or the URL "
                                          "https://<lab>/records/<model>/revisions")],
    key: Annotated[Optional[Path], typer.Option("--key", help="the lab's public_key.pem: every revision must be "
                                                "signed by it (default: the chain's own first key)")] = None,
) -> None:
    """Check a record's hash chain and every signature; name the first revision that does not verify.

    A URL is read page by page and compared with the record's published head.
    Exit 0 when every revision verifies, 1 when one does not (or the chain served is short of the
    record's head), 2 when the input is unusable.
    """
    from lab.records.verify import verify_source
    from lab.reports.manifest import shown  # the document's text may hold control characters

    result = verify_source(source, key_file=key)
    for line in result.lines():
        typer.echo(shown(line))
    if not result.ok:
        raise typer.Exit(1)


# --- certlab record open|list|show (owned by the service helper) -------------------------------

import contextlib  # noqa: E402 - this section's imports, kept with it
import getpass  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from lab.errors import CertlabError  # noqa: E402

if TYPE_CHECKING:
    from lab.actions.context import Services


@contextlib.contextmanager
def _services() -> Iterator[Services]:
    """The actions' services on the default store (CERTLAB_DATABASE_URL or the data dir's SQLite)."""
    from lab.actions.context import Services
    from lab.api.ratelimit import RateLimiter
    from lab.api.settings import ApiSettings
    from lab.store import open_store

    settings = ApiSettings.from_env()
    with open_store(settings.database_url) as store:
        yield Services(store=store, settings=settings, limiter=RateLimiter(1.0, 1.0))


def _refused(exc: Exception) -> CertlabError:
    return CertlabError(f"certlab record: {exc}")


@record_app.command("open")
def record_open(
    run_dir: Annotated[Path, typer.Argument(help="a run directory whose report is approved (and verifies)")],
    manufacturer: Annotated[str, typer.Option("--manufacturer", help="the manufacturer's organisation")],
    product_name: Annotated[str | None, typer.Option("--product-name", help="the product's name (default: "
                                                     "the product's, or its model)")] = None,
) -> None:
    """Open a product's record from its certifying run (or add a later certifying report to it)."""
    from lab.actions import records
    from lab.actions.errors import ActionError

    with _services() as svc:
        try:
            view = records.open_record_from_run(svc, run_dir, manufacturer=manufacturer, product_name=product_name,
                                                by=f"certlab record open ({getpass.getuser()})")
        except ActionError as exc:
            raise _refused(exc) from None
    rev = view["revision"]
    typer.echo(f"record {view['model']}: revision {rev['seq']} ({rev['kind']}) {rev['hash']}")
    typer.echo(f"public JSON: {view['links']['revisions'].rsplit('/revisions', 1)[0]}; chain: {view['links']['revisions']}")


@record_app.command("list")
def record_list() -> None:
    """Every product record with its headline figures."""
    from lab.actions import records

    with _services() as svc:
        rows = records.public_index(svc)
    if not rows:
        typer.echo("no product records yet; open one with certlab record open RUN_DIR --manufacturer ORG")
        return
    for row in rows:
        typer.echo(f"{row['model']}\t{row['manufacturer']}\trevision {row['revision']['seq']}\t"
                   f"{_figures_line(row['figures'])}")


@record_app.command("show")
def record_show(
    model: Annotated[str, typer.Argument(help="the product model, e.g. TH-100")],
    last: Annotated[int, typer.Option("--last", min=1, max=1000, help="how many of the last revisions")] = 10,
) -> None:
    """A record's headline figures and its last revisions."""
    from lab.actions import records
    from lab.actions.errors import ActionError

    with _services() as svc:
        try:
            view = records.public_view(svc, model)
            newest = records.revision_list(svc, model)[:last]  # the store's columns: no revision is loaded
        except ActionError as exc:
            raise _refused(exc) from None
    typer.echo(f"{view['model']} ({view['product']}) by {view['manufacturer']}")
    typer.echo(_figures_line(view["figures"]))
    for rev in reversed(newest):
        typer.echo(f"  #{rev['seq']} {rev['at']} {rev['kind']}: {rev['summary']} [{rev['hash'][:16]}]")


def _figures_line(figures: dict) -> str:
    retest = figures.get("last_retest") or {}
    parts = [f"support days left {_or_unknown(figures.get('support_days_left'))}",
             f"days since security update {_or_unknown(figures.get('days_since_last_security_update'))}",
             f"open advisories {figures.get('open_advisories', 0)}",
             "last re-test " + (f"{retest.get('version')} {retest.get('verdict')}"
                                + (" FLAGGED" if retest.get("flagged") else "") if retest else "none")]
    return "; ".join(parts)


def _or_unknown(value: object) -> str:
    return "unknown" if value is None else str(value)
