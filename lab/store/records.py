"""Product records in the store: which product a model's record is about, and its append-only chain.

A revision is appended in one transaction with the read of the one before it: the caller's
`make` turns the last revision's JSON (or None) into the next one. Two appends racing for the
same next `seq` meet at the unique (model, seq) constraint; the loser starts again on the new
last revision (a bounded number of times), so the chain never forks and never skips. Nothing here
updates or deletes a revision (the database's triggers would refuse it anyway).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from lab.store.db import Store
from lab.store.models import Organisation, Product, ProductRecord, RecordRevision
from lab.store.unit import Target, reading, unit

APPEND_TRIES = 5  # concurrent appends to one model: each loser re-reads and tries again, this many times


class AppendContended(RuntimeError):
    """Every try lost the race for the next revision number."""


@dataclass(frozen=True)
class FeedItem:
    id: int
    model: str
    seq: int
    at: datetime
    kind: str
    summary: str
    hash: str


@dataclass(frozen=True)
class RevisionItem:
    """A revision as its row's columns tell it (what a list shows), without its document."""

    seq: int
    at: datetime
    kind: str
    summary: str
    hash: str


@dataclass(frozen=True)
class RecordHead:
    """A record's product row with its last revision (for the index and the keeper)."""

    record: ProductRecord
    last: dict[str, Any] | None


def _stamp(at: str) -> datetime:
    return datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _last(session: Any, model: str) -> RecordRevision | None:
    return session.scalars(select(RecordRevision).where(RecordRevision.model == model)
                           .order_by(RecordRevision.seq.desc()).limit(1)).first()


def append_revision(store: Store, model: str, make: Callable[[dict[str, Any] | None], dict[str, Any]], *,
                    before: Callable[[Any, dict[str, Any]], None] | None = None,
                    tries: int = APPEND_TRIES) -> dict[str, Any]:
    """Append `make(last revision JSON or None)` to `model`'s chain atomically; returns it.

    `make` may raise to refuse (nothing is written); it is called again on a retry.
    `before(session, new revision)` runs in the same transaction before the insert (e.g. to create
    the record's product row with its first revision).
    """
    for _ in range(max(1, tries)):
        try:
            with unit(store) as s:
                last = _last(s, model)
                revision = make(json.loads(last.document) if last is not None else None)
                if before is not None:
                    before(s, revision)
                s.add(RecordRevision(model=model, seq=int(revision["seq"]), at=_stamp(revision["at"]),
                                     kind=revision["kind"], summary=revision["summary"], hash=revision["hash"],
                                     document=json.dumps(revision, ensure_ascii=False, sort_keys=True)))
            return revision
        except IntegrityError:
            continue  # another process appended this seq first: read its revision and build on it
    raise AppendContended(f"record {model}: {tries} concurrent appends won before this one; try again")


def last_revision(target: Target, model: str) -> dict[str, Any] | None:
    with reading(target) as s:
        row = _last(s, model)
        return json.loads(row.document) if row is not None else None


def chain(target: Target, model: str) -> list[dict[str, Any]]:
    """Every revision of the model's record, first to last."""
    with reading(target) as s:
        rows = s.scalars(select(RecordRevision.document).where(RecordRevision.model == model)
                         .order_by(RecordRevision.seq))
        return [json.loads(doc) for doc in rows]


def chain_page(target: Target, model: str, *, after: int, limit: int) -> list[dict[str, Any]]:
    """The model's revisions with seq over `after`, first to last, at most `limit` (only those are read)."""
    with reading(target) as s:
        rows = s.scalars(select(RecordRevision.document).where(RecordRevision.model == model,
                                                               RecordRevision.seq > after)
                         .order_by(RecordRevision.seq).limit(limit))
        return [json.loads(doc) for doc in rows]


def last_seq(target: Target, model: str) -> int | None:
    """The model's newest revision number (None: no record), from the column alone."""
    with reading(target) as s:
        return s.scalar(select(func.max(RecordRevision.seq)).where(RecordRevision.model == model))


def revision_list(target: Target, model: str) -> list[RevisionItem]:
    """The model's revisions newest first, from their columns only (no document is read)."""
    with reading(target) as s:
        rows = s.execute(select(RecordRevision.seq, RecordRevision.at, RecordRevision.kind, RecordRevision.summary,
                                RecordRevision.hash)
                         .where(RecordRevision.model == model).order_by(RecordRevision.seq.desc())).all()
    return [RevisionItem(*row) for row in rows]


def revision(target: Target, model: str, seq: int) -> dict[str, Any] | None:
    with reading(target) as s:
        doc = s.scalar(select(RecordRevision.document).where(RecordRevision.model == model,
                                                             RecordRevision.seq == seq))
        return json.loads(doc) if doc is not None else None


def feed(target: Target, *, after: int = 0, limit: int = 100) -> list[FeedItem]:
    """Revisions of every record after feed id `after`, oldest first (the feed's page)."""
    with reading(target) as s:
        rows = s.execute(select(RecordRevision.id, RecordRevision.model, RecordRevision.seq, RecordRevision.at,
                                RecordRevision.kind, RecordRevision.summary, RecordRevision.hash)
                         .where(RecordRevision.id > after).order_by(RecordRevision.id).limit(limit)).all()
    return [FeedItem(*row) for row in rows]


def latest_feed(target: Target, *, limit: int) -> list[FeedItem]:
    """The newest `limit` revisions, oldest first (the Atom feed)."""
    with reading(target) as s:
        rows = s.execute(select(RecordRevision.id, RecordRevision.model, RecordRevision.seq, RecordRevision.at,
                                RecordRevision.kind, RecordRevision.summary, RecordRevision.hash)
                         .order_by(RecordRevision.id.desc()).limit(limit)).all()
    return [FeedItem(*row) for row in reversed(rows)]


def product_record(target: Target, model: str) -> ProductRecord | None:
    with reading(target) as s:
        return s.scalars(select(ProductRecord).where(ProductRecord.model == model)).first()


def heads(target: Target, *, limit: int = 1000, unchanged: Mapping[str, int] | None = None) -> list[RecordHead]:
    """Every record (by model) with its last revision: three queries, whatever the count. A model whose
    last seq is the one `unchanged` gives is returned without its document (`last` None): the caller
    has read that revision already, and a document is the record's whole text."""
    skip = dict(unchanged or {})
    with reading(target) as s:
        records = list(s.scalars(select(ProductRecord).order_by(ProductRecord.model).limit(limit)))
        newest = (select(RecordRevision.model, func.max(RecordRevision.seq).label("seq"))
                  .group_by(RecordRevision.model).subquery())
        rows = s.execute(select(RecordRevision.model, RecordRevision.seq)
                         .join(newest, (newest.c.model == RecordRevision.model)
                               & (newest.c.seq == RecordRevision.seq))).all()
        wanted = [model for model, seq in rows if skip.get(model) != seq]
        docs = dict(s.execute(select(RecordRevision.model, RecordRevision.document)
                              .join(newest, (newest.c.model == RecordRevision.model)
                                    & (newest.c.seq == RecordRevision.seq))
                              .where(RecordRevision.model.in_(wanted))).all()) if wanted else {}
    return [RecordHead(r, json.loads(docs[r.model]) if r.model in docs else None) for r in records]


def new_product_record(session: Any, *, model: str, org_id: int, product_id: int, baseline_run_id: str,
                       inputs_dir: str) -> ProductRecord:
    """The record's product row, in the caller's transaction (with its first revision)."""
    row = ProductRecord(model=model, org_id=org_id, product_id=product_id, baseline_run_id=baseline_run_id,
                        inputs_dir=inputs_dir)
    session.add(row)
    session.flush()
    return row


def set_baseline(session: Any, *, model: str, baseline_run_id: str, inputs_dir: str) -> None:
    """A later certifying report becomes the baseline the re-tests run from (the product row is no revision)."""
    row = session.scalars(select(ProductRecord).where(ProductRecord.model == model)).one()
    row.baseline_run_id, row.inputs_dir = baseline_run_id, inputs_dir


def organisation_and_product(target: Target, *, organisation: str, model: str, name: str | None,
                             vendor: str | None) -> tuple[int, int]:
    """(organisation id, product id) of `model` made by `organisation`, both created if missing."""
    with unit(target) as s:
        org = s.scalars(select(Organisation).where(Organisation.name == organisation)).first()
        if org is None:
            org = Organisation(name=organisation)
            s.add(org)
            s.flush()
        product = s.scalars(select(Product).where(Product.org_id == org.id, Product.model == model)).first()
        if product is None:
            product = Product(org_id=org.id, model=model, name=name or model, vendor=vendor or organisation)
            s.add(product)
            s.flush()
        return org.id, product.id
