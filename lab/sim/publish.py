"""What the simulated manufacturer publishes beside a release: its SBOM and its security advisories.

Real manufacturers hand a lab these documents (EU CRA: SBOM, vulnerability handling), so the
simulated one writes them in the real formats, built and checked with the maintained libraries:
CycloneDX 1.6 JSON through cyclonedx-python-lib (JsonStrictValidator), CSAF 2.0 checked against
the pinned OASIS schema in lab/records/schemas. Deterministic where a person would diff them.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime, time, timezone

from lab.errors import CertlabError
from lab.sim import vendor

VENDOR_NAME = "Certlab Sim Devices"
VENDOR_NAMESPACE = "https://sim-devices.certlab.test"
CVE_PATTERN = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,}$")
#: Where each simulated component comes from, for its package URL (pkg:generic: no ecosystem registry).
COMPONENT_TYPES = {"linux": "operating-system", "u-boot": "firmware"}


def sbom_json(model: str, version: str, components: dict[str, str], *, released: datetime | None = None) -> str:
    """The release's CycloneDX 1.6 SBOM (JSON), strictly valid; CertlabError if the library finds it is not."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    supplier = OrganizationalEntity(name=VENDOR_NAME)
    parts = [
        Component(name=name, version=ver, type=ComponentType(COMPONENT_TYPES.get(name, "library")),
                  bom_ref=f"{name}@{ver}", supplier=supplier if name == vendor.APP_COMPONENT else None,
                  purl=PackageURL(type="generic", name=name, version=ver))
        for name, ver in sorted(components.items())
    ]
    firmware = Component(name=model, version=version, type=ComponentType.FIRMWARE, bom_ref=f"{model}@{version}",
                         supplier=supplier, purl=PackageURL(type="generic", namespace="certlab-sim", name=model,
                                                            version=version))
    when = released or datetime.now(timezone.utc).replace(microsecond=0)
    bom = Bom(components=parts, serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"{VENDOR_NAMESPACE}/sbom/{model}/{version}"),
              metadata=BomMetaData(component=firmware, timestamp=when, supplier=supplier,
                                   properties=[Property(name="certlab:simulated", value="true")]))
    bom.register_dependency(firmware, parts)
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise CertlabError(f"the SBOM of {model} {version} is not valid CycloneDX 1.6: {error}")
    return text + "\n"


def parse_components(given: list[str]) -> dict[str, str]:
    """`NAME@VERSION` options as a mapping (CertlabError naming the bad one)."""
    out: dict[str, str] = {}
    for item in given:
        name, sep, ver = item.partition("@")
        if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+~-]*", ver):
            raise CertlabError(f"--component {item}: write NAME@VERSION, e.g. openssl@3.0.16")
        out[name] = ver
    return out


def advisory(model: str, *, advisory_id: str, title: str, cves: list[str], affected: list[str], fixed: list[str],
             published: date) -> dict:
    """A CSAF 2.0 security advisory (csaf_security_advisory) for `model`: product_tree vendor -> product_name ->
    product_version branches, one vulnerability per CVE with the affected and fixed versions."""
    if not advisory_id.strip() or not title.strip():
        raise CertlabError("--id and --title must not be empty")
    if not cves:
        raise CertlabError("give at least one --cve CVE-YYYY-NNNN")
    bad = [c for c in cves if not CVE_PATTERN.match(c)]
    if bad:
        raise CertlabError(f"--cve {bad[0]}: not a CVE id; write CVE-YYYY-NNNN")
    if not affected and not fixed:
        raise CertlabError("give the versions the advisory is about: --affected V and/or --fixed V")
    both = sorted(set(affected) & set(fixed))
    if both:
        raise CertlabError(f"version {both[0]} is given as both --affected and --fixed; a version is one or the other")
    versions = list(dict.fromkeys([*affected, *fixed]))
    pid = {v: f"{model}-{v}" for v in versions}
    stamp = datetime.combine(published, time(0, 0), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    doc = {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "lang": "en",
            "title": title,
            "publisher": {"category": "vendor", "name": VENDOR_NAME, "namespace": VENDOR_NAMESPACE,
                          "contact_details": vendor.SECURITY_CONTACT},
            "notes": [{"category": "summary", "title": "Summary", "text": title}],
            "references": [{"category": "self", "summary": "This advisory",
                            "url": f"{VENDOR_NAMESPACE}/security/advisories/{advisory_id}.json"}],
            "tracking": {
                "id": advisory_id, "status": "final", "version": "1",
                "initial_release_date": stamp, "current_release_date": stamp,
                "revision_history": [{"date": stamp, "number": "1", "summary": "Initial publication."}],
                "generator": {"engine": {"name": "certlab sim advisory"}},
            },
        },
        "product_tree": {"branches": [{
            "category": "vendor", "name": VENDOR_NAME,
            "branches": [{"category": "product_name", "name": model,
                          "branches": [{"category": "product_version", "name": v,
                                        "product": {"name": f"{VENDOR_NAME} {model} {v}", "product_id": pid[v]}}
                                       for v in versions]}],
        }]},
        "vulnerabilities": [],
    }
    for cve in cves:
        status: dict[str, list[str]] = {}
        if affected:
            status["known_affected"] = [pid[v] for v in affected]
        if fixed:
            status["fixed"] = [pid[v] for v in fixed]
        vuln = {"cve": cve, "title": title, "notes": [{"category": "description", "title": "Description", "text": title}],
                "product_status": status}
        if fixed and affected:
            vuln["remediations"] = [{"category": "vendor_fix", "details": f"Install {model} firmware {fixed[-1]} or later.",
                                     "product_ids": [pid[v] for v in affected]}]
        doc["vulnerabilities"].append(vuln)
    return doc


def advisory_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
