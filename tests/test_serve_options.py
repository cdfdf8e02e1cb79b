"""`certlab serve` checks its options before it serves (issue 15, item 12).

`--port 99999999` printed an address and served elsewhere, `--port -1` ended in uvicorn's exit
3: every option is one line and exit 2 (lab/api/listen.py), and no server is started for it.
"""

from __future__ import annotations

import socket

import pytest
from apilib import certlab_main  # tests/apilib.py

from lab.api.listen import check_host, check_listen, check_port, check_serve_options
from lab.errors import CertlabError


@pytest.mark.parametrize(("args", "said"), [
    (["--port", "99999999"], "--port 99999999: not a TCP port; fix: give a number from 1 to 65535"),
    (["--port", "-1"], "--port -1: not a TCP port"),
    (["--port", "0"], "--port 0: not a TCP port"),
    (["--host", "bad host!"], "--host bad host!: not an IP address or host name"),
    (["--host", "-x.example"], "--host -x.example: not an IP address or host name"),
    (["--host", "192.0.2.1", "--port", "8303"], "--host 192.0.2.1 --port 8303: cannot listen there"),
    (["--reports", "/dev/null", "--port", "8303", "--host", "127.0.0.1"], "--reports /dev/null: not a directory"),
    (["--demo", "-i", "inventory/sim.yaml"], "--demo serves the shipped simulated lab; fix: leave out -i"),
])
def test_serve_refuses_bad_options_with_exit_2_before_serving(args: list[str], said: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    def no_server(*_a: object, **_k: object) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(uvicorn, "run", no_server)
    monkeypatch.setattr("lab.api.app.create_app", no_server)
    if "--reports" in args:
        monkeypatch.setattr("lab.api.listen.check_listen", lambda host, port: None)  # 8303 may be taken here
    code, err = certlab_main(monkeypatch, capsys, "serve", *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"certlab: error: {said}"), err


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CertlabError, match=rf"--host 127.0.0.1 --port {port}: cannot listen there \(Address "
                                               rf"already in use\)"):
            check_listen("127.0.0.1", port)


def test_good_options_pass() -> None:
    assert check_port(1) == 1 and check_port(65535) == 65535
    assert check_host("localhost") == "localhost" and check_host("[::1]") == "::1"
    assert check_host("0.0.0.0") == "0.0.0.0" and check_host("lab-host.example.org.") == "lab-host.example.org."
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert check_serve_options("127.0.0.1", free) == "127.0.0.1"
