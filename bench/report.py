"""`certlab report` at lab scale: a synthetic finished run of 10,000 results, reported and verified.

No lab produces 10,000 results in a benchmark's time, so lab.reports.synthetic writes a run of that
shape (run.json, verdicts.json, inputs, evidence, allure-pytest results). Prints, never asserts:

  - the report without the Allure CLI and without PDF (document, HTML, signature), against the
    aim of under 10 s: what a lab waits for after every run;
  - the Allure CLI's folder report on its own (and the single-file one with --single-file);
  - the PDF on its own (--pdf; off by default: Chromium lays out every row, minutes at 10,000),
    with its page count when pdfinfo is installed;
  - `certlab verify` over the signed run (files, seconds).

Keys and the Allure history live in the temporary folder, deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.reports.build import ReportOutcome, build_report  # noqa: E402
from lab.reports.conformance import HTML_FILE, JSON_FILE, PDF_FILE  # noqa: E402
from lab.reports.errors import ReportError  # noqa: E402
from lab.reports.keys import KEY_DIR_ENV, PASSPHRASE_ENV, init_keys, load_private_key, load_public_key  # noqa: E402
from lab.reports.manifest import sign_run, verify_run  # noqa: E402
from lab.reports.pdf import print_pdf  # noqa: E402
from lab.reports.profile import LabProfile, load_profile  # noqa: E402
from lab.reports.synthetic import make_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "inventory" / "lab-profile.yaml"
AIM_S = 10.0  # issue 6 §5: the report without Allure and PDF for 10,000 results


@contextlib.contextmanager
def key_folder(folder: Path) -> Iterator[None]:
    """Point certlab at a throwaway key pair for the duration, and restore the caller's environment."""
    saved = {name: os.environ.get(name) for name in (KEY_DIR_ENV, PASSPHRASE_ENV)}
    os.environ[KEY_DIR_ENV] = str(folder)
    os.environ.pop(PASSPHRASE_ENV, None)
    try:
        init_keys(folder)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def tree_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(folder, name))
    return files, size


def steps(outcome: ReportOutcome, names: tuple[str, ...]) -> str:
    return " ".join(f"{name}_s={outcome.seconds[name]:.3f}" for name in names if name in outcome.seconds)


def mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.2f}" if path.is_file() else "-"


def pdf_pages(pdf: Path) -> str:
    """The page count pdfinfo reads (poppler-utils), or why there is none."""
    exe = shutil.which("pdfinfo")
    if exe is None:
        return "? (no pdfinfo: install poppler-utils)"
    try:
        proc = subprocess.run([exe, str(pdf)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "? (pdfinfo took over 60 s)"
    match = re.search(r"^Pages:\s+(\d+)", proc.stdout, re.MULTILINE)
    return match.group(1) if match else f"? (pdfinfo exit {proc.returncode})"


def report_without_allure(run_dir: Path, profile: LabProfile, data_dir: Path) -> None:
    started = time.perf_counter()
    outcome = build_report(run_dir, profile=profile, data_dir=data_dir, with_allure=False, with_pdf=False)
    total = time.perf_counter() - started
    print(f"report(no Allure, no PDF): {steps(outcome, ('document', 'html', 'sign'))} total_s={total:.3f} "
          f"html_MB={mb(run_dir / HTML_FILE)} json_MB={mb(run_dir / JSON_FILE)}")
    print(f"aim < {AIM_S:g} s: {'met' if total < AIM_S else 'not met'} ({total:.2f} s)")


def report_with_allure(run_dir: Path, profile: LabProfile, data_dir: Path, single_file: bool) -> None:
    started = time.perf_counter()
    outcome = build_report(run_dir, profile=profile, data_dir=data_dir, with_allure=True, single_file=single_file,
                           with_pdf=False)
    total = time.perf_counter() - started
    files, size = tree_size(run_dir / "allure-report")
    line = f"allure(folder report): allure_s={outcome.seconds['allure']:.3f} files={files} MB={size / 1e6:.1f}"
    if single_file:
        line += (f" | allure(single file): allure_single_s={outcome.seconds['allure_single']:.3f} "
                 f"MB={mb(run_dir / 'allure-report.html')}")
    print(line)
    print(f"report(with Allure, no PDF): {steps(outcome, ('allure', 'allure_single', 'document', 'html', 'sign'))} "
          f"total_s={total:.3f}")


def report_pdf(run_dir: Path, timeout: float) -> None:
    """Print the HTML the Allure step wrote (with its links), then sign again so verify covers the PDF."""
    pdf = run_dir / PDF_FILE
    try:
        seconds = print_pdf(run_dir / HTML_FILE, pdf, timeout=timeout)
    except ReportError as exc:
        print(f"pdf: failed ({exc})")
        return
    started = time.perf_counter()
    sign_run(run_dir, load_private_key())
    print(f"pdf: pdf_s={seconds:.3f} pages={pdf_pages(pdf)} MB={mb(pdf)} resign_s={time.perf_counter() - started:.3f}")


def verify(run_dir: Path) -> None:
    started = time.perf_counter()
    result = verify_run(run_dir, load_public_key())
    seconds = time.perf_counter() - started
    print(f"verify: files={result.files_checked} MB={result.bytes_checked / 1e6:.1f} verify_s={seconds:.3f} "
          f"intact={'yes' if result.intact else 'NO: ' + '; '.join(result.problems()[:3])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=4, help="benches (samples) the results are spread over")
    parser.add_argument("--single-file", action="store_true", help="also time Allure's single-file report")
    parser.add_argument("--pdf", action="store_true", help="also time the PDF (minutes at 10,000 results)")
    parser.add_argument("--pdf-timeout", type=float, default=900.0, help="bound on the PDF print, seconds")
    parser.add_argument("--dir", type=Path, help="parent folder of the synthetic run (default: the temp folder)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = max(1, min(args.results, 100_000))
    samples = max(1, min(args.samples, 64))
    pdf_timeout = max(10.0, min(args.pdf_timeout, 3600.0))
    profile = load_profile(PROFILE)

    with tempfile.TemporaryDirectory(prefix="certlab-bench-report-", dir=args.dir) as tmp:
        root = Path(tmp)
        with key_folder(root / "keys"):
            started = time.perf_counter()
            run_dir = make_run(root / "runs", results=results, samples=samples, seed=args.seed)
            files, size = tree_size(run_dir)
            print(f"results={results} samples={samples} files={files} MB={size / 1e6:.1f} "
                  f"make_run_s={time.perf_counter() - started:.2f} cpus={os.cpu_count()}")
            report_without_allure(run_dir, profile, root / "data")
            report_with_allure(run_dir, profile, root / "data", args.single_file)
            if args.pdf:
                report_pdf(run_dir, pdf_timeout)
            verify(run_dir)


if __name__ == "__main__":
    main()
