"""`certlab keys init`, `certlab sign DIR`, `certlab verify DIR`: the integrity commands.

The lead mounts them on the main app (`app.add_typer(keys_app, name="keys")`,
`app.command("sign")(sign)`, `app.command("verify")(verify)`); `app` here bundles the three for
tests. Bad input raises CertlabError, which the main CLI turns into one line and exit status 2.
`verify` exits 0 when the run is intact and 1 when it is tampered, naming each file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from lab.reports.keys import KEY_DIR_ENV, PASSPHRASE_ENV, init_keys, load_private_key
from lab.reports.manifest import MANIFEST_FILE, SIGNATURE_FILE, sign_run, verify_run

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
              f"{escape(str(run_dir / MANIFEST_FILE))}, {escape(str(run_dir / SIGNATURE_FILE))}", highlight=False)


def verify(
    run_dir: RunDirArg,
    pubkey: Annotated[Optional[Path], typer.Option("--pubkey", help="the lab's public_key.pem (default: the "
                                                   "key folder's)")] = None,
) -> None:
    """Check a run's signature and every file's hash; exit 0 intact, 1 tampered (naming each file)."""
    result = verify_run(run_dir, pubkey)
    key = f"key {result.key_fingerprint} ({escape(result.key_source)})"
    if result.intact:
        out.print(f"[green]intact[/green]: {result.files_checked} files match the manifest signed by {key}",
                  highlight=False)
        return
    for line in result.problems():
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    counts = [f"{len(v)} {k}" for k, v in (("changed", result.changed), ("missing", result.missing),
                                           ("added", result.added)) if v]
    what = ", ".join((["bad signature"] if not result.signature_ok else []) + counts)
    err.print(f"[red]TAMPERED[/red]: {escape(str(run_dir))}: {what} (checked with {key})", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


app.add_typer(keys_app, name="keys")
app.command("sign")(sign)
app.command("verify")(verify)
