"""The record chain: every way a revision can be changed, dropped, reordered or re-signed is named."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.records.chain import (KINDS, SCHEMA, ChainVerifier, RecordFormatError, Revision, canonical, chain_document,
                               make_revision, public_key_hex, revision_from_json, verify_chain)

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


def record(n: int) -> dict:
    return {"model": "TH-100", "manufacturer": "Demo Thermostats Ltd", "releases": [{"version": f"1.4.{i}"}
                                                                                   for i in range(n)]}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def revisions(key: Ed25519PrivateKey) -> list[Revision]:
    out: list[Revision] = []
    for i, kind in enumerate(("opened", "release", "retest")):
        out.append(make_revision(out[-1] if out else None, kind=kind, summary=f"step {i}", by="lab",
                                 record=record(i), at=T0 + timedelta(hours=i), key=key))
    return out


@pytest.fixture
def document(revisions: list[Revision]) -> dict:
    return json.loads(json.dumps(chain_document("TH-100", revisions)))  # as read back from JSON


def test_canonical_is_sorted_compact_utf8():
    assert canonical({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


def test_make_revision_links_hashes_and_signs(revisions: list[Revision], key: Ed25519PrivateKey):
    first, second, third = revisions
    assert [r.seq for r in revisions] == [1, 2, 3]
    assert first.prev is None and second.prev == first.hash and third.prev == second.hash
    assert first.at == "2026-12-07T10:00:00Z" and third.at == "2026-12-07T12:00:00Z"
    content = {k: getattr(second, k) for k in ("seq", "at", "kind", "summary", "by", "record", "prev")}
    assert second.hash == hashlib.sha256(canonical(content)).hexdigest()
    assert second.key == public_key_hex(key.public_key())
    key.public_key().verify(bytes.fromhex(second.signature), second.hash.encode("ascii"))
    assert set(second.as_json()) == {"seq", "at", "kind", "summary", "by", "record", "prev", "hash", "key",
                                     "signature"}


def test_make_revision_stores_a_json_copy_of_the_record(key: Ed25519PrivateKey):
    source = {"model": "TH-100", "versions": ("1.4.0",)}
    rev = make_revision(None, kind="opened", summary="", by="lab", record=source, at=T0, key=key)
    source["model"] = "changed later"
    assert rev.record == {"model": "TH-100", "versions": ["1.4.0"]}


def test_make_revision_refuses_a_naive_time_and_an_unknown_kind(key: Ed25519PrivateKey):
    with pytest.raises(ValueError, match="timezone-aware"):
        make_revision(None, kind="opened", summary="", by="lab", record=record(0), at=datetime(2026, 12, 7), key=key)
    with pytest.raises(ValueError, match="kind"):
        make_revision(None, kind="deleted", summary="", by="lab", record=record(0), at=T0, key=key)
    later = make_revision(None, kind="note", summary="", by="lab", record=record(0),
                          at=datetime(2026, 12, 7, 11, 0, tzinfo=timezone(timedelta(hours=1))), key=key)
    assert later.at == "2026-12-07T10:00:00Z" and "note" in KINDS


def test_an_untouched_chain_verifies(document: dict, key: Ed25519PrivateKey):
    check = verify_chain(document)
    assert check.ok and check.revisions == 3 and check.first_bad is None and check.reason == ""
    assert check.key == public_key_hex(key.public_key())
    assert [c.line for c in check.checks] == ["revision 1 (opened, 2026-12-07T10:00:00Z): ok",
                                              "revision 2 (release, 2026-12-07T11:00:00Z): ok",
                                              "revision 3 (retest, 2026-12-07T12:00:00Z): ok"]
    assert verify_chain(document, key_hex=check.key).ok
    assert document["schema"] == SCHEMA


@pytest.mark.parametrize("field, value, why", [
    ("record", {"model": "TH-100", "releases": []}, "hash does not match its content"),
    ("summary", "rewritten", "hash does not match its content"),
    ("by", "someone else", "hash does not match its content"),
    ("at", "2026-12-07T11:30:00Z", "hash does not match its content"),
    ("kind", "note", "hash does not match its content"),
    ("seq", 7, "seq is 7 where 2 was expected"),
    ("prev", "0" * 64, "prev does not match revision 1's hash"),
    ("hash", "0" * 64, "hash does not match its content"),
    ("signature", "0" * 128, "signature does not verify"),
])
def test_a_hand_edit_of_any_field_names_revision_2(document: dict, field: str, value: object, why: str):
    document["revisions"][1][field] = value
    check = verify_chain(document)
    assert not check.ok and check.first_bad == 2
    assert check.reason.startswith("revision 2 (") and why in check.reason


def test_a_recomputed_hash_still_fails_on_the_signature(document: dict):
    from lab.records.chain import content_hash

    rev = document["revisions"][1]
    rev["record"]["releases"] = []
    rev["hash"] = content_hash(**{k: rev[k] for k in ("seq", "at", "kind", "summary", "by", "record", "prev")})
    check = verify_chain(document)
    assert check.first_bad == 2 and "signature does not verify" in check.reason
    assert "prev does not match" in check.checks[2].problem  # revision 3 still names the old hash


def test_only_the_edited_revision_is_named(document: dict):
    document["revisions"][1]["record"]["manufacturer"] = "Other Ltd"
    problems = [c.problem for c in verify_chain(document).checks]
    assert problems[0] is None and problems[2] is None and "hash does not match" in problems[1]


def test_removed_and_reordered_revisions(document: dict):
    dropped = copy.deepcopy(document)
    del dropped["revisions"][1]
    check = verify_chain(dropped)
    assert check.first_bad == 2 and "seq is 3 where 2 was expected" in check.reason
    swapped = copy.deepcopy(document)
    swapped["revisions"][1], swapped["revisions"][2] = swapped["revisions"][2], swapped["revisions"][1]
    assert verify_chain(swapped).first_bad == 2
    headless = copy.deepcopy(document)
    del headless["revisions"][0]
    assert verify_chain(headless).first_bad == 1


def test_a_revision_signed_by_another_key(document: dict, revisions: list[Revision]):
    other = Ed25519PrivateKey.generate()
    forged = make_revision(revisions[1], kind="retest", summary="forged", by="lab", record=record(2),
                           at=T0 + timedelta(hours=5), key=other)
    document["revisions"][2] = forged.as_json()
    check = verify_chain(document)
    assert check.first_bad == 3 and "key changed" in check.reason


def test_a_pinned_key_refuses_a_chain_resigned_by_another(revisions: list[Revision], key: Ed25519PrivateKey):
    other = Ed25519PrivateKey.generate()
    resigned: list[Revision] = []
    for rev in revisions:
        resigned.append(make_revision(resigned[-1] if resigned else None, kind=rev.kind, summary=rev.summary,
                                      by=rev.by, record=rev.record, at=T0, key=other))
    document = chain_document("TH-100", resigned)
    assert verify_chain(document).ok  # consistent in itself...
    check = verify_chain(document, key_hex=public_key_hex(key.public_key()))
    assert check.first_bad == 1 and "not the pinned lab key" in check.reason  # ...but not the lab's


def test_a_chain_served_under_another_model(document: dict):
    document["model"] = "TH-200"
    check = verify_chain(document)
    assert check.first_bad == 1 and "for model 'TH-100', not the document's 'TH-200'" in check.reason


@pytest.mark.parametrize("mutate, why", [
    (lambda r: r.pop("signature"), "field 'signature' is missing"),
    (lambda r: r.update(extra=1), "field 'extra' is not part of a revision"),
    (lambda r: r.update(seq=True), "field 'seq'"),
    (lambda r: r.update(at="7 Dec 2026"), "field 'at'"),
    (lambda r: r.update(kind="deleted"), "field 'kind'"),
    (lambda r: r.update(record=[]), "field 'record' must be a JSON object"),
    (lambda r: r.update(key="zz"), "field 'key'"),
])
def test_malformed_revisions_name_the_field(document: dict, mutate, why: str):
    mutate(document["revisions"][2])
    check = verify_chain(document)
    assert check.first_bad == 3 and why in check.reason
    with pytest.raises(RecordFormatError, match=f"revisions\\[2\\]: .*{why.split()[0]}"):
        revision_from_json(document["revisions"][2], "revisions[2]")


@pytest.mark.parametrize("document, why", [
    ([], "must be a JSON object"),
    ({"schema": "other/1", "model": "TH-100", "revisions": []}, "field 'schema'"),
    ({"schema": "certlab.record-view/1"}, "GET /records/{model}/revisions"),
    ({"schema": SCHEMA, "model": "TH-100", "revisions": []}, "empty"),
    ({"schema": SCHEMA, "revisions": [{}]}, "field 'model'"),
])
def test_not_a_chain_document(document: object, why: str):
    check = verify_chain(document)
    assert not check.ok and check.first_bad is None and why in check.reason


def test_revision_from_json_round_trips(revisions: list[Revision]):
    for rev in revisions:
        assert revision_from_json(json.loads(json.dumps(rev.as_json())), "x") == rev


def _long_document(key: Ed25519PrivateKey, count: int = 7) -> dict:
    out: list[Revision] = []
    for i in range(count):
        out.append(make_revision(out[-1] if out else None, kind="opened" if i == 0 else "release",
                                 summary=f"step {i}", by="lab", record=record(i), at=T0 + timedelta(hours=i), key=key))
    return json.loads(json.dumps(chain_document("TH-100", out)))


def _fed_in_pages(document: dict, size: int, key_hex: str | None = None) -> ChainVerifier:
    verifier = ChainVerifier(document["model"], key_hex=key_hex)
    items = document["revisions"]
    for start in range(0, len(items), size):
        verifier.feed(items[start:start + size])
    return verifier


def _edit_revision_4(doc: dict) -> None:
    doc["revisions"][3]["summary"] = "edited"


def _drop_revision_4(doc: dict) -> None:
    del doc["revisions"][3]  # a page boundary at 3: the next page does not continue the last


def _swap_5_and_6(doc: dict) -> None:
    doc["revisions"][4], doc["revisions"][5] = doc["revisions"][5], doc["revisions"][4]


def _junk_at_4(doc: dict) -> None:
    doc["revisions"][3] = ["not", "a", "revision"]


@pytest.mark.parametrize("mutate", [None, _edit_revision_4, _drop_revision_4, _swap_5_and_6, _junk_at_4])
@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_feeding_in_pages_gives_the_whole_documents_checks(key: Ed25519PrivateKey, mutate, size: int):
    document = _long_document(key)
    if mutate is not None:
        mutate(document)
    whole = verify_chain(document)
    paged = _fed_in_pages(document, size).result()
    assert paged == whole
    assert whole.ok is (mutate is None)
    pinned = public_key_hex(key.public_key())
    assert _fed_in_pages(document, size, pinned).result() == verify_chain(document, key_hex=pinned)


def test_feed_answers_the_first_bad_revision_of_its_batch(key: Ed25519PrivateKey):
    document = _long_document(key)
    del document["revisions"][3]
    verifier = ChainVerifier("TH-100")
    assert verifier.feed(document["revisions"][:3]) is None
    assert verifier.count == 3 and verifier.last_hash == document["revisions"][2]["hash"]
    bad = verifier.feed(document["revisions"][3:])
    assert bad is not None and bad.index == 4
    assert bad.line == ("revision 4 (release, 2026-12-07T14:00:00Z): seq is 5 where 4 was expected "
                        "(a revision is missing, added or out of order)")


def test_a_verifier_fed_nothing_is_not_a_chain():
    check = ChainVerifier("TH-100").result()
    assert not check.ok and check.first_bad is None and check.reason == "not a record chain: no revisions"
    with pytest.raises(ValueError):
        ChainVerifier("TH-100", key_hex="zz")
