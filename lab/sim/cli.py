"""`certlab sim ...`: the simulated manufacturer's tools (release images, SBOMs, advisories)."""

from __future__ import annotations

import typer

sim_app = typer.Typer(no_args_is_help=True, help="The simulated manufacturer: build a signed release, its SBOM, an advisory.")
