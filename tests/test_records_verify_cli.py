"""`certlab verify-record FILE_OR_URL [--key PEM]`: exit 0 intact, 1 naming the first bad revision,
2 for input it cannot use; URLs are read from a loopback HTTP server in a thread."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.cli import main
from lab.errors import CertlabError
from lab.records.chain import Revision, chain_document, make_revision
from lab.records.verify import verify_source

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
KEY = Ed25519PrivateKey.generate()


def chain(key: Ed25519PrivateKey = KEY) -> dict:
    revs: list[Revision] = []
    for i, kind in enumerate(("opened", "certified", "release")):
        revs.append(make_revision(revs[-1] if revs else None, kind=kind, summary=f"step {i}", by="lab",
                                  record={"model": "TH-100", "step": i}, at=T0 + timedelta(days=i), key=key))
    return chain_document("TH-100", revs)


def pem(path: Path, key: Ed25519PrivateKey = KEY) -> Path:
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def certlab(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """The real CLI entry point (exit codes and the one-line error included), in process."""
    monkeypatch.setattr(sys, "argv", ["certlab", "verify-record", *args])
    with pytest.raises(SystemExit) as done:
        main()
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "TH-100.json"
    path.write_text(json.dumps(chain()))
    return path


def test_an_intact_file_verifies(monkeypatch, capsys, saved: Path):
    code, out, _ = certlab(monkeypatch, capsys, str(saved))
    lines = out.splitlines()
    assert code == 0 and lines[:3] == ["revision 1 (opened, 2026-12-07T10:00:00Z): ok",
                                       "revision 2 (certified, 2026-12-08T10:00:00Z): ok",
                                       "revision 3 (release, 2026-12-09T10:00:00Z): ok"]
    assert lines[3].startswith("verified: 3 revisions of the record of TH-100") and "pass --key" in lines[3]


def test_a_hand_edited_revision_exits_1_naming_it(monkeypatch, capsys, saved: Path):
    doc = json.loads(saved.read_text())
    doc["revisions"][1]["record"]["step"] = 9
    saved.write_text(json.dumps(doc))
    code, out, _ = certlab(monkeypatch, capsys, str(saved))
    assert code == 1
    assert "revision 2 (certified, 2026-12-08T10:00:00Z): hash does not match its content" in out
    assert out.splitlines()[-1].startswith("NOT VERIFIED: revision 2 (certified, 2026-12-08T10:00:00Z): hash")


def test_the_pinned_key(monkeypatch, capsys, saved: Path, tmp_path: Path):
    code, out, _ = certlab(monkeypatch, capsys, str(saved), "--key", str(pem(tmp_path / "lab.pem")))
    assert code == 0 and "every signature by the pinned lab key" in out
    other = pem(tmp_path / "other.pem", Ed25519PrivateKey.generate())
    code, out, _ = certlab(monkeypatch, capsys, str(saved), "--key", str(other))
    assert code == 1 and "revision 1 (opened, 2026-12-07T10:00:00Z): signed by key" in out


@pytest.mark.parametrize("content, words", [
    (b"{not json", "not JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    (b"\xff", "not UTF-8"),
    (b'{"schema": "certlab.record-view/1"}', "GET /records/{model}/revisions"),
    (b'{"schema": "certlab.record/1", "model": "TH-100", "revisions": []}', "empty"),
])
def test_unusable_files_exit_2_with_one_line(monkeypatch, capsys, tmp_path: Path, content: bytes, words: str):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    code, out, err = certlab(monkeypatch, capsys, str(path))
    assert code == 2 and out == "" and words in err and err.startswith("certlab: error: ")
    assert len(err.strip().splitlines()) == 1


def test_missing_file_directory_and_other_schemes(monkeypatch, capsys, tmp_path: Path):
    for source, words in ((str(tmp_path / "none.json"), "file not found"), (str(tmp_path), "not a regular file"),
                          ("ftp://lab.example/records/TH-100/revisions", "only http and https"),
                          ("file:///etc/passwd", "only http and https")):
        code, _, err = certlab(monkeypatch, capsys, source)
        assert code == 2 and words in err, (source, err)


# --- over HTTP ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(20):  # bounded: 20 bytes over at most 2 s, the client gives up first
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
            return
        status, headers, body = self.routes.get(self.path, (404, {}, b"not found"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    good = json.dumps(chain()).encode()
    _Handler.routes = {
        "/records/TH-100/revisions": (200, {"Content-Type": "application/json"}, good),
        "/moved": (302, {"Location": "/records/TH-100/revisions"}, b""),
        "/to-ftp": (302, {"Location": "ftp://127.0.0.1/records"}, b""),
        "/huge": (200, {"Content-Length": str(64 << 20)}, b""),
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_a_url_verifies(monkeypatch, capsys, server: str):
    code, out, _ = certlab(monkeypatch, capsys, f"{server}/records/TH-100/revisions")
    assert code == 0 and "verified: 3 revisions" in out
    assert verify_source(f"{server}/moved").check.ok  # an http redirect is followed


@pytest.mark.parametrize("path, words", [
    ("/records/TH-200/revisions", "HTTP 404"),
    ("/to-ftp", "redirected to a ftp: URL"),
    ("/huge", "over the 32 MiB"),
])
def test_unusable_urls_exit_2(monkeypatch, capsys, server: str, path: str, words: str):
    code, out, err = certlab(monkeypatch, capsys, server + path)
    assert code == 2 and out == "" and words in err


def test_a_download_is_bounded_in_time(server: str):
    started = time.monotonic()
    with pytest.raises(CertlabError, match="took longer than"):
        verify_source(f"{server}/slow", timeout=1.0, deadline=0.3)
    assert time.monotonic() - started < 1.5


def test_a_refused_connection(monkeypatch, capsys):
    with socket.socket() as probe:  # a loopback port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = certlab(monkeypatch, capsys, f"http://127.0.0.1:{port}/records/TH-100/revisions")
    assert code == 2 and "cannot connect" in err
