"""The worker process: `python -m lab.orchestrator.worker ITEM.json` runs one work item's pytest.

Kept this small on purpose: whatever executes work items (the local pool, or a Celery task on
another lab host) only has to start this with the item's JSON; results reach the store through
the pytest plugin.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lab.orchestrator.workitem import WorkItem


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lab.orchestrator.worker ITEM.json", file=sys.stderr)
        return 2
    item = WorkItem.from_json(Path(args[0]).read_text(encoding="utf-8"))
    env = {**os.environ, **item.env, "CERTLAB_RUN_ID": item.run_id}
    # exec, not pytest.main: a fresh interpreter lets pytest rewrite the asserts of every module
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *item.pytest_args()], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
