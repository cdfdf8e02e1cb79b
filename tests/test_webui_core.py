"""The web app's core: sign-in (password or API token), the session cookie and its expiry, CSRF on
every page POST (urlencoded, multipart, header), no open redirect, error pages, security headers,
the audit log, `certlab users passwd` and the API left as it was. TestClient only, no browser;
time is moved through the app's injectable clock, never slept."""

from __future__ import annotations

import io
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Annotated

import pytest
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy import select, text

from apilib import certlab_main
from lab.actions.errors import NotFound
from lab.api.ratelimit import RateLimiter
from lab.store.accounts import (
    add_user,
    hash_password,
    password_matches,
    revoke_user,
    set_password,
    user_for_password,
)
from lab.store.db import open_store
from lab.store.models import AuditEntry, User, WebSession
from lab.store.unit import reading
from lab.webui.deps import EngineerView, Viewer
from lab.webui.nav import home_for, nav_for
from lab.webui.pages.auth import FAILED, safe_next
from lab.webui.render import page, see_other
from lab.webui.session import COOKIE, WebSettings
from webui import PASSWORDS, USERS, WebClient, csrf, login, make_app, post_form, web  # noqa: F401 (fixture)

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def _set_cookie(response: object, name: str) -> str:
    """The Set-Cookie header line for `name`."""
    lines = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(name + "=")]  # type: ignore[attr-defined]
    assert lines, f"no Set-Cookie for {name}"
    return lines[-1]


def _login_post(client: WebClient, data: dict[str, str]) -> object:
    client.get("/login")
    return client.post("/login", data={**data, "csrf": client.cookies.get("certlab_login") or ""},
                       follow_redirects=False)


def _clock(client: WebClient, at: datetime) -> None:
    client.app.state.web.clock = lambda: at  # type: ignore[attr-defined]


def _test_routes(client: WebClient) -> None:
    """Routes standing in for page owners' pages: a role gate, an action's refusal, a multipart upload."""
    router = APIRouter(include_in_schema=False)

    @router.get("/t/engineers")
    def engineers_only(request: Request, who: EngineerView) -> HTMLResponse:
        return page(request, "error.html", heading="Engineers", message=f"hello {who.name}")

    @router.get("/t/missing")
    def missing(who: Viewer) -> None:
        raise NotFound("booking", 99)

    @router.post("/t/upload")
    async def upload(who: Viewer, file: Annotated[UploadFile, File()], note: Annotated[str, Form()] = "") -> PlainTextResponse:
        return PlainTextResponse(f"{who.name} {file.filename} {len(await file.read())} {note}")

    @router.get("/t/boom")
    def boom(who: Viewer) -> None:
        raise RuntimeError("secret detail")

    @router.post("/t/plain")
    def plain(request: Request, who: Viewer) -> object:
        return see_other(request, "/account", "It worked.")

    client.app.include_router(router)  # type: ignore[attr-defined]


# --- signing in -------------------------------------------------------------------------------

def test_password_sign_in_sets_a_strict_httponly_cookie_and_opens_the_role_home(web: WebClient) -> None:
    for count, name in enumerate(USERS, start=1):
        client = WebClient(web.app)
        answer = _login_post(client, {"name": name, "password": PASSWORDS[name]})
        assert answer.status_code == 303 and answer.headers["location"] == home_for(USERS[name][0])
        cookie = _set_cookie(answer, COOKIE)
        attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "path", "samesite"} <= attrs and "secure" not in attrs, cookie
        assert "samesite=strict" in cookie.lower() and "path=/;" in cookie.lower() + ";", cookie
        value = client.cookies.get(COOKIE)
        assert value and len(value) >= 43  # 32 random bytes, urlsafe
        with reading(web.app.state.services.store) as s:  # type: ignore[attr-defined]
            rows = [dict(r._mapping) for r in s.execute(text("SELECT * FROM web_sessions"))]
        assert len(rows) == count and not any(value in str(v) for r in rows for v in r.values()), \
            "only the cookie's hash is kept"
        account = client.get("/account")
        role, org = USERS[name]
        assert account.status_code == 200 and f"({role}, {org})" in account.text and "Sign out" in account.text


def test_the_cookie_is_secure_when_the_request_came_over_https(web: WebClient) -> None:
    secure = WebClient(web.app, base_url="https://testserver")
    answer = _login_post(secure, {"name": "lab", "password": PASSWORDS["lab"]})
    assert answer.status_code == 303
    assert "secure" in _set_cookie(answer, COOKIE).lower()


def test_sign_in_with_the_api_token(web: WebClient) -> None:
    answer = _login_post(web, {"token": web.tokens["cert"]})
    assert answer.status_code == 303 and answer.headers["location"] == "/reports"
    assert "Signed in as" in web.get("/account").text


def test_a_wrong_password_and_an_unknown_user_get_the_same_message_and_are_audited(web: WebClient) -> None:
    wrong = _login_post(web, {"name": "maker", "password": "not-the-password"})
    unknown = _login_post(web, {"name": "nobody", "password": "not-the-password"})
    bad_token = _login_post(web, {"token": "clt_forged"})
    for answer in (wrong, unknown, bad_token):
        assert answer.status_code == 401 and FAILED in answer.text  # type: ignore[attr-defined]
    assert COOKIE not in web.cookies
    assert re.sub(r'value="[^"]*"', "", wrong.text.replace("maker", "X")) == \
        re.sub(r'value="[^"]*"', "", unknown.text.replace("nobody", "X"))  # type: ignore[attr-defined]
    with reading(web.app.state.services.store) as s:  # type: ignore[attr-defined]
        log = list(s.scalars(select(AuditEntry).where(AuditEntry.path == "/login")))
    assert [e.status for e in log] == [401, 401, 401] and "'maker'" in log[0].detail and "'nobody'" in log[1].detail
    assert not any("not-the-password" in e.detail for e in log)


def test_failed_sign_ins_are_rate_limited_per_name_and_address(web: WebClient) -> None:
    web.app.state.web.login_limiter = RateLimiter(per_second=1 / 3600, burst=2)  # type: ignore[attr-defined]
    statuses = [_login_post(web, {"name": "maker", "password": "guess-number-x"}).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    right = _login_post(web, {"name": "maker", "password": PASSWORDS["maker"]})
    assert right.status_code == 429 and "Too many sign-in attempts" in right.text, "even the right password waits"
    assert _login_post(web, {"name": "lab", "password": PASSWORDS["lab"]}).status_code == 303, "another name is not held up"


def test_the_sign_in_form_names_a_missing_field(web: WebClient) -> None:
    answer = _login_post(web, {"name": "maker"})
    assert answer.status_code == 422
    assert re.search(r'id="f-password"[^>]*aria-describedby="[^"]*f-password-error"[^>]*aria-invalid="true"', answer.text)


def test_a_sign_in_post_without_the_login_forms_token_is_refused(web: WebClient) -> None:
    answer = web.post("/login", data={"name": "maker", "password": PASSWORDS["maker"]}, follow_redirects=False)
    assert answer.status_code == 403 and "reload the page" in answer.text and COOKIE not in web.cookies


# --- where a sign-in leads: never off the site ------------------------------------------------

def test_next_never_leads_off_the_site(web: WebClient) -> None:
    web.app.state.web.login_limiter = RateLimiter(per_second=1, burst=100)  # type: ignore[attr-defined]
    for raw in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "http:/evil",
                "/login", "bookings", " /bookings", "/a\nb", "/%0a"):
        assert safe_next(raw) is None or raw == "/%0a", raw
        answer = _login_post(WebClient(web.app), {"name": "maker", "password": PASSWORDS["maker"], "next": raw})
        assert answer.headers["location"] in ("/products", "/%0a"), raw  # type: ignore[attr-defined]


def test_next_leads_back_to_the_page_asked_for(web: WebClient) -> None:
    asked = web.get("/account?tab=1", follow_redirects=False)
    assert asked.status_code == 303 and asked.headers["location"] == "/login?next=/account%3Ftab%3D1"
    form = web.get(asked.headers["location"])
    assert 'name="next" value="/account?tab=1"' in form.text
    answer = _login_post(web, {"name": "maker", "password": PASSWORDS["maker"], "next": "/account?tab=1"})
    assert answer.headers["location"] == "/account?tab=1"  # type: ignore[attr-defined]


# --- the session's end --------------------------------------------------------------------------

def test_an_idle_session_expires_and_activity_keeps_it(web: WebClient) -> None:
    _clock(web, T0)
    maker = login(web, "maker")
    for minutes in (20, 40, 60):  # each request within 30 min of the last keeps it
        _clock(web, T0 + timedelta(minutes=minutes))
        assert maker.get("/account", follow_redirects=False).status_code == 200
    _clock(web, T0 + timedelta(minutes=60 + 30))
    gone = maker.get("/account", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login?next=/account&expired=1"
    assert "Your session expired" in maker.get(gone.headers["location"]).text
    with reading(web.app.state.services.store) as s:  # type: ignore[attr-defined]
        assert s.scalars(select(WebSession)).first() is None, "the expired row is deleted"


def test_a_session_ends_twelve_hours_after_sign_in_however_active(web: WebClient) -> None:
    web.app.state.web.settings = WebSettings(idle=timedelta(hours=24))  # type: ignore[attr-defined]
    _clock(web, T0)
    maker = login(web, "maker")
    _clock(web, T0 + timedelta(hours=11, minutes=59))
    assert maker.get("/account", follow_redirects=False).status_code == 200
    _clock(web, T0 + timedelta(hours=12))
    assert "expired=1" in maker.get("/account", follow_redirects=False).headers["location"]


def test_the_idle_limit_comes_from_the_environment() -> None:
    assert WebSettings.from_env({"CERTLAB_SESSION_IDLE_MIN": "5"}).idle == timedelta(minutes=5)
    assert WebSettings.from_env({}).idle == timedelta(minutes=30)
    from lab.errors import CertlabError

    with pytest.raises(CertlabError, match="CERTLAB_SESSION_IDLE_MIN"):
        WebSettings.from_env({"CERTLAB_SESSION_IDLE_MIN": "soon"})


def test_a_revoked_users_session_ends_at_its_next_request(web: WebClient) -> None:
    maker = login(web, "maker")
    assert maker.get("/account").status_code == 200
    revoke_user(web.app.state.services.store, "maker")  # type: ignore[attr-defined]
    assert maker.get("/account", follow_redirects=False).status_code == 303
    assert _login_post(WebClient(web.app), {"name": "maker", "password": PASSWORDS["maker"]}).status_code == 401


def test_sign_out_needs_the_csrf_token_and_ends_the_session(web: WebClient) -> None:
    maker = login(web, "maker")
    refused = maker.post("/logout", follow_redirects=False)
    assert refused.status_code == 403 and maker.get("/account").status_code == 200
    out = post_form(maker, "/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login?out=1"
    assert "You are signed out" in maker.get("/login?out=1").text
    with reading(web.app.state.services.store) as s:  # type: ignore[attr-defined]
        assert s.scalars(select(WebSession)).first() is None


# --- CSRF: every page POST, whatever its body ---------------------------------------------------

def test_page_posts_need_the_sessions_csrf_token_in_the_form_or_header(web: WebClient) -> None:
    _test_routes(web)
    maker = login(web, "maker")
    token = csrf(maker)
    assert maker.post("/t/plain", follow_redirects=False).status_code == 403
    assert maker.post("/t/plain", data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    other = login(web, "lab")
    assert maker.post("/t/plain", data={"csrf": csrf(other)}, follow_redirects=False).status_code == 403, \
        "another session's token"
    assert maker.post("/t/plain", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert maker.post("/t/plain", headers={"X-CSRF-Token": token}, follow_redirects=False).status_code == 303
    refused = maker.post("/t/plain", json={"csrf": token}, follow_redirects=False)
    assert refused.status_code == 403 and "the form expired; reload the page" in refused.text
    assert "text/html" in refused.headers["content-type"]


def test_multipart_upload_forms_carry_the_token_and_still_reach_the_route(web: WebClient) -> None:
    _test_routes(web)
    maker = login(web, "maker")
    files = {"file": ("fw.bin", io.BytesIO(b"\x00" * 5000), "application/octet-stream")}
    ok = maker.post("/t/upload", data={"csrf": csrf(maker), "note": "v1"}, files=files)
    assert ok.status_code == 200 and ok.text == "maker fw.bin 5000 v1"
    files = {"file": ("fw.bin", io.BytesIO(b"\x00" * 10), "application/octet-stream")}
    assert maker.post("/t/upload", data={"note": "v1"}, files=files).status_code == 403


def test_a_page_form_with_a_file_takes_the_upload_limit_a_plain_one_the_small_limit(web: WebClient) -> None:
    _test_routes(web)
    maker = login(web, "maker")
    big = "x" * (2 << 20)  # over the 1 MiB of a plain body, far under the upload limit
    files = {"file": ("fw.bin", io.BytesIO(big.encode()), "application/octet-stream")}
    assert maker.post("/t/upload", data={"csrf": csrf(maker)}, files=files).status_code == 200
    assert maker.post("/t/plain", data={"csrf": csrf(maker), "note": big}).status_code == 413
    from lab.api.bodylimit import upload_paths

    pages = [p.pattern for p in upload_paths(web.app, pages=True)]
    assert "^/t/upload$" in pages and "^/t/plain$" not in pages and not any("/api/" in p for p in pages)


def test_an_anonymous_page_post_goes_to_sign_in_unread(web: WebClient) -> None:
    _test_routes(web)
    answer = web.post("/t/upload", content=b"x" * 1000, headers={"content-type": "multipart/form-data; boundary=b"},
                      follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_every_page_post_route_is_csrf_checked() -> None:
    """Read from the app: a page module's router, however included, gets the check."""
    from fastapi.routing import iter_route_contexts

    from lab.api.app import create_app
    from lab.api.settings import ApiSettings
    from lab.webui.guard import csrf_checked, is_page

    app = create_app(ApiSettings(database_url="sqlite://"))
    try:
        posts = [r for r in iter_route_contexts(app.routes) if r.methods and "POST" in r.methods and is_page(r.path)]
        assert "/logout" in [r.path for r in posts]
        for route in posts:
            assert any(d.call is csrf_checked for d in route.dependant.dependencies), route.path
    finally:
        app.state.services.store.close()


# --- pages for the right people; errors are pages ------------------------------------------------

def test_a_role_gate_answers_a_403_page_and_an_action_refusal_its_page(web: WebClient) -> None:
    _test_routes(web)
    maker, lab = login(web, "maker"), login(web, "lab")
    assert lab.get("/t/engineers").status_code == 200
    refused = maker.get("/t/engineers")
    assert refused.status_code == 403 and "this page is for an engineer; you are signed in as a manufacturer" in refused.text
    missing = maker.get("/t/missing")
    assert missing.status_code == 404 and "No booking 99: it does not exist, or it is not yours to see" in missing.text and "<main" in missing.text


def test_an_unexpected_error_is_a_500_page_without_its_detail(web: WebClient) -> None:
    _test_routes(web)
    maker = login(web, "maker")
    quiet = WebClient(web.app, raise_server_exceptions=False, cookies=dict(maker.cookies))
    answer = quiet.get("/t/boom")
    assert answer.status_code == 500 and "Something went wrong on the server" in answer.text
    assert "secret detail" not in answer.text and "Traceback" not in answer.text


def test_an_unknown_page_is_a_404_page_and_the_api_is_unaffected(web: WebClient) -> None:
    maker = login(web, "maker")
    page404 = maker.get("/no/such/page")
    assert page404.status_code == 404 and "text/html" in page404.headers["content-type"]
    assert "Page not found" in page404.text and 'href="/products"' in page404.text
    api404 = maker.get("/api/v1/no/such")
    assert api404.status_code == 404 and api404.json() == {"detail": "Not Found"}
    assert web.get("/api/v1/me", headers=web.bearer("maker")).json()["name"] == "maker"
    cookie_only = maker.get("/api/v1/me")
    assert cookie_only.status_code == 401, "the API takes bearer tokens, never the page cookie"
    post = web.post("/api/v1/products", json={"model": "X"})
    assert post.status_code == 401 and "detail" in post.json()
    refused = web.post("/api/v1/products", headers=web.bearer("cert"), json={"model": "X", "name": "x", "vendor": "v"})
    assert refused.status_code == 403 and "detail" in refused.json()


def test_pages_carry_the_content_security_policy(web: WebClient) -> None:
    for answer in (web.get("/login"), login(web, "lab").get("/account"), web.get("/nope")):
        assert answer.headers["content-security-policy"] == (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'self'; form-action 'self'")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script>" not in answer.text and "onclick" not in answer.text.lower()
    for asset in ("/static/app.css", "/static/live.js"):
        assert web.get(asset).status_code == 200


def test_the_layout_has_landmarks_a_skip_link_and_the_roles_navigation(web: WebClient) -> None:
    lab = login(web, "lab")
    body = lab.get("/account").text
    assert '<a class="skip" href="#main">' in body and '<main id="main"' in body and '<nav aria-label="Main">' in body
    assert [label for label in re.findall(r'<li><a href="[^"]+"[^>]*>([^<]+)</a>', body)] == \
        ["Benches", "Queue", "Runs", "Bookings", "Reports", "Records"]
    assert nav_for("manufacturer", "/bookings/3")[1].current and not nav_for("manufacturer", "/bookings/3")[0].current
    assert [i.label for i in nav_for("certifier", "/")] == ["Reports", "Records"] and home_for("certifier") == "/reports"
    assert [i.label for i in nav_for(None, "/login")] == ["Records"], "signed out: the public records"
    assert web.get("/", follow_redirects=False).headers["location"] == "/login"
    assert lab.get("/", follow_redirects=False).headers["location"] == "/bench"


def test_page_actions_are_audited_with_the_web_caller(web: WebClient) -> None:
    _test_routes(web)
    maker = login(web, "maker")
    post_form(maker, "/t/plain")
    maker.post("/t/plain", data={"csrf": "stale"})
    with reading(web.app.state.services.store) as s:  # type: ignore[attr-defined]
        log = [(e.user_name, e.role, e.org, e.method, e.path, e.status)
               for e in s.scalars(select(AuditEntry).where(AuditEntry.path == "/t/plain"))]
    assert log == [("maker", "manufacturer", "Acme", "POST", "/t/plain", 303),
                   ("maker", "manufacturer", "Acme", "POST", "/t/plain", 403)]


def test_a_notice_is_shown_once_on_the_next_page(web: WebClient) -> None:
    _test_routes(web)
    maker = login(web, "maker")
    assert post_form(maker, "/t/plain").headers["location"] == "/account"
    assert "It worked." in maker.get("/account").text
    assert "It worked." not in maker.get("/account").text


# --- the account page ---------------------------------------------------------------------------

def test_the_account_page_changes_the_password_with_errors_at_the_field(web: WebClient) -> None:
    maker = login(web, "maker")
    page_ = maker.get("/account")
    assert "Acme" in page_.text and "This session ends" in page_.text
    wrong = post_form(maker, "/account/password", {"current": "nope", "new": "new-password-1", "again": "new-password-1"})
    assert wrong.status_code == 422
    assert re.search(r'id="f-current"[^>]*aria-describedby="f-current-error"[^>]*aria-invalid="true"', wrong.text)
    differ = post_form(maker, "/account/password", {"current": PASSWORDS["maker"], "new": "new-password-1",
                                                    "again": "new-password-2"})
    assert differ.status_code == 422 and 'id="f-again-error"' in differ.text
    short = post_form(maker, "/account/password", {"current": PASSWORDS["maker"], "new": "short", "again": "short"})
    assert short.status_code == 422 and 'id="f-new-error"' in short.text and "at least 10 characters" in short.text
    done = post_form(maker, "/account/password", {"current": PASSWORDS["maker"], "new": "new-password-1",
                                                  "again": "new-password-1"}, follow_redirects=True)
    assert done.status_code == 200 and "Your password is saved" in done.text
    store = web.app.state.services.store  # type: ignore[attr-defined]
    assert user_for_password(store, "maker", "new-password-1") is not None
    assert user_for_password(store, "maker", PASSWORDS["maker"]) is None


def test_a_token_user_sets_a_first_password_with_the_token_as_proof(web: WebClient) -> None:
    store = web.app.state.services.store  # type: ignore[attr-defined]
    _, token = add_user(store, name="newbie", role="engineer", org="Test Lab")
    assert _login_post(web, {"token": token}).status_code == 303
    assert "Set a password" in web.get("/account").text
    done = post_form(web, "/account/password", {"current": token, "new": "first-password", "again": "first-password"})
    assert done.status_code == 303 and user_for_password(store, "newbie", "first-password") is not None


# --- passwords in the store and `certlab users passwd` ----------------------------------------------

def test_passwords_are_salted_scrypt_and_never_stored() -> None:
    one, two = hash_password("same-password"), hash_password("same-password")
    assert one != two and one.startswith("scrypt$") and "same-password" not in one
    assert password_matches(one, "same-password") and not password_matches(one, "same-passwore")
    assert not password_matches(None, "anything") and not password_matches("garbage", "anything")


def test_users_passwd_reads_stdin_and_the_user_signs_in(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with open_store() as store:
        add_user(store, name="eve", role="engineer", org="Test Lab")
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct-horse-battery\n"))
    code, err = certlab_main(monkeypatch, capsys, "users", "passwd", "eve", "--stdin")
    assert code == 0, err
    with open_store() as store:
        assert user_for_password(store, "eve", "correct-horse-battery") is not None
        with reading(store) as s:
            stored = s.scalars(select(User.password_hash).where(User.name == "eve")).one()
    assert stored and "correct-horse-battery" not in stored


def test_users_passwd_asks_twice_on_the_terminal(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with open_store() as store:
        add_user(store, name="fay", role="certifier", org="CertBody")
    answers = iter(["first-password-1", "other-password-2"])

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, err = certlab_main(monkeypatch, capsys, "users", "passwd", "fay")
    assert code == 2 and err.strip() == "certlab: error: the two passwords differ; fix: run it again and type " \
                                        "the same password twice"
    answers = iter(["first-password-1", "first-password-1"])
    code, err = certlab_main(monkeypatch, capsys, "users", "passwd", "fay")
    assert code == 0, err
    with open_store() as store:
        assert user_for_password(store, "fay", "first-password-1") is not None


@pytest.mark.parametrize("args, stdin, says", [
    (("users", "passwd", "nobody", "--stdin"), "long-enough-pw\n", "no user named 'nobody'"),
    (("users", "passwd", "nobody", "--stdin"), "short\n", "password: at least 10 characters"),
    (("users", "passwd", "nobody"), "", "no terminal to ask the password on; fix: pipe it in with --stdin"),
])
def test_users_passwd_bad_input_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str],
                                                      args: tuple[str, ...], stdin: str, says: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, err = certlab_main(monkeypatch, capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_a_revoked_user_gets_no_password() -> None:
    from lab.errors import CertlabError

    with open_store() as store:
        add_user(store, name="gus", role="engineer", org="Test Lab")
        revoke_user(store, "gus")
        with pytest.raises(CertlabError, match="revoked"):
            set_password(store, "gus", "long-enough-pw")


def test_serve_prints_the_web_address() -> None:
    from lab.api.cli import web_address

    assert web_address("127.0.0.1", 8303) == "http://127.0.0.1:8303/"
    assert web_address("::1", 8080) == "http://[::1]:8080/"
    assert web_address("0.0.0.0", 80).startswith("http://") and "0.0.0.0" not in web_address("0.0.0.0", 80)


def test_the_form_macros_label_describe_and_mark_each_control() -> None:
    from lab.webui.render import make_templates

    env = make_templates().env
    html = env.from_string(
        '{% from "_forms.html" import field, select, file, textarea, badge %}'
        '{{ select("edition", "Edition", ["v2", ("v3", "Version 3")], {"edition": "pick one"}, "v3", help="which") }}'
        '{{ file("ics", "ICS", {}, accept=".yaml") }}{{ textarea("c", "Comment", {}, value="<b>") }}'
        '{{ field("model", "Model", {"model": "too long"}, value="\\"x") }}{{ badge("NOT_APPLICABLE") }}').render()
    assert '<label for="f-edition">' in html and '<option value="v3" selected>Version 3</option>' in html
    assert 'aria-describedby="f-edition-help f-edition-error" aria-invalid="true"' in html
    assert '<label for="f-ics">' in html and 'accept=".yaml"' in html and "aria-invalid" not in html.split("f-ics")[1][:80]
    assert "&lt;b&gt;" in html and 'value="&#34;x"' in html and 'aria-describedby="f-model-error"' in html
    assert '<span class="badge badge-not-applicable">NOT APPLICABLE</span>' in html
