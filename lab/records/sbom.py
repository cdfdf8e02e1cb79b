"""A firmware release's SBOM: CycloneDX JSON, validated, reduced to its components, diffed.

`read_sbom` accepts CycloneDX 1.4, 1.5 and 1.6 JSON, validated with cyclonedx-python-lib's
JsonStrictValidator (the CycloneDX project's own schemas, shipped with the library: nothing is
fetched), and beyond the schema requires what a firmware SBOM must say to be diffed: at least
one component, each with a version. Nested components (a component's own `components`) are
listed too, depth first. Every refusal is an SbomError with the field's JSON path:

    SbomError(loc=["components", 3, "version"], msg="required for a firmware SBOM; fix: ...")

`sbom_diff` compares two releases' components: a component is the same one across releases when
its package URL without the version matches (pkg:generic/busybox@1.36.1 -> pkg:generic/busybox),
else when its name does.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from lab.records.jsondoc import DocumentError, Loc, load_json, schema_error

SPEC_VERSIONS = ("1.4", "1.5", "1.6")
MAX_SBOM_BYTES = 16 << 20
_WHAT = "SBOM"


class SbomError(DocumentError):
    """An SBOM certlab cannot use; `loc` is the field's JSON path, `msg` one line with the fix."""


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    purl: str | None

    @property
    def key(self) -> str:
        """What identifies the component across releases: its purl without version, else its name."""
        return purl_without_version(self.purl) if self.purl else self.name


@dataclass(frozen=True)
class Sbom:
    spec_version: str
    components: tuple[Component, ...]
    sha256: str  # of the uploaded bytes

    def as_json(self) -> dict:
        return {"format": "CycloneDX", "spec_version": self.spec_version, "sha256": self.sha256,
                "components": [{"name": c.name, "version": c.version, "purl": c.purl} for c in self.components]}

    def summary(self) -> dict:
        """What a record keeps of its SBOM: the document is kept apart by this hash (the record stays
        small over years of releases), the components only counted."""
        return {"format": "CycloneDX", "spec_version": self.spec_version, "sha256": self.sha256,
                "components": len(self.components)}

    @classmethod
    def from_json(cls, data: dict) -> Sbom:
        """An Sbom back from its `as_json` form (as a record stores it)."""
        return cls(str(data["spec_version"]),
                   tuple(Component(c["name"], c["version"], c.get("purl")) for c in data["components"]),
                   str(data["sha256"]))


def read_sbom(data: bytes) -> Sbom:
    """The SBOM in `data` (the uploaded file's bytes); SbomError naming the field and the fix."""
    doc = load_json(data, error=SbomError, what=_WHAT, limit=MAX_SBOM_BYTES)
    if not isinstance(doc, dict):
        raise SbomError([], "not a CycloneDX document (a JSON object with bomFormat \"CycloneDX\"); "
                            "fix: upload the CycloneDX JSON SBOM of the release")
    if doc.get("bomFormat") != "CycloneDX":
        raise SbomError(["bomFormat"], "must be \"CycloneDX\"; fix: upload a CycloneDX JSON SBOM "
                                       "(SPDX and other formats are not accepted)")
    spec = doc.get("specVersion")
    if spec not in SPEC_VERSIONS:
        shown = f"CycloneDX {spec}" if isinstance(spec, str) and len(spec) <= 10 else "this specVersion"
        raise SbomError(["specVersion"], f"{shown} is not accepted; fix: export the SBOM as CycloneDX "
                                         f"{', '.join(SPEC_VERSIONS[:-1])} or {SPEC_VERSIONS[-1]} JSON")
    _validate(doc, spec)
    components = tuple(_components(doc))
    if not components:
        raise SbomError(["components"], "lists no component; fix: list the firmware's components (a firmware "
                                        "SBOM names every package it ships)")
    return Sbom(spec, components, hashlib.sha256(data).hexdigest())


def kept_sbom(data: bytes) -> Sbom:
    """An SBOM read back from the bytes kept when it was uploaded (`read_sbom` validated them then):
    its components, without the schema check that makes `read_sbom` slow."""
    doc = load_json(data, error=SbomError, what=_WHAT, limit=MAX_SBOM_BYTES)
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise SbomError([], "not a CycloneDX document; fix: keep the SBOM as it was uploaded")
    return Sbom(str(doc.get("specVersion")), tuple(_components(doc)), hashlib.sha256(data).hexdigest())


def _validate(doc: dict, spec: str) -> None:
    # cyclonedx-python-lib imports jsonschema (a second): only when an SBOM is validated
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    validator = JsonStrictValidator(SchemaVersion.from_version(spec))
    # the library validates a string: the document is re-serialised (it was parsed once to read specVersion)
    errors = validator.validate_str(json.dumps(doc), all_errors=True) or ()
    found = schema_error((e.data for e in errors), fix=f"correct it per the CycloneDX {spec} JSON schema")
    if found is not None:
        raise SbomError(*found)


def _components(doc: dict) -> list[Component]:
    """Every component, nested ones after their parent; SbomError for one without a version."""
    out: list[Component] = []
    stack: list[tuple[Loc, dict]] = [(["components", i], c) for i, c in enumerate(doc.get("components") or [])][::-1]
    while stack:  # bounded by the document's size: each component is visited once
        loc, comp = stack.pop()
        version = comp.get("version")
        if not isinstance(version, str) or not version.strip():
            raise SbomError([*loc, "version"], "required for a firmware SBOM; fix: give every component the "
                                               "version the firmware ships")
        out.append(Component(comp["name"], version, comp.get("purl") or None))
        children = comp.get("components") or []
        stack.extend(([*loc, "components", i], c) for i, c in reversed(list(enumerate(children))))
    return out


def purl_without_version(purl: str) -> str:
    """pkg:type/ns/name@version?qualifiers#subpath -> pkg:type/ns/name ('@' elsewhere is percent-encoded)."""
    base = purl.split("#", 1)[0].split("?", 1)[0]
    return base.rsplit("@", 1)[0] if "@" in base else base


def sbom_diff(previous: Sbom | dict | None, current: Sbom | dict, *, against: str | None = None) -> dict:
    """Components added, removed and changed (version) since `previous`, and how many are unchanged.

    `against` labels what was compared with (the previous release's version); by default the
    previous SBOM's sha256. With no previous SBOM there is nothing to compare: "against" is None
    and the lists are empty (the first release's components are not "added").
    """
    cur = current if isinstance(current, Sbom) else Sbom.from_json(current)
    if previous is None:
        return {"against": None, "added": [], "removed": [], "changed": [], "unchanged": 0}
    prev = previous if isinstance(previous, Sbom) else Sbom.from_json(previous)
    before, after = _by_key(prev), _by_key(cur)
    added: list[dict] = []
    removed: list[dict] = []
    changed: list[dict] = []
    unchanged = 0
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, []), after.get(key, [])
        same = [c for c in new if any(o.version == c.version for o in old)]
        unchanged += len(same)
        old_left = [o for o in old if not any(o.version == c.version for c in new)]
        new_left = [c for c in new if c not in same]
        if len(old_left) == 1 and len(new_left) == 1:
            changed.append({"name": new_left[0].name, "from": old_left[0].version, "to": new_left[0].version})
            continue
        removed.extend({"name": o.name, "version": o.version} for o in old_left)
        added.extend({"name": c.name, "version": c.version} for c in new_left)
    return {"against": against if against is not None else prev.sha256, "added": added, "removed": removed,
            "changed": changed, "unchanged": unchanged}


def _by_key(sbom: Sbom) -> dict[str, list[Component]]:
    out: dict[str, list[Component]] = defaultdict(list)
    for comp in sbom.components:
        out[comp.key].append(comp)
    return out
