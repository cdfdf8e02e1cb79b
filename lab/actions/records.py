"""Product records: the lab's signed, append-only record of a certified product, kept up to date.

An engineer opens a record from an approved, verifying report; the product's manufacturer then
registers firmware releases (image + CycloneDX SBOM) and security advisories (CSAF 2.0); each
release queues a re-test of the certifying run's suites with the release installed first, and the
record keeper (lab/actions/retests.py) writes its verdict delta into the record when it ends. Every change is a new
revision, signed with the lab key and chained by hash (`lab.records.chain`); anyone reads the
record, its revisions and the feed without an account.
One set of rules for the API (lab/api/routes/records.py), the pages and `certlab record`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from lab.actions import reports as report_actions
from lab.actions.context import Caller, Services
from lab.actions.errors import ActionError, Conflict, Forbidden, Invalid, NotFound, Unavailable
from lab.actions.firmware import check_image, stored_path
from lab.actions.uploads import receive
from lab.api.audit import record as audit
from lab.errors import CertlabError
from lab.orchestrator.rundir import option_value
from lab.ownerfiles import copy_private, private_dir, write_private
from lab.records import record as doc
from lab.records.chain import chain_document, make_revision, revision_from_json
from lab.records.csaf import CsafError, read_advisory
from lab.records.sbom import Sbom, SbomError, kept_sbom, read_sbom, sbom_diff
from lab.reports.conformance import JSON_FILE
from lab.reports.keys import load_private_key
from lab.reports.verify import verification as report_verification
from lab.store import records as store
from lab.store.models import Organisation, Product
from lab.store.scheduling import cancel_queued_run
from lab.store.unit import reading

RECORDS_DIR = "records"  # under the service's data dir: each model's re-test inputs
SBOMS_DIR = "sboms"  # under the service's data dir: each release's SBOM as uploaded, named by its SHA-256
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
KEEPER = "record keeper"
FEED_LIMIT = 100
CHAIN_PAGE = 100  # revisions per page of the chain when paged without a limit
CHAIN_PAGE_MAX = 500
WHOLE_CHAIN_MAX = 200  # the chain served at once (no after/limit) up to this many revisions
INDEX_LIMIT = 1000
SAFE_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INPUT_KINDS = ("ics", "ixit", "assessments")


@dataclass(frozen=True)
class LabCaller:
    """Who the audit log names for a change made by no user: the keeper, `certlab record open`."""

    name: str = KEEPER
    role: str = "lab"
    org: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class Change:
    """What one revision does: its kind, its one-line summary, the whole record after it."""

    kind: str
    summary: str
    record: dict[str, Any]


# --- the chain ---------------------------------------------------------------------------------------


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _lab_key() -> Any:
    try:
        return load_private_key()
    except CertlabError as exc:
        raise Unavailable(f"the lab key that signs records cannot be read: {exc}") from None


def append_revision(svc: Services, model: str, by: str, change: Callable[[dict[str, Any] | None], Change],
            before: Callable[[Any, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Sign and append the revision `change` makes of the record as it stands (re-made on a race)."""
    key = _lab_key()

    def make(last: dict[str, Any] | None) -> dict[str, Any]:
        previous = revision_from_json(last, f"record {model}, last revision") if last is not None else None
        made = change(last["record"] if last is not None else None)
        return make_revision(previous, kind=made.kind, summary=made.summary, by=by, record=made.record,
                             at=now(), key=key).as_json()

    try:
        return store.append_revision(svc.store, model, make, before=before)
    except store.AppendContended as exc:
        raise Conflict(str(exc)) from None


def _by(who: Caller) -> str:
    """How a revision names its author: the organisation and role (the audit log has the person)."""
    return f"{who.org} ({who.role})"


def record_path(model: str) -> str:
    return f"/records/{quote(model, safe='')}"


# --- reading (public) ----------------------------------------------------------------------------------


def _last_or_404(svc: Services, model: str) -> dict[str, Any]:
    last = store.last_revision(svc.store, model)
    if last is None:
        raise NotFound("record", model, f"no record of model {model}")
    return last


def _today(today: dt.date | None) -> dt.date:
    return today or dt.datetime.now(dt.timezone.utc).date()


def _revision_ref(revision: dict[str, Any]) -> dict[str, Any]:
    return {key: revision.get(key) for key in ("seq", "at", "kind", "hash")}


def public_view(svc: Services, model: str, *, today: dt.date | None = None) -> dict[str, Any]:
    """The record as `GET /records/{model}` shows it: the last revision's record and today's figures."""
    last = _last_or_404(svc, model)
    record = last["record"]
    return {"schema": "certlab.record-view/1", "model": model, "manufacturer": record.get("manufacturer"),
            "product": record.get("product"), "revision": _revision_ref(last),
            "figures": doc.figures(record, _today(today)), "record": record,
            "links": {"revisions": f"{record_path(model)}/revisions", "page": f"/public{record_path(model)}",
                      "feed": "/feed/records.json"}}


def public_index(svc: Services, *, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Every record, by model, with its headline figures."""
    day = _today(today)
    out = []
    for head in store.heads(svc.store, limit=INDEX_LIMIT):
        if head.last is None:
            continue
        record = head.last["record"]
        out.append({"model": head.record.model, "manufacturer": record.get("manufacturer"),
                    "product": record.get("product"), "figures": doc.figures(record, day),
                    "revision": _revision_ref(head.last)})
    return out


def revisions(svc: Services, model: str, *, after: int | None = None, limit: int | None = None) -> dict[str, Any]:
    """A page of the chain document (what `certlab verify-record` reads): each revision exactly as
    stored, never re-made, so whatever happened to a stored revision shows when it is verified.

    The revisions after seq `after`, at most `limit` (default CHAIN_PAGE, at most CHAIN_PAGE_MAX);
    `next` is the path of the following page (None at the end). Without either, the whole chain as
    before, up to WHOLE_CHAIN_MAX revisions: past that (each revision holds the whole record, so the
    chain grows with the square of the releases) the first page and its `next`. Only the page's
    revisions are read from the store.
    """
    newest = store.last_seq(svc.store, model)
    if newest is None:
        raise NotFound("record", model, f"no record of model {model}")
    paged = after is not None or limit is not None or newest > WHOLE_CHAIN_MAX
    start = max(0, after or 0)
    size = max(1, min(limit or CHAIN_PAGE, CHAIN_PAGE_MAX)) if paged else WHOLE_CHAIN_MAX
    docs = store.chain_page(svc.store, model, after=start, limit=size + 1)
    more = len(docs) > size
    docs = docs[:size]
    following = f"{record_path(model)}/revisions?after={docs[-1]['seq']}&limit={size}" if more else None
    return {**chain_document(model, []), "revisions": docs, "after": start, "next": following}


def revision(svc: Services, model: str, seq: int) -> dict[str, Any]:
    """One revision as it was signed (old revisions stay readable)."""
    found = store.revision(svc.store, model, seq)
    if found is None:
        raise NotFound("revision", seq, f"record {model} has no revision {seq}")
    return found


def changes(svc: Services, *, after: int = 0, limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    """The feed: revisions of every record after feed id `after`, oldest first."""
    items = store.feed(svc.store, after=max(0, after), limit=max(1, min(limit, FEED_LIMIT)))
    return [_feed_item(i) for i in items]


def latest_changes(svc: Services, *, limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    """The newest revisions of every record (the Atom feed), oldest first."""
    return [_feed_item(i) for i in store.latest_feed(svc.store, limit=max(1, min(limit, FEED_LIMIT)))]


def _feed_item(item: store.FeedItem) -> dict[str, Any]:
    return {"id": item.id, "model": item.model, "seq": item.seq, "at": stamp(item.at), "kind": item.kind,
            "summary": item.summary, "hash": item.hash, "url": f"{record_path(item.model)}/revisions/{item.seq}"}


def revision_list(svc: Services, model: str) -> list[dict[str, Any]]:
    """The record's revisions, newest first, from the store's columns (no revision is loaded or verified:
    the page lists them, `certlab verify-record` verifies the chain)."""
    items = store.revision_list(svc.store, model)
    if not items:
        raise NotFound("record", model, f"no record of model {model}")
    return [{"seq": i.seq, "at": stamp(i.at), "kind": i.kind, "summary": i.summary, "hash": i.hash} for i in items]


def release_sbom(svc: Services, model: str, version: str) -> bytes:
    """Release `version`'s SBOM exactly as uploaded: its SHA-256 is the one the signed record names."""
    release = doc.release_of(_last_or_404(svc, model)["record"], version)
    if release is None:
        raise NotFound("release", version, f"record {model} has no release {version}")
    entry = release.get("sbom") or {}
    if doc.sbom_held_whole(entry):
        raise NotFound("sbom", version, f"release {version} of {model} was registered before SBOMs were kept as "
                                        f"uploaded: its components are in the record itself ({record_path(model)})")
    return _kept_sbom_bytes(svc, model, version, entry)


def can_manage(svc: Services, who: Caller | None, model: str) -> bool:
    """Whether `who` registers releases and advisories for the model: its manufacturer's users."""
    if who is None or who.role != "manufacturer":
        return False
    row = store.product_record(svc.store, model)
    return row is not None and row.org_id == who.org_id


# --- opening a record ------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Invalid(["body", "run_id"], f"{path}: no {what}; fix: open the record from a finished run "
                                          f"with an approved report") from None
    except (OSError, ValueError) as exc:
        raise Invalid(["body", "run_id"], f"{path}: {what} unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise Invalid(["body", "run_id"], f"{path}: {what} is not a JSON object")
    return data


def _safe_relative(ref: str) -> Path | None:
    parts = [p for p in str(ref).split("/") if p]
    if not parts or any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    return Path(*parts)


def keep_inputs(run_dir: Path, model: str, dest: Path) -> str | None:
    """Copy the run's ICS, IXIT (with the files it names beside itself), assessments (with the
    assessor's evidence at the paths the record names) and run.json into `dest` (owner-only) for the
    re-tests; returns the IXIT's text."""
    private_dir(dest)
    index_path = run_dir / "inputs" / "inputs.json"
    index = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else {}
    entry = (index.get("products") or {}).get(model) or {}
    for kind in INPUT_KINDS:
        rel = (entry.get(kind) or {}).get("file") or f"inputs/products/{model}/{kind}.yaml"
        source = run_dir / rel
        if source.is_file():
            copy_private(source, dest / f"{kind}.yaml")
    for item in entry.get("ixit_files") or []:  # what the IXIT names beside itself (security.txt's key)
        ref, rel = _safe_relative(item.get("ref", "")), item.get("file")
        if ref is not None and rel and (run_dir / rel).is_file():
            private_dir((dest / ref).parent)
            copy_private(run_dir / rel, dest / ref)
    for files in ((index.get("assessor_evidence") or {}).get(model) or {}).values():
        for item in files:
            ref, rel = _safe_relative(item.get("ref", "")), item.get("file")
            if ref is None or not rel or not (run_dir / rel).is_file():
                continue
            private_dir((dest / ref).parent)
            copy_private(run_dir / rel, dest / ref)
    copy_private(run_dir / "run.json", dest / "run.json")
    ixit = dest / "ixit.yaml"
    return ixit.read_text(encoding="utf-8") if ixit.is_file() else None


def _refuse_retest(svc: Services, run_dir: Path) -> None:
    """A run that took its ICS from a record's input copies is one of the record's re-tests: its report
    follows a certificate up, it never becomes one (Conflict)."""
    try:
        options = [str(o) for o in json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("options") or []]
        ics = option_value(options, "--ics")
        retest = ics is not None and Path(ics).resolve().is_relative_to((svc.settings.data_dir / RECORDS_DIR).resolve())
    except (OSError, ValueError, IndexError, TypeError, AttributeError):
        retest = False
    if retest:
        raise Conflict(f"run {run_dir.name} is a re-test of a product record (its inputs are the record's copies): "
                       f"its report follows a certificate up, it is not one; open the record from the certifying run")


def _certify(svc: Services, run_dir: Path, *, org_id: int, product_id: int, manufacturer: str, product: str,
             by: str, model: str) -> dict[str, Any]:
    """Open the model's record from the run, or add the run as a later certifying report (the new baseline)."""
    conformance_path = run_dir / JSON_FILE
    raw = conformance_path.read_bytes()
    conformance = _read_json(conformance_path, "conformance.json")
    run_id = run_dir.name
    existing = store.product_record(svc.store, model)
    if existing is not None and existing.org_id != org_id:
        raise Conflict(f"model {model} has a record of another manufacturer; a model has one record")
    last = store.last_revision(svc.store, model)
    if last is not None and doc.is_certified_by(last["record"], run_id):
        raise Conflict(f"run {run_id} is a certifying report of the {model} record already")
    dest = svc.settings.data_dir / RECORDS_DIR / model / run_id
    try:
        ixit_text = keep_inputs(run_dir, model, dest)
    except (OSError, ValueError) as exc:
        raise Unavailable(f"run {run_id}: its inputs cannot be kept in {dest} for the re-tests ({exc})") from None
    run = doc.Certifying(run_id=run_id, conformance=conformance, conformance_sha256=hashlib.sha256(raw).hexdigest(),
                         ixit_text=ixit_text)
    lab = (conformance.get("run") or {}).get("lab")

    def change(record: dict[str, Any] | None) -> Change:
        if record is None:
            return Change("opened", f"record opened: {model} certified by report "
                                    f"{doc.certification_entry(run)['report_id']}",
                          doc.new_record(run, model=model, manufacturer=manufacturer, product=product, lab=lab))
        if doc.is_certified_by(record, run_id):
            raise Conflict(f"run {run_id} is a certifying report of the {model} record already")
        return Change("certified", f"certified again by report {doc.certification_entry(run)['report_id']}: "
                                   f"the new baseline", doc.add_certification(record, run))

    def before(session: Any, revision: dict[str, Any]) -> None:
        if revision["seq"] == 1:
            store.new_product_record(session, model=model, org_id=org_id, product_id=product_id,
                                     baseline_run_id=run_id, inputs_dir=str(dest))
        else:
            store.set_baseline(session, model=model, baseline_run_id=run_id, inputs_dir=str(dest))

    append_revision(svc, model, by, change, before)
    return public_view(svc, model)


def _model_of(run_dir: Path) -> str:
    conformance = _read_json(run_dir / JSON_FILE, "conformance.json")
    try:
        model = doc.certified_model(conformance, str(run_dir / JSON_FILE))
    except doc.RecordError as exc:
        raise Invalid(["body", "run_id"], str(exc)) from None
    if not SAFE_MODEL.match(model):
        raise Invalid(["body", "run_id"], f"model {model!r}: not a name a record can be kept under "
                                          f"(letters, digits, '.', '_', '-')")
    return model


def open_record(svc: Services, who: Caller, run_id: str) -> dict[str, Any]:
    """Open (or add a certifying report to) the record of the run's booking's product (engineers):
    the run's report must be approved and verify."""
    if not who.is_engineer:
        raise Forbidden("only lab engineers open product records")
    booking = report_actions.visible_run(svc, who, run_id)
    run_dir = report_actions.run_dir_of(svc, run_id)
    _refuse_retest(svc, run_dir)
    if not report_actions.is_approved(run_dir):
        raise Conflict(f"run {run_id}: its report is not approved; a record is opened from an approved report")
    check = report_actions.verification(svc, who, run_id)
    if not check.ok:
        raise Conflict(f"run {run_id}: its report does not verify ({check.state}: "
                       f"{'; '.join(check.problems[:3]) or check.signature}); a record needs a report that verifies")
    model = _model_of(run_dir)
    product = booking.product
    if product.model != model:
        raise Invalid(["body", "run_id"], f"run {run_id} tested model {model}, its booking's product is "
                                          f"{product.model}")
    with reading(svc.store) as s:
        manufacturer = s.get(Organisation, booking.org_id).name
    return _certify(svc, run_dir, org_id=booking.org_id, product_id=product.id, manufacturer=manufacturer,
                    product=product.name, by=_by(who), model=model)


def open_record_from_run(svc: Services, run_dir: Path, *, manufacturer: str, product_name: str | None,
                         by: str) -> dict[str, Any]:
    """Open a record from a run directory without a booking (`certlab record open`, the demo): the
    organisation and product rows are made if missing. The report must be approved and verify."""
    run_dir = Path(run_dir).resolve()
    if not (run_dir / "run.json").is_file():
        raise Invalid(["run_dir"], f"{run_dir}: not a run directory (no run.json); fix: give a run "
                                   f"directory made by certlab run")
    _refuse_retest(svc, run_dir)
    if not report_actions.is_approved(run_dir):
        raise Conflict(f"{run_dir}: its report is not approved; fix: certlab report approve {run_dir} first")
    check = report_verification(run_dir)
    if not check.ok:
        raise Conflict(f"{run_dir}: its report does not verify ({check.state}: "
                       f"{'; '.join(check.problems[:3]) or check.signature})")
    model = _model_of(run_dir)
    if not manufacturer.strip():
        raise Invalid(["manufacturer"], "the manufacturer's organisation is empty; fix: --manufacturer 'Name'")
    vendor = next((i.get("vendor") for i in _read_json(run_dir / JSON_FILE, "conformance.json").get("items") or []
                   if isinstance(i, dict) and i.get("vendor")), None)
    org_id, product_id = store.organisation_and_product(svc.store, organisation=manufacturer.strip(), model=model,
                                                        name=product_name, vendor=vendor)
    with reading(svc.store) as s:
        product = s.get(Product, product_id).name
    view = _certify(svc, run_dir, org_id=org_id, product_id=product_id, manufacturer=manufacturer.strip(),
                    product=product_name or product, by=by, model=model)
    audit(svc.store, caller=LabCaller(name=by[:128]), method="EVENT",  # no HTTP request logged it
          path=f"{record_path(model)}/revisions/{view['revision']['seq']}", status=201,
          detail=f"record {view['revision']['kind']} from run {run_dir.name} ({run_dir})"[:2000])
    return view


# --- the manufacturer's releases and advisories ---------------------------------------------------------------


def _managed(svc: Services, who: Caller, model: str) -> Any:
    """The model's product record if `who` is its manufacturer; another organisation's: 404 (tenancy)."""
    if who.role != "manufacturer":
        raise Forbidden("only the product's manufacturer registers its releases and advisories")
    row = store.product_record(svc.store, model)
    if row is None or row.org_id != who.org_id:
        raise NotFound("record", model, f"no record of model {model}")
    return row


def _released_on(value: str | None) -> str:
    if value is None or not str(value).strip():
        return _today(None).isoformat()
    try:
        return dt.date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise Invalid(["body", "released_on"], f"released_on {value!r}: not a date; fix: give YYYY-MM-DD") from None


def _ixit_of(row: Any) -> str:
    path = Path(row.inputs_dir) / "ixit.yaml"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _store_image(svc: Services, image: BinaryIO, model: str, ixit_text: str) -> tuple[Path, str, int, tuple]:
    """Keep the image by content hash (as booking uploads are): (path, sha256, size, (version, signature, detail))."""
    firmware_dir = svc.settings.firmware_dir
    tmp, sha256, size = receive(image, firmware_dir / "tmp", svc.settings.max_upload_bytes, "image")
    try:
        if size == 0:
            raise Invalid(["body", "image"], "the uploaded image is empty; fix: upload the release's image")
        try:
            checked = check_image(tmp.read_bytes(), model=model, ixit_text=ixit_text)
        except Invalid as exc:
            raise Invalid(["body", "image"], exc.msg) from None
        if checked[0] is None:
            raise Invalid(["body", "image"], f"the image's version cannot be read ({checked[2]}); fix: upload "
                                             f"the release as a firmware image that names its version")
        final = stored_path(firmware_dir, sha256)
        private_dir(final.parent)
        if final.exists():
            tmp.unlink()
        else:
            os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final, sha256, size, checked


def retest_options(options: list[str], inputs: Path, image: Path) -> list[str]:
    """The certifying run's options with its ICS, IXIT and assessments pointing at the record's copies
    and the release to install first (`--release`)."""
    replaced = {"--ics", "--ixit", "--assessments", "--release"}
    out: list[str] = []
    skip = False
    for opt in options:
        if skip:
            skip = False
            continue
        if opt in replaced:
            skip = True
            continue
        if any(opt.startswith(f"{name}=") for name in replaced):
            continue
        out.append(opt)
    for kind in INPUT_KINDS:
        if (inputs / f"{kind}.yaml").is_file():
            out += [f"--{kind}", str(inputs / f"{kind}.yaml")]
    return [*out, "--release", str(image)]


def _queue_retest(svc: Services, row: Any, version: str, image: Path, who: Caller) -> int:
    """Queue the certifying run's suites on any bench of the model, the release installed first; the
    payload names `who` (the re-test's booking is made in their name when it ends)."""
    from lab.orchestrator import queued  # the orchestrator's queue (heavy imports: only when queueing)

    inputs = Path(row.inputs_dir)
    try:
        spec = json.loads((inputs / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Unavailable(f"record {row.model}: the certifying run's copy {inputs / 'run.json'} is unreadable "
                          f"({exc}); fix: open the record again from its certifying run") from None
    return queued.add(svc.store, model=row.model, capabilities=[], suites=[str(s) for s in spec.get("suites") or []],
                      options=retest_options([str(o) for o in spec.get("options") or []], inputs, image),
                      edition=str(spec.get("edition") or "v2"), reports_dir=svc.settings.reports_dir, priority=0,
                      requested_by=f"record {row.model} release {version}", requested_by_user_id=who.id)


def sbom_path(svc: Services, sha256: str) -> Path:
    return svc.settings.data_dir / SBOMS_DIR / f"{sha256}.cdx.json"


def keep_sbom(svc: Services, data: bytes, sha256: str) -> None:
    """The uploaded SBOM kept by its SHA-256, owner-only (the same bytes twice: kept once; a damaged copy
    is written again)."""
    path = sbom_path(svc, sha256)
    try:
        if not _kept_as(path, sha256):
            private_dir(path.parent)
            write_private(path, data)
    except OSError as exc:
        if _kept_as(path, sha256):
            return  # another request kept the same bytes meanwhile
        raise Unavailable(f"the SBOM cannot be kept in {path.parent} ({exc})") from None


def _kept_as(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def _kept_sbom_bytes(svc: Services, model: str, version: str, entry: dict[str, Any]) -> bytes:
    """The kept bytes of a release's SBOM, checked against the hash the record names."""
    sha256 = str(entry.get("sha256") or "")
    if not SHA256_HEX.match(sha256):
        raise Unavailable(f"record {model}, release {version}: field 'sbom.sha256' is not a SHA-256 ({sha256[:80]!r})")
    path = sbom_path(svc, sha256)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unavailable(f"record {model}, release {version}: its kept SBOM {path} cannot be read ({exc}); "
                          f"fix: restore it from the data dir's backup") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise Unavailable(f"record {model}, release {version}: its kept SBOM {path} does not match the SHA-256 "
                          f"the record names; fix: restore it from the data dir's backup")
    return data


def _previous_sbom(svc: Services, model: str, release: dict[str, Any]) -> Sbom | dict[str, Any]:
    """A registered release's SBOM components: from the record itself when it was registered before SBOMs
    were kept apart (those revisions are never rewritten), else from the kept file by its hash."""
    entry = release.get("sbom") or {}
    if doc.sbom_held_whole(entry):
        return entry
    try:
        return kept_sbom(_kept_sbom_bytes(svc, model, str(release.get("version")), entry))
    except SbomError as exc:
        raise Unavailable(f"record {model}, release {release.get('version')}: its kept SBOM is unreadable "
                          f"({exc.msg})") from None


def release_sbom_diff(svc: Services, model: str, record: dict[str, Any], bom: Sbom) -> dict[str, Any]:
    """The SBOM's component diff against the release registered before it (null lists for the first)."""
    previous = (record.get("releases") or [None])[-1]
    if previous is None:
        return sbom_diff(None, bom)
    return sbom_diff(_previous_sbom(svc, model, previous), bom, against=previous.get("version"))


def add_release(svc: Services, who: Caller, model: str, image: BinaryIO, image_name: str | None, sbom: bytes,
                released_on: str | None) -> dict[str, Any]:
    """Register a firmware release (its manufacturer): image kept and its signature checked against the
    record's IXIT key, SBOM validated and diffed against the previous release's, re-test queued."""
    row = _managed(svc, who, model)
    day = _released_on(released_on)
    try:
        bom = read_sbom(sbom)
    except SbomError as exc:
        raise Invalid(["body", "sbom", *exc.loc], exc.msg) from None
    path, sha256, size, (version, signature, detail) = _store_image(svc, image, model, _ixit_of(row))
    keep_sbom(svc, sbom, bom.sha256)
    last = store.last_revision(svc.store, model)
    if last is not None and doc.release_of(last["record"], version) is not None:
        raise Conflict(f"release {version} of {model} is registered already; a release is registered once")
    queued_id = _queue_retest(svc, row, version, path, who)
    registered = stamp(now())

    def change(record: dict[str, Any] | None) -> Change:
        if record is None:
            raise NotFound("record", model, f"no record of model {model}")
        if doc.release_of(record, version) is not None:
            raise Conflict(f"release {version} of {model} is registered already; a release is registered once")
        release = {"version": version, "released_on": day, "registered_at": registered,
                   "filename": Path(image_name or f"{model}-{version}").name, "sha256": sha256, "size": size,
                   "signature": signature, "signature_detail": detail, "sbom": bom.summary(),
                   "sbom_diff": release_sbom_diff(svc, model, record, bom), "retest": doc.new_retest(queued_id)}
        return Change("release", f"release {version} registered (signature {signature}); re-test queued "
                                 f"(queue {queued_id})", doc.add_release(record, release))

    try:
        revision_doc = append_revision(svc, model, _by(who), change)
    except ActionError:
        cancel_queued_run(svc.store, queued_id=queued_id)  # the release was not recorded: no re-test of it
        raise
    release = doc.release_of(revision_doc["record"], version)
    return {"release": release, "retest": {"queued_id": queued_id}, "revision": _revision_ref(revision_doc)}


def add_advisory(svc: Services, who: Caller, model: str, csaf: bytes) -> dict[str, Any]:
    """Register a CSAF 2.0 advisory (its manufacturer); the same id with a later tracking date replaces it."""
    _managed(svc, who, model)
    try:
        advisory = read_advisory(csaf, model=model).as_json()
    except CsafError as exc:
        raise Invalid(["body", "csaf", *exc.loc], exc.msg) from None
    registered = stamp(now())

    def change(record: dict[str, Any] | None) -> Change:
        if record is None:
            raise NotFound("record", model, f"no record of model {model}")
        how = doc.advisory_change(record, advisory)
        if how == "same":
            raise Conflict(f"advisory {advisory['id']} is in the record already, as sent")
        if how == "not newer":
            raise Conflict(f"advisory {advisory['id']} is in the record with a tracking date not older than "
                           f"{advisory['updated']}; fix: send its newer revision (document.tracking.current_release_date)")
        verb = "updated" if how == "newer" else "registered"
        return Change("advisory", f"advisory {advisory['id']} {verb}: {advisory['title']}",
                      doc.put_advisory(record, advisory, registered))

    revision_doc = append_revision(svc, model, _by(who), change)
    kept = next(a for a in revision_doc["record"]["advisories"] if a["id"] == advisory["id"])
    return {"advisory": kept, "revision": _revision_ref(revision_doc)}


def requeue_retest(svc: Services, who: Caller, model: str, version: str) -> dict[str, Any]:
    """Queue release `version`'s re-test again (engineers), e.g. after a lab fault."""
    if not who.is_engineer:
        raise Forbidden("only lab engineers queue a re-test again")
    row = store.product_record(svc.store, model)
    last = store.last_revision(svc.store, model)
    if row is None or last is None:
        raise NotFound("record", model, f"no record of model {model}")
    release = doc.release_of(last["record"], version)
    if release is None:
        raise NotFound("release", version, f"record {model} has no release {version}")
    state = (release.get("retest") or {}).get("state")
    if state in doc.PENDING_RETESTS:
        raise Conflict(f"release {version}'s re-test is {state} already (queue {release['retest'].get('queued_id')})")
    path = stored_path(svc.settings.firmware_dir, release["sha256"])
    if not path.is_file():
        raise Unavailable(f"release {version}: its stored image {path} is missing; the re-test cannot install it")
    queued_id = _queue_retest(svc, row, version, path, who)

    def change(record: dict[str, Any] | None) -> Change:
        current = doc.release_of(record or {}, version) or {}
        if (current.get("retest") or {}).get("state") in doc.PENDING_RETESTS:
            raise Conflict(f"release {version}'s re-test is queued already")
        return Change("retest-queued", f"re-test of {version} queued again (queue {queued_id})",
                      doc.set_retest(record or {}, version, doc.new_retest(queued_id)))

    try:
        revision_doc = append_revision(svc, model, _by(who), change)
    except ActionError:
        cancel_queued_run(svc.store, queued_id=queued_id)
        raise
    return {"release": doc.release_of(revision_doc["record"], version), "retest": {"queued_id": queued_id},
            "revision": _revision_ref(revision_doc)}
