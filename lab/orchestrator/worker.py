"""The worker process: `python -m lab.orchestrator.worker ITEM.json` runs one work item's pytest.

Kept this small on purpose: whatever executes work items (the local pool, or a Celery task on
another lab host) only has to start this with the item's JSON; results reach the store through
the pytest plugin.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

from lab.orchestrator.workitem import WorkItem
from lab.resources import SUITES_PACKAGE, import_root, suites_root

# The only pytest plugins a worker loads: a verdict must not depend on whatever else happens to be
# installed on the lab host (and a test host's hypothesis, schemathesis and anyio plugins cost each
# worker ~2 s of CPU at start). pytest-timeout is optional: it turns a hung test into an error.
# A lab adds a plugin on purpose through PYTEST_PLUGINS, which pytest still honours.
PLUGINS = ("fixtures.plugin", "allure_pytest.plugin")
OPTIONAL_PLUGINS = ("pytest_timeout",)


def plugin_args() -> list[str]:
    names = [*PLUGINS, *(name for name in OPTIONAL_PLUGINS if importlib.util.find_spec(name) is not None)]
    return [arg for name in names for arg in ("-p", name)]


def localize(suite: str) -> str:
    """A suite as this machine has it: a shipped suite the orchestrator named by its own install path
    (another lab host, another venv) is found in this machine's copy of the suites."""
    path, sep, rest = suite.partition("::")
    parts = Path(path).parts
    if Path(path).exists() or SUITES_PACKAGE not in parts:
        return suite
    last = len(parts) - 1 - parts[::-1].index(SUITES_PACKAGE)
    return str(suites_root().joinpath(*parts[last + 1:])) + sep + rest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lab.orchestrator.worker ITEM.json", file=sys.stderr)
        return 2
    item = WorkItem.from_json(Path(args[0]).read_text(encoding="utf-8"))
    item = dataclasses.replace(item, suites=tuple(localize(s) for s in item.suites))
    env = {**os.environ, **item.env, "CERTLAB_RUN_ID": item.run_id, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    # Node ids are relative to pytest's rootdir, and a retry names them: one rootdir and working
    # folder for every worker (where the suites are installed), whatever folder the run started in
    root = import_root()
    os.chdir(root)
    # exec, not pytest.main: a fresh interpreter lets pytest rewrite the asserts of every module
    os.execve(sys.executable, [sys.executable, "-m", "pytest", "--rootdir", str(root), *plugin_args(),
                               *item.pytest_args()], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
