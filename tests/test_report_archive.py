"""A run's archive is built once per report version, stored hashed outside the run directory, and
re-verified before it is sent (lab/reports/archive.py, GET /runs/{id}/report/archive)."""

from __future__ import annotations

import io
import stat
import tarfile
import threading
from pathlib import Path
from typing import BinaryIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.reports.archive import ArchiveBusy, ReportArchives, report_version, write_archive
from lab.reports.manifest import sign_run

RUN_ID = "20260101-120000-arch01"
WAIT_S = 10.0  # bound on every wait for another thread


def make_run(root: Path, run_id: str = RUN_ID) -> Path:
    run_dir = root / "reports" / run_id
    (run_dir / "evidence" / "bench1").mkdir(parents=True)
    (run_dir / "run.json").write_text(f'{{"run_id": "{run_id}"}}')
    (run_dir / "verdicts.json").write_text('{"results": []}')
    (run_dir / "conformance.pdf").write_bytes(b"%PDF-1.4 fake")
    for n in range(5):
        (run_dir / "evidence" / "bench1" / f"console-{n}.log").write_text(f"[{n}] Starting kernel ...\n" * 200)
    return run_dir


def files_of(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir.parent)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def files_in(archive: bytes | Path) -> dict[str, bytes]:
    data = archive.read_bytes() if isinstance(archive, Path) else archive
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signed(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    run_dir = make_run(tmp_path)
    sign_run(run_dir, key)
    return run_dir


def test_two_downloads_build_once_and_the_archive_is_the_run_dir(tmp_path: Path, signed: Path) -> None:
    archives, root = ReportArchives(), tmp_path / "data" / "archives"
    first = archives.ready(signed, root)
    second = archives.ready(signed, root)
    assert first == second and archives.built == 1
    assert files_in(first) == files_of(signed)
    assert root not in signed.parents and signed not in first.parents, "kept outside the signed run directory"
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.parent.stat().st_mode) == stat.S_IMODE(root.stat().st_mode) == 0o700
    assert first.name == f"{report_version(signed)}.tar.gz"


def test_concurrent_requests_for_one_report_wait_for_one_build(tmp_path: Path, signed: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(run_dir: Path, arcname: str, out: BinaryIO) -> None:
        started.set()
        assert release.wait(WAIT_S)
        write_archive(run_dir, arcname, out)

    archives, root = ReportArchives(build=slow), tmp_path / "archives"
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(archives.ready(signed, root))) for _ in range(4)]
    threads[0].start()
    assert started.wait(WAIT_S)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(WAIT_S)
    assert len(got) == 4 and len(set(got)) == 1 and archives.built == 1, (got, archives.built)


@pytest.mark.parametrize("damage", ["flip", "truncate", "record"])
def test_a_damaged_archive_is_rebuilt_never_sent(tmp_path: Path, signed: Path, damage: str) -> None:
    archives, root = ReportArchives(), tmp_path / "archives"
    path = archives.ready(signed, root)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        path.with_name(path.name.replace(".tar.gz", ".sha256")).unlink()
    again = archives.ready(signed, root)
    assert again == path and archives.built == 2
    assert files_in(again) == files_of(signed)


def test_a_new_signature_is_a_new_archive_and_the_old_one_goes(tmp_path: Path, signed: Path,
                                                               key: Ed25519PrivateKey) -> None:
    archives, root = ReportArchives(), tmp_path / "archives"
    draft = archives.ready(signed, root)
    (signed / "approval.json").write_text('{"by": "Alex Example"}')
    sign_run(signed, key)  # approving re-signs
    approved = archives.ready(signed, root)
    assert approved != draft and archives.built == 2
    assert f"{RUN_ID}/approval.json" in files_in(approved)
    assert sorted(p.name for p in approved.parent.iterdir()) == sorted(
        [approved.name, approved.name.replace(".tar.gz", ".sha256")]), "the draft's archive is removed"


def test_an_unsigned_run_is_versioned_by_its_files(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    archives, root = ReportArchives(), tmp_path / "archives"
    before = archives.ready(run_dir, root)
    assert archives.ready(run_dir, root) == before and archives.built == 1
    (run_dir / "approval.json").write_text("{}")
    after = archives.ready(run_dir, root)
    assert after != before and f"{RUN_ID}/approval.json" in files_in(after)


def test_past_the_waiting_bound_a_request_is_refused_not_queued(tmp_path: Path, signed: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(run_dir: Path, arcname: str, out: BinaryIO) -> None:
        started.set()
        assert release.wait(WAIT_S)
        write_archive(run_dir, arcname, out)

    archives = ReportArchives(build=slow, builds=1, waiting=1)
    worker = threading.Thread(target=archives.ready, args=(signed, tmp_path / "archives"))
    worker.start()
    try:
        assert started.wait(WAIT_S)
        with pytest.raises(ArchiveBusy):
            archives.ready(make_run(tmp_path / "other", "20260101-120000-arch02"), tmp_path / "archives")
    finally:
        release.set()
        worker.join(WAIT_S)


# --- through the API --------------------------------------------------------------------------

def test_the_api_serves_the_stored_archive_and_rebuilds_a_damaged_one(tmp_path: Path) -> None:
    from lab.api.app import PREFIX
    from tests.test_api_service import RUN_ID as API_RUN, fake_run, make_api

    api = make_api(tmp_path)
    with api.client:
        run_dir = fake_run(api, approved=True)
        archives = api.app.state.services.archives
        first = api.get(f"/runs/{API_RUN}/report/archive", "maker")
        second = api.get(f"/runs/{API_RUN}/report/archive", "lab")
        assert first.status_code == second.status_code == 200, first.text
        assert archives.built == 1 and first.content == second.content
        assert first.headers["content-disposition"] == f'attachment; filename="{API_RUN}.tar.gz"'
        assert files_in(first.content) == files_of(run_dir)
        stored = next((api.settings.data_dir / "archives" / API_RUN).glob("*.tar.gz"))
        stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
        third = api.get(f"/runs/{API_RUN}/report/archive", "maker")
        assert third.status_code == 200 and archives.built == 2
        assert files_in(third.content) == files_of(run_dir)
        ranged = api.client.get(f"{PREFIX}/runs/{API_RUN}/report/archive",
                                headers={**api.as_("maker"), "Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == third.content[:10]
    api.app.state.services.store.close()
