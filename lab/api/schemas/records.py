"""Bodies of the product record calls: the public JSON (record, chain, feed) and the lab's and
manufacturer's writes. The record document itself is described in lab/records/record.py; here it
is an object, signed as it is (a schema that reshaped it would break its hash)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

ModelPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                                description="The product model, e.g. TH-100")]
VersionPath = Annotated[str, Path(min_length=1, max_length=64, description="A release's version, e.g. 1.5.0")]
SeqPath = Annotated[int, Path(ge=1, le=1_000_000_000, description="The revision number, from 1")]
AfterQuery = Annotated[int, Query(ge=0, le=2**62, description="Only changes after this feed id")]
LimitQuery = Annotated[int, Query(ge=1, le=100, description="At most this many changes")]
AfterSeqQuery = Annotated[int | None, Query(ge=0, le=1_000_000_000, description="Only revisions with a higher "
                                            "seq (a page of the chain; 0: from the first)")]
PageLimitQuery = Annotated[int | None, Query(ge=1, le=500, description="At most this many revisions per page "
                                             "(default 100 when `after` or `limit` is given)")]


class OpenRecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(..., pattern=r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$",
                        description="The certifying run: a booking's run whose report is approved and verifies")


class RevisionRef(BaseModel):
    seq: int
    at: str
    kind: str
    hash: str


class Figures(BaseModel):
    """The headline figures, computed when read (not signed: days move on)."""

    as_of: str
    support_end: str | None
    support_days_left: int | None
    last_security_update: dict[str, Any] | None = Field(description="{version, released_on} of the newest "
                                                        "release an advisory lists as fixed")
    days_since_last_security_update: int | None
    open_advisories: int = Field(description="advisories affecting the newest release (or the certified firmware)")
    open_advisory_ids: list[str]
    oldest_open_days: int | None
    last_retest: dict[str, Any] | None = Field(description="{version, verdict, flagged, ended_at}")


class RecordLinks(BaseModel):
    revisions: str
    page: str
    feed: str


class RecordView(BaseModel):
    """`GET /records/{model}`: the last revision's record with today's figures."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["certlab.record-view/1"] = Field(alias="schema")
    model: str
    manufacturer: str | None
    product: str | None
    revision: RevisionRef
    figures: Figures
    record: dict[str, Any] = Field(description="the record document as signed in the last revision")
    links: RecordLinks


class RecordSummary(BaseModel):
    model: str
    manufacturer: str | None
    product: str | None
    figures: Figures
    revision: RevisionRef


class Revision(BaseModel):
    """One signed revision: its record, the previous revision's hash, its own hash and signature."""

    seq: int
    at: str
    kind: str
    summary: str
    by: str
    record: dict[str, Any]
    prev: str | None
    hash: str
    key: str = Field(description="the lab's Ed25519 public key, hex")
    signature: str = Field(description="Ed25519 over the hash, hex")


class Chain(BaseModel):
    """The chain or a page of it (what `certlab verify-record` reads and follows)."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: str = Field(alias="schema")
    model: str
    revisions: list[Revision] = Field(description="the revisions with seq over `after`, oldest first")
    after: int = Field(0, description="the page starts after this revision (0: at the first)")
    next: str | None = Field(None, description="the path of the next page (null: this page ends the chain)")


class Change(BaseModel):
    """One line of the feed: a revision of some product's record."""

    id: int = Field(description="the feed id: ask `?after=` the last one you saw")
    model: str
    seq: int
    at: str
    kind: str
    summary: str
    hash: str
    url: str


class RetestRef(BaseModel):
    queued_id: int


class ReleaseOut(BaseModel):
    release: dict[str, Any] = Field(description="the release as the record holds it (SBOM, diff, re-test)")
    retest: RetestRef
    revision: RevisionRef


class AdvisoryOut(BaseModel):
    advisory: dict[str, Any]
    revision: RevisionRef
