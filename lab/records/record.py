"""The record document (the `record` dict inside every revision) and its headline figures.

Pure functions: each takes the record as it stands and returns a new one (never changes its
argument), so the store can re-apply a change on the newest revision when a concurrent append won.
Product facts come from the certifying run's own copies (conformance.json, the IXIT): a fact the
IXIT does not give is written as missing (null, with `source` naming the IXIT field), never guessed.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from lab.errors import CertlabError
from lab.records.csaf import status_of
from lab.yamlfile import parse_yaml

SUPPORT_SOURCE = "IXIT 2-UserInfo.support_period"
CONTACT_SOURCE = "IXIT 2-UserInfo.publication.statements.vulnerability_disclosure_policy.contact"
POLICY_SOURCE = "IXIT 2-UserInfo.publication.vulnerability_disclosure_policy"
RETEST_STATES = ("queued", "running", "done", "failed")
PENDING_RETESTS = ("queued", "running")  # the keeper still follows these
INCONCLUSIVE = "INCONCLUSIVE"


class RecordError(CertlabError):
    """A certifying run's documents lack what a record needs (names the file and field)."""


@dataclass(frozen=True)
class Certifying:
    """What a record takes from one certifying run: its conformance.json and its IXIT text."""

    run_id: str
    conformance: dict[str, Any]
    conformance_sha256: str
    ixit_text: str | None


# --- facts from the certifying run ------------------------------------------------------------


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _user_info(ixit_text: str | None) -> Any:
    if not ixit_text:
        return None
    try:
        raw = parse_yaml(ixit_text, "ixit", CertlabError)
    except CertlabError:
        return None
    return _get(raw, "2-UserInfo")


def support_period(ixit_text: str | None) -> dict[str, Any]:
    """{end, description, source} from the IXIT; a missing field is null (the source says where it belongs)."""
    info = _get(_user_info(ixit_text), "support_period")
    end = _get(info, "end") if isinstance(info, dict) else None
    if isinstance(end, dt.datetime):
        end = end.date()
    if isinstance(end, str):
        try:
            end = dt.date.fromisoformat(end.strip())
        except ValueError:
            end = None
    return {"end": end.isoformat() if isinstance(end, dt.date) else None,
            "description": _text(_get(info, "description")), "source": SUPPORT_SOURCE}


def vulnerability_contact(ixit_text: str | None) -> dict[str, Any]:
    """{contact, policy, source}: the disclosure policy's contact and where the policy is published."""
    publication = _get(_user_info(ixit_text), "publication")
    return {"contact": _text(_get(publication, "statements", "vulnerability_disclosure_policy", "contact")),
            "policy": _text(_get(publication, "vulnerability_disclosure_policy")),
            "source": f"{CONTACT_SOURCE}; {POLICY_SOURCE}"}


def certified_model(conformance: dict[str, Any], where: str) -> str:
    """The one product model the report covers (a record is per model)."""
    models = sorted({str(i.get("model")) for i in conformance.get("items") or [] if isinstance(i, dict)
                     and i.get("model") and i.get("model") != "unknown"})
    if len(models) != 1:
        found = ", ".join(models) or "none"
        raise RecordError(f"{where}: field 'items': a record is kept per product model, the report covers {found}; "
                          f"fix: open the record from a run of one model")
    return models[0]


def certified_firmware(conformance: dict[str, Any]) -> str | None:
    """The firmware version the report's samples ran (one version, else null: not guessed)."""
    versions = {str(i.get("firmware")) for i in conformance.get("items") or [] if isinstance(i, dict)
                and i.get("firmware") and i.get("firmware") != "unknown"}
    return versions.pop() if len(versions) == 1 else None


def provision_table(conformance: dict[str, Any]) -> dict[str, str]:
    """Provision id -> verdict of a conformance.json (`lab.records.delta`'s reading)."""
    from lab.records.delta import provision_verdicts

    return provision_verdicts(conformance)


def certification_entry(run: Certifying) -> dict[str, Any]:
    doc = run.conformance
    return {"run_id": run.run_id, "report_id": _get(doc, "report", "id"),
            "issued": _get(doc, "report", "issued") or _get(doc, "dates", "issued"),
            "edition": _get(doc, "method", "edition"), "verdict": _get(doc, "summary", "overall"),
            "firmware": certified_firmware(doc), "conformance_sha256": run.conformance_sha256,
            "report_url": f"/reports/{run.run_id}"}


def baseline_of(run: Certifying) -> dict[str, Any]:
    return {"run_id": run.run_id, "firmware": certified_firmware(run.conformance),
            "provisions": provision_table(run.conformance)}


# --- changes -------------------------------------------------------------------------------------


def new_record(run: Certifying, *, model: str, manufacturer: str, product: str, lab: str | None) -> dict[str, Any]:
    """The first revision's record: identity, the certifying report, the baseline, support, contact."""
    return {"model": model, "manufacturer": manufacturer, "product": product,
            "lab": lab or _get(run.conformance, "run", "lab"),
            "certification": [certification_entry(run)], "baseline": baseline_of(run),
            "support": support_period(run.ixit_text), "vulnerability_contact": vulnerability_contact(run.ixit_text),
            "releases": [], "advisories": []}


def is_certified_by(record: dict[str, Any], run_id: str) -> bool:
    return any(c.get("run_id") == run_id for c in record.get("certification") or [])


def add_certification(record: dict[str, Any], run: Certifying) -> dict[str, Any]:
    """A later certifying report: listed, and it becomes the baseline (support and contact from its IXIT)."""
    out = copy.deepcopy(record)
    out["certification"] = [*out.get("certification", []), certification_entry(run)]
    out["baseline"] = baseline_of(run)
    out["support"] = support_period(run.ixit_text)
    out["vulnerability_contact"] = vulnerability_contact(run.ixit_text)
    return out


def release_of(record: dict[str, Any], version: str) -> dict[str, Any] | None:
    return next((r for r in record.get("releases") or [] if r.get("version") == version), None)


def sbom_held_whole(sbom: dict[str, Any]) -> bool:
    """Whether a release entry's SBOM lists its components (a record made before SBOMs were kept apart)
    rather than counting them (the document kept by the hash the entry names)."""
    return isinstance(sbom.get("components"), list)


def new_retest(queued_id: int | None) -> dict[str, Any]:
    return {"state": "queued", "queued_id": queued_id, "run_id": None, "verdict": None, "delta": None,
            "flagged": False, "report_url": None, "conformance_sha256": None, "reason": None, "ended_at": None}


def add_release(record: dict[str, Any], release: dict[str, Any]) -> dict[str, Any]:
    """Append a release (its version must be new: the caller checks with `release_of`)."""
    if release_of(record, release["version"]) is not None:
        raise ValueError(f"release {release['version']} is in the record already")
    out = copy.deepcopy(record)
    out["releases"] = [*out.get("releases", []), copy.deepcopy(release)]
    return out


def set_retest(record: dict[str, Any], version: str, retest: dict[str, Any]) -> dict[str, Any]:
    """The record with release `version`'s re-test replaced."""
    out = copy.deepcopy(record)
    for release in out.get("releases") or []:
        if release.get("version") == version:
            release["retest"] = copy.deepcopy(retest)
            return out
    raise ValueError(f"the record has no release {version}")


def advisory_change(record: dict[str, Any], advisory: dict[str, Any]) -> str:
    """How an advisory relates to the record: "new", "newer" (same id, later tracking date),
    "same" (these bytes already), "not newer" (same id, not a later revision)."""
    for known in record.get("advisories") or []:
        if known.get("id") != advisory.get("id"):
            continue
        if known.get("sha256") == advisory.get("sha256"):
            return "same"
        return "newer" if str(advisory.get("updated") or "") > str(known.get("updated") or "") else "not newer"
    return "new"


def put_advisory(record: dict[str, Any], advisory: dict[str, Any], registered_at: str) -> dict[str, Any]:
    """The record with `advisory` added, or replacing the one of the same id."""
    out = copy.deepcopy(record)
    entry = {**copy.deepcopy(advisory), "registered_at": registered_at}
    kept = [a for a in out.get("advisories") or [] if a.get("id") != advisory.get("id")]
    out["advisories"] = [*kept, entry]
    return out


def pending_retests(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The releases whose re-test the keeper still follows."""
    return [r for r in record.get("releases") or [] if (r.get("retest") or {}).get("state") in PENDING_RETESTS]


# --- figures ---------------------------------------------------------------------------------------


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def newest_release(record: dict[str, Any]) -> dict[str, Any] | None:
    """The release out last (by release date; of one day, the one registered last)."""
    releases = list(record.get("releases") or [])
    if not releases:
        return None
    order = {id(r): n for n, r in enumerate(releases)}
    return max(releases, key=lambda r: (str(r.get("released_on") or ""), order[id(r)]))


def current_version(record: dict[str, Any]) -> str | None:
    """The firmware a buyer gets now: the newest release, else the certified one."""
    newest = newest_release(record)
    if newest is not None:
        return newest.get("version")
    return (record.get("baseline") or {}).get("firmware")


def open_advisories(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Advisories that list the current version as affected (not fixed)."""
    version = current_version(record)
    if version is None:
        return []
    return [a for a in record.get("advisories") or [] if status_of(a, version) == "affected"]


def figures(record: dict[str, Any], today: dt.date) -> dict[str, Any]:
    """The headline figures as of `today` (computed when read, not signed: days move on)."""
    support_end = _date((record.get("support") or {}).get("end"))
    advisories = record.get("advisories") or []
    fixes = [r for r in record.get("releases") or []
             if any(r.get("version") in (a.get("fixed") or []) for a in advisories)]
    last_fix = max(fixes, key=lambda r: str(r.get("released_on") or ""), default=None)
    last_fix_on = _date(last_fix.get("released_on")) if last_fix else None
    open_now = open_advisories(record)
    opened = [d for d in (_date(a.get("published")) for a in open_now) if d is not None]
    done = [r for r in record.get("releases") or [] if (r.get("retest") or {}).get("state") in ("done", "failed")]
    last = max(done, key=lambda r: str((r.get("retest") or {}).get("ended_at") or ""), default=None)
    retest = (last or {}).get("retest") or {}
    return {
        "as_of": today.isoformat(),
        "support_end": support_end.isoformat() if support_end else None,
        "support_days_left": (support_end - today).days if support_end else None,
        "last_security_update": ({"version": last_fix.get("version"), "released_on": last_fix.get("released_on")}
                                 if last_fix else None),
        "days_since_last_security_update": (today - last_fix_on).days if last_fix_on else None,
        "open_advisories": len(open_now),
        "open_advisory_ids": [a.get("id") for a in open_now],
        "oldest_open_days": (today - min(opened)).days if opened else None,
        "last_retest": ({"version": last.get("version"), "verdict": retest.get("verdict"),
                         "flagged": bool(retest.get("flagged")), "ended_at": retest.get("ended_at")}
                        if last else None),
    }
