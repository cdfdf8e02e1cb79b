"""`certlab serve --workers N` (lab/api/workers.py, issue 19 item 3): several processes, one server.

The fast tests check the hand-over (options checked and the store migrated once in the parent,
then read by each worker from the environment). The end-to-end one starts two workers on
loopback and proves, with /proc (which worker holds each connection), that both serve and that
they draw from one rate-limit budget; that a killed worker is replaced; that Ctrl-C stops all.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apilib import certlab_main  # tests/apilib.py

from lab.api.ratelimit import rate_limit_file
from lab.api.settings import ApiSettings
from lab.api.workers import check_workers, hand_over, prepare
from lab.errors import CertlabError
from lab.store.accounts import add_user
from lab.store.db import open_store
from lab.store.migrations import current_revision, head_revision

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventory" / "sim.yaml"
START_S = 90.0  # two workers import the app on a busy 2-core machine


@pytest.mark.parametrize("workers", ["0", "-1", "33"])
def test_a_bad_worker_count_is_one_line_and_exit_2(workers: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    def no_server(*_a: object, **_k: object) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(uvicorn, "run", no_server)
    code, err = certlab_main(monkeypatch, capsys, "serve", "--workers", workers, "-i", str(INVENTORY))
    assert code == 2, err
    assert err.strip() == (f"certlab: error: --workers {workers}: give a number of server processes from 1 to 32 "
                           f"(e.g. --workers 2, about one per CPU)"), err


def test_check_workers_passes_a_sane_count() -> None:
    assert check_workers(1) == 1 and check_workers(32) == 32
    with pytest.raises(CertlabError):
        check_workers(0)


def test_the_parent_migrates_once_and_hands_absolute_paths_over(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = ApiSettings(inventory=Path("lab.yaml"), reports_dir=Path("reports"), data_dir=Path("data"),
                           database_url=f"sqlite:///{tmp_path / 'store.db'}")
    assert prepare(settings).startswith("sqlite:///")
    with open_store(settings.database_url, migrate=False) as store:
        assert current_revision(store) == head_revision()
    assert rate_limit_file(tmp_path / "data", "api").is_file()
    env: dict[str, str] = {}
    hand_over(settings, env)
    assert env == {"CERTLAB_INVENTORY": str(tmp_path / "lab.yaml"), "CERTLAB_REPORTS_DIR": str(tmp_path / "reports"),
                   "CERTLAB_DATA_DIR": str(tmp_path / "data"), "CERTLAB_DATABASE_URL": settings.database_url}


def test_a_worker_builds_its_app_from_the_environment_without_migrating(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.api.workers import app_from_env

    url = f"sqlite:///{tmp_path / 'store.db'}"
    for name, value in {"CERTLAB_DATABASE_URL": url, "CERTLAB_DATA_DIR": str(tmp_path),
                        "CERTLAB_INVENTORY": str(INVENTORY), "CERTLAB_REPORTS_DIR": str(tmp_path / "r")}.items():
        monkeypatch.setenv(name, value)
    open_store(url, migrate=False).close()  # an empty, unmigrated store
    with pytest.raises(CertlabError, match=r"is at schema revision None, this certlab's is .*fix: start the server "
                                           r"with `certlab serve`"):
        app_from_env()
    open_store(url).close()  # migrated (as the parent does)
    app = app_from_env()
    try:
        assert app.state.services.store.url == url and app.state.services.settings.reports_dir == tmp_path / "r"
        assert app.state.services.limiter.path == rate_limit_file(tmp_path, "api")
    finally:
        app.state.services.store.close()
        app.state.services.limiter.close()


# --- end to end: two processes on loopback --------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> set[int]:
    """The live child processes of `pid` (uvicorn's workers; its spawn helper has no socket)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(x) for x in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the loopback connection from `client_port` (/proc/net/tcp)."""
    want_local, want_remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == want_local and fields[2] == want_remote:
            return fields[9]
    return None


def _holder(pids: set[int], inode: str) -> int | None:
    """Which of `pids` holds socket `inode` (the worker that accepted the connection)."""
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue
    return None


def _ask(port: int, workers: set[int], path: str, headers: dict[str, str],
         held: list[http.client.HTTPConnection]) -> tuple[int, int]:
    """GET `path` on a new connection: (the worker that answered, the status). The connection is
    kept open (in `held`, at most 20) so the worker still holds its end while /proc is read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    held.append(conn)
    if len(held) > 20:
        held.pop(0).close()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    inode = _socket_inode(port, conn.sock.getsockname()[1])
    pid = _holder(workers, inode) if inode else None
    assert pid is not None, "no worker holds the connection"
    return pid, response.status


def _wait_workers(server: subprocess.Popen, port: int, count: int, not_in: frozenset[int] | set[int] = frozenset()) -> set[int]:
    """Until the server answers /health and has `count` workers none of which is in `not_in` (bounded)."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read() if server.stderr else server.returncode
        workers = {p for p in _children(server.pid) if Path(f"/proc/{p}/cmdline").read_bytes().find(b"spawn_main") >= 0}
        if len(workers) == count and not workers & not_in:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/v1/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return workers
            except OSError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not have {count} answering workers within {START_S:.0f} s")


def test_two_workers_serve_one_port_with_one_rate_budget_restart_a_dead_one_and_stop_on_ctrl_c(
        tmp_path: Path) -> None:
    burst = 5
    env = {**os.environ, "CERTLAB_DATA_DIR": str(tmp_path / "data"), "CERTLAB_REPORTS_DIR": str(tmp_path / "reports"),
           "CERTLAB_RATE_PER_SECOND": "0.0001", "CERTLAB_RATE_BURST": str(burst)}
    env.pop("CERTLAB_DATABASE_URL", None)
    with open_store(f"sqlite:///{tmp_path / 'data' / 'certlab.db'}") as store:  # the server's default store there
        token = add_user(store, name="maker", role="manufacturer", org="Devices")[1]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "lab.cli", "serve", "--workers", "2", "--port", str(port),
                               "-i", str(INVENTORY)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    held: list[http.client.HTTPConnection] = []
    seen: set[int] = set()  # every worker pid, killed at the end if a failure left it running
    try:
        workers = _wait_workers(server, port, 2)
        seen |= workers
        # every worker answers (the last one to import the app may lag), without spending the budget
        deadline, answered = time.monotonic() + START_S, set()
        while answered != workers and time.monotonic() < deadline:
            pid, _status = _ask(port, workers, "/api/v1/health", {}, held)
            answered.add(pid)
            time.sleep(0.05)
        assert answered == workers, f"only {answered} of {workers} answered within {START_S:.0f} s"
        # new connections until each worker has answered `burst` calls of the token (bounded): with
        # a limiter per process both would grant `burst`; with the shared one, `burst` in all
        served: dict[int, list[int]] = {pid: [] for pid in workers}
        for _ in range(500):
            if all(len(statuses) >= burst for statuses in served.values()):
                break
            pid, status = _ask(port, workers, "/api/v1/me", {"Authorization": f"Bearer {token}"}, held)
            served[pid].append(status)
        assert all(len(statuses) >= burst for statuses in served.values()), served
        granted = sum(statuses.count(200) for statuses in served.values())
        assert granted == burst, served
        assert {s for statuses in served.values() for s in statuses} == {200, 429}, served

        victim = min(workers)  # a crashed worker is replaced by uvicorn's supervisor
        os.kill(victim, signal.SIGKILL)
        replaced = _wait_workers(server, port, 2, not_in={victim})
        seen |= replaced
        assert victim not in replaced

        for conn in held:
            conn.close()
        server.send_signal(signal.SIGINT)  # Ctrl-C
        server.wait(60)
        assert not any(Path(f"/proc/{pid}").exists() for pid in replaced), "a worker outlived Ctrl-C"
        banner = server.stdout.read() if server.stdout else ""
        assert "2 worker processes" in banner and f"http://127.0.0.1:{port}/api/v1" in banner, banner
    finally:
        for conn in held:
            conn.close()
        if server.poll() is None:
            server.kill()
            server.wait(30)
        for pid in seen:
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
