"""The conditions of EN 303 645 Table B.1 that the manufacturer's IXIT can decide.

An N/A answer in the ICS says a provision's condition is not met ("no update mechanism",
"the device is constrained"). Where the IXIT states the facts behind that condition, the two
must agree: an ICS that claims 5.3-2's constrained-device N/A for a product whose IXIT says
it is not constrained would make a mandatory provision NOT_APPLICABLE on a false premise. The
check runs before any bench moves (lab/preflight.py). Conditions the IXIT cannot decide
(condition 9 "automatic updates or notifications", 10 "a hard-coded identity", ...) are left
to the assessor's review of the ICS (4-1-1).

A provision with several conditions applies only when all hold, so its N/A is contradicted
only when the IXIT shows every one of them met.

    RULES                          # the table: edition, condition/feature, meaning, decider
    check_conditions(ics, ixit)    # IcsError naming the ICS row, the IXIT fact and the fix
    ics_says(ics, "update_mechanism")  # True / False / None: what the ICS's answers imply
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lab.ics import Ics, IcsError
from lab.ixit import Ixit

#: (met?, the IXIT fact it rests on); met None = the IXIT does not decide it
Decision = tuple[bool | None, str]

_NETWORK_DELIVERY = {"sftp", "scp", "http", "https", "ota"}


def _passwords(ixit: Ixit) -> Decision:
    found = [m.id for m in ixit.auth_mech if m.factor in ("password", "pin")]
    if found:
        return True, f"1-AuthMech {found[0]!r} is a password or PIN"
    return False, "1-AuthMech has no password or PIN mechanism"


def _preinstalled(ixit: Ixit) -> Decision:
    kinds = {m.id: m.password_generation.kind for m in ixit.auth_mech if m.password_generation is not None}
    pre = [i for i, k in kinds.items() if k == "unique_per_device"]
    if pre:
        return True, f"1-AuthMech {pre[0]!r} has password_generation.kind unique_per_device (set before sale)"
    if all(k == "user_defined" for k in kinds.values()):
        return False, "every password of 1-AuthMech is user_defined"
    return None, ""


def _not_updatable(ixit: Ixit) -> Decision:
    if not ixit.upd_mech:
        return True, "7-UpdMech is empty (no update mechanism)"
    if ixit.soft_comp and all(c.update_mechanisms for c in ixit.soft_comp):
        return False, "every 6-SoftComp entry names an update mechanism"
    return None, ""


def _constrained(ixit: Ixit) -> Decision:
    value = ixit.product.constrained
    if value is None:
        return None, ""
    return value, f"product.constrained is {str(value).lower()}"


def _not_constrained(ixit: Ixit) -> Decision:
    met, fact = _constrained(ixit)
    return (None if met is None else not met), fact


def _telemetry(ixit: Ixit) -> Decision:
    if ixit.tel_data:
        return True, f"24-TelData lists {ixit.tel_data[0].id!r}"
    return False, "24-TelData is empty"


def _consent(ixit: Ixit) -> Decision:
    if not ixit.pers_data:
        return False, "21-PersData is empty"
    with_consent = [p.id for p in ixit.pers_data if p.obtaining_consent.strip()]
    if with_consent:
        return True, f"21-PersData {with_consent[0]!r} is processed with consent (obtaining_consent)"
    return None, ""


def _user_authentication(ixit: Ixit) -> Decision:
    if ixit.auth_mech:
        return True, f"1-AuthMech lists {ixit.auth_mech[0].id!r}"
    return False, "1-AuthMech is empty"


def _update_mechanism(ixit: Ixit) -> Decision:
    if ixit.upd_mech:
        return True, f"7-UpdMech lists {ixit.upd_mech[0].id!r}"
    return False, "7-UpdMech is empty"


def _network_updates(ixit: Ixit) -> Decision:
    if not ixit.upd_mech:
        return False, "7-UpdMech is empty"
    methods = {m.id: m.delivery.method if m.delivery else None for m in ixit.upd_mech}
    net = [i for i, method in methods.items() if method in _NETWORK_DELIVERY]
    if net:
        return True, f"7-UpdMech {net[0]!r} is delivered by {methods[net[0]]}"
    if all(method == "usb" for method in methods.values()):
        return False, "every 7-UpdMech entry is delivered by usb"
    return None, ""


def _physical_debug(ixit: Ixit) -> Decision:
    found = [i.id for i in ixit.intf if i.debug and i.kind == "physical" and i.status != "disabled"]
    if found:
        return True, f"15-Intf {found[0]!r} is a physical debug interface that is not disabled"
    if not any(i.debug for i in ixit.intf):
        return False, "15-Intf has no debug interface"
    return None, ""


def _debug(ixit: Ixit) -> Decision:
    found = [i.id for i in ixit.intf if i.debug]
    return (True, f"15-Intf {found[0]!r} is a debug interface") if found else (False, "15-Intf has no debug interface")


@dataclass(frozen=True)
class Rule:
    """One catalogue condition (a number) or feature (a letter) and how the IXIT decides it."""

    edition: str
    key: str
    meaning: str  # a name shared across editions (ics_says)
    decide: Callable[[Ixit], Decision]


RULES: tuple[Rule, ...] = (
    # EN 303 645 V2.1.1: numbered conditions
    Rule("v2", "1", "passwords", _passwords),
    Rule("v2", "2", "preinstalled_passwords", _preinstalled),
    Rule("v2", "3", "not_updatable", _not_updatable),
    Rule("v2", "4", "constrained", _constrained),
    Rule("v2", "5", "not_constrained", _not_constrained),
    Rule("v2", "6", "telemetry", _telemetry),
    Rule("v2", "7", "consent", _consent),
    Rule("v2", "8", "user_authentication", _user_authentication),
    Rule("v2", "11", "network_updates", _network_updates),
    Rule("v2", "12", "update_mechanism", _update_mechanism),
    Rule("v2", "13", "physical_debug", _physical_debug),
    # EN 303 645 V3.1.3: conditions (numbers) and features (letters)
    Rule("v3", "3", "not_updatable", _not_updatable),
    Rule("v3", "12", "update_mechanism", _update_mechanism),
    Rule("v3", "a", "passwords", _passwords),
    Rule("v3", "b", "preinstalled_passwords", _preinstalled),
    Rule("v3", "d", "user_authentication", _user_authentication),
    Rule("v3", "g", "update_mechanism", _update_mechanism),
    Rule("v3", "j", "network_updates", _network_updates),
    Rule("v3", "q", "debug", _debug),
    Rule("v3", "r", "physical_debug", _physical_debug),
    Rule("v3", "w", "telemetry", _telemetry),
    Rule("v3", "y", "consent", _consent),
)


def rules_for(edition: str) -> dict[str, Rule]:
    return {r.key: r for r in RULES if r.edition == edition}


def _keys(ics: Ics, provision_id: str) -> tuple[str, ...]:
    status = ics.catalog.provision(provision_id).status
    return (*status.conditions, *status.features)


def _spelt(ics: Ics, key: str) -> str:
    if key in ics.catalog.conditions:
        return f"condition {key} ({ics.catalog.conditions[key].text})"
    return f"feature {key} ({ics.catalog.features[key].text})"


def check_conditions(ics: Ics, ixit: Ixit, *, ixit_name: str = "the IXIT") -> None:
    """Every N/A of the ICS must leave some condition unmet that the IXIT does not show met."""
    rules = rules_for(ics.edition)
    for pid, entry in ics.provisions.items():
        if entry.support != "N/A":
            continue
        keys = _keys(ics, pid)
        facts = []
        for key in keys:
            rule = rules.get(key)
            met, fact = rule.decide(ixit) if rule else (None, "")
            if met is not True:
                break  # this condition may well be unmet: the N/A can stand
            facts.append(f"{_spelt(ics, key)}: {fact}")
        else:
            if keys:
                raise IcsError(
                    f"{ics.path}: ics: provisions.{pid}.support: N/A says a condition of {pid} is not met, but "
                    f"{ixit_name} shows {'; '.join(facts)}; fix: answer Y, or N with the reason in detail, or "
                    "correct the IXIT if it is wrong")


def ics_says(ics: Ics, meaning: str) -> bool | None:
    """Whether the ICS's answers imply the condition called `meaning` holds for the product.

    False when every provision that depends on it is answered N/A (the manufacturer says it does
    not hold), True when one of them is answered Y or N, None when the ICS answers none of them.
    """
    keys = {r.key for r in RULES if r.edition == ics.edition and r.meaning == meaning}
    # only provisions that depend on nothing else: an N/A of 5.3-6 (conditions 9 and 12) may be about 9
    answers = [entry.support for pid, entry in ics.provisions.items() if set(_keys(ics, pid)) and set(_keys(ics, pid)) <= keys]
    if not answers:
        return None
    return any(a != "N/A" for a in answers)
