"""A real redis-server for the lab-host tests: private, on an address the test picks, gone after."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path, *, bind: str = "127.0.0.1", port: int | None = None,
                password: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start redis-server (no persistence) and wait until it answers; returns it and its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server is not installed (system-packages.txt: redis-server)")
    port = port or free_port(bind)
    workdir.mkdir(parents=True, exist_ok=True)
    args = [exe, "--bind", bind, "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--protected-mode", "no", "--loglevel", "warning"]
    if password:
        args += ["--requirepass", password]
    log = open(workdir / "redis.log", "ab")  # noqa: SIM115 - the server keeps it
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {(workdir / 'redis.log').read_text()[-500:]}")
        try:
            with socket.create_connection((bind, port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError(f"redis-server did not answer on {bind}:{port} within {START_TIMEOUT} s")
    auth = f":{password}@" if password else ""
    return proc, f"redis://{auth}{bind}:{port}/0"


def stop_redis(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
