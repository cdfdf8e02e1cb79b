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


def chain(key: Ed25519PrivateKey = KEY, releases: int = 1) -> dict:
    revs: list[Revision] = []
    for i, kind in enumerate(("opened", "certified", *["release"] * releases)):
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


def _json_route(body: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def head_of(revisions: list[dict], model: str = "TH-100") -> dict:
    """The record's view as GET /records/{model} publishes it (the fields verify-record reads)."""
    last = revisions[-1]
    return {"schema": "certlab.record-view/1", "model": model,
            "revision": {"seq": last["seq"], "at": last["at"], "kind": last["kind"], "hash": last["hash"]}}


def paged(prefix: str, revisions: list[dict], size: int) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """Routes serving `revisions` as the service pages them: the first page at ?limit=50 (what
    verify-record asks), each linking the next by a relative path."""
    base = f"{prefix}/records/TH-100/revisions"
    routes = {}
    for start in range(0, len(revisions), size):
        more = start + size < len(revisions)
        path = f"{base}?limit=50" if start == 0 else f"{base}?after={start}&limit={size}"
        routes[path] = _json_route({"schema": "certlab.record/1", "model": "TH-100", "after": start,
                                    "revisions": revisions[start:start + size],
                                    "next": f"{base}?after={start + size}&limit={size}" if more else None})
    return routes


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split("?", 1)[0] == "/slow":
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
        found = self.routes.get(self.path) or self.routes.get(self.path.split("?", 1)[0])
        status, headers, body = found or (404, {}, b"not found")
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
        "/records/TH-100": _json_route(head_of(chain()["revisions"])),
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


# --- pages and the head ------------------------------------------------------------------------


@pytest.fixture
def seven() -> list[dict]:
    return json.loads(json.dumps(chain(releases=5)))["revisions"]


def serve(prefix: str, revisions: list[dict], size: int, head: list[dict] | None = None) -> str:
    _Handler.routes.update(paged(prefix, revisions, size))
    _Handler.routes[f"{prefix}/records/TH-100"] = _json_route(head_of(head if head is not None else revisions))
    return f"{prefix}/records/TH-100/revisions"


def test_a_url_is_verified_over_its_pages_against_the_head(monkeypatch, capsys, server: str, seven: list[dict]):
    path = serve("/p", seven, 3)
    code, out, _ = certlab(monkeypatch, capsys, server + path)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 9 and lines[6] == "revision 7 (release, 2026-12-13T10:00:00Z): ok"
    assert lines[7] == f"head: revision 7 is the record published at {server}/p/records/TH-100"
    assert lines[8].startswith("verified: 7 revisions of the record of TH-100") and "(read in 3 pages)" in lines[8]
    whole = verify_source(f"{server}/records/TH-100/revisions")  # a server without pages: one document
    assert whole.ok and whole.pages == 1 and whole.head is not None and whole.head.seq == 3


def test_a_page_that_does_not_continue_the_last_names_its_first_revision(monkeypatch, capsys, server: str,
                                                                         seven: list[dict]):
    path = serve("/gap", seven[:3] + seven[4:], 3, head=seven)
    code, out, _ = certlab(monkeypatch, capsys, server + path)
    assert code == 1
    assert out.splitlines()[-1] == ("NOT VERIFIED: revision 4 (release, 2026-12-11T10:00:00Z): seq is 5 where 4 was "
                                    "expected (a revision is missing, added or out of order) (the first of 6 "
                                    "revisions that fails) (read in 2 pages)")
    unlinked = {**seven[3], "prev": "0" * 64}  # page 2 begins with a revision that follows another chain
    path = serve("/spliced", seven[:3] + [unlinked] + seven[4:], 3)
    code, out, _ = certlab(monkeypatch, capsys, server + path)
    assert code == 1 and "revision 4 (release, 2026-12-10T10:00:00Z): prev does not match revision 3's hash" in out


def test_a_chain_served_shorter_than_the_head_or_other_than_it_exits_1(monkeypatch, capsys, server: str,
                                                                      seven: list[dict]):
    path = serve("/short", seven[:5], 3, head=seven)
    code, out, _ = certlab(monkeypatch, capsys, server + path)
    lines = out.splitlines()
    assert code == 1 and lines[4] == "revision 5 (release, 2026-12-11T10:00:00Z): ok"
    assert lines[-1] == (f"NOT VERIFIED: the chain served ends at revision 5, but the record's published head "
                         f"({server}/short/records/TH-100) is revision 7: the chain served is shorter than the "
                         f"record (5 revisions served verify)")
    path = serve("/other", seven, 3, head=[*seven[:6], {**seven[6], "hash": "e" * 64}])
    code, out, _ = certlab(monkeypatch, capsys, server + path)
    assert code == 1 and "the chain served differs from the record" in out.splitlines()[-1]
    path = serve("/longer", seven, 3, head=seven[:6])  # appended since the head was read: still the record
    assert verify_source(server + path).ok


def test_a_url_without_a_head_says_it_was_not_compared(server: str):
    result = verify_source(f"{server}/moved")
    assert result.ok and result.head is None and result.lines()[-2].startswith("head: not compared")


def _page(revisions: list[dict], following: object) -> tuple[int, dict[str, str], bytes]:
    return _json_route({"schema": "certlab.record/1", "model": "TH-100", "revisions": revisions, "next": following})


def test_bad_links_between_pages_exit_2(monkeypatch, capsys, server: str, seven: list[dict]):
    base = "/records/TH-100/revisions"
    cases = {"/far": (_page(seven[:3], "http://192.0.2.1/records/TH-100/revisions?after=3"), "on another host"),
             "/self": (_page(seven[:3], "/self/records/TH-100/revisions?limit=50"), "links itself"),
             "/empty": (_page([], "/empty/x"), "empty"),
             "/junk": (_page(seven[:3], 7), "field 'next' must be"),
             "/model": (_page(seven[:3], "/model/2"), "record of 'TH-200'")}
    for prefix, (route, words) in cases.items():
        _Handler.routes[f"{prefix}{base}?limit=50"] = route
        _Handler.routes[f"{prefix}/records/TH-100"] = _json_route(head_of(seven))
    _Handler.routes["/model/2"] = _json_route({"schema": "certlab.record/1", "model": "TH-200",
                                               "revisions": seven[3:], "next": None})
    for prefix, (_, words) in cases.items():
        code, out, err = certlab(monkeypatch, capsys, f"{server}{prefix}{base}")
        assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1, (prefix, err)


def test_the_walk_is_bounded_in_pages_and_time(server: str, seven: list[dict]):
    path = serve("/many", seven, 1)
    with pytest.raises(CertlabError, match="more than 3 pages"):
        verify_source(server + path, max_pages=3)
    with pytest.raises(CertlabError, match="took longer than 0 s"):
        verify_source(server + path, walk_deadline=0.0)


def test_an_unreadable_head_is_unusable_input(monkeypatch, capsys, server: str, seven: list[dict]):
    _Handler.routes.update(paged("/headless", seven, 3))
    code, _, err = certlab(monkeypatch, capsys, f"{server}/headless/records/TH-100/revisions")
    assert code == 2 and "/headless/records/TH-100: HTTP 404" in err
    _Handler.routes["/headless/records/TH-100"] = _json_route({"schema": "certlab.record-view/1"})
    code, _, err = certlab(monkeypatch, capsys, f"{server}/headless/records/TH-100/revisions")
    assert code == 2 and "not a record's view" in err


def test_a_last_page_may_be_empty_but_not_the_first(server: str, seven: list[dict]):
    base = "/records/TH-100/revisions"
    _Handler.routes[f"/tail{base}?limit=50"] = _page(seven, "/tail/end")
    _Handler.routes["/tail/end"] = _page([], None)
    _Handler.routes["/tail/records/TH-100"] = _json_route(head_of(seven))
    result = verify_source(f"{server}/tail{base}")
    assert result.ok and result.pages == 2 and result.check.revisions == 7
    _Handler.routes[f"/none{base}?limit=50"] = _page([], None)
    _Handler.routes["/none/records/TH-100"] = _json_route(head_of(seven))
    with pytest.raises(CertlabError, match="'revisions' is empty"):
        verify_source(f"{server}/none{base}")
