"""Print the conformance report to PDF with headless Chromium.

Chromium, because the report's running header and "Page N of M" footer are CSS `@page` margin
boxes, which Chromium prints since version 131, and because it is a Debian package rather than a
Python dependency with its own rendering engine. It is kept off the network: the page is a local
file with nothing to fetch, and the flags below disable every background service and make every
host name unresolvable, so printing works (and leaks nothing) in an offline lab.

Each print gets a throwaway profile directory, deleted afterwards, so no state is shared between
prints or with a user's browser. The PDF is written under a temporary name and renamed into place:
a crash or a timeout never leaves half a PDF where the report should be.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lab.reports.errors import ReportError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "install the Debian package chromium (sh scripts/setup.sh does)"
# virtual time Chromium lets the page "run" before printing; the report has no scripts and no
# fetches, so this only bounds layout of a very large report
VIRTUAL_TIME_BUDGET_MS = 30_000
FLAGS = (
    "--headless",
    "--no-sandbox",                # runs as root in containers and CI; the page is our own local file
    "--disable-gpu",
    "--disable-dev-shm-usage",     # small /dev/shm in containers makes large prints crash
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--no-service-autorun",
    "--password-store=basic",
    "--use-mock-keychain",
    "--host-resolver-rules=MAP * ~NOTFOUND",   # nothing resolves: a stray URL cannot reach the network
    "--hide-scrollbars",
    "--mute-audio",
    "--no-pdf-header-footer",      # the report prints its own header and footer (@page margin boxes)
)


def chromium_command() -> list[str]:
    """The Chromium to run: $CERTLAB_CHROMIUM (a command line, may carry arguments) or the first on PATH."""
    configured = os.environ.get("CERTLAB_CHROMIUM", "").strip()
    if configured:
        argv = shlex.split(configured)
        exe = shutil.which(argv[0])
        if exe is None:
            raise ReportError(f"CERTLAB_CHROMIUM names {argv[0]!r}, which is not an executable: "
                              f"fix the variable or unset it and {INSTALL_HINT}")
        return [exe, *argv[1:]]
    for name in CANDIDATES:
        exe = shutil.which(name)
        if exe:
            return [exe]
    raise ReportError(f"no Chromium to print the report to PDF (looked for {', '.join(CANDIDATES)} on PATH): "
                      f"{INSTALL_HINT}, or set CERTLAB_CHROMIUM")


def print_pdf(html_path: Path, pdf_path: Path, *, timeout: float = 120) -> float:
    """Print `html_path` to `pdf_path`; returns the seconds taken. ReportError when no PDF comes out."""
    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path).absolute()
    if not html_path.is_file():
        raise ReportError(f"cannot print {html_path}: no such file")
    command = chromium_command()
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    # ends in .tmp: the run manifest never lists a half-written file
    tmp = pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.tmp")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="certlab-chromium-", ignore_cleanup_errors=True) as profile:
        env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile)
        argv = [*command, *FLAGS, f"--user-data-dir={profile}", f"--crash-dumps-dir={profile}",
                f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", f"--print-to-pdf={tmp}", html_path.as_uri()]
        try:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, start_new_session=True)
            except OSError as exc:
                raise ReportError(f"cannot start {command[0]}: {exc.strerror or exc}; {INSTALL_HINT}") from exc
            try:
                _out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise ReportError(f"Chromium did not print {html_path.name} within {timeout:g} s "
                                  f"(a very large report? raise the timeout)") from None
            except BaseException:  # Ctrl-C: leave no browser behind either
                _kill_group(proc)
                raise
            if not _is_pdf(tmp):
                tail = _tail(err.decode("utf-8", "replace"))
                raise ReportError(f"Chromium printed no PDF of {html_path.name} (exit status {proc.returncode})"
                                  + (f": {tail}" if tail else ""))
            os.replace(tmp, pdf_path)
        finally:
            tmp.unlink(missing_ok=True)
    return time.monotonic() - start


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the browser's own session (it is its leader, not yet reaped: the id is still ours)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=10)  # reap it and close the pipes
    except subprocess.TimeoutExpired:  # a child outside the group still holds a pipe
        proc.kill()
        proc.wait()


def _is_pdf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(5) == b"%PDF-"
    except OSError:
        return False


def _tail(stderr: str, lines: int = 5) -> str:
    """The last meaningful stderr lines: Chromium logs much noise before the one line that matters."""
    kept = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])
