"""`certlab record ...` (the lab's side of product records) and `certlab verify-record`."""

from __future__ import annotations

import typer

record_app = typer.Typer(no_args_is_help=True, help="Product records: open one from an approved report, list them.")


# --- certlab verify-record (owned by the chain helper) -----------------------------------------


def verify_record(source: str) -> None:  # replaced by its real signature and body
    """Check a record's hash chain and every signature; name the first revision that does not verify."""
    raise NotImplementedError


# --- certlab record open|list|show (owned by the service helper) -------------------------------
