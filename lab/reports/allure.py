"""The run's Allure report, rendered by the real Allure 3 command-line tool (npm package `allure`).

certlab pins the tool in `tools/allure/package.json`; `sh scripts/setup.sh` installs it with
`npm ci` and links it beside the venv's python (.venv/bin/allure), so every lab renders reports
with the same, reviewed version and nothing is fetched at report time. An installed certlab finds
the CLI as CERTLAB_ALLURE, else `allure` beside its python, else on PATH (never in a source tree).
What certlab adds around the tool:

* metadata a certifier asks for (environment, executor, categories) in `allure-results/`;
* one history file per product, so a later run of the same product shows trends, with exactly one
  entry per run however often a run's report is regenerated;
* `links`: pytest node id -> that test's page in the report, for the conformance report.

    write_metadata(run / "allure-results", environment={...}, executor={...})
    out = generate(run, report_name="TH-100 fw 1.4.0", history_file=history_path(data, "lab", "TH-100"))
    out.links["testsuites/x.py::test_a[bench1]"]   # 'allure-report/index.html#0a5dfd12...'
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import LabFault
from lab.reports.errors import ReportError

__all__ = [
    "ALLURE_ENV", "AllureOutput", "NODEID_LABEL", "ReportError", "allure_command", "allure_version",
    "default_categories", "generate", "history_path", "write_metadata",
]

ALLURE_ENV = "CERTLAB_ALLURE"  # path to an allure executable, overriding the one beside python or on PATH
NODEID_LABEL = "nodeid"  # the label the plugin (fixtures/plugin.py) puts on every result; hidden in the report
SETUP_FIX = ("run `sh scripts/setup.sh` (it installs the pinned Allure CLI into tools/allure with npm and links "
             "it as .venv/bin/allure), or put the npm package allure's `allure` on PATH")
EXECUTOR_FIELDS = ("name", "type", "url", "buildOrder", "buildName", "buildUrl", "reportName", "reportUrl")
# keys Allure 3's config accepts for a category (Allure 2's categories.json has a few more)
_CATEGORY_CONFIG_KEYS = ("name", "matchedStatuses", "messageRegex", "traceRegex", "flaky")
_HISTORY_PREFIX = "certlab run "
# The awesome template always adds Google Analytics; a signed certification report must not call
# a third party when a certifier opens it, so this exact block is removed after generation.
_ANALYTICS = re.compile(
    r'\s*<script async src="https://www\.googletagmanager\.com/[^"]*"></script>\s*'
    r"<script>\s*window\.dataLayer[\s\S]*?</script>"
)


@dataclass(frozen=True)
class AllureOutput:
    path: Path  # the report folder, or the single HTML file
    seconds: float
    version: str
    links: dict[str, str] = field(default_factory=dict)  # node id -> href relative to the run dir


def allure_command(root: Path | None = None) -> list[str]:
    """The argv prefix that runs the Allure CLI; a clear fix when it is not installed.

    CERTLAB_ALLURE, else `allure` beside this python (the venv's bin, where scripts/setup.sh links
    the pinned one), else on PATH; `root`: look in that folder only (tests)."""
    override = os.environ.get(ALLURE_ENV)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ReportError(f"{ALLURE_ENV}={override}: not an executable file; fix the path, or unset "
                              f"{ALLURE_ENV} and {SETUP_FIX}")
        return [str(path)]
    folder = root if root is not None else Path(sys.executable).parent
    on_path = shutil.which("allure") if root is None else None
    path = folder / "allure" if os.access(folder / "allure", os.X_OK) else Path(on_path) if on_path else None
    if path is None:
        raise ReportError(f"Allure CLI not found (no allure in {folder} nor on PATH): {SETUP_FIX}, "
                          f"or set {ALLURE_ENV} to an allure executable")
    if shutil.which("node") is None:
        raise ReportError(f"node not found on PATH (the Allure CLI runs on Node.js): {SETUP_FIX}")
    return [str(path)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    return env


def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept) or "(no output)"


def allure_version(cmd: list[str]) -> str:
    """From the npm package next to the CLI when there is one: `allure --version` costs 1.5 s."""
    script = Path(cmd[-1]).resolve()
    for folder in list(script.parents)[:3]:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
            if meta.get("name") == "allure" and meta.get("version"):
                return str(meta["version"])
    try:
        proc = subprocess.run([*cmd, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=_env(), timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReportError(f"{cmd[0]} --version failed ({exc}): {SETUP_FIX}") from None
    words = proc.stdout.split()
    if proc.returncode != 0 or not words:
        raise ReportError(f"{cmd[0]} --version failed (exit {proc.returncode}): {_tail(proc.stderr, 3)}; {SETUP_FIX}")
    return words[-1]


# --- metadata in allure-results ---------------------------------------------------------------

def _lab_fault_kinds() -> list[str]:
    kinds, todo = set(), [LabFault]
    while todo:
        cls = todo.pop()
        kinds.add(cls.kind)
        todo.extend(cls.__subclasses__())
    return sorted(kinds)


def default_categories() -> list[dict]:
    """Failures a certifier must tell apart: the product's, the lab's, and our own test code's.

    The message regex is anchored on both ends with `[\\s\\S]*` so it means the same to Allure 2
    (a full match) and Allure 3 (a search), across lines.
    """
    lab = "|".join(re.escape(k) for k in _lab_fault_kinds())
    return [
        {"name": "Product defect", "matchedStatuses": ["failed"],
         "description": "The DUT did not meet the provision (FAIL)."},
        {"name": "Lab infrastructure", "matchedStatuses": ["broken"], "messageRegex": rf"[\s\S]*({lab})[\s\S]*",
         "description": "The lab could not decide (INCONCLUSIVE): relay, console, network, provisioning."},
        {"name": "Test error", "matchedStatuses": ["broken"],
         "description": "The test code itself failed (INCONCLUSIVE); not a finding against the product."},
        {"name": "Not applicable (ICS)", "matchedStatuses": ["skipped"],
         "description": "The manufacturer's ICS declares the provision not applicable (NOT_APPLICABLE)."},
    ]


def _escape_property(text: str, *, key: bool) -> str:
    """Java .properties escaping (Allure 2 reads the file as Latin-1, so non-ASCII becomes \\uXXXX)."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[ch])
        elif ch in "=:#!" and (key or i == 0):
            out.append("\\" + ch)
        elif ch == " " and (key or i == 0):
            out.append("\\ ")
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            data = ch.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(data[j:j + 2], 'big'):04x}" for j in range(0, len(data), 2))
        else:
            out.append(ch)
    return "".join(out)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_metadata(results_dir: Path, *, environment: Mapping[str, str], executor: Mapping[str, object],
                   categories: list[dict] | None = None) -> None:
    """environment.properties, executor.json and categories.json, as Allure 2 and 3 both read them."""
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir}: no Allure results folder; run the tests first (certlab run)")
    unknown = sorted(set(executor) - set(EXECUTOR_FIELDS))
    if unknown:
        raise ValueError(f"executor fields {unknown} are not Allure executor fields; use {', '.join(EXECUTOR_FIELDS)} "
                         f"(put anything else in the environment)")
    lines = []
    for name, value in environment.items():
        if not str(name).strip():
            raise ValueError("environment: an empty property name")
        lines.append(f"{_escape_property(str(name), key=True)}={_escape_property(str(value), key=False)}")
    _write_atomic(results_dir / "environment.properties", "".join(f"{line}\n" for line in lines))
    info = {"name": "certlab", "type": "certlab"} | {k: v for k, v in executor.items() if v is not None}
    if "buildOrder" in info:
        info["buildOrder"] = int(info["buildOrder"])  # type: ignore[call-overload]
    _write_atomic(results_dir / "executor.json", json.dumps(info, indent=2) + "\n")
    cats = default_categories() if categories is None else categories
    _write_atomic(results_dir / "categories.json", json.dumps(cats, indent=2) + "\n")


# --- history ----------------------------------------------------------------------------------

def history_path(data_dir: Path, lab: str, model: str) -> Path:
    """One trend file per lab and product model; names are made filesystem-safe without collisions."""
    def safe(name: str) -> str:
        clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"
        if clean != name:  # 'a/b' and 'a_b' must not share a file
            clean += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
        return clean
    return data_dir / "allure-history" / safe(lab) / f"{safe(model)}.jsonl"


def _history_name(run_id: str) -> str:
    """Allure names each history entry after the report; certlab's name carries the run id.

    Allure gives each report a random uuid, so the name is the only identity we control: the
    entry of this run is the one whose name is this (Allure may append " – <CI job name>").
    """
    return f"{_HISTORY_PREFIX}{run_id}"


def _is_entry_of(line_doc: dict, run_id: str) -> bool:
    name = str(line_doc.get("name", ""))
    base = _history_name(run_id)
    return name == base or name.startswith(base + " – ")


def _read_history(path: Path) -> list[tuple[str, dict]]:
    if not path.exists():
        return []
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise ReportError(f"{path}: line {n} is not JSON; delete that line (or the file, to restart "
                              f"this product's trend)") from None
        entries.append((line, doc if isinstance(doc, dict) else {}))
    return entries


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- generation -------------------------------------------------------------------------------

def _run_id(run_dir: Path) -> str:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return str(json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["run_id"])
    return run_dir.name


def _categories_config(results_dir: Path) -> list[dict] | None:
    """Allure 3's awesome report takes categories from its config, not from categories.json."""
    path = results_dir / "categories.json"
    if not path.exists():
        return None
    try:
        cats = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON ({exc}); delete it and write it again (write_metadata)") from None
    return [{k: c[k] for k in _CATEGORY_CONFIG_KEYS if k in c} for c in cats if isinstance(c, dict) and c.get("name")]


def _latest_uuid_by_nodeid(results_dir: Path) -> dict[str, str]:
    """The Allure result of each node id; of several (a retry), the one that stopped last."""
    best: dict[str, tuple[int, str]] = {}
    for path in results_dir.glob("*-result.json"):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        uuid = doc.get("uuid")
        nodeid = next((lb.get("value") for lb in doc.get("labels") or [] if lb.get("name") == NODEID_LABEL), None)
        if not uuid or not nodeid:
            continue
        stop = int(doc.get("stop") or 0)
        if nodeid not in best or stop >= best[nodeid][0]:
            best[nodeid] = (stop, uuid)
    return {nodeid: uuid for nodeid, (_, uuid) in best.items()}


def _report_ids(generated: Path) -> set[str]:
    """Result ids the report holds: the data files of a folder report, else test-results.json.

    A folder report's test-results.json lists only some results (seen: the few in its widgets),
    so the data files decide when they exist.
    """
    data = generated / "data" / "test-results"
    if data.is_dir():
        return {p.stem for p in data.glob("*.json")}
    with contextlib.suppress(OSError, ValueError, AttributeError, KeyError, TypeError):
        return set(json.loads((generated / "test-results.json").read_text(encoding="utf-8"))["byId"])
    return set()


def _links(results_dir: Path, generated: Path, page: str) -> dict[str, str]:
    """node id -> page#<result id>; Allure 3 names a result md5(uuid) (checked, else the index)."""
    ids = _report_ids(generated)
    links = {}
    for nodeid, uuid in _latest_uuid_by_nodeid(results_dir).items():
        rid = hashlib.md5(uuid.encode()).hexdigest()
        links[nodeid] = f"{page}#{rid}" if rid in ids else page
    return links


def _rel(path: Path, run_dir: Path) -> str:
    return Path(os.path.relpath(path, run_dir)).as_posix()


def _strip_analytics(index: Path) -> None:
    html = index.read_text(encoding="utf-8")
    cleaned = _ANALYTICS.sub("", html, count=1)
    if cleaned != html:
        index.write_text(cleaned, encoding="utf-8")


def _run_allure(cmd: list[str], results_dir: Path, config: dict, workdir: Path, timeout: float) -> None:
    rc = workdir / "allurerc.json"
    rc.write_text(json.dumps(config, indent=2), encoding="utf-8")
    argv = [*cmd, "generate", str(results_dir), "--config", str(rc)]
    try:
        proc = subprocess.run(argv, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ReportError(f"allure generate took longer than {timeout:.0f} s for {results_dir}; pass a longer "
                          f"timeout, or check the machine's load") from None
    except OSError as exc:
        raise ReportError(f"cannot run {cmd[0]} ({exc}): {SETUP_FIX}") from None
    if proc.returncode != 0:
        raise ReportError(f"allure generate failed (exit {proc.returncode}) for {results_dir}:\n"
                          f"{_tail(proc.stderr or proc.stdout)}")


def _replace_dir(new: Path, target: Path) -> None:
    """Swap the new report in, so a failed regeneration leaves the old one whole."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


def generate(run_dir: Path, *, report_name: str, history_file: Path | None, single_file: bool = False,
             output: Path | None = None, timeout: float = 600) -> AllureOutput:
    """Render `run_dir/allure-results` with the pinned Allure CLI; offline, nothing foreign left behind.

    The allurerc lives in a temporary folder outside the run (whose files get signed). Allure is
    given a private copy of the history with the entries of runs before this one, and its new
    entry is spliced back in place: regenerating a run never duplicates or reorders history.
    """
    started = time.monotonic()
    run_dir = run_dir.resolve()
    results_dir = run_dir / "allure-results"
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir}: no Allure results; run the tests first (certlab run)")
    cmd = allure_command()
    version = allure_version(cmd)
    target = (output or run_dir / ("allure-report.html" if single_file else "allure-report")).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(run_dir)
    config: dict = {
        "name": _history_name(run_id),
        "hideLabels": [NODEID_LABEL],
        "plugins": {"awesome": {"options": {"singleFile": single_file, "reportLanguage": "en",
                                            "reportName": report_name}}},
    }
    categories = _categories_config(results_dir)
    if categories:
        config["categories"] = categories
    lock = _locked(history_file) if history_file is not None else contextlib.nullcontext()
    with lock, tempfile.TemporaryDirectory(prefix="certlab-allure-") as tmp:
        work = Path(tmp)
        before: list[tuple[str, dict]] = []
        after: list[tuple[str, dict]] = []
        if history_file is not None:
            entries = _read_history(history_file)
            mine = next((i for i, (_, doc) in enumerate(entries) if _is_entry_of(doc, run_id)), None)
            before = entries if mine is None else entries[:mine]
            after = [] if mine is None else [e for e in entries[mine + 1:] if not _is_entry_of(e[1], run_id)]
            private = work / "history.jsonl"
            private.write_text("".join(f"{line}\n" for line, _ in before), encoding="utf-8")
            config["historyPath"] = str(private)
        if single_file:
            generated = work / "report"
        else:
            generated = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            config["output"] = str(generated)
            _run_allure(cmd, results_dir, config, work, timeout)
            index = generated / "index.html"
            if not index.is_file():
                raise ReportError(f"allure generate wrote no index.html for {results_dir}; {SETUP_FIX} "
                                  f"(Allure {version} may not match the pinned version)")
            _strip_analytics(index)
            if not single_file:  # mkdtemp made it private; a report is as readable as its run
                generated.chmod(target.parent.stat().st_mode & 0o777)
            page = _rel(target, run_dir) if single_file else _rel(target / "index.html", run_dir)
            links = _links(results_dir, generated, page)
            if single_file:
                staged = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                try:
                    shutil.copyfile(index, staged)
                    os.replace(staged, target)
                finally:
                    staged.unlink(missing_ok=True)
            else:
                _replace_dir(generated, target)
        finally:
            if not single_file and generated.exists():
                shutil.rmtree(generated, ignore_errors=True)
        if history_file is not None:
            added = [line for line in (work / "history.jsonl").read_text(encoding="utf-8").splitlines()
                     if line.strip()][len(before):]
            lines = [line for line, _ in before] + added + [line for line, _ in after]
            _write_atomic(history_file, "".join(f"{line}\n" for line in lines))
    return AllureOutput(path=target, seconds=round(time.monotonic() - started, 3), version=version, links=links)
