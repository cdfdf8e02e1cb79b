"""A product record's revisions: hashed, signed with the lab key, and chained, so any edit shows.

Each revision holds the WHOLE record as of then. Its `hash` is the SHA-256 of the canonical JSON
of {seq, at, kind, summary, by, record, prev}; `prev` is the previous revision's hash (None for
the first), so changing, removing or reordering any revision breaks every later link; `signature`
is the lab key's Ed25519 signature over the hash's ASCII bytes and `key` the raw public key (hex),
so a forger who recomputes the hashes still cannot sign them. `verify_chain` names the first
revision that does not hold, and why:

    rev = make_revision(previous, kind="release", summary="1.4.1 registered", by="acme",
                        record=record, at=now, key=load_private_key())
    check = verify_chain(chain_document("TH-100", revisions), key_hex=pinned_or_None)

Without a pinned key the chain can only prove it was signed by ONE key throughout (the first
revision's): whoever checks compares that key with the lab's published one (`certlab
verify-record --key`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lab.errors import CertlabError

SCHEMA = "certlab.record/1"
KINDS = ("opened", "certified", "release", "advisory", "retest-queued", "retest", "note")
#: The fields of a revision, in the order they are shown; the first seven are hashed.
HASHED_FIELDS = ("seq", "at", "kind", "summary", "by", "record", "prev")
FIELDS = (*HASHED_FIELDS, "hash", "key", "signature")
AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_HASH = re.compile(r"[0-9a-f]{64}")
_KEY = _HASH  # a raw Ed25519 public key is 32 bytes
_SIGNATURE = re.compile(r"[0-9a-f]{128}")


class RecordFormatError(CertlabError):
    """A revision or chain document that is not in the record format (names the field)."""


def canonical(obj: object) -> bytes:
    """The one serialisation that is hashed: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True)
class Revision:
    """One signed state of a record; `record` is the whole document as of `at`."""

    seq: int
    at: str
    kind: str
    summary: str
    by: str
    record: dict
    prev: str | None
    hash: str
    key: str
    signature: str

    def as_json(self) -> dict:
        return {name: getattr(self, name) for name in FIELDS}


def content_hash(*, seq: int, at: str, kind: str, summary: str, by: str, record: dict, prev: str | None) -> str:
    """SHA-256 (hex) of the canonical JSON of the hashed fields."""
    content = {"seq": seq, "at": at, "kind": kind, "summary": summary, "by": by, "record": record, "prev": prev}
    return hashlib.sha256(canonical(content)).hexdigest()


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def format_at(at: datetime) -> str:
    """ISO UTC to the second; a naive datetime is refused (its zone would be a guess)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a revision's time must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return at.astimezone(timezone.utc).strftime(AT_FORMAT)


def make_revision(previous: Revision | None, *, kind: str, summary: str, by: str, record: dict,
                  at: datetime, key: Ed25519PrivateKey) -> Revision:
    """The next revision after `previous` (None: the first), hashed and signed with `key`."""
    if kind not in KINDS:
        raise ValueError(f"revision kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(record, dict):
        raise ValueError("a revision's record must be a dict (the whole record document)")
    record = json.loads(canonical(record))  # JSON-safe copy: what is stored is exactly what was hashed
    seq = previous.seq + 1 if previous is not None else 1
    prev = previous.hash if previous is not None else None
    stamp = format_at(at)
    digest = content_hash(seq=seq, at=stamp, kind=kind, summary=summary, by=by, record=record, prev=prev)
    return Revision(seq=seq, at=stamp, kind=kind, summary=summary, by=by, record=record, prev=prev, hash=digest,
                    key=public_key_hex(key.public_key()), signature=key.sign(digest.encode("ascii")).hex())


def revision_from_json(data: object, where: str) -> Revision:
    """A revision read back (store, file, URL); RecordFormatError naming `where` and the field.

    Unknown fields are refused: they would travel with the revision without being hashed.
    """
    problem = _format_problem(data)
    if problem:
        raise RecordFormatError(f"{where}: {problem}")
    assert isinstance(data, dict)
    return Revision(**{name: data[name] for name in FIELDS})


def _format_problem(data: object) -> str | None:
    """What keeps `data` from being a revision, naming the field; None when it is one."""
    if not isinstance(data, dict):
        return f"a revision must be a JSON object, not {_json_type(data)}"
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        return f"field {unknown[0]!r} is not part of a revision (it would not be covered by the hash); fix: remove it"
    missing = next((name for name in FIELDS if name not in data), None)
    if missing:
        return f"field {missing!r} is missing"
    seq = data["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return f"field 'seq' must be a whole number from 1, not {_short(seq)}"
    at = data["at"]
    if not isinstance(at, str) or not _AT.fullmatch(at) or not _parses(at):
        return f"field 'at' must be a UTC time like 2026-12-07T10:00:00Z, not {_short(at)}"
    if data["kind"] not in KINDS:
        return f"field 'kind' must be one of {', '.join(KINDS)}, not {_short(data['kind'])}"
    for name in ("summary", "by"):
        if not isinstance(data[name], str):
            return f"field {name!r} must be a string, not {_json_type(data[name])}"
    if not isinstance(data["record"], dict):
        return f"field 'record' must be a JSON object, not {_json_type(data['record'])}"
    prev = data["prev"]
    if prev is not None and not (isinstance(prev, str) and _HASH.fullmatch(prev)):
        return "field 'prev' must be null or a SHA-256 in lowercase hex"
    for name, pattern, what in (("hash", _HASH, "a SHA-256 in lowercase hex"),
                                ("key", _KEY, "a raw Ed25519 public key in lowercase hex (64 digits)"),
                                ("signature", _SIGNATURE, "an Ed25519 signature in lowercase hex (128 digits)")):
        if not (isinstance(data[name], str) and pattern.fullmatch(data[name])):
            return f"field {name!r} must be {what}"
    return None


def chain_document(model: str, revisions: list[Revision]) -> dict:
    """What `GET /records/{model}/revisions` serves and `certlab verify-record` reads."""
    return {"schema": SCHEMA, "model": model, "revisions": [r.as_json() for r in revisions]}


@dataclass(frozen=True)
class RevisionCheck:
    """One revision's outcome: `problem` is None when it verifies."""

    index: int  # position in the document, from 1
    kind: str | None
    at: str | None
    problem: str | None

    @property
    def label(self) -> str:
        """'revision 3 (release, 2026-12-07T10:00:00Z)': how the revision is named in every message."""
        detail = ", ".join(str(v) for v in (self.kind, self.at) if v is not None)
        return f"revision {self.index}" + (f" ({detail})" if detail else "")

    @property
    def line(self) -> str:
        return f"{self.label}: {self.problem or 'ok'}"


@dataclass(frozen=True)
class ChainCheck:
    """`verify_chain`'s verdict: `reason` is the one line naming the first bad revision (or the
    document's problem, first_bad None); `key` the public key (hex) the chain was checked against."""

    ok: bool
    revisions: int
    first_bad: int | None
    reason: str
    key: str | None
    checks: tuple[RevisionCheck, ...] = ()  # one per revision, for a line each


class ChainVerifier:
    """Verifies a chain fed in pieces (pages of a URL, or one whole document), keeping only what the
    next revision is checked against: the previous hash, the next seq and the key (plus one short
    check per revision, for a line each). Feeding every revision at once or page by page gives the
    same checks, so a page whose first revision does not continue the previous page is named.

        verifier = ChainVerifier("TH-100", key_hex=None)
        for page in pages:
            verifier.feed(page["revisions"])
        check = verifier.result()
    """

    def __init__(self, model: str, *, key_hex: str | None = None) -> None:
        pinned = key_hex.lower() if key_hex is not None else None
        if pinned is not None and not _KEY.fullmatch(pinned):
            raise ValueError("key_hex must be a raw Ed25519 public key in hex (64 digits)")
        self.model = model
        self._pinned = pinned is not None
        self._key = pinned
        self._previous_hash: str | None = None
        self._checks: list[RevisionCheck] = []

    @property
    def count(self) -> int:
        """Revisions fed so far."""
        return len(self._checks)

    @property
    def last_hash(self) -> str | None:
        """The last revision's hash as given (what the next one must name as `prev`)."""
        return self._previous_hash

    def feed(self, items: Iterable[object]) -> RevisionCheck | None:
        """Check the next revisions in order; the first of them that fails, else None."""
        first_bad: RevisionCheck | None = None
        for item in items:
            check = self._check(len(self._checks) + 1, item)
            self._checks.append(check)
            if check.problem and first_bad is None:
                first_bad = check
        return first_bad

    def result(self) -> ChainCheck:
        """The verdict over every revision fed (none fed: not a record chain)."""
        if not self._checks:
            return ChainCheck(False, 0, None, "not a record chain: no revisions", self._key)
        bad = next((c for c in self._checks if c.problem), None)
        if bad is None:
            return ChainCheck(True, len(self._checks), None, "", self._key, tuple(self._checks))
        return ChainCheck(False, len(self._checks), bad.index, bad.line, self._key, tuple(self._checks))

    def _check(self, index: int, item: object) -> RevisionCheck:
        kind, at = _label_parts(item)
        problem = _format_problem(item)
        if problem:
            self._previous_hash = (item.get("hash") if isinstance(item, dict) and isinstance(item.get("hash"), str)
                                   else None)
            return RevisionCheck(index, kind, at, problem)
        assert isinstance(item, dict)
        rev = Revision(**{name: item[name] for name in FIELDS})
        if self._key is None:
            self._key = rev.key
        problem = _revision_problem(rev, index, self.model, self._previous_hash, self._key, self._pinned)
        self._previous_hash = rev.hash
        return RevisionCheck(index, kind, at, problem)


def verify_chain(document: object, *, key_hex: str | None = None) -> ChainCheck:
    """Check every revision (fields, seq from 1 without gaps, prev = previous hash, the hash
    recomputed, one key throughout, each signature) and name the first that fails.

    `key_hex` pins the lab's key (raw public key, hex); without it the first revision's key is
    the one all must share. Later revisions are still checked each against its predecessor as
    stored, so a hand edit in revision 3 of 5 shows as revision 3 alone.
    """
    problem = document_problem(document)
    if problem:
        return ChainCheck(False, 0, None, f"not a record chain: {problem}", key_hex)
    assert isinstance(document, dict)
    verifier = ChainVerifier(document["model"], key_hex=key_hex)
    verifier.feed(document["revisions"])
    return verifier.result()


def document_problem(document: object, *, page: bool = False) -> str | None:
    """What keeps `document` from being a chain document; None when it is one. A later `page` of a
    chain may hold no revisions (the chain ended where the last page did)."""
    if not isinstance(document, dict):
        return f"the document must be a JSON object, not {_json_type(document)}"
    schema = document.get("schema")
    if schema != SCHEMA:
        if schema == "certlab.record-view/1":
            return ("this is a record's view (GET /records/{model}); fix: give its revisions "
                    "(GET /records/{model}/revisions)")
        return f"field 'schema' must be {SCHEMA!r}, not {_short(schema)}"
    if not isinstance(document.get("model"), str) or not document["model"]:
        return "field 'model' must name the product model"
    revisions = document.get("revisions")
    if not isinstance(revisions, list):
        return f"field 'revisions' must be a list, not {_json_type(revisions)}"
    if not revisions and not page:
        return "field 'revisions' is empty: a record has at least the revision that opened it"
    return None


def _revision_problem(rev: Revision, index: int, model: str, previous_hash: str | None, expected_key: str,
                      pinned: bool) -> str | None:
    if rev.seq != index:
        return f"seq is {rev.seq} where {index} was expected (a revision is missing, added or out of order)"
    if index == 1 and rev.prev is not None:
        return "prev must be null in the first revision (revisions before it are missing)"
    if index > 1 and rev.prev != previous_hash:
        return f"prev does not match revision {index - 1}'s hash (the chain is broken here)"
    if "model" not in rev.record:
        return "its record names no model"
    if rev.record["model"] != model:
        return f"its record is for model {_short(rev.record['model'])}, not the document's {model!r}"
    if content_hash(seq=rev.seq, at=rev.at, kind=rev.kind, summary=rev.summary, by=rev.by, record=rev.record,
                    prev=rev.prev) != rev.hash:
        return "hash does not match its content (the revision was changed after it was signed)"
    if rev.key != expected_key:
        if pinned:
            return f"signed by key {rev.key[:16]}..., not the pinned lab key {expected_key[:16]}..."
        return f"key changed: signed by {rev.key[:16]}..., the chain began with {expected_key[:16]}..."
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(rev.key)).verify(bytes.fromhex(rev.signature),
                                                                          rev.hash.encode("ascii"))
    except (InvalidSignature, ValueError):
        return "signature does not verify under its key"
    return None


def _label_parts(item: object) -> tuple[str | None, str | None]:
    """Kind and time for naming a revision, only when they are well-formed (never echo junk)."""
    if not isinstance(item, dict):
        return None, None
    kind = item.get("kind") if item.get("kind") in KINDS else None
    at = item.get("at") if isinstance(item.get("at"), str) and _AT.fullmatch(item["at"]) else None
    return kind, at


def _parses(at: str) -> bool:
    try:
        datetime.strptime(at, AT_FORMAT)
    except ValueError:
        return False
    return True


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _short(value: object, limit: int = 40) -> str:
    """A value for a one-line message: repr, cut, control characters escaped by repr."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
