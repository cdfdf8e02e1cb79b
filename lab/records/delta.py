"""A release's re-test against the certified baseline: which provisions changed verdict.

    delta = verdict_delta(record["baseline"]["provisions"], provision_verdicts(retest_conformance))
    delta["flagged"]   # True when a provision went from PASS to FAIL

Only PASS -> FAIL is "newly failing" (the flag) and only FAIL -> PASS "newly passing"; every other
change (PASS -> INCONCLUSIVE: the lab could not decide, not a regression) is listed under
"changed". A provision of the baseline the re-test did not assess (NOT_ASSESSED, or absent) is
"not re-tested", never "unchanged": nothing was performed for it.
"""

from __future__ import annotations

from lab.verdicts import ProvisionVerdict


def provision_verdicts(conformance: dict) -> dict[str, str]:
    """conformance.json's provisions as {id: verdict}, in the report's order; ValueError naming
    the entry when the document is not a conformance report."""
    provisions = conformance.get("provisions") if isinstance(conformance, dict) else None
    if not isinstance(provisions, list):
        raise ValueError("conformance.json: field 'provisions' must be a list (is this a run's conformance.json?)")
    out: dict[str, str] = {}
    valid = {str(v) for v in ProvisionVerdict}
    for i, prov in enumerate(provisions):
        pid = prov.get("id") if isinstance(prov, dict) else None
        verdict = prov.get("verdict") if isinstance(prov, dict) else None
        if not isinstance(pid, str) or not pid:
            raise ValueError(f"conformance.json: provisions[{i}] has no id")
        if verdict not in valid:
            raise ValueError(f"conformance.json: provisions[{i}] ({pid}) has verdict {verdict!r}, not one of "
                             f"{', '.join(sorted(valid))}")
        out[pid] = str(verdict)
    return out


def verdict_delta(baseline: dict[str, str], retest: dict[str, str]) -> dict:
    """How `retest` differs from `baseline` (both {provision: verdict}), per provision of the baseline.

    A provision only the re-test has (the catalogue grew) is listed under "changed" with
    "from" None.
    """
    newly_failing: list[str] = []
    newly_passing: list[str] = []
    unchanged: list[str] = []
    changed: list[dict] = []
    not_retested: list[str] = []
    for pid, before in baseline.items():
        after = retest.get(pid)
        if after is None or after == ProvisionVerdict.NOT_ASSESSED:
            not_retested.append(pid)
        elif before == ProvisionVerdict.PASS and after == ProvisionVerdict.FAIL:
            newly_failing.append(pid)
        elif before == ProvisionVerdict.FAIL and after == ProvisionVerdict.PASS:
            newly_passing.append(pid)
        elif before == after:
            unchanged.append(pid)
        else:
            changed.append({"provision": pid, "from": before, "to": after})
    changed.extend({"provision": pid, "from": None, "to": after} for pid, after in retest.items()
                   if pid not in baseline and after != ProvisionVerdict.NOT_ASSESSED)
    return {"newly_failing": newly_failing, "newly_passing": newly_passing, "unchanged": unchanged,
            "changed": changed, "not_retested": not_retested, "flagged": bool(newly_failing)}
