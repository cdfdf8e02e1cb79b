"""Shared fixtures of certlab's own tests: private result stores and a PostgreSQL server.

Tests never touch a user's result store: each test gets a private SQLite store (per test, not
per session: simulated labs made by `write_sim_inventory` reuse bench names b1, b2, ..., and a
store keeps a bench name for one lab only). `pg_server` starts one real PostgreSQL server per
session (CI installs it), or uses the one `CERTLAB_DATABASE_URL` named; without either, the
PostgreSQL variants skip with the reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

PG_START_TIMEOUT = 30

# The end-to-end tests: they bring up simulated labs or benches (DUT and relay processes, ptys,
# network namespaces), drive a real browser, make whole runs or fuzz the whole API. Marked `e2e` here, in one
# place; the fast lane for everyday work leaves them out: `pytest -m "not e2e"` (README,
# "Developing"). CI runs everything.
E2E_MODULES = frozenset({
    "test_api_flow.py", "test_api_schemathesis.py", "test_detection_matrix.py", "test_labhosts.py", "test_offtheshelf_detection.py", "test_orchestrator.py",
    "test_ots_dut.py", "test_report_browser.py", "test_sim_dut.py", "test_webapp_browser.py", "test_sim_lab.py", "test_vm_dut.py",
    "test_wheel_install.py", "test_records_e2e.py", "test_records_browser.py",
})
E2E_TESTS = frozenset({
    "test_cli_lab.py::test_up_check_run_down", "test_cli_lab.py::test_check_reports_a_lab_fault_and_exits_1",
    "test_install.py::test_run_with_a_release_tests_the_installed_releases_software",
    "test_drivers.py::test_scans_and_capture_through_a_veth_into_a_namespace",
    "test_strategy.py::test_simulated_bench_goes_off_to_provisioned_with_the_example_playbook",
    "test_ssh_readiness.py::test_ssh_after_the_shell_prompt_is_waited_for_and_5_1_detects_the_universal_password",
    "test_run_confidentiality.py::test_a_real_simulated_run_of_one_bench_holds_nothing_of_the_other",
    "test_power_sim.py::test_a_run_powers_each_dut_through_the_command_and_the_pdu_backends",
    "test_serve_workers.py::test_two_workers_serve_one_port_with_one_rate_budget_restart_a_dead_one_and_stop_on_ctrl_c",
})


def pytest_configure(config: pytest.Config) -> None:
    url = os.environ.pop("CERTLAB_DATABASE_URL", None)  # the store tests use a given PostgreSQL explicitly
    if url:
        os.environ.setdefault("CERTLAB_TEST_DATABASE_URL", url)
    # Module-scoped fixtures (a whole detection-matrix run) start before the per-test private store
    # below: they get a session one, never the user's ~/.local/share/certlab.
    session_data = tempfile.mkdtemp(prefix="certlab-test-data-")
    os.environ["CERTLAB_DATA_DIR"] = session_data
    config.add_cleanup(lambda: shutil.rmtree(session_data, ignore_errors=True))


def is_e2e(file_name: str, test_name: str) -> bool:
    return file_name in E2E_MODULES or f"{file_name}::{test_name}" in E2E_TESTS


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_e2e(item.path.name, getattr(item, "originalname", item.name)):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under `-n 2 --dist loadgroup` (the full command) the end-to-end tests run one after another
    on one worker, as they always have (one simulated lab at a time); the others share the other
    core. The group is decided here from the node id: xdist's own `xdist_group` marks no longer
    reach its scheduler with pytest 9.2 (pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class EndToEndTogether(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path, _, rest = nodeid.partition("::")
            return "e2e" if is_e2e(Path(path).name, rest.split("[", 1)[0]) else nodeid

    return EndToEndTogether(config, log)


@pytest.fixture(autouse=True)
def private_result_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CERTLAB_DATA_DIR", str(tmp_path_factory.mktemp("certlab-data")))


# --- a PostgreSQL server for the tests -------------------------------------------------------

class PgServer:
    """Hands out a fresh, empty database per test on one server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")

    def new_database(self) -> str:
        name = f"certlab_t_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def close(self) -> None:
        self.engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres_user() -> list[str] | None:
    """Prefix that runs a PostgreSQL binary as a non-root user (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    env_url = os.environ.get("CERTLAB_TEST_DATABASE_URL") or os.environ.get("CERTLAB_DATABASE_URL", "")
    if env_url.startswith(("postgresql", "postgres:")):
        server = PgServer(env_url)
        try:
            server.drop_database(server.new_database())
        except DBAPIError as exc:
            pytest.skip(f"PostgreSQL tests skipped: CERTLAB_DATABASE_URL's user cannot create test "
                        f"databases ({str(exc.orig).splitlines()[0]})")
        yield server
        server.close()
        return
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        pytest.skip("PostgreSQL tests skipped: CERTLAB_DATABASE_URL is not a postgresql:// URL and no "
                    "PostgreSQL server is installed (/usr/lib/postgresql/*/bin/initdb; Debian package "
                    "'postgresql', see system-packages.txt)")
    prefix = _as_postgres_user()
    if prefix is None:
        pytest.skip("PostgreSQL tests skipped: running as root without a 'postgres' user and runuser "
                    "to start the server as (initdb refuses root)")
    bindir = Path(initdbs[-1]).parent
    tmp = Path(tempfile.mkdtemp(prefix="certlab-pg-"))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    data, port = tmp / "data", _free_port()
    run = lambda *args: subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True,  # noqa: E731
                                       timeout=PG_START_TIMEOUT, cwd=tmp)
    init = run(bindir / "initdb", "-D", data, "-U", "certlab", "--auth=trust", "-E", "UTF8", "--no-sync")
    assert init.returncode == 0, init.stderr
    opts = (f"-h 127.0.0.1 -p {port} -k {tmp} -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections=200")
    start = run(bindir / "pg_ctl", "-D", data, "-l", tmp / "server.log", "-w", "-t", PG_START_TIMEOUT,
                "-o", opts, "start")
    assert start.returncode == 0, start.stdout + start.stderr + (tmp / "server.log").read_text()
    server = PgServer(f"postgresql+psycopg://certlab@127.0.0.1:{port}/postgres")
    try:
        yield server
    finally:
        server.close()
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'certlab.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.new_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lab signing key folder of the test's own (CERTLAB_KEY_DIR), never the user's keys."""
    folder = tmp_path / "keys"
    monkeypatch.setenv("CERTLAB_KEY_DIR", str(folder))
    monkeypatch.delenv("CERTLAB_KEY_PASSPHRASE", raising=False)
    return folder
