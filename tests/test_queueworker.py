"""`certlab serve --queue-worker`: the child that serves the queue lives and ends with the server."""

from __future__ import annotations

import sys
import time

from lab.api.queueworker import QueueWorker

SLEEPER = ("import signal, sys, time, os\n"
           "signal.signal(signal.SIGINT, lambda *a: (print('stopping', os.environ['CERTLAB_DATA_DIR'], flush=True), sys.exit(0)))\n"
           "print('serving', flush=True)\n"
           "time.sleep(30)\n")


class _Sleeper(QueueWorker):
    def argv(self) -> list[str]:
        return [sys.executable, "-c", SLEEPER]


def test_the_worker_command_serves_the_servers_inventory_until_stopped(tmp_path):
    argv = QueueWorker(tmp_path / "inv.yaml", tmp_path, None).argv()
    assert argv[1:] == ["-m", "lab.cli", "queue", "work", "-i", str((tmp_path / "inv.yaml").resolve()), "--follow"]


def test_stop_asks_with_sigint_and_the_log_keeps_what_it_said(tmp_path):
    worker = _Sleeper(tmp_path / "inv.yaml", tmp_path / "data", None)
    worker.start()
    deadline = time.monotonic() + 10
    while "serving" not in (worker.log.read_text() if worker.log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.running()
    assert worker.stop(wait=10) == 0
    assert not worker.running()
    assert f"stopping {tmp_path / 'data'}" in worker.log.read_text()
    assert oct(worker.log.stat().st_mode & 0o777) == "0o600"
    assert worker.stop() is None  # stopping twice is harmless
