"""`certlab serve --queue-worker` (and `--demo`): the queue of pending runs served beside the API.

A product record's re-test is a queued run (lab.actions.records); something has to serve the queue
for it to start without anyone starting it. A lab with benches on this machine lets the server
keep one `certlab queue work --follow` child for the server's lifetime; a lab whose queue is served
elsewhere (a systemd unit, another host) leaves the option out. The child is the ordinary command
in its own session, pinned to the server's store and data folder, its output in a log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lab.ownerfiles import UMASK, open_private, private_dir

LOG_FILE = "queue-worker.log"  # in the server's data folder
STOP_WAIT = 60.0  # seconds for the worker to end its runs' tests and switch the benches off after SIGINT


@dataclass
class QueueWorker:
    """One `certlab queue work --follow` child: started with the server, stopped with it."""

    inventory: Path
    data_dir: Path
    database_url: str | None  # None: the server's own default (CERTLAB_DATABASE_URL or the SQLite store)
    _proc: subprocess.Popen | None = field(default=None, init=False)

    @property
    def log(self) -> Path:
        return self.data_dir / LOG_FILE

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "lab.cli", "queue", "work", "-i", str(self.inventory.resolve()), "--follow"]

    def start(self) -> None:
        private_dir(self.data_dir)
        env = {**os.environ, "CERTLAB_DATA_DIR": str(self.data_dir), "COLUMNS": "200"}
        if self.database_url:
            env["CERTLAB_DATABASE_URL"] = self.database_url
        with open_private(self.log, "ab") as fh:
            self._proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True, umask=UMASK)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, wait: float = STOP_WAIT) -> int | None:
        """SIGINT (the worker stops its runs the way Ctrl-C does), then SIGKILL of its group if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        for sig, timeout in ((signal.SIGINT, wait), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
                return proc.wait(timeout=timeout)
            except ProcessLookupError:
                return proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                continue
        return proc.poll()
