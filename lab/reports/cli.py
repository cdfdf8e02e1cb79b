"""`certlab keys init`, `certlab sign DIR`, `certlab verify DIR`: the integrity commands.

The lead mounts them on the main app (`app.add_typer(keys_app, name="keys")`,
`app.command("sign")(sign)`, `app.command("verify")(verify)`); `app` here bundles the three for
tests. Bad input raises CertlabError, which the main CLI turns into one line and exit status 2.
`verify` exits 0 when the run is intact and 1 when it is tampered, naming each file. Every name
from a run directory is printed through `manifest.shown` (control characters as visible escapes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup
from rich.markup import escape

from lab.reports.keys import KEY_DIR_ENV, PASSPHRASE_ENV, init_keys, load_private_key
from lab.reports.manifest import MANIFEST_FILE, SIGNATURE_FILE, shown, sign_run

keys_app = typer.Typer(no_args_is_help=True, help="The lab's Ed25519 signing key for run manifests.")
app = typer.Typer(no_args_is_help=True, add_completion=False, help="certlab integrity commands (standalone, for tests).")

out = Console()
err = Console(stderr=True)

RunDirArg = Annotated[Path, typer.Argument(help="the run directory (reports/<run-id>)")]


@keys_app.command("init")
def keys_init(
    key_dir: Annotated[Optional[Path], typer.Option("--dir", help=f"key folder (default: ${KEY_DIR_ENV} or "
                                                    "~/.config/certlab/keys)")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing key (old runs then verify only "
                                        "with the old public key)")] = False,
) -> None:
    """Make the lab's signing key (private key mode 0600) and export its public key for certifiers."""
    keys = init_keys(key_dir, force=force)
    enc = "encrypted with $" + PASSPHRASE_ENV if keys.encrypted else f"not encrypted (set {PASSPHRASE_ENV} to encrypt)"
    out.print(f"private key: {escape(str(keys.private_key))} (mode 0600, {enc}; keep it on the lab host)", highlight=False)
    out.print(f"public key:  {escape(str(keys.public_key))} (give this file to certifiers)", highlight=False)
    out.print(f"fingerprint: [bold]{keys.fingerprint}[/bold] (also in {escape(keys.fingerprint_file.name)}; "
              f"certifiers compare it)", highlight=False)


def sign(run_dir: RunDirArg) -> None:
    """Sign a finished run: manifest.json (sha256 of every file) and manifest.sig (Ed25519)."""
    key = load_private_key()
    manifest = sign_run(run_dir, key)
    files = manifest["files"]
    size = sum(f["size"] for f in files.values())
    out.print(f"signed {len(files)} files ({size / 1e6:.1f} MB) with key {manifest['public_key_fingerprint']}: "
              f"{_path(run_dir / MANIFEST_FILE)}, {_path(run_dir / SIGNATURE_FILE)}", highlight=False)


def verify(
    run_dir: RunDirArg,
    pubkey: Annotated[Optional[Path], typer.Option("--pubkey", help="the lab's public_key.pem (default: the "
                                                   "key folder's)")] = None,
) -> None:
    """Check a run's signature and every file's hash; exit 0 intact, 1 tampered (naming each file)."""
    from lab.reports.verify import verify_report  # the same check as the web app's verification state

    check = verify_report(run_dir, pubkey)
    result, approval = check.result, check.approval
    key = f"key {result.key_fingerprint} ({_path(result.key_source)})"
    if check.intact:
        out.print(f"[green]intact[/green]: {result.files_checked} files match the manifest signed by {key}",
                  highlight=False)
        if approval is not None and approval.present:
            out.print(f"approved by {_path(approval.by)} ({_path(approval.role)}) at {_path(approval.at)}",
                      highlight=False)
        elif approval is not None:
            out.print("report status: draft (not approved; `certlab report approve` approves it)", highlight=False)
        return
    if approval is not None and not approval.ok:
        out.print(f"bad approval: {shown(str(approval.problem))}", markup=False, highlight=False)
    for line in result.problems():
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    counts = [f"{len(v)} {k}" for k, v in (("changed", result.changed), ("missing", result.missing),
                                           ("added", result.added)) if v]
    what = ", ".join((["bad signature"] if not result.signature_ok else [])
                     + (["bad approval"] if approval is not None and not approval.ok else []) + counts)
    err.print(f"[red]TAMPERED[/red]: {_path(run_dir)}: {what} (checked with {key})", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _path(value: object) -> str:
    """A path or name for rich markup: control characters visible (`shown`), brackets escaped."""
    return escape(shown(str(value)))


app.add_typer(keys_app, name="keys")
app.command("sign")(sign)
app.command("verify")(verify)


# --- certlab report DIR / certlab report approve DIR --------------------------------------------

class _DefaultToMake(TyperGroup):
    """`certlab report DIR` means `certlab report make DIR`; `approve` stays a subcommand."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["make", *args]
        return super().parse_args(ctx, args)


report_app = typer.Typer(cls=_DefaultToMake, no_args_is_help=True,
                         help="Make the lab's report of a run (Allure + conformance report, signed); approve it.")
ProfileOpt = Annotated[Optional[Path], typer.Option("--lab-profile", help="the lab's details and signatories "
                                                    "(default: lab_profile in the run's inventory)")]


@report_app.command("make")
def report_make(
    run_dir: RunDirArg,
    lab_profile: ProfileOpt = None,
    single_file: Annotated[bool, typer.Option("--single-file", help="also write allure-report.html, one "
                                              "self-contained file for mailing")] = False,
    no_allure: Annotated[bool, typer.Option("--no-allure", help="skip the Allure report")] = False,
    no_pdf: Annotated[bool, typer.Option("--no-pdf", help="skip the PDF (no Chromium needed)")] = False,
    no_sign: Annotated[bool, typer.Option("--no-sign", help="leave the run unsigned (a draft for yourself)")] = False,
    redo: Annotated[bool, typer.Option("--redo", help="replace an approved report by a new draft "
                                       "(the approval is dropped)")] = False,
) -> None:
    """Allure HTML report + conformance report (HTML, JSON, PDF) of a finished run, then sign it all."""
    from lab.reports.build import build_report, find_profile
    from lab.store.db import default_data_dir

    profile = find_profile(run_dir, lab_profile)
    outcome = build_report(run_dir, profile=profile, data_dir=default_data_dir(), with_allure=not no_allure,
                           single_file=single_file, with_pdf=not no_pdf, sign=not no_sign, redo_approved=redo)
    print_report_paths(outcome)


@report_app.command("approve")
def report_approve(
    run_dir: RunDirArg,
    by: Annotated[str, typer.Option("--by", help="the authoriser's name, as the lab profile lists it")],
    role: Annotated[str, typer.Option("--role", help="the authoriser's role, as the lab profile lists it")],
    lab_profile: ProfileOpt = None,
    no_pdf: Annotated[bool, typer.Option("--no-pdf", help="skip the PDF")] = False,
) -> None:
    """Approve a signed draft: records and signs who approved it, re-renders it as approved, re-signs the run."""
    from lab.reports.build import approve_report, find_profile

    profile = find_profile(run_dir, lab_profile)
    outcome = approve_report(run_dir, by=by, role=role, profile=profile, with_pdf=not no_pdf)
    approval = outcome.doc.get("approval") or {}
    out.print(f"[green]approved[/green] by {escape(str(approval.get('by')))} ({escape(str(approval.get('role')))}) "
              f"at {approval.get('at')}; report {outcome.doc['report']['id']}", highlight=False)
    print_report_paths(outcome)


@report_app.command("junit")
def report_junit(
    run_dir: RunDirArg,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write it here instead of RUN_DIR/junit.xml "
                                                     "(needed for a signed run whose junit.xml would change)")] = None,
) -> None:
    """(Re)write a run's JUnit XML from its verdicts.json, for Jenkins or GitLab (FAIL failure,
    INCONCLUSIVE error, NOT_APPLICABLE skipped)."""
    from lab.reports.junit import junit_for_run

    path, counts = junit_for_run(run_dir, out_file)
    out.print(f"{_path(path)}: {counts['tests']} tests, {counts['failures']} failures (FAIL), {counts['errors']} "
              f"errors (INCONCLUSIVE), {counts['skipped']} skipped (NOT_APPLICABLE)", highlight=False,
              soft_wrap=True)


def print_report_paths(outcome) -> None:  # type: ignore[no-untyped-def]
    """Where each part of the report is: the lines `certlab report` and `certlab demo` end with."""
    doc = outcome.doc
    summary = doc.get("summary", {})
    counts = "  ".join(f"{k}: {v}" for k, v in summary.get("counts", {}).items() if v)
    out.print(f"report {doc['report']['id']} ({doc['report']['status']}): overall {summary.get('overall')}; "
              f"{counts}", highlight=False)
    rows = [("Allure report", outcome.allure_report and outcome.allure_report / "index.html"),
            ("Allure, one file", outcome.allure_single), ("conformance report", outcome.html),
            ("conformance data", outcome.html and outcome.html.with_name("conformance.json")),
            ("conformance PDF", outcome.pdf)]
    missing = summary.get("not_assessed") or []
    if not summary.get("complete", not missing):
        listed = ", ".join(str(n.get("provision")) for n in missing[:12]) + (", ..." if len(missing) > 12 else "")
        out.print(f"[yellow]incomplete assessment[/yellow]: {len(missing)} provision(s) NOT_ASSESSED (test cases "
                  f"without a result): {escape(listed)}; the overall result cannot be PASS until they are "
                  f"(README: \"Reports a certifier can accept\")", highlight=False, soft_wrap=True)
    for label, path in rows:
        if path:
            out.print(f"  {label + ':':20s} {_path(path)}", highlight=False)
    if outcome.signed:
        out.print(f"  {'signed manifest:':20s} {_path(outcome.run_dir / MANIFEST_FILE)} "
                  f"(check with `certlab verify {_path(outcome.run_dir)}`)", highlight=False)
