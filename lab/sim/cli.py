"""`certlab sim ...`: the simulated manufacturer's tools (release images, SBOMs, advisories)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from lab.errors import CertlabError

sim_app = typer.Typer(no_args_is_help=True, help="The simulated manufacturer: build a signed release, its SBOM, an advisory.")


@sim_app.command("release")
def release(
    model: Annotated[str, typer.Argument(help="the product model, e.g. TH-100")],
    version: Annotated[str, typer.Argument(help="the release's version, e.g. 1.4.1")],
    security_version: Annotated[Optional[int], typer.Option("--security-version", help="anti-rollback counter (default: one above the current release's)")] = None,
    enable: Annotated[Optional[list[str]], typer.Option("--enable", help="a firmware-borne flaw this release's software has, e.g. open_debug_service (repeatable)")] = None,
    component: Annotated[Optional[list[str]], typer.Option("--component", help="NAME@VERSION: a component of this release other than the default (repeatable)")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write the image and its SBOM into")] = Path("."),
) -> None:
    """Build a release signed by the simulated manufacturer's key: MODEL-VERSION.clfw and its CycloneDX SBOM."""
    from lab.sim import publish, vendor
    from lab.sim.fwmanifest import FirmwareManifest, check_enables

    if not model.strip() or not version.strip() or "/" in model + version:
        raise CertlabError("MODEL and VERSION must be non-empty and contain no '/'")
    if security_version is not None and not 0 <= security_version <= 2**31:
        raise CertlabError(f"--security-version {security_version}: give a non-negative integer")
    components = {**vendor.firmware_components(version), **publish.parse_components(component or [])}
    manifest = FirmwareManifest(check_enables(enable or []), components)
    sv = vendor.next_security_version() if security_version is None else security_version
    image = vendor.build_release(model, version, sv, manifest=manifest)
    sbom = publish.sbom_json(model, version, components)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        image_path = out_dir / vendor.release_filename(model, version)
        sbom_path = out_dir / f"{model}-{version}.cdx.json"
        image_path.write_bytes(image)
        sbom_path.write_text(sbom, encoding="utf-8")
    except OSError as exc:
        raise CertlabError(f"--out {out_dir}: cannot write there ({exc.strerror})") from None
    typer.echo(str(image_path))
    typer.echo(str(sbom_path))


@sim_app.command("advisory")
def advisory(
    model: Annotated[str, typer.Argument(help="the product model, e.g. TH-100")],
    advisory_id: Annotated[str, typer.Option("--id", help="the advisory's tracking id, e.g. SIMSA-2026-001")],
    title: Annotated[str, typer.Option("--title", help="what the advisory is about")],
    cve: Annotated[list[str], typer.Option("--cve", help="a CVE id it covers (repeatable)")],
    affected: Annotated[Optional[list[str]], typer.Option("--affected", help="a version with the vulnerability (repeatable)")] = None,
    fixed: Annotated[Optional[list[str]], typer.Option("--fixed", help="a version that fixes it (repeatable)")] = None,
    published: Annotated[Optional[str], typer.Option("--published", help="publication date YYYY-MM-DD (default: today)")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="file to write (default: ID.csaf.json here)")] = None,
) -> None:
    """Write a CSAF 2.0 security advisory of the simulated manufacturer for MODEL."""
    from lab.sim import publish

    try:
        when = date.fromisoformat(published) if published else date.today()
    except ValueError:
        raise CertlabError(f"--published {published}: write the date as YYYY-MM-DD") from None
    doc = publish.advisory(model, advisory_id=advisory_id, title=title, cves=list(cve), affected=list(affected or []),
                           fixed=list(fixed or []), published=when)
    target = out_file or Path(f"{advisory_id}.csaf.json")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(publish.advisory_json(doc), encoding="utf-8")
    except OSError as exc:
        raise CertlabError(f"--out {target}: cannot write there ({exc.strerror})") from None
    typer.echo(str(target))
