"""lab/web/fetch.py and path.py against a loopback HTTPS server with a throwaway CA (tests/webserver.py)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from lab.errors import CertlabError, DutError, LabFault
from lab.inventory import WebResource
from lab.web.fetch import HttpTarget, fetch, hosts_of, request_json
from lab.web.path import path_works
from tests.webserver import https_server, make_pki

SITE = "site.test"


def _redirect(to: str):
    return lambda req: (302, {"Location": to}, b"")


def _slow(req):
    time.sleep(1.5)
    return 200, {}, b"late"


ROUTES = {
    "/ok": lambda req: (200, {"Content-Type": "text/html; charset=utf-8"}, b"<p>hello</p>"),
    "/r1": _redirect("/r2"),
    "/r2": _redirect("/ok"),
    "/loop-a": _redirect("/loop-b"),
    "/loop-b": _redirect("/loop-a"),
    "/c1": _redirect("/c2"), "/c2": _redirect("/c3"), "/c3": _redirect("/c4"), "/c4": _redirect("/ok"),
    "/other": _redirect("https://elsewhere.test/x"),
    "/big": lambda req: (200, {}, b"x" * 5000),
    "/big-chunked": lambda req: (200, {"Transfer-Encoding": "chunked"},
                                 b"".join(b"%x\r\n%s\r\n" % (1000, b"y" * 1000) for _ in range(5)) + b"0\r\n\r\n"),
    "/slow": _slow,
    "/missing": lambda req: (404, {}, b"no such page"),
    "/broken": lambda req: (500, {}, b"oops"),
    "/api": lambda req: (201, {"Content-Type": "application/json"}, b'{"echo": %s}' % (req.body or b"null")),
    "/notjson": lambda req: (200, {}, b"<html>"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with https_server(tmp_path_factory.mktemp("pki"), ROUTES, [SITE, "api.site.test"]) as srv:
        yield srv


def _target(server, **kw) -> HttpTarget:
    base = dict(allowed_hosts=frozenset({SITE, "api.site.test"}), hosts_field="2-UserInfo.publication",
                connect_to={f"{SITE}:443": f"127.0.0.1:{server.port}",
                            f"api.site.test:443": f"127.0.0.1:{server.port}"},
                ca_file=server.ca_file, timeout=5.0, max_redirects=3, max_bytes=4096, bench="b1")
    base.update(kw)
    return HttpTarget(**base)


def test_page_with_evidence_record(server):
    page = fetch(_target(server), f"https://{SITE}/ok")
    assert page.status == 200 and page.text == "<p>hello</p>"
    rec = page.record()
    assert rec["sha256"] == page.sha256 and len(rec["sha256"]) == 64 and rec["fetched_at"].endswith("+00:00")
    assert ["Content-Type", "text/html; charset=utf-8"] in rec["headers"]


def test_connect_to_keeps_sni_and_host_of_the_url(server):
    fetch(_target(server), f"https://{SITE}/ok")
    last = server.seen[-1]
    assert last.headers["Host"] == SITE and last.sni == SITE


def test_redirects_followed_and_recorded(server):
    page = fetch(_target(server), f"https://{SITE}/r1")
    assert page.status == 200 and page.final_url == f"https://{SITE}/ok"
    assert [h.status for h in page.hops] == [302, 302]


def test_redirect_loop_is_the_sites_fault(server):
    with pytest.raises(DutError, match="redirect loop"):
        fetch(_target(server), f"https://{SITE}/loop-a")


def test_too_many_redirects(server):
    with pytest.raises(DutError, match="more than 3 redirects"):
        fetch(_target(server), f"https://{SITE}/c1")


def test_redirect_to_another_host_is_refused_naming_the_ixit_field(server):
    with pytest.raises(CertlabError, match=r"elsewhere\.test is not among them.*2-UserInfo\.publication"):
        fetch(_target(server), f"https://{SITE}/other")
    assert not any(r.path == "/x" for r in server.seen)


def test_url_outside_allowlist_never_contacted(server):
    before = len(server.seen)
    with pytest.raises(CertlabError):
        fetch(_target(server, allowed_hosts=frozenset({"api.site.test"})), f"https://{SITE}/ok")
    assert len(server.seen) == before


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_oversized_answer(server, path):
    with pytest.raises(DutError, match="KiB"):
        fetch(_target(server), f"https://{SITE}{path}")


def test_slow_answer_times_out(server):
    with pytest.raises(DutError, match="did not answer within|did not complete"):
        fetch(_target(server, timeout=0.3), f"https://{SITE}/slow")


@pytest.mark.parametrize("path,status", [("/missing", 404), ("/broken", 500)])
def test_http_errors_are_returned_not_judged(server, path, status):
    assert fetch(_target(server), f"https://{SITE}{path}").status == status


def test_untrusted_certificate_is_a_tls_finding(server, tmp_path):
    other_ca = make_pki(tmp_path, ["x.test"], ca_name="another CA")[0]
    with pytest.raises(DutError, match="TLS certificate of site.test is not valid"):
        fetch(_target(server, ca_file=other_ca), f"https://{SITE}/ok")


def test_certificate_for_another_name(server):
    target = _target(server, allowed_hosts=frozenset({"wrong.test"}),
                     connect_to={"wrong.test:443": f"127.0.0.1:{server.port}"})
    with pytest.raises(DutError, match="not valid"):
        fetch(target, "https://wrong.test/ok")


def test_missing_ca_file_is_bad_input(server, tmp_path):
    with pytest.raises(CertlabError, match="ca_file does not exist"):
        fetch(_target(server, ca_file=tmp_path / "nope.pem"), f"https://{SITE}/ok")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_without_path_check_is_a_lab_fault(server):
    target = _target(server, connect_to={f"{SITE}:443": f"127.0.0.1:{_closed_port()}"})
    with pytest.raises(LabFault, match="no path_check"):
        fetch(target, f"https://{SITE}/ok")


def test_unreachable_with_working_path_check_is_the_products(server):
    target = _target(server, connect_to={f"{SITE}:443": f"127.0.0.1:{_closed_port()}",
                                         f"api.site.test:443": f"127.0.0.1:{server.port}"},
                     path_check="https://api.site.test/ok")
    assert path_works(target)[0] is True
    with pytest.raises(DutError, match="does not answer.*path check"):
        fetch(target, f"https://{SITE}/ok")


def test_unreachable_with_broken_path_check_is_a_lab_fault(server):
    port = _closed_port()
    target = _target(server, connect_to={f"{SITE}:443": f"127.0.0.1:{port}", f"api.site.test:443": f"127.0.0.1:{port}"},
                     path_check="https://api.site.test/ok")
    with pytest.raises(LabFault, match="does not answer either"):
        fetch(target, f"https://{SITE}/ok")


def test_request_json(server):
    resp = request_json(_target(server), "post", "https://api.site.test/api", headers={"Authorization": "Bearer t"},
                        body={"a": 1})
    assert resp.status == 201 and resp.data == {"echo": {"a": 1}} and resp.json_error is None
    sent = server.seen[-1]
    assert sent.method == "POST" and sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Authorization"] == "Bearer t" and sent.sni == "api.site.test"


def test_request_json_not_json(server):
    resp = request_json(_target(server), "GET", "https://api.site.test/notjson")
    assert resp.data is None and resp.json_error.startswith("not JSON")


def test_target_from_inventory_resource():
    res = WebResource(connect_to={"a.test:443": "10.0.0.1:8443"}, timeout=3, max_page_kib=8, max_redirects=2)
    target = HttpTarget.from_resource(res, ["https://A.test/x", None, "place text"], hosts_field="f")
    assert target.allowed_hosts == {"a.test"} and target.max_bytes == 8192 and target.timeout == 3
    assert hosts_of(["http://b.test:8080/"]) == {"b.test"}
