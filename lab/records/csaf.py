"""A manufacturer's security advisory: CSAF 2.0 JSON, validated offline, reduced to what a record
needs (id, dates, CVEs, which versions of the product are affected and which are fixed).

Validation: the OASIS CSAF 2.0 JSON schema (Draft 2020-12) pinned in lab/records/schemas/, with
the FIRST CVSS schemas it references mapped to their pinned copies in a `referencing` Registry,
so nothing is ever fetched; a format checker checks date-times. Then the CSAF mandatory tests
that matter for a record: 6.1.1 (every product_id referenced is defined in product_tree), 6.1.6
(no product both affected and fixed/not affected in one vulnerability), the security advisory
profile (6.1.27.4-6: product_tree, per vulnerability notes and product_status), tracking dates
that parse. Every refusal is a CsafError with the field's JSON path as `loc`.

Which products are the record's model (`model`, e.g. "TH-100"):
- a branch of category product_name named `model` (case-insensitive): each product_version
  branch below it is a version (its name), the product_id of that branch's product is the
  version's id; product_version_range branches are not read as versions;
- a full_product_name (top level, at a branch, or in a relationship) whose name holds the model
  as a word followed by its version: "TH-100 1.4.1", "Demo Thermostats TH-100 firmware 1.4.1",
  "TH-100 v1.4.1" (version 1.4.1).
A product_tree that names the model neither way is refused (loc ["product_tree"]).

Affected = the versions in known_affected/first_affected/last_affected of any vulnerability;
fixed = those in fixed/first_fixed of a vulnerability and affected by none; not_affected = those
in known_not_affected and neither. `status_of` answers for any version (see there).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Iterator

from lab.records.jsondoc import DocumentError, Loc, load_json, schema_error

CATEGORIES = ("csaf_security_advisory", "csaf_base")
SCHEMA_FILE = "csaf_json_schema.json"
#: The `$ref`s of the CSAF schema to other schemas, and the pinned copy of each.
REFERENCED_SCHEMAS = {
    "https://www.first.org/cvss/cvss-v2.0.json": "cvss-v2.0.json",
    "https://www.first.org/cvss/cvss-v3.0.json": "cvss-v3.0.json",
    "https://www.first.org/cvss/cvss-v3.1.json": "cvss-v3.1.json",
}
MAX_CSAF_BYTES = 16 << 20
AFFECTED_STATUS = ("first_affected", "known_affected", "last_affected")
FIXED_STATUS = ("first_fixed", "fixed")
NOT_AFFECTED_STATUS = ("known_not_affected",)
_STATUS_GROUPS = {**{s: "affected" for s in AFFECTED_STATUS}, **{s: "fixed" for s in FIXED_STATUS},
                  **{s: "not affected" for s in NOT_AFFECTED_STATUS}, "under_investigation": "under investigation"}
_WHAT = "CSAF advisory"
_FIX_SCHEMA = "correct it per the CSAF 2.0 JSON schema (docs.oasis-open.org/csaf/csaf/v2.0)"


class CsafError(DocumentError):
    """An advisory certlab cannot use; `loc` is the field's JSON path, `msg` one line with the fix."""


@dataclass(frozen=True)
class Advisory:
    id: str
    title: str
    published: str  # tracking.initial_release_date, UTC "YYYY-MM-DDTHH:MM:SSZ"
    updated: str  # tracking.current_release_date, likewise
    cves: tuple[str, ...]
    affected: tuple[str, ...]  # versions of the model
    fixed: tuple[str, ...]
    sha256: str  # of the uploaded bytes
    not_affected: tuple[str, ...] = ()  # versions the advisory says are not affected

    def as_json(self) -> dict:
        return {"id": self.id, "title": self.title, "published": self.published, "updated": self.updated,
                "cves": list(self.cves), "affected": list(self.affected), "fixed": list(self.fixed),
                "not_affected": list(self.not_affected), "sha256": self.sha256}


def read_advisory(data: bytes, *, model: str) -> Advisory:
    """The advisory in `data` (the uploaded file's bytes) for product `model`; CsafError naming the field."""
    doc = load_json(data, error=CsafError, what=_WHAT, limit=MAX_CSAF_BYTES)
    if not isinstance(doc, dict):
        raise CsafError([], "not a CSAF document (a JSON object with document, product_tree, vulnerabilities); "
                            "fix: upload the CSAF 2.0 JSON advisory")
    _validate_schema(doc)
    document = doc["document"]
    if document["category"] not in CATEGORIES:
        raise CsafError(["document", "category"],
                        f"{_quoted(document['category'])} is not accepted: a record holds security advisories; "
                        f"fix: publish it with category csaf_security_advisory")
    if document["category"] == "csaf_security_advisory":
        _check_profile(doc)
    tracking = document["tracking"]
    dates = {name: _utc(tracking, name, ["document", "tracking", name])
             for name in ("initial_release_date", "current_release_date")}
    for i, rev in enumerate(tracking["revision_history"]):
        _utc(rev, "date", ["document", "tracking", "revision_history", i, "date"])
    if "generator" in tracking and "date" in tracking["generator"]:
        _utc(tracking["generator"], "date", ["document", "tracking", "generator", "date"])
    _check_defined(doc)
    _check_contradictions(doc)
    versions = _model_versions(doc.get("product_tree") or {}, model)
    affected, fixed, not_affected = _status_versions(doc, versions)
    cves = tuple(dict.fromkeys(v["cve"] for v in doc.get("vulnerabilities", []) if "cve" in v))
    return Advisory(id=tracking["id"], title=document["title"], published=dates["initial_release_date"],
                    updated=dates["current_release_date"], cves=cves, affected=affected, fixed=fixed,
                    sha256=hashlib.sha256(data).hexdigest(), not_affected=not_affected)


def status_of(advisory: Advisory | dict, version: str) -> str:
    """Is `version` of the product "affected", "fixed" or "unknown" by this advisory?

    The advisory's own lists first (a version it lists as not affected is "unknown": neither
    open nor a fix). Otherwise, when `version` and every listed version compare (PEP 440 versions,
    else dotted numbers): "fixed" if it is at or above the lowest fixed version and above every
    affected one; "affected" if it is at or below the highest affected and below the lowest fixed
    (or nothing is fixed yet); else "unknown" (e.g. between the last affected and the first fixed).
    """
    adv = advisory.as_json() if isinstance(advisory, Advisory) else advisory
    affected, fixed = list(adv.get("affected") or []), list(adv.get("fixed") or [])
    if version in affected:
        return "affected"
    if version in fixed:
        return "fixed"
    if version in (adv.get("not_affected") or []) or not (affected or fixed):
        return "unknown"
    keys = comparable_versions([version, *affected, *fixed])
    if keys is None:
        return "unknown"
    v, affected_keys, fixed_keys = keys[0], keys[1:1 + len(affected)], keys[1 + len(affected):]
    highest_affected = max(affected_keys) if affected_keys else None
    lowest_fixed = min(fixed_keys) if fixed_keys else None
    if lowest_fixed is not None and v >= lowest_fixed and (highest_affected is None or v > highest_affected):
        return "fixed"
    if highest_affected is not None and v <= highest_affected and (lowest_fixed is None or v < lowest_fixed):
        return "affected"
    return "unknown"


def comparable_versions(versions: list[str]) -> list[Any] | None:
    """Sort keys for `versions`, all in one scheme (PEP 440, else dotted numbers), or None."""
    from packaging.version import InvalidVersion, Version  # packaging comes with pytest and ansible-core

    try:
        return [Version(v) for v in versions]
    except InvalidVersion:
        pass
    if not all(re.fullmatch(r"\d+(\.\d+)*", v) for v in versions):
        return None
    parts = [tuple(int(p) for p in v.split(".")) for v in versions]
    width = max(len(p) for p in parts)
    return [p + (0,) * (width - len(p)) for p in parts]


def _validate_schema(doc: dict) -> None:
    from jsonschema import Draft202012Validator  # takes a second to import: only when validating

    validator = Draft202012Validator(_schema(SCHEMA_FILE), registry=_registry(),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    found = schema_error(validator.iter_errors(doc), fix=_FIX_SCHEMA)
    if found is not None:
        raise CsafError(*found)


def _schema(name: str) -> dict:
    return json.loads(resources.files("lab.records").joinpath("schemas", name).read_text(encoding="utf-8"))


def _registry() -> Any:
    """The CVSS schemas under the URL the CSAF schema names and under their own id (with a
    query), so both the `$ref` and the schemas' internal references resolve offline."""
    from referencing import Registry, Resource

    pairs = []
    for url, name in REFERENCED_SCHEMAS.items():
        resource = Resource.from_contents(_schema(name))
        pairs.append((url, resource))
        own = resource.id()
        if own and own != url:
            pairs.append((own, resource))
    return Registry().with_resources(pairs)


def _check_profile(doc: dict) -> None:
    """The security advisory profile (CSAF 4.5, tests 6.1.27.4-6)."""
    if not doc.get("product_tree"):
        raise CsafError(["product_tree"], "missing: a security advisory names its products (CSAF 6.1.27.4); "
                                          "fix: add the product_tree")
    vulnerabilities = doc.get("vulnerabilities")
    if not vulnerabilities:
        raise CsafError(["vulnerabilities"], "missing: a security advisory lists its vulnerabilities; "
                                             "fix: add them")
    for i, vuln in enumerate(vulnerabilities):
        if "notes" not in vuln:
            raise CsafError(["vulnerabilities", i, "notes"], "missing: each vulnerability of a security advisory "
                                                             "has notes (CSAF 6.1.27.5); fix: describe it")
        if "product_status" not in vuln:
            raise CsafError(["vulnerabilities", i, "product_status"],
                            "missing: each vulnerability of a security advisory says which products it affects "
                            "(CSAF 6.1.27.6); fix: add known_affected/fixed lists")


def _utc(holder: dict, name: str, loc: Loc) -> str:
    try:
        when = datetime.fromisoformat(holder[name])
    except ValueError:
        raise CsafError(loc, "not a date and time; fix: write it as 2026-12-07T10:00:00Z") from None
    if when.tzinfo is None:
        raise CsafError(loc, "has no time zone; fix: end it with Z or an offset such as +01:00")
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _branches(tree: dict) -> Iterator[tuple[Loc, dict, list[dict]]]:
    """Every branch under product_tree, with its loc and its ancestors (outermost first)."""
    stack: list[tuple[Loc, dict, list[dict]]] = [(["product_tree", "branches", i], b, [])
                                                 for i, b in enumerate(tree.get("branches", []))][::-1]
    while stack:  # each branch is visited once: bounded by the document's size
        loc, branch, ancestors = stack.pop()
        yield loc, branch, ancestors
        children = [([*loc, "branches", i], b, [*ancestors, branch]) for i, b in enumerate(branch.get("branches", []))]
        stack.extend(reversed(children))


def _full_product_names(tree: dict) -> Iterator[tuple[Loc, dict]]:
    for loc, branch, _ in _branches(tree):
        if "product" in branch:
            yield [*loc, "product"], branch["product"]
    for i, product in enumerate(tree.get("full_product_names", [])):
        yield ["product_tree", "full_product_names", i], product
    for i, rel in enumerate(tree.get("relationships", [])):
        yield ["product_tree", "relationships", i, "full_product_name"], rel["full_product_name"]


def _references(doc: dict) -> Iterator[tuple[Loc, str]]:
    """Every product_id reference CSAF 6.1.1 checks, in document order."""
    tree = doc.get("product_tree") or {}
    for i, group in enumerate(tree.get("product_groups", [])):
        for j, pid in enumerate(group["product_ids"]):
            yield ["product_tree", "product_groups", i, "product_ids", j], pid
    for i, rel in enumerate(tree.get("relationships", [])):
        for name in ("product_reference", "relates_to_product_reference"):
            yield ["product_tree", "relationships", i, name], rel[name]
    for i, vuln in enumerate(doc.get("vulnerabilities", [])):
        for status, pids in vuln.get("product_status", {}).items():
            for j, pid in enumerate(pids):
                yield ["vulnerabilities", i, "product_status", status, j], pid
        for part, field in (("remediations", "product_ids"), ("scores", "products"), ("threats", "product_ids"),
                            ("flags", "product_ids")):
            for k, item in enumerate(vuln.get(part, [])):
                for j, pid in enumerate(item.get(field, [])):
                    yield ["vulnerabilities", i, part, k, field, j], pid


def _check_defined(doc: dict) -> None:
    """CSAF 6.1.1: a product_id referenced anywhere is defined in product_tree."""
    defined = {p["product_id"] for _, p in _full_product_names(doc.get("product_tree") or {})}
    for loc, pid in _references(doc):
        if pid not in defined:
            raise CsafError(loc, f"product {_quoted(pid)} is not defined in product_tree (CSAF 6.1.1); fix: define "
                                 f"it there (a full_product_name or a branch's product) or correct the id")


def _check_contradictions(doc: dict) -> None:
    """CSAF 6.1.6: within one vulnerability, a product is in one status group only."""
    for i, vuln in enumerate(doc.get("vulnerabilities", [])):
        seen: dict[str, str] = {}
        for status, pids in vuln.get("product_status", {}).items():
            group = _STATUS_GROUPS.get(status)
            if group is None:
                continue  # "recommended" contradicts nothing
            for j, pid in enumerate(pids):
                other = seen.setdefault(pid, group)
                if other != group:
                    raise CsafError(["vulnerabilities", i, "product_status", status, j],
                                    f"product {_quoted(pid)} is also {other} in this vulnerability (contradicting "
                                    f"status, CSAF 6.1.6); fix: list it under one status")


def _model_versions(tree: dict, model: str) -> dict[str, str]:
    """product_id -> version for the products that are `model`; CsafError when none names it."""
    wanted = model.casefold()
    named = False
    versions: dict[str, str] = {}
    for _, branch, ancestors in _branches(tree):
        if branch["category"] == "product_name" and branch["name"].casefold() == wanted:
            named = True
        if branch["category"] == "product_version" and "product" in branch and any(
                a["category"] == "product_name" and a["name"].casefold() == wanted for a in ancestors):
            versions[branch["product"]["product_id"]] = branch["name"]
    word = re.compile(rf"(?<![\w-]){re.escape(model)}(?![\w-])(?:\s+(?:firmware|version))?\s+v?(\d[\w.+~-]*)?",
                      re.IGNORECASE)
    mention = re.compile(rf"(?<![\w-]){re.escape(model)}(?![\w-])", re.IGNORECASE)
    for _, product in _full_product_names(tree):
        if mention.search(product["name"]):
            named = True
            match = word.search(product["name"])
            if match and match.group(1):
                versions.setdefault(product["product_id"], match.group(1).rstrip(".-"))
    if not named:
        raise CsafError(["product_tree"], f"names no product {model}; fix: name it, as a branch of category "
                                          f"product_name \"{model}\" with product_version branches below it, or a "
                                          f"full_product_name such as \"{model} 1.4.1\"")
    return versions


def _status_versions(doc: dict, versions: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(affected, fixed, not_affected) versions of the model across all vulnerabilities."""
    found: dict[str, set[str]] = {"affected": set(), "fixed": set(), "not affected": set()}
    for vuln in doc.get("vulnerabilities", []):
        for status, pids in vuln.get("product_status", {}).items():
            group = _STATUS_GROUPS.get(status)
            if group in found:
                found[group].update(versions[pid] for pid in pids if pid in versions)
    affected = found["affected"]
    fixed = found["fixed"] - affected
    not_affected = found["not affected"] - affected - fixed
    return _sorted(affected), _sorted(fixed), _sorted(not_affected)


def _sorted(versions: set[str]) -> tuple[str, ...]:
    """Oldest first when they compare, else in natural order (1.10 after 1.9)."""
    items = sorted(versions)
    keys = comparable_versions(items) if items else None
    if keys is not None:
        return tuple(v for _, v in sorted(zip(keys, items), key=lambda pair: pair[0]))
    return tuple(sorted(items, key=lambda v: [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", v)]))


def _quoted(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
