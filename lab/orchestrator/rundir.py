"""The run directory (docs/architecture.md): where a run's spec, verdicts, evidence and logs live.

`run.json` holds what `certlab run` was asked to do, so that `--resume DIR` needs nothing else
but the same result store. The directory is its owner's alone (0700, lab/ownerfiles.py): it holds a
customer's documents and results, and everything written below it is out of other accounts' reach.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.errors import CertlabError
from lab.ownerfiles import DIR_MODE, private_dir, write_private

SPEC_FILE = "run.json"


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    inventory: str  # absolute path
    benches: tuple[str, ...]  # the slots: each bench tests its own sample
    suites: tuple[str, ...]  # absolute paths or node ids
    options: tuple[str, ...] = ()  # pytest options (edition, ICS, IXIT, seed, power cuts)
    edition: str = "v2"
    campaign: str | None = None
    store: str = ""  # where the results went (password masked), to say so when a resume cannot find them
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def create_run_dir(reports_dir: Path, spec: RunSpec) -> Path:
    path = reports_dir.resolve() / spec.run_id  # absolute: workers run from where the suites are installed
    try:
        private_dir(reports_dir)
        path.mkdir(mode=DIR_MODE)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise CertlabError(f"--out {reports_dir}: cannot create the run directory ({exc.strerror}); "
                           f"fix: choose a writable folder") from None
    write_json(path / SPEC_FILE, json.loads(spec.to_json()))
    return path


def load_spec(run_dir: Path) -> RunSpec:
    path = run_dir / SPEC_FILE
    if not path.is_file():
        raise CertlabError(f"--resume {run_dir}: no {SPEC_FILE} there; give the directory `certlab run` printed "
                           f"(reports/<run-id>)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        for name in ("benches", "suites", "options"):
            data[name] = tuple(data[name])
        return RunSpec(**data)
    except (ValueError, KeyError, TypeError) as exc:
        raise CertlabError(f"{path}: not a certlab run spec ({exc}); fix: resume a directory made by `certlab run`") from None


def write_json(path: Path, data: object) -> None:
    """Write atomically (a reader, or a crash, never sees half a file), owner-only."""
    write_private(path, json.dumps(data, indent=2))


def option_value(options: Sequence[str], name: str) -> str | None:
    """The value of option `name` (e.g. "--ics") among a run's pytest options, given as `--ics F` or
    `--ics=F`; the last one when given twice, as pytest takes it; None when absent."""
    found = None
    opts = list(options)
    for i, opt in enumerate(opts):
        if opt == name and i + 1 < len(opts):
            found = opts[i + 1]
        elif opt.startswith(name + "="):
            found = opt.split("=", 1)[1]
    return found
