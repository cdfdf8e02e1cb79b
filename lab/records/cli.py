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

    Exit 0 when every revision verifies, 1 when one does not, 2 when the input is unusable.
    """
    from lab.records.verify import verify_source
    from lab.reports.manifest import shown  # the document's text may hold control characters

    result = verify_source(source, key_file=key)
    for line in result.lines():
        typer.echo(shown(line))
    if not result.check.ok:
        raise typer.Exit(1)


# --- certlab record open|list|show (owned by the service helper) -------------------------------
