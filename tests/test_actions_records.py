"""lab/actions/records.py called directly: who opens a record (engineers, from an approved report that
verifies), who registers releases and advisories (the product's manufacturer; another one gets 404,
other roles 403), who queues a re-test again (engineers); a version is registered once (409), bad
SBOM/CSAF documents are 422 with the field path; the chain stays append-only and verifies after
every change. No lab: the runs are written on disk (tests/records_lab.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sys
from pathlib import Path

import pytest
from records_lab import (
    BASELINE,
    CERT_RUN,
    MODEL,
    World,
    booking_with_run,
    certifying_run,
    csaf,
    records_world,
    release_files,
)
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from lab.actions import records, retests
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from lab.firmware import build_image
from lab.records import record as doc
from lab.records.chain import make_revision, revision_from_json, verify_chain
from lab.records.sbom import read_sbom, sbom_diff
from lab.cli import main
from lab.reports.keys import KEY_DIR_ENV, init_keys, load_private_key
from lab.store import records as store
from lab.store.models import AuditEntry, Organisation, Product, QueuedRun
from lab.store.unit import reading, unit


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    made = records_world(tmp_path, monkeypatch)
    yield made
    made.svc.store.close()


@pytest.fixture
def opened(world: World) -> World:
    certifying_run(world.reports, CERT_RUN, BASELINE)
    booking_with_run(world, CERT_RUN)
    records.open_record(world.svc, world.who("lab"), CERT_RUN)
    return world


def release(world: World, version: str, who: str = "maker", *, sbom: bytes | None = None,
            released_on: str | None = "2026-12-01") -> dict:
    image, bom = release_files(version)
    return records.add_release(world.svc, world.who(who), MODEL, io.BytesIO(image), f"{MODEL}-{version}.clfw",
                               bom if sbom is None else sbom, released_on)


def queue_states(world: World) -> list[tuple[int, str]]:
    with reading(world.svc.store) as s:
        return [(q.id, q.state) for q in s.scalars(select(QueuedRun).order_by(QueuedRun.id))]


# --- opening -------------------------------------------------------------------------------------------


def test_only_an_engineer_opens_a_record_from_an_approved_report_that_verifies(world: World) -> None:
    certifying_run(world.reports, CERT_RUN, BASELINE, approved=False)
    booking_with_run(world, CERT_RUN)
    for name in ("maker", "cert"):
        with pytest.raises(Forbidden):
            records.open_record(world.svc, world.who(name), CERT_RUN)
    with pytest.raises(Conflict, match="not approved"):
        records.open_record(world.svc, world.who("lab"), CERT_RUN)
    tampered = certifying_run(world.reports, "20261102-100000-cert02", BASELINE)
    booking_with_run(world, "20261102-100000-cert02")
    conformance = json.loads((tampered / "conformance.json").read_text())
    conformance["summary"]["overall"] = "PASS"
    (tampered / "conformance.json").write_text(json.dumps(conformance))
    with pytest.raises(Conflict, match="does not verify"):
        records.open_record(world.svc, world.who("lab"), "20261102-100000-cert02")
    with pytest.raises(NotFound):
        records.open_record(world.svc, world.who("lab"), "20990101-000000-nosuch")
    with pytest.raises(NotFound):
        records.public_view(world.svc, MODEL)


def test_opening_keeps_the_inputs_and_a_later_report_becomes_the_baseline(opened: World) -> None:
    world = opened
    view = records.public_view(world.svc, MODEL)
    assert view["revision"]["seq"] == 1 and view["revision"]["kind"] == "opened"
    assert (view["manufacturer"], view["product"]) == ("Acme", "Smart thermostat")
    row = store.product_record(world.svc.store, MODEL)
    kept = Path(row.inputs_dir)
    assert kept == world.svc.settings.data_dir / "records" / MODEL / CERT_RUN
    assert {p.name for p in kept.iterdir()} >= {"ics.yaml", "ixit.yaml", "assessments.yaml", "run.json",
                                                "security-txt-key.asc"}  # the IXIT's key file beside its copy
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in kept.iterdir())
    with pytest.raises(Conflict, match="already"):
        records.open_record(world.svc, world.who("lab"), CERT_RUN)
    later = "20261201-100000-cert03"
    certifying_run(world.reports, later, {**BASELINE, "5.5-1": "PASS"}, firmware="1.4.2")
    booking_with_run(world, later)
    view = records.open_record(world.svc, world.who("lab"), later)
    assert view["revision"]["kind"] == "certified"
    assert view["record"]["baseline"] == {"run_id": later, "firmware": "1.4.2", "provisions": {**BASELINE, "5.5-1": "PASS"}}
    assert store.product_record(world.svc.store, MODEL).baseline_run_id == later


def test_another_manufacturers_run_of_the_model_does_not_take_over_the_record(opened: World) -> None:
    run = "20261203-100000-rival1"
    certifying_run(opened.reports, run, BASELINE)
    booking_with_run(opened, run, owner="rival")
    with pytest.raises(Conflict, match="another manufacturer"):
        records.open_record(opened.svc, opened.who("lab"), run)


def test_a_record_is_opened_from_a_run_directory_without_a_booking(world: World) -> None:
    run_dir = certifying_run(world.reports, CERT_RUN, BASELINE)
    view = records.open_record_from_run(world.svc, run_dir, manufacturer="Demo Thermostats Ltd",
                                        product_name="Smart thermostat", by="certlab record open (test)")
    assert view["manufacturer"] == "Demo Thermostats Ltd" and view["revision"]["kind"] == "opened"
    with reading(world.svc.store) as s:
        org = s.scalars(select(Organisation).where(Organisation.name == "Demo Thermostats Ltd")).one()
        assert s.scalars(select(Product).where(Product.org_id == org.id)).one().model == MODEL
    assert records.revisions(world.svc, MODEL)["revisions"][0]["by"] == "certlab record open (test)"
    with reading(world.svc.store) as s:
        logged = s.scalars(select(AuditEntry).where(AuditEntry.method == "EVENT")).one()
    assert (logged.user_name, logged.path, logged.status) == ("certlab record open (test)", f"/records/{MODEL}/revisions/1", 201)
    with pytest.raises(Invalid, match="not a run directory"):
        records.open_record_from_run(world.svc, world.reports / "nothing", manufacturer="X", product_name=None, by="t")


# --- releases --------------------------------------------------------------------------------------------


def test_only_the_products_manufacturer_registers_a_release(opened: World) -> None:
    with pytest.raises(NotFound):
        release(opened, "1.5.0", "rival")
    for name in ("cert", "lab"):
        with pytest.raises(Forbidden):
            release(opened, "1.5.0", name)
    with pytest.raises(NotFound):
        records.add_release(opened.svc, opened.who("maker"), "XY-9", io.BytesIO(b"x"), "x", b"{}", None)
    assert records.can_manage(opened.svc, opened.who("maker"), MODEL)
    assert not any(records.can_manage(opened.svc, w, MODEL) for w in (None, opened.who("rival"), opened.who("lab")))
    assert queue_states(opened) == []


def test_a_release_is_kept_diffed_and_its_retest_queued_once(opened: World) -> None:
    world = opened
    first = release(world, "1.5.0")
    got = first["release"]
    assert (got["version"], got["released_on"], got["signature"]) == ("1.5.0", "2026-12-01", "valid")
    _, bom = release_files("1.5.0")
    assert got["sbom"] == {"format": "CycloneDX", "spec_version": json.loads(bom)["specVersion"],
                           "sha256": hashlib.sha256(bom).hexdigest(), "components": len(json.loads(bom)["components"])}
    assert got["sbom_diff"]["against"] is None
    kept = records.sbom_path(world.svc, got["sbom"]["sha256"])
    assert kept.read_bytes() == bom and kept.stat().st_mode & 0o777 == 0o600
    assert records.release_sbom(world.svc, MODEL, "1.5.0") == bom
    assert got["retest"]["state"] == "queued" and got["retest"]["queued_id"] == first["retest"]["queued_id"]
    with reading(world.svc.store) as s:
        queued = s.get(QueuedRun, first["retest"]["queued_id"])
        payload, model, priority = queued.payload, queued.model, queued.priority
    kept = store.product_record(world.svc.store, MODEL).inputs_dir
    assert (model, priority, payload["suites"], payload["edition"]) == (MODEL, 0, ["testsuites/en303645"], "v2")
    assert payload["options"][:2] == ["-k", "not slow"]  # the certifying run's own options, its inputs replaced
    assert payload["options"][2:8] == ["--ics", f"{kept}/ics.yaml", "--ixit", f"{kept}/ixit.yaml",
                                       "--assessments", f"{kept}/assessments.yaml"]
    assert payload["options"][8] == "--release" and Path(payload["options"][9]).name == got["sha256"]
    assert payload["requested_by"] == f"record {MODEL} release 1.5.0"

    with pytest.raises(Conflict, match="registered already"):
        release(world, "1.5.0")
    second = release(world, "1.6.0", released_on=None)["release"]
    assert second["sbom_diff"]["against"] == "1.5.0"
    assert {"name": "thermostat-app", "from": "1.5.0", "to": "1.6.0"} in second["sbom_diff"]["changed"]
    assert [state for _, state in queue_states(world)] == ["pending", "pending"]  # the refused one queued nothing
    assert verify_chain(records.revisions(world.svc, MODEL)).ok


def test_the_diff_reads_the_previous_components_from_the_kept_sbom_named_by_its_hash(opened: World) -> None:
    first = release(opened, "1.5.0")["release"]
    kept = records.sbom_path(opened.svc, first["sbom"]["sha256"])
    kept.write_bytes(kept.read_bytes() + b" ")  # no longer the bytes the record names
    with pytest.raises(Unavailable, match=f"kept SBOM {kept} does not match the SHA-256"):
        release(opened, "1.6.0")
    with pytest.raises(Unavailable, match="does not match"):
        records.release_sbom(opened.svc, MODEL, "1.5.0")
    _, bom = release_files("1.5.0")
    records.keep_sbom(opened.svc, bom, first["sbom"]["sha256"])  # the same SBOM uploaded again: written again
    assert records.release_sbom(opened.svc, MODEL, "1.5.0") == bom
    kept.unlink()
    with pytest.raises(Unavailable, match=f"kept SBOM {kept} cannot be read"):
        release(opened, "1.6.0")
    with pytest.raises(NotFound):
        records.release_sbom(opened.svc, MODEL, "1.6.0")
    with pytest.raises(NotFound):
        records.release_sbom(opened.svc, "NOPE-1", "1.5.0")


def test_a_record_made_before_sboms_were_kept_apart_still_reads_diffs_and_verifies(opened: World) -> None:
    """Its release entry lists the components (the old shape); revisions are never rewritten."""
    _, bom = release_files("1.5.0")
    whole = read_sbom(bom).as_json()

    def old_release(record: dict | None) -> records.Change:
        entry = {"version": "1.5.0", "released_on": "2026-11-20", "registered_at": "2026-11-20T10:00:00Z",
                 "filename": "TH-100-1.5.0.clfw", "sha256": "0" * 64, "size": 1, "signature": "valid",
                 "signature_detail": "", "sbom": whole, "sbom_diff": sbom_diff(None, whole),
                 "retest": {**doc.new_retest(None), "state": "done", "verdict": "PASS"}}
        return records.Change("release", "release 1.5.0 registered", doc.add_release(record or {}, entry))

    records.append_revision(opened.svc, MODEL, "Acme (manufacturer)", old_release)
    second = release(opened, "1.6.0")["release"]
    assert second["sbom_diff"]["against"] == "1.5.0"
    assert {"name": "thermostat-app", "from": "1.5.0", "to": "1.6.0"} in second["sbom_diff"]["changed"]
    assert isinstance(second["sbom"]["components"], int)
    view = records.public_view(opened.svc, MODEL)
    assert [r["version"] for r in view["record"]["releases"]] == ["1.5.0", "1.6.0"]
    assert view["record"]["releases"][0]["sbom"]["components"] == whole["components"], "never rewritten"
    with pytest.raises(NotFound, match="components are in the record itself"):
        records.release_sbom(opened.svc, MODEL, "1.5.0")
    assert records.release_sbom(opened.svc, MODEL, "1.6.0") == release_files("1.6.0")[1]
    assert verify_chain(records.revisions(opened.svc, MODEL)).ok
    listed = records.revision_list(opened.svc, MODEL)
    chain = records.revisions(opened.svc, MODEL)["revisions"]
    assert listed == [{k: r[k] for k in ("seq", "at", "kind", "summary", "hash")} for r in reversed(chain)]


def test_a_bad_sbom_image_or_date_is_422_naming_the_field(opened: World) -> None:
    _, bom = release_files("1.5.0")
    doc = json.loads(bom)
    doc["components"][1]["version"] = 7
    with pytest.raises(Invalid) as exc:
        release(opened, "1.5.0", sbom=json.dumps(doc).encode())
    assert exc.value.loc[:2] == ["body", "sbom"] and exc.value.loc[2:] == ["components", 1, "version"], exc.value.loc
    with pytest.raises(Invalid) as exc:
        release(opened, "1.5.0", sbom=b"{not json")
    assert exc.value.loc[:2] == ["body", "sbom"]
    with pytest.raises(Invalid) as exc:
        release(opened, "1.5.0", released_on="yesterday")
    assert exc.value.loc == ["body", "released_on"]
    other = build_image(model="XY-9", version="1", security_version=1, payload=b"q" * 8, private_key=None)
    with pytest.raises(Invalid) as exc:
        records.add_release(opened.svc, opened.who("maker"), MODEL, io.BytesIO(other), "x.clfw", bom, None)
    assert exc.value.loc == ["body", "image"] and "XY-9" in exc.value.msg
    with pytest.raises(Invalid) as exc:
        records.add_release(opened.svc, opened.who("maker"), MODEL, io.BytesIO(b""), "x.clfw", bom, None)
    assert exc.value.loc == ["body", "image"]
    assert queue_states(opened) == [] and len(store.chain(opened.svc.store, MODEL)) == 1


# --- advisories ---------------------------------------------------------------------------------------------


def test_advisories_are_registered_replaced_by_a_newer_revision_and_refused_twice(opened: World) -> None:
    maker = opened.who("maker")
    first = csaf("SA-2026-001", affected=["1.4.0"], fixed=["1.5.0"])
    got = records.add_advisory(opened.svc, maker, MODEL, first)["advisory"]
    assert (got["id"], got["affected"], got["fixed"]) == ("SA-2026-001", ["1.4.0"], ["1.5.0"])
    assert records.public_view(opened.svc, MODEL)["figures"]["open_advisory_ids"] == ["SA-2026-001"]
    with pytest.raises(Conflict, match="already"):
        records.add_advisory(opened.svc, maker, MODEL, first)
    doc = json.loads(first)
    doc["document"]["tracking"]["current_release_date"] = "2026-12-02T00:00:00.000Z"
    doc["document"]["tracking"]["version"] = "2"
    doc["document"]["tracking"]["revision_history"].append({"date": "2026-12-02T00:00:00.000Z", "number": "2",
                                                            "summary": "Fixed in 1.5.0 only"})
    records.add_advisory(opened.svc, maker, MODEL, json.dumps(doc).encode())
    advisories = records.public_view(opened.svc, MODEL)["record"]["advisories"]
    assert [(a["id"], a["updated"][:10]) for a in advisories] == [("SA-2026-001", "2026-12-02")]
    with pytest.raises(NotFound):
        records.add_advisory(opened.svc, opened.who("rival"), MODEL, first)
    with pytest.raises(Forbidden):
        records.add_advisory(opened.svc, opened.who("lab"), MODEL, first)


def test_a_bad_csaf_is_422_with_the_field_path(opened: World) -> None:
    doc = json.loads(csaf("SA-2026-001", affected=["1.4.0"], fixed=["1.5.0"]))
    doc["document"]["category"] = 5
    with pytest.raises(Invalid) as exc:
        records.add_advisory(opened.svc, opened.who("maker"), MODEL, json.dumps(doc).encode())
    assert exc.value.loc[:2] == ["body", "csaf"] and "document" in exc.value.loc, exc.value.loc
    with pytest.raises(Invalid) as exc:
        records.add_advisory(opened.svc, opened.who("maker"), MODEL, csaf("SA-9", affected=["1"], fixed=["2"],
                                                                        model="CAM-1"))
    assert exc.value.loc[:3] == ["body", "csaf", "product_tree"]


# --- re-queue, the chain ----------------------------------------------------------------------------------------


def test_only_engineers_queue_a_retest_again_and_not_while_one_is_pending(opened: World) -> None:
    first = release(opened, "1.5.0")
    for name in ("maker", "cert"):
        with pytest.raises(Forbidden):
            records.requeue_retest(opened.svc, opened.who(name), MODEL, "1.5.0")
    with pytest.raises(Conflict, match="queued already"):
        records.requeue_retest(opened.svc, opened.who("lab"), MODEL, "1.5.0")
    with pytest.raises(NotFound):
        records.requeue_retest(opened.svc, opened.who("lab"), MODEL, "9.9.9")
    with unit(opened.svc.store) as s:
        s.get(QueuedRun, first["retest"]["queued_id"]).state = "failed"
    assert retests.settle_retests(opened.svc) == [f"{MODEL}: re-test of 1.5.0 failed: INCONCLUSIVE "
                                                  f"(the queued run 1 failed: no reason recorded)"]
    again = records.requeue_retest(opened.svc, opened.who("lab"), MODEL, "1.5.0")
    assert again["retest"]["queued_id"] != first["retest"]["queued_id"]
    assert again["release"]["retest"]["state"] == "queued" and again["revision"]["kind"] == "retest-queued"


def test_the_chain_is_append_only_and_verifies_after_every_change(opened: World) -> None:
    release(opened, "1.5.0")
    records.add_advisory(opened.svc, opened.who("maker"), MODEL, csaf("SA-1", affected=["1.4.0"], fixed=["1.5.0"]))
    release(opened, "1.6.0")
    chain = records.revisions(opened.svc, MODEL)
    assert [r["kind"] for r in chain["revisions"]] == ["opened", "release", "advisory", "release"]
    check = verify_chain(chain)
    assert check.ok and check.revisions == 4
    assert records.revision(opened.svc, MODEL, 2) == chain["revisions"][1]  # old revisions stay readable
    with pytest.raises(NotFound):
        records.revision(opened.svc, MODEL, 9)
    assert [(c["model"], c["seq"], c["kind"]) for c in records.changes(opened.svc, after=2)] == [
        (MODEL, 3, "advisory"), (MODEL, 4, "release")]
    assert records.changes(opened.svc)[0]["url"] == f"/records/{MODEL}/revisions/1"
    for statement in ("UPDATE record_revisions SET summary = 'edited' WHERE seq = 2",
                      "DELETE FROM record_revisions WHERE seq = 4"):
        with pytest.raises(DatabaseError, match="append-only"):
            with unit(opened.svc.store) as s:
                s.execute(text(statement))
    assert verify_chain(records.revisions(opened.svc, MODEL)).ok


def test_a_revision_edited_in_the_database_is_served_as_edited_and_fails_verification(opened: World) -> None:
    """Whoever gets past the triggers (the database's owner) cannot rewrite the record unseen."""
    release(opened, "1.5.0")
    with unit(opened.svc.store) as s:
        s.execute(text("DROP TRIGGER record_revisions_no_update"))
        stored = json.loads(s.scalar(text("SELECT document FROM record_revisions WHERE seq = 2")))
        stored["record"]["releases"][0]["signature"] = "valid, honestly"
        s.execute(text("UPDATE record_revisions SET document = :d WHERE seq = 2"), {"d": json.dumps(stored)})
    check = verify_chain(records.revisions(opened.svc, MODEL))
    assert not check.ok and check.first_bad == 2 and "hash" in check.reason


def test_an_append_that_lost_the_race_for_its_seq_retries_on_the_new_last_revision(opened: World) -> None:
    """SQLite serialises writers (BEGIN IMMEDIATE); on PostgreSQL two appends can read the same last
    revision: the loser's insert meets the unique (model, seq) and it builds again on the winner's."""
    key = load_private_key()
    seen: list[int | None] = []

    def make(last: dict | None) -> dict:
        seen.append(last["seq"] if last else None)
        stale = None if len(seen) == 1 else revision_from_json(last, "last")  # the first try read too early
        return make_revision(stale, kind="note", summary="a note", by="test", record=last["record"],
                             at=dt.datetime.now(dt.timezone.utc), key=key).as_json()

    made = store.append_revision(opened.svc.store, MODEL, make)
    assert seen == [1, 1] and made["seq"] == 2
    assert verify_chain(records.revisions(opened.svc, MODEL)).ok
    with pytest.raises(store.AppendContended):
        store.append_revision(opened.svc.store, MODEL, lambda last: {**last}, tries=2)  # always seq 2: taken


# --- certlab record open|list|show ------------------------------------------------------------------------------


def certlab(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["certlab", *args])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err  # type: ignore[return-value]


def test_the_record_commands_open_list_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CERTLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CERTLAB_DATABASE_URL", raising=False)
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    init_keys(tmp_path / "keys")
    assert certlab(monkeypatch, capsys, "record", "list")[:2] == (0, "no product records yet; open one with "
                                                               "certlab record open RUN_DIR --manufacturer ORG\n")
    unapproved = certifying_run(tmp_path / "reports", "20261101-090000-draft1", BASELINE, approved=False)
    code, _, err = certlab(monkeypatch, capsys, "record", "open", str(unapproved), "--manufacturer", "Demo Ltd")
    assert code == 2 and "not approved" in err and "Traceback" not in err
    run_dir = certifying_run(tmp_path / "reports", CERT_RUN, BASELINE)
    code, out, _ = certlab(monkeypatch, capsys, "record", "open", str(run_dir), "--manufacturer", "Demo Ltd",
                           "--product-name", "Smart thermostat")
    assert code == 0 and out.startswith(f"record {MODEL}: revision 1 (opened) ")
    code, out, _ = certlab(monkeypatch, capsys, "record", "list")
    assert code == 0 and out.startswith(f"{MODEL}\tDemo Ltd\trevision 1\tsupport days left ")
    code, out, _ = certlab(monkeypatch, capsys, "record", "show", MODEL)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"{MODEL} (Smart thermostat) by Demo Ltd" and "open advisories 0" in lines[1]
    assert lines[2].startswith("  #1 ") and "opened: record opened" in lines[2]
    code, _, err = certlab(monkeypatch, capsys, "record", "show", "CAM-9")
    assert code == 2 and "no record of model CAM-9" in err


# --- the chain's store on both backends -----------------------------------------------------------------------------


def test_the_chain_store_is_append_only_and_serialises_concurrent_appends(db_url: str, key_dir: Path) -> None:
    """SQLite and PostgreSQL alike: appends from several threads at once make one contiguous, verifying
    chain (a loser of the race for a seq builds again on the winner); UPDATE and DELETE are refused."""
    from concurrent.futures import ThreadPoolExecutor

    from lab.store import open_store

    init_keys(key_dir)
    key = load_private_key()
    with open_store(db_url) as db:
        org_id, product_id = store.organisation_and_product(db, organisation="Acme", model=MODEL, name="Thermostat",
                                                            vendor=None)

        def append(n: int) -> int:
            def make(last: dict | None) -> dict:
                prev = revision_from_json(last, "last") if last else None
                return make_revision(prev, kind="note", summary=f"note {n}", by="test",
                                     record=(last or {}).get("record") or {"model": MODEL},
                                     at=dt.datetime.now(dt.timezone.utc), key=key).as_json()

            def before(session: object, revision: dict) -> None:
                if revision["seq"] == 1:
                    store.new_product_record(session, model=MODEL, org_id=org_id, product_id=product_id,
                                             baseline_run_id="r1", inputs_dir="/nowhere")

            return store.append_revision(db, MODEL, make, before=before, tries=50)["seq"]

        with ThreadPoolExecutor(max_workers=4) as pool:
            seqs = sorted(pool.map(append, range(12), timeout=120))
        assert seqs == list(range(1, 13))
        chain = {"schema": "certlab.record/1", "model": MODEL, "revisions": store.chain(db, MODEL)}
        assert verify_chain(chain).ok
        assert [h.record.model for h in store.heads(db)] == [MODEL] and store.heads(db)[0].last["seq"] == 12
        assert [i.seq for i in store.feed(db, after=0, limit=3)] == [1, 2, 3]
        assert [i.seq for i in store.latest_feed(db, limit=2)] == [11, 12]
        for statement in ("UPDATE record_revisions SET summary = 'edited'", "DELETE FROM record_revisions"):
            with pytest.raises(DatabaseError, match="append-only"):
                with unit(db) as s:
                    s.execute(text(statement))
        assert len(store.chain(db, MODEL)) == 12
