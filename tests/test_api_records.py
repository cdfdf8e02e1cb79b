"""Product records over HTTP: the public JSON and feeds answer without a token (JSON errors, never
pages; rate-limited per client address), the chain served is what verify_chain accepts, and the
writes answer as the API does: 201, 401 without a token, 403 for the wrong role, 404 for another
manufacturer, 422 with the field path inside a bad SBOM or CSAF document."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from records_lab import BASELINE, CERT_RUN, MODEL, World, booking_with_run, certifying_run, csaf, records_world, \
    release_files

from lab.actions import records
from lab.records.chain import verify_chain

API = "/api/v1"


def _world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object) -> Iterator[World]:
    world = records_world(tmp_path, monkeypatch, **settings)
    with world.client:
        yield world
    world.svc.store.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _world(tmp_path, monkeypatch)


@pytest.fixture
def opened(world: World) -> World:
    certifying_run(world.reports, CERT_RUN, BASELINE)
    booking_with_run(world, CERT_RUN)
    r = world.client.post(f"{API}/records", json={"run_id": CERT_RUN}, headers=world.client.bearer("lab"))
    assert r.status_code == 201, r.text
    return world


def post_release(world: World, version: str, who: str = "maker", sbom: bytes | None = None, **data: str):  # type: ignore[no-untyped-def]
    image, bom = release_files(version)
    return world.client.post(f"{API}/records/{MODEL}/releases", headers=world.client.bearer(who), data=data,
                             files={"image": (f"{MODEL}-{version}.clfw", io.BytesIO(image)),
                                    "sbom": (f"{MODEL}-{version}.cdx.json", io.BytesIO(sbom or bom))})


def test_opening_takes_an_engineer_and_an_approved_run(world: World) -> None:
    certifying_run(world.reports, CERT_RUN, BASELINE, approved=False)
    booking_with_run(world, CERT_RUN)
    c = world.client
    assert c.post(f"{API}/records", json={"run_id": CERT_RUN}).status_code == 401
    assert c.post(f"{API}/records", json={"run_id": CERT_RUN}, headers=c.bearer("maker")).status_code == 403
    r = c.post(f"{API}/records", json={"run_id": CERT_RUN}, headers=c.bearer("lab"))
    assert r.status_code == 409 and "not approved" in r.json()["detail"]
    r = c.post(f"{API}/records", json={"run_id": "../etc"}, headers=c.bearer("lab"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "run_id"]


def test_the_public_json_needs_no_token_and_its_chain_verifies(opened: World) -> None:
    c = opened.client
    assert post_release(opened, "1.5.0").status_code == 201
    view = c.get(f"/records/{MODEL}")
    assert view.status_code == 200 and view.headers["content-type"].startswith("application/json")
    body = view.json()
    assert body["schema"] == "certlab.record-view/1" and body["revision"]["seq"] == 2
    assert body["figures"]["support_end"] == "2030-12-31" and body["record"]["releases"][0]["version"] == "1.5.0"
    assert body["links"] == {"revisions": f"/records/{MODEL}/revisions", "page": f"/public/records/{MODEL}",
                             "feed": "/feed/records.json"}
    assert [r["model"] for r in c.get("/records").json()] == [MODEL]
    chain = c.get(body["links"]["revisions"]).json()
    assert chain["schema"] == "certlab.record/1" and verify_chain(chain).ok
    assert c.get(f"/records/{MODEL}/revisions/1").json() == chain["revisions"][0]
    missing = c.get(f"/records/{MODEL}/revisions/7")
    assert missing.status_code == 404 and missing.json() == {"detail": f"record {MODEL} has no revision 7"}
    assert c.get("/records/NOPE-1").status_code == 404 and "json" in c.get("/records/NOPE-1").headers["content-type"]
    bad = c.get("/records/..%2Fx")
    assert bad.status_code in (404, 422) and "json" in bad.headers["content-type"]


def test_the_feed_pages_by_id_and_the_atom_feed_links_each_revision(opened: World) -> None:
    c = opened.client
    post_release(opened, "1.5.0")
    c.post(f"{API}/records/{MODEL}/advisories", headers=c.bearer("maker"),
           files={"csaf": ("sa.json", io.BytesIO(csaf("SA-1", affected=["1.4.0"], fixed=["1.5.0"])))})
    items = c.get("/feed/records.json").json()
    assert [(i["seq"], i["kind"]) for i in items] == [(1, "opened"), (2, "release"), (3, "advisory")]
    assert [i["seq"] for i in c.get("/feed/records.json", params={"after": items[0]["id"]}).json()] == [2, 3]
    assert c.get("/feed/records.json", params={"after": -1}).json()["detail"][0]["loc"] == ["query", "after"]
    atom = c.get("/feed/records.atom")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = ElementTree.fromstring(atom.content).findall("a:entry", ns)
    assert [e.find("a:link", ns).get("href") for e in entries][0] == f"http://testserver/records/{MODEL}/revisions/3"


def test_a_releases_sbom_is_served_as_uploaded_without_an_account(opened: World) -> None:
    c = opened.client
    _, bom = release_files("1.5.0")
    assert post_release(opened, "1.5.0").status_code == 201
    summary = c.get(f"/records/{MODEL}").json()["record"]["releases"][0]["sbom"]
    got = c.get(f"/records/{MODEL}/releases/1.5.0/sbom")
    assert got.status_code == 200 and got.headers["content-type"] == "application/vnd.cyclonedx+json"
    assert got.content == bom and hashlib.sha256(got.content).hexdigest() == summary["sha256"]
    assert summary["components"] == len(json.loads(bom)["components"])
    for path in (f"/records/{MODEL}/releases/9.9.9/sbom", "/records/NOPE-1/releases/1.5.0/sbom"):
        missing = c.get(path)
        assert missing.status_code == 404 and "json" in missing.headers["content-type"], path


def test_a_release_answers_201_and_its_refusals_name_the_field(opened: World) -> None:
    c = opened.client
    r = post_release(opened, "1.5.0", released_on="2026-12-01")
    assert r.status_code == 201, r.text
    assert r.json()["release"]["signature"] == "valid" and r.json()["retest"]["queued_id"] >= 1
    assert post_release(opened, "1.5.0").status_code == 409
    assert post_release(opened, "1.6.0", who="rival").status_code == 404
    assert post_release(opened, "1.6.0", who="lab").status_code == 403
    assert c.post(f"{API}/records/{MODEL}/releases").status_code == 401
    _, bom = release_files("1.6.0")
    doc = json.loads(bom)
    del doc["components"][0]["name"]
    r = post_release(opened, "1.6.0", sbom=json.dumps(doc).encode())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:4] == ["body", "sbom", "components", 0], r.json()
    r = post_release(opened, "1.6.0", released_on="someday")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "released_on"]
    r = c.post(f"{API}/records/{MODEL}/releases", headers=c.bearer("maker"),
               files={"sbom": ("s.json", io.BytesIO(bom))})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "image"]


def test_an_advisory_refused_names_the_path_inside_the_csaf(opened: World) -> None:
    c = opened.client
    doc = json.loads(csaf("SA-1", affected=["1.4.0"], fixed=["1.5.0"]))
    doc["document"]["tracking"]["status"] = "almost"
    r = c.post(f"{API}/records/{MODEL}/advisories", headers=c.bearer("maker"),
               files={"csaf": ("sa.json", io.BytesIO(json.dumps(doc).encode()))})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "csaf", "document", "tracking", "status"], r.json()
    good = csaf("SA-1", affected=["1.4.0"], fixed=["1.5.0"])
    for who, status in (("rival", 404), ("cert", 403), ("maker", 201), ("maker", 409)):
        r = c.post(f"{API}/records/{MODEL}/advisories", headers=c.bearer(who), files={"csaf": ("sa.json", io.BytesIO(good))})
        assert r.status_code == status, (who, r.text)


def test_requeue_is_for_engineers(opened: World) -> None:
    c = opened.client
    post_release(opened, "1.5.0")
    url = f"{API}/records/{MODEL}/releases/1.5.0/retest"
    assert c.post(url, headers=c.bearer("maker")).status_code == 403
    assert c.post(url, headers=c.bearer("lab")).status_code == 409  # queued already
    assert c.post(f"{API}/records/{MODEL}/releases/9.9/retest", headers=c.bearer("lab")).status_code == 404


def test_the_public_json_is_rate_limited_per_client_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for world in _world(tmp_path, monkeypatch, rate_per_second=0.001, rate_burst=3):
        answers = [world.client.get("/records").status_code for _ in range(5)]
        assert answers[:3] == [200, 200, 200] and answers[3:] == [429, 429]
        late = world.client.get("/feed/records.json")
        assert late.status_code == 429 and int(late.headers["retry-after"]) >= 1
        assert "json" in late.headers["content-type"]


def test_the_openapi_document_describes_the_public_and_the_written_routes(world: World) -> None:
    doc = world.client.get(f"{API}/openapi.json").json()
    for path in ("/records", "/records/{model}", "/records/{model}/revisions", "/records/{model}/revisions/{seq}",
                 "/feed/records.json", "/feed/records.atom", f"{API}/records", f"{API}/records/{{model}}/releases",
                 f"{API}/records/{{model}}/advisories", f"{API}/records/{{model}}/releases/{{version}}/retest"):
        assert path in doc["paths"], path
    public = doc["paths"]["/records/{model}"]["get"]
    assert "401" not in public["responses"] and "429" in public["responses"]
    assert "security" not in public


def _with_notes(world: World, count: int) -> None:
    for n in range(count):
        records.append_revision(world.svc, MODEL, "lab (test)",
                                lambda record, n=n: records.Change("note", f"note {n}", record))


def _follow(world: World, path: str, pages: int = 20) -> list[dict]:
    """Every page from `path` on by its `next` links (bounded: a loop of links fails the test)."""
    out = []
    for _ in range(pages):
        answer = world.client.get(path)
        assert answer.status_code == 200, answer.text
        out.append(answer.json())
        if out[-1]["next"] is None:
            return out
        path = out[-1]["next"]
    raise AssertionError(f"more than {pages} pages")


def test_the_chain_pages_by_seq_and_links_the_next_page(opened: World) -> None:
    _with_notes(opened, 11)
    whole = opened.client.get(f"/records/{MODEL}/revisions").json()
    assert len(whole["revisions"]) == 12 and whole["after"] == 0 and whole["next"] is None
    pages = _follow(opened, f"/records/{MODEL}/revisions?limit=5")
    assert [[r["seq"] for r in p["revisions"]] for p in pages] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert [p["after"] for p in pages] == [0, 5, 10]
    assert [p["next"] for p in pages] == [f"/records/{MODEL}/revisions?after=5&limit=5",
                                          f"/records/{MODEL}/revisions?after=10&limit=5", None]
    joined = {**pages[0], "revisions": [r for p in pages for r in p["revisions"]]}
    assert joined["revisions"] == whole["revisions"] and verify_chain(joined).ok
    assert pages[1]["schema"] == "certlab.record/1" and pages[1]["model"] == MODEL
    tail = opened.client.get(f"/records/{MODEL}/revisions?after=10").json()
    assert [r["seq"] for r in tail["revisions"]] == [11, 12] and tail["next"] is None
    past = opened.client.get(f"/records/{MODEL}/revisions?after=12").json()
    assert past["revisions"] == [] and past["next"] is None
    assert opened.client.get("/records/NOPE-1/revisions?after=0").status_code == 404


def test_a_chain_past_the_whole_bound_answers_its_first_page(opened: World,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _with_notes(opened, 4)
    monkeypatch.setattr(records, "WHOLE_CHAIN_MAX", 5)
    assert len(opened.client.get(f"/records/{MODEL}/revisions").json()["revisions"]) == 5  # at the bound: whole
    _with_notes(opened, 1)
    monkeypatch.setattr(records, "CHAIN_PAGE", 2)
    first = opened.client.get(f"/records/{MODEL}/revisions").json()
    assert [r["seq"] for r in first["revisions"]] == [1, 2]
    assert first["next"] == f"/records/{MODEL}/revisions?after=2&limit=2"
    assert sum(len(p["revisions"]) for p in _follow(opened, first["next"])) == 4
    monkeypatch.setattr(records, "CHAIN_PAGE_MAX", 3)  # the action bounds a page whoever calls it
    assert len(records.revisions(opened.svc, MODEL, limit=1000)["revisions"]) == 3


@pytest.mark.parametrize("query, loc", [("limit=0", "limit"), ("limit=501", "limit"), ("after=-1", "after"),
                                        ("after=x", "after"), ("limit=1.5", "limit")])
def test_bad_page_parameters_are_422_naming_the_parameter(opened: World, query: str, loc: str) -> None:
    answer = opened.client.get(f"/records/{MODEL}/revisions?{query}")
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", loc]


def test_the_openapi_document_describes_the_chains_pages(world: World) -> None:
    doc = world.client.get(f"{API}/openapi.json").json()
    chain = doc["paths"]["/records/{model}/revisions"]["get"]
    params = {p["name"]: p for p in chain["parameters"]}
    assert params["after"]["in"] == "query" and params["limit"]["schema"]["anyOf"][0]["maximum"] == 500
    assert {"after", "next", "revisions"} <= set(doc["components"]["schemas"]["Chain"]["properties"])
