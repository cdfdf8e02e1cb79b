"""A work item: everything one worker needs to test one bench's slot, as plain JSON.

It crosses process boundaries today (the local executor hands it to `python -m
lab.orchestrator.worker`) and machine boundaries later (a Celery task carries the same JSON).
So it holds only paths, names and options, never open handles; results come back through the
store, not through the executor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WorkItem:
    run_id: str
    inventory: str  # path of the inventory file, as the worker's host sees it
    bench: str  # the bench that executes
    slot: str  # the bench whose work this is (differs from `bench` after a failover or retry)
    suites: tuple[str, ...]
    run_dir: str
    options: tuple[str, ...] = ()  # pytest options of the run (edition, ICS, IXIT, seed, ...)
    nodeids: tuple[str, ...] = ()  # only these tests (a retry); empty: the whole suites
    attempt: int = 1
    resume: bool = False  # skip the slot's tests that already have a final result
    health_check: bool = True
    plan_only: bool = False  # collect and record the tests as unfinished, run nothing (no bench is touched)
    env: dict[str, str] = field(default_factory=dict)  # e.g. CERTLAB_DATA_DIR of the store
    # a lab host's copy of the run's input files: option (--ics, --ixit, --assessments) -> the file's
    # name and its folder's files, base64 (lab/labhost/inputs.py); empty on this machine
    attachments: dict[str, dict] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique within a run: one worker per (slot, attempt, executing bench)."""
        return f"{self.slot}#{self.attempt}@{self.bench}"

    @property
    def slug(self) -> str:
        """The key as a file name (work spec, log, spool directory)."""
        return self.key.replace("#", "-a").replace("@", "-on-")

    def pytest_args(self) -> list[str]:
        args = list(self.nodeids) if self.nodeids else list(self.suites)
        args += [
            "--inventory", str(Path(self.inventory).resolve()),
            "--bench", self.bench,
            "--certlab-out", str(Path(self.run_dir).resolve()),
            "--certlab-run-id", self.run_id,
            "--certlab-slot", self.slot,
            "--certlab-attempt", str(self.attempt),
            "--alluredir", str(Path(self.run_dir).resolve() / "allure-results"),
            "-p", "no:cacheprovider", "-q", "-rA", "--no-header",
            "-o", "timeout=900",
        ]
        if self.resume:
            args.append("--certlab-resume")
        if self.plan_only:
            args.append("--collect-only")
        elif self.health_check:
            args.append("--certlab-health-check")
        return args + list(self.options)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkItem:
        data = json.loads(text)
        for name in ("suites", "options", "nodeids"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)
