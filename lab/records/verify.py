"""`certlab verify-record FILE_OR_URL`: fetch a record's revisions and check the chain.

    result = verify_source("https://lab.example/records/TH-100/revisions", key_file=None)
    result.lines()          # one line per revision, then the head's and the verdict line
    result.ok               # exit 0; a revision that does not verify, or a chain short of the head: exit 1

A URL is read page by page (`?limit=PAGE_LIMIT` unless the URL asks otherwise, then each page's
`next`, on the same host), each page verified as it comes (`ChainVerifier`) and dropped, so a
chain of any length is checked in bounded memory: each page at most 32 MiB and 60 s, the walk at
most WALK_DEADLINE_S and MAX_PAGES. A URL of the form .../records/<model>/revisions is compared
with the record's published head (GET .../records/<model>: revision.seq and .hash, read before
the pages): a chain served shorter than the head, or whose revision at the head's seq has another
hash, does not verify (a server can drop the newest revisions without breaking any link).
http(s) only (a redirect to any other scheme is refused), 10 s per network operation. A file is
one document, read as every user file is (lab.inputfile: a regular file, at most 32 MiB). Anything
unusable (unreachable, too large, not JSON, not a record chain) is a one-line CertlabError (exit
2): a document that cannot be read says nothing about the record's integrity either way.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lab.errors import CertlabError
from lab.inputfile import MIB, read_bounded
from lab.records.chain import ChainCheck, ChainVerifier, document_problem, public_key_hex, verify_chain
from lab.reports.keys import fingerprint, load_public_key

MAX_RECORD_BYTES = 32 * MIB  # a file, and each page of a URL
TIMEOUT_S = 10.0  # per connect / read
DEADLINE_S = 60.0  # one download (a file's document, a page, the head)
PAGE_LIMIT = 50  # revisions asked per page: each holds the whole record, so a page stays well under 32 MiB
WALK_DEADLINE_S = 600.0  # every page of a URL
MAX_PAGES = 10_000
HEAD_BYTES = 4 * MIB  # the record's view (its newest record and figures)
_CHUNK = 1 << 16
_WHAT = "record chain"
_REVISIONS_PATH = re.compile(r"^(?P<record>.*/records/[^/]+)/revisions/?$")
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PublishedHead:
    """The record's newest revision as its view (GET /records/<model>) publishes it."""

    url: str
    model: str
    seq: int
    hash: str


@dataclass(frozen=True)
class HeadCheck:
    """The served chain against the record's published head (its view's `revision`)."""

    url: str
    seq: int
    hash: str
    served: int  # revisions the chain served
    served_hash: str | None  # the served revision at `seq`'s hash (None: the chain stops before it)

    @property
    def problem(self) -> str | None:
        if self.served_hash is None:
            return (f"the chain served ends at revision {self.served}, but the record's published head ({self.url}) "
                    f"is revision {self.seq}: the chain served is shorter than the record")
        if self.served_hash != self.hash:
            return (f"revision {self.seq} served has hash {self.served_hash[:16]}..., the record's published head "
                    f"({self.url}) has {self.hash[:16]}...: the chain served differs from the record")
        return None

    @property
    def line(self) -> str:
        return f"head: {self.problem or f'revision {self.seq} is the record published at {self.url}'}"


@dataclass(frozen=True)
class SourceCheck:
    """What `verify_source` found for one file or URL."""

    source: str
    model: str | None
    check: ChainCheck
    pinned: bool  # checked against a key the user gave, not only the chain's own
    pages: int = 1
    head: HeadCheck | None = None
    head_note: str | None = None  # a URL whose head could not be compared: why

    @property
    def ok(self) -> bool:
        return self.check.ok and (self.head is None or self.head.problem is None)

    def lines(self) -> list[str]:
        out = [c.line for c in self.check.checks]
        if self.head is not None:
            out.append(self.head.line)
        elif self.head_note:
            out.append(f"head: {self.head_note}")
        key = f"key {_fingerprint(self.check.key)}" if self.check.key else "no key"
        pages = f" (read in {self.pages} pages)" if self.pages > 1 else ""
        if not self.check.ok:
            out.append(f"NOT VERIFIED: {self.check.reason} (the first of {self.check.revisions} revisions "
                       f"that fails){pages}")
        elif self.head is not None and self.head.problem:
            out.append(f"NOT VERIFIED: {self.head.problem} ({self.check.revisions} revisions served verify)")
        else:
            how = ("the pinned lab key" if self.pinned else
                   f"{key} (the chain's own key: compare its fingerprint with the lab's, or pass --key)")
            out.append(f"verified: {self.check.revisions} revisions of the record of {self.model}, hash chain "
                       f"intact, every signature by {how}{pages}")
        return out


def verify_source(source: str, *, key_file: Path | None = None, timeout: float = TIMEOUT_S,
                  deadline: float = DEADLINE_S, walk_deadline: float = WALK_DEADLINE_S,
                  max_pages: int = MAX_PAGES) -> SourceCheck:
    """Verify the chain at `source`: an http(s) URL page by page, else a file as one document."""
    pinned = public_key_hex(load_public_key(key_file)) if key_file is not None else None
    if _scheme(source) in ("http", "https"):
        return _verify_url(source, pinned, timeout=timeout, deadline=deadline, walk_deadline=walk_deadline,
                           max_pages=max_pages)
    document = _json(read_source(source, timeout=timeout, deadline=deadline), source)
    check = verify_chain(document, key_hex=pinned)
    if check.first_bad is None and not check.ok:  # not a chain document at all: unusable input
        raise CertlabError(f"{source}: {check.reason}")
    return SourceCheck(source, document["model"], check, pinned is not None)


def _verify_url(source: str, pinned: str | None, *, timeout: float, deadline: float, walk_deadline: float,
                max_pages: int) -> SourceCheck:
    """Walk the pages from `source` by their `next` links, verifying each page as it comes."""
    ends = time.monotonic() + walk_deadline
    head_url = _head_url(source)
    head = _read_head(head_url, timeout=timeout, deadline=deadline) if head_url else None
    origin = urllib.parse.urlsplit(source)[:2]
    url: str | None = _first_page(source)
    verifier: ChainVerifier | None = None
    served_hash: str | None = None
    pages = 0
    while url is not None:  # bounded by max_pages and the walk's deadline
        if pages >= max_pages:
            raise CertlabError(f"{source}: more than {max_pages} pages; the chain cannot be checked from this URL "
                               f"(save its pages and give a file)")
        left = ends - time.monotonic()
        if left <= 0:
            raise CertlabError(f"{source}: reading the chain's pages took longer than {walk_deadline:.0f} s; "
                               f"try again later")
        page = _json(fetch(url, timeout=timeout, deadline=min(deadline, left)), url)
        pages += 1
        items = _page_revisions(page, url, first=verifier is None)
        if verifier is None:
            verifier = ChainVerifier(page["model"], key_hex=pinned)
        elif page["model"] != verifier.model:
            raise CertlabError(f"{url}: a page of the record of {page['model']!r}, not of {verifier.model!r}; "
                               f"give the record's own URL")
        verifier.feed(items)
        if head is not None and served_hash is None:
            served_hash = next((r["hash"] for r in items if isinstance(r, dict) and r.get("seq") == head.seq
                                and isinstance(r.get("hash"), str)), None)
        url = _next_page(page, url, origin, empty=not items)
    assert verifier is not None
    if head is not None and head.model != verifier.model:
        raise CertlabError(f"{head.url}: the published head is of the record of {head.model!r}, not of "
                           f"{verifier.model!r}")
    check = verifier.result()
    head_check = HeadCheck(head.url, head.seq, head.hash, check.revisions, served_hash) if head else None
    note = None if head else ("not compared (the URL does not end in /records/<model>/revisions): a chain "
                                  "cut short after its last revision cannot be seen here")
    return SourceCheck(source, verifier.model, check, pinned is not None, pages, head_check, note)


def _page_revisions(page: object, url: str, *, first: bool) -> list:
    """The page's revisions; CertlabError when it is no page of a chain (a later page may be empty)."""
    problem = document_problem(page, page=not first)
    if problem:
        raise CertlabError(f"{url}: not a record chain: {problem}")
    assert isinstance(page, dict)
    return page["revisions"]


def _next_page(page: dict, url: str, origin: tuple[str, str], *, empty: bool) -> str | None:
    """The next page's URL (None at the end): on the same scheme and host as the URL given."""
    following = page.get("next")
    if following is None:
        return None
    if not isinstance(following, str) or not following:
        raise CertlabError(f"{url}: field 'next' must be the next page's path or null")
    if empty:
        raise CertlabError(f"{url}: the page has no revisions but links a next page ({following[:80]})")
    resolved = urllib.parse.urljoin(url, following)
    if urllib.parse.urlsplit(resolved)[:2] != origin:
        raise CertlabError(f"{url}: the next page is on another host ({resolved[:80]}); only the same host's "
                           f"pages are followed")
    if resolved == url:
        raise CertlabError(f"{url}: the page links itself as the next page")
    return resolved


def _first_page(source: str) -> str:
    """`source` asking for pages of PAGE_LIMIT revisions, unless it asks for its own."""
    parts = urllib.parse.urlsplit(source)
    if parts.query:
        return source
    return urllib.parse.urlunsplit(parts._replace(query=f"limit={PAGE_LIMIT}"))


def _head_url(source: str) -> str | None:
    """GET /records/<model> for a URL .../records/<model>/revisions, else None."""
    parts = urllib.parse.urlsplit(source)
    match = _REVISIONS_PATH.match(parts.path)
    if match is None:
        return None
    return urllib.parse.urlunsplit(parts._replace(path=match["record"], query="", fragment=""))


def _read_head(url: str, *, timeout: float, deadline: float) -> PublishedHead:
    """The record's published head, read from its view."""
    view = _json(fetch(url, timeout=timeout, deadline=deadline, limit=HEAD_BYTES), url)
    revision = view.get("revision") if isinstance(view, dict) else None
    seq = revision.get("seq") if isinstance(revision, dict) else None
    digest = revision.get("hash") if isinstance(revision, dict) else None
    model = view.get("model") if isinstance(view, dict) else None
    if (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(digest, str)
            or not _HASH.fullmatch(digest) or not isinstance(model, str)):
        raise CertlabError(f"{url}: not a record's view (it needs model, revision.seq and revision.hash); the "
                           f"chain served cannot be compared with the record's head")
    return PublishedHead(url, model, seq, digest)


def _json(data: bytes, source: str) -> object:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CertlabError(f"{source}: not UTF-8 text (byte {exc.start}); give the record's revisions "
                           f"(GET /records/<model>/revisions)") from None
    except json.JSONDecodeError as exc:
        raise CertlabError(f"{source}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); give the "
                           f"record's revisions (GET /records/<model>/revisions)") from None
    except RecursionError:
        raise CertlabError(f"{source}: JSON nested too deeply to be a {_WHAT}") from None


def _scheme(source: str) -> str:
    return urllib.parse.urlsplit(source).scheme.lower() if "://" in source else ""


def read_source(source: str, *, timeout: float = TIMEOUT_S, deadline: float = DEADLINE_S) -> bytes:
    """The bytes at `source`: an http(s) URL, else a file path (a '://' of another scheme is refused)."""
    scheme = _scheme(source)
    if scheme in ("http", "https"):
        return fetch(source, timeout=timeout, deadline=deadline)
    if scheme:
        raise CertlabError(f"{source}: only http and https URLs (or a file) can be read; give the record's "
                           f"http(s) URL or a saved copy")
    return read_bounded(Path(source), what=_WHAT, limit=MAX_RECORD_BYTES)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) (urllib also follows ftp), at most 5."""

    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise CertlabError(f"{req.full_url}: redirected to a {scheme or 'relative'}: URL; only http(s) "
                               f"redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, *, timeout: float = TIMEOUT_S, deadline: float = DEADLINE_S,
          limit: int = MAX_RECORD_BYTES) -> bytes:
    """GET `url`, bounded in size and time; CertlabError naming the URL and what went wrong."""
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    ends = time.monotonic() + deadline
    try:
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise CertlabError(f"{url}: {length} bytes, over the {limit >> 20} MiB certlab reads for a {_WHAT}")
            chunks: list[bytes] = []
            total = 0
            while total <= limit:  # bounded by the size limit and the deadline
                if time.monotonic() > ends:
                    raise CertlabError(f"{url}: the download took longer than {deadline:.0f} s; try again or save "
                                       f"the document and give the file")
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except urllib.error.HTTPError as exc:
        raise CertlabError(f"{url}: HTTP {exc.code} {exc.reason}; check the model in the URL "
                           f"(GET /records lists the records)") from None
    except urllib.error.URLError as exc:
        raise CertlabError(f"{url}: cannot connect ({_reason(exc.reason)}); check the address") from None
    except (TimeoutError, OSError) as exc:
        raise CertlabError(f"{url}: {_reason(exc)}; check the address and try again") from None
    if total > limit:
        raise CertlabError(f"{url}: larger than the {limit >> 20} MiB certlab reads for a {_WHAT}")
    return b"".join(chunks)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    text = getattr(reason, "strerror", None) or str(reason)
    return " ".join(str(text).split())[:120]


def _fingerprint(key_hex: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return fingerprint(Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)))
    except ValueError:
        return key_hex[:16]
