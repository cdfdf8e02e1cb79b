"""lab/actions/reports.py and reviews.py called directly: role, tenancy, state, the file lock
shared across processes, the run directory opened in place (no path escapes, the Allure page's
own policy), and the verification state checked with `certlab verify`'s code. No lab, no
`certlab report` subprocess: the run directory is written (and signed with a test key) on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import event

from lab.actions import reports, reviews
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound
from lab.api.app import create_app
from lab.api.settings import ApiSettings
from lab.reports.approval import write_approval
from lab.reports.keys import KEY_DIR_ENV, init_keys, load_private_key
from lab.reports.manifest import sign_run
from lab.reports.verify import Verifications, verify_report
from lab.store.accounts import add_user
from lab.store.models import Booking, Product
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"
RUN = "20260101-120000-abc123"
USERS = (("maker", "manufacturer", "Acme"), ("rival", "manufacturer", "Rival"), ("lab", "engineer", "Test Lab"),
         ("cert", "certifier", "CertBody"), ("cert2", "certifier", "OtherBody"))


@dataclass
class World:
    svc: Services
    who: dict[str, Caller]
    bookings: dict[str, int]

    def run_dir(self, run_id: str = RUN) -> Path:
        return self.svc.settings.reports_dir / run_id


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    init_keys(tmp_path / "keys")
    app = create_app(ApiSettings(data_dir=tmp_path / "data", reports_dir=tmp_path / "reports",
                                 database_url=f"sqlite:///{tmp_path / 'store.db'}"))
    svc: Services = app.state.services
    who, bookings = {}, {}
    for name, role, org in USERS:
        user, _ = add_user(svc.store, name=name, role=role, org=org)
        who[name] = Caller(id=user.id, name=name, role=role, org_id=user.org_id, org=org)
    with unit(svc.store) as s:
        for owner in ("maker", "rival"):
            product = Product(org_id=who[owner].org_id, model="TH-100", name="Thermostat", vendor="Sim")
            s.add(product)
            s.flush()
            booking = Booking(org_id=who[owner].org_id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                              suites=["examples"], ics=(PRODUCT / "ics.yaml").read_text(),
                              ixit=(PRODUCT / "ixit.yaml").read_text(), status="tested", created_by=who[owner].id)
            s.add(booking)
            s.flush()
            bookings[owner] = booking.id
        s.get(Booking, bookings["maker"]).run_id = RUN
    yield World(svc=svc, who=who, bookings=bookings)
    svc.store.close()


def write_run(world: World, *, signed: bool = True, approved: bool = False, run_id: str = RUN) -> Path:
    """A finished run with a made report (contents small), signed with the test key; approved if asked."""
    run_dir = world.run_dir(run_id)
    (run_dir / "evidence").mkdir(parents=True)
    (run_dir / "allure-report").mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id}))
    (run_dir / "verdicts.json").write_text(json.dumps({"results": []}))
    (run_dir / "evidence" / "log.txt").write_text("evidence\n")
    (run_dir / "evidence" / "page.html").write_text("<script>alert(1)</script>")
    doc = {"report": {"id": "CL-TEST-1"}, "summary": {"overall": "PASS", "counts": {"PASS": 2}},
           "provisions": [{"id": "5.1-1", "title": "No universal default passwords", "verdict": "PASS"},
                          {"id": "5.3-2", "title": "Updates", "verdict": "FAIL"}]}
    (run_dir / "conformance.json").write_text(json.dumps(doc))
    (run_dir / "conformance.html").write_text("<html><style>p{}</style><p>report</p></html>")
    (run_dir / "allure-report" / "index.html").write_text(
        '<html><script>window.allure = {};</script><script src="app.js"></script>'
        "<script async>\n  ready = true;\n</script></html>")
    (run_dir / "allure-report" / "app.js").write_text("console.log('allure')")
    if signed:
        key = load_private_key()
        sign_run(run_dir, key)
        if approved:
            write_approval(run_dir, by="Alex Example", role="Technical Manager", report_id="CL-TEST-1", key=key)
            sign_run(run_dir, key)
    elif approved:
        (run_dir / "approval.json").write_text("{}")
    return run_dir


# --- roles, tenancy, state -----------------------------------------------------------------------


def test_only_engineers_make_approve_and_release(world: World) -> None:
    write_run(world)
    for action in (lambda w: reports.make_report(world.svc, w, RUN),
                   lambda w: reports.approve_report(world.svc, w, RUN, by="A", role="B"),
                   lambda w: reports.release_report(world.svc, w, RUN, "CertBody")):
        for name in ("maker", "cert"):
            with pytest.raises(Forbidden):
                action(world.who[name])


def test_another_tenant_or_an_unreleased_certifier_sees_no_run(world: World) -> None:
    write_run(world, approved=True)
    for name in ("rival", "cert"):
        with pytest.raises(NotFound):
            reports.get_report(world.svc, world.who[name], RUN)
    reports.release_report(world.svc, world.who["lab"], RUN, "CertBody")
    assert reports.get_report(world.svc, world.who["cert"], RUN).status == "approved"
    with pytest.raises(NotFound):
        reports.get_report(world.svc, world.who["cert2"], RUN)
    assert [r.organisation for r in reports.releases(world.svc, world.who["cert"], RUN)] == ["CertBody"]


def test_a_draft_is_the_labs_alone_and_a_release_needs_an_approval_and_a_certifier(world: World) -> None:
    write_run(world)
    assert reports.get_report(world.svc, world.who["maker"], RUN).status == "draft"
    with pytest.raises(Conflict, match="not approved"):
        reports.report_file(world.svc, world.who["maker"], RUN, "conformance.html")
    assert reports.report_file(world.svc, world.who["lab"], RUN, "conformance.html").path.is_file()
    with pytest.raises(Conflict, match="only an approved report"):
        reports.release_report(world.svc, world.who["lab"], RUN, "CertBody")
    (world.run_dir() / "conformance.json").unlink()
    with pytest.raises(Conflict, match="has no report yet"):
        reports.approve_report(world.svc, world.who["lab"], RUN, by="A", role="B")


def test_release_to_an_organisation_without_a_certifier_names_the_field_and_the_fix(world: World) -> None:
    write_run(world, approved=True)
    with pytest.raises(Invalid) as refused:
        reports.release_report(world.svc, world.who["lab"], RUN, "Acme")
    assert refused.value.field == "organisation" and "certlab users add" in refused.value.msg
    assert reports.certifier_organisations(world.svc, world.who["lab"]) == ["CertBody", "OtherBody"]


def test_approving_without_a_name_says_which_field(world: World) -> None:
    write_run(world)
    with pytest.raises(Invalid) as refused:
        reports.approve_report(world.svc, world.who["lab"], RUN, by=" ", role="Technical Manager")
    assert refused.value.loc == ["body", "by"]
    assert reports._field_of("x: 'Bob' is not an authorised signatory (field 'signatories')") == ["body", "by"]
    assert reports._field_of("signatory 'A' is authorised as 'TM', not 'X'") == ["body", "role"]
    assert reports._field_of("no verdicts.json") == ["path", "run_id"]


# --- the report lock: a file lock beside the run directory, any process ---------------------------


def test_a_second_report_command_on_one_run_is_refused_at_once(world: World) -> None:
    run_dir = write_run(world)
    with reports.report_lock(run_dir):
        with pytest.raises(Conflict, match="being made or approved"):
            with reports.report_lock(run_dir):
                pass
    with reports.report_lock(run_dir):  # released: free again
        pass
    assert not any(p.name.endswith(reports.LOCK_SUFFIX) for p in run_dir.iterdir()), "inside, it would be signed"


def test_the_report_lock_holds_across_processes(world: World) -> None:
    run_dir = write_run(world)
    lock = run_dir.with_name(f".{run_dir.name}{reports.LOCK_SUFFIX}")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], "
                               "os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
                               "sys.stdin.read()", str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Conflict):
            with reports.report_lock(run_dir):
                pass
    finally:
        holder.communicate("", timeout=10)
    with reports.report_lock(run_dir):
        pass


# --- the run directory opened in place --------------------------------------------------------------


def test_run_files_never_leave_the_run_directory(world: World, tmp_path: Path) -> None:
    run_dir = write_run(world)
    (tmp_path / "secret.txt").write_text("secret")
    (run_dir / "evidence" / "link.txt").symlink_to(tmp_path / "secret.txt")
    (run_dir / "linked").symlink_to(tmp_path)
    lab = world.who["lab"]
    for rel in ("../../secret.txt", "evidence/../../secret.txt", "evidence/link.txt", "linked/secret.txt",
                ".hidden", "evidence", "", "/etc/passwd", "evidence/nope.txt", "manifest.json/.."):
        with pytest.raises(NotFound):
            reports.run_file(world.svc, lab, RUN, rel)
    got = reports.run_file(world.svc, lab, RUN, "evidence/log.txt")
    assert got.path == run_dir / "evidence" / "log.txt" and got.media_type.startswith("text/plain")


def test_only_the_allure_page_runs_scripts_and_only_its_own(world: World) -> None:
    write_run(world)
    lab = world.who["lab"]
    evidence = reports.run_file(world.svc, lab, RUN, "evidence/page.html")
    assert "sandbox" in evidence.csp and "script-src" not in evidence.csp  # default-src 'none': no script
    allure = reports.run_file(world.svc, lab, RUN, "allure-report/index.html").csp
    script_src = next(part for part in allure.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert script_src.count("'sha256-") == 2, script_src  # the two inline scripts, not the src= one
    import base64
    import hashlib
    body = b"\n  ready = true;\n"
    assert f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'" in script_src
    assert "https:" not in allure and "http:" not in allure
    assert reports.allure_page(world.run_dir()) == "allure-report/index.html"


# --- verification: `certlab verify`'s code -----------------------------------------------------------


def test_verification_is_certlab_verify_s_answer(world: World) -> None:
    run_dir = write_run(world, approved=True)
    check = verify_report(run_dir)
    assert check.intact and check.approved and check.signature == "valid"
    state = reports.verification(world.svc, world.who["lab"], RUN)
    assert state.ok and state.signature == "valid" and state.approval.startswith("valid: Alex Example")
    (run_dir / "evidence" / "log.txt").write_text("changed\n")
    state = reports.verification(world.svc, world.who["lab"], RUN)
    assert state.state == "tampered" and "changed: evidence/log.txt" in state.problems
    cli = subprocess.run([sys.executable, "-m", "lab.cli", "verify", str(run_dir)], capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode == 1 and "evidence/log.txt" in cli.stdout + cli.stderr  # the CLI agrees


def test_a_draft_has_no_approval_and_an_unsigned_run_is_unverifiable(world: World) -> None:
    run_dir = write_run(world)
    assert "missing" in reports.verification(world.svc, world.who["lab"], RUN).approval
    (run_dir / "manifest.json").unlink()
    state = reports.verification(world.svc, world.who["lab"], RUN)
    assert state.state == "unverifiable" and "no manifest" in state.signature


def test_a_cached_verification_is_dropped_when_the_report_is_re_signed(world: World) -> None:
    run_dir = write_run(world)
    cache = Verifications(ttl=300.0)
    first = cache.check(run_dir)
    assert cache.cached(run_dir) is first and cache.check(run_dir) is first
    key = load_private_key()
    write_approval(run_dir, by="Alex Example", role="Technical Manager", report_id="CL-TEST-1", key=key)
    sign_run(run_dir, key)
    assert cache.cached(run_dir) is None
    assert cache.check(run_dir).approval.startswith("valid")


# --- the lists of the reports pages -------------------------------------------------------------------


def test_each_role_lists_its_reports(world: World) -> None:
    write_run(world)
    rows, total = reports.report_rows(world.svc, world.who["lab"])
    assert total == 1 and [(r.run_id, r.stage) for r in rows] == [(RUN, "draft")]
    assert reports.report_rows(world.svc, world.who["maker"]) == ([], 0)  # a draft is not the maker's yet
    assert reports.report_rows(world.svc, world.who["cert"]) == ([], 0)
    with unit(world.svc.store) as s:
        s.get(Booking, world.bookings["maker"]).status = "reported"
    key = load_private_key()
    write_approval(world.run_dir(), by="Alex Example", role="Technical Manager", report_id="CL-TEST-1", key=key)
    sign_run(world.run_dir(), key)
    reports.release_report(world.svc, world.who["lab"], RUN, "CertBody")
    rows, total = reports.report_rows(world.svc, world.who["maker"])
    assert total == 1 and rows[0].stage == "approved" and rows[0].released_to == ["CertBody"]
    assert reports.report_rows(world.svc, world.who["rival"]) == ([], 0)
    rows, total = reports.report_rows(world.svc, world.who["cert"])
    assert total == 1 and rows[0].verification is not None and rows[0].verification.ok
    assert reports.report_rows(world.svc, world.who["cert2"]) == ([], 0)


def test_a_reports_list_costs_the_same_queries_for_one_row_or_many(world: World) -> None:
    write_run(world, approved=True)

    def queries() -> int:
        seen: list[str] = []
        record = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(world.svc.store.engine, "before_cursor_execute", record)
        try:
            reports.report_rows(world.svc, world.who["cert"], verify_new=0)
        finally:
            event.remove(world.svc.store.engine, "before_cursor_execute", record)
        return len(seen)

    reports.release_report(world.svc, world.who["lab"], RUN, "CertBody")
    one = queries()
    for i in range(5):
        run_id = f"20260102-120000-more{i:02d}"
        write_run(world, approved=True, run_id=run_id)
        with unit(world.svc.store) as s:
            s.get(Booking, world.bookings["maker"]).run_id = run_id
        reports.release_report(world.svc, world.who["lab"], run_id, "CertBody")
    assert len(reports.report_rows(world.svc, world.who["cert"], verify_new=0)[0]) == 6
    assert queries() == one, "no query per row"


def test_a_bookings_reports_show_a_maker_only_approved_ones(world: World) -> None:
    write_run(world)
    assert [r.stage for r in reports.booking_reports(world.svc, world.who["lab"], world.bookings["maker"])] == ["draft"]
    assert reports.booking_reports(world.svc, world.who["maker"], world.bookings["maker"]) == []
    with pytest.raises(NotFound):
        reports.booking_reports(world.svc, world.who["rival"], world.bookings["maker"])


# --- reviews ----------------------------------------------------------------------------------------------


def test_only_a_certifier_it_was_released_to_reviews_an_approved_report(world: World) -> None:
    write_run(world, approved=True)
    with pytest.raises(NotFound):
        reviews.add_review(world.svc, world.who["cert"], RUN, decision="accepted")
    reports.release_report(world.svc, world.who["lab"], RUN, "CertBody")
    for name in ("lab", "maker"):
        with pytest.raises(Forbidden):
            reviews.add_review(world.svc, world.who[name], RUN, decision="accepted")
    with pytest.raises(Invalid) as refused:
        reviews.add_review(world.svc, world.who["cert"], RUN, decision="maybe")
    assert refused.value.field == "decision" and "accepted" in refused.value.msg
    row = reviews.add_review(world.svc, world.who["cert"], RUN, decision="rejected", comment="see 5.3-2")
    assert (row.organisation, row.reviewer, row.decision) == ("CertBody", "cert", "rejected")
    assert [r.id for r in reviews.reviews(world.svc, world.who["maker"], RUN)] == [row.id]
    with pytest.raises(NotFound):
        reviews.reviews(world.svc, world.who["cert2"], RUN)
    assert [p.id for p in reviews.report_provisions(world.svc, RUN)] == ["5.1-1", "5.3-2"]


def test_a_review_keeps_a_comment_per_provision_naming_an_unknown_one(world: World) -> None:
    write_run(world, approved=True)
    reports.release_report(world.svc, world.who["lab"], RUN, "CertBody")
    cert = world.who["cert"]
    with pytest.raises(Invalid) as refused:
        reviews.add_review(world.svc, cert, RUN, decision="rejected", provision_comments={"9.9-9": "no"})
    assert refused.value.loc == ["body", "provision_comments", "9.9-9"] and "5.1-1" in refused.value.msg
    row = reviews.add_review(world.svc, cert, RUN, decision="rejected",
                             provision_comments={"5.3-2": "the update was not signed", "5.1-1": "  "})
    assert row.provision_comments == {"5.3-2": "the update was not signed"}  # blank ones dropped
    assert reviews.reviews(world.svc, world.who["lab"], RUN)[0].provision_comments == row.provision_comments


def test_the_api_takes_and_shows_comments_per_provision(world: World) -> None:
    """The API and the pages share the action: the API's review body has `provision_comments`."""
    from fastapi.testclient import TestClient

    from lab.api.app import PREFIX

    write_run(world, approved=True)
    reports.release_report(world.svc, world.who["lab"], RUN, "CertBody")
    app = create_app(world.svc.settings, store=world.svc.store)
    _, token = add_user(world.svc.store, name="cert-api", role="certifier", org="CertBody")
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {token}"}
        url = f"{PREFIX}/runs/{RUN}/reviews"
        refused = client.post(url, headers=auth, json={"decision": "rejected", "provision_comments": {"0-0": "x"}})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "provision_comments", "0-0"]
        done = client.post(url, headers=auth, json={"decision": "rejected", "provision_comments": {"5.3-2": "unsigned"}})
        assert done.status_code == 201 and done.json()["provision_comments"] == {"5.3-2": "unsigned"}
        assert client.get(url, headers=auth).json()[0]["provision_comments"] == {"5.3-2": "unsigned"}
