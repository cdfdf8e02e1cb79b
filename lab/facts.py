"""The facts the suites need beyond TS 103 701's lists (the IXIT's `test_facts`): one registry.

Each fact has a meaning and a unit here; which test cases read it is derived from the suites'
source (ast, never imported): a test reads a fact when it, or a function it hands its
`test_facts` to (followed through calls, within a module and into `support`), reads the
attribute. `tests/test_facts.py` checks that every fact the suites read is registered and every
registered fact is a field of `TestFacts`, so the registry cannot drift from the code.

A product without the behaviour a fact describes (no telemetry, no configuration setting) says
so in its IXIT, `telemetry_interval_seconds: {none: "no telemetry: 24-TelData is empty"}`,
instead of inventing a value. What a test then does, by the verdict rules:

- the ICS marks the test's provision N/A: NOT_APPLICABLE, decided before the test starts
  (fixtures.etsi.IcsGate); the fact is never read;
- the ICS puts the provision in scope: the test cannot be performed as designed, so it is
  INCONCLUSIVE with a line naming the contradiction (the IXIT's "none" against the ICS's
  scope). Never NOT_APPLICABLE: only the ICS decides that; never PASS: nothing was examined.

The test sees such a fact as an `Absent` value: false in a test (`if test_facts.x:` still takes
an optional path), and any use of it as a value raises that INCONCLUSIVE line.

    FACTS["telemetry_interval_seconds"].meaning
    readers("v2")            # {"telemetry_interval_seconds": ["5.5-1-2", ...], ...}
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import resources
from lab.catalog.automation import etsi_ids
from lab.errors import CertlabError

MAX_DEPTH = 6  # calls followed from a test to the function that reads a fact


@dataclass(frozen=True)
class Fact:
    meaning: str
    unit: str  # "s", "command template", "path", ...


FACTS: dict[str, Fact] = {
    "version_command": Fact("command that prints the installed firmware version", "shell command"),
    "version_pattern": Fact("regular expression that finds the version (named group 'version') in that output",
                            "regular expression"),
    "config_set_command": Fact("command that changes a setting, with {key} and {value}", "command template"),
    "config_get_command": Fact("command that prints a setting's value, with {key}", "command template"),
    "config_probe_key": Fact("a harmless setting the lab may overwrite and restore", "setting name"),
    "security_setting_key": Fact("a security-relevant setting (config_set_command / config_get_command) the lab "
                                 "may change and restore: 5.5-5-2 tries to change it without authentication",
                                 "setting name"),
    "user_data_dir": Fact("folder where a user's files live on the device", "path on the device"),
    "telemetry_interval_seconds": Fact("how often the device sends telemetry: the lab watches its communication "
                                       "for two intervals", "s"),
    "update_images": Fact("release files delivered with the samples, by role (newer, older, current), in the "
                          "inventory's firmware_dir", "file names"),
    "update_seconds": Fact("upper bound of installing an update including its reboot", "s"),
    "boot_seconds": Fact("upper bound from power-on to the login prompt", "s"),
    "persistent_storage": Fact("folders where the device keeps data across power cycles (mount points of its "
                               "writable flash): the lab searches them for secrets it knows", "paths on the device"),
    "component_updates": Fact("per 7-UpdMech id other than the main firmware's: the component's version command "
                              "and pattern, its release files by role (in firmware_dir) and whether installing "
                              "reboots the device", "mapping"),
}


def missing_error(name: str) -> CertlabError:
    fact = FACTS.get(name)
    what = f" ({fact.meaning})" if fact else ""
    return CertlabError(f"ixit: test_facts.{name} is not set; the lab needs it{what}; fix: add it to the IXIT, or "
                        f"write `{name}: {{none: \"why\"}}` if the product has no such behaviour")


def absent_error(name: str, reason: str) -> CertlabError:
    fact = FACTS.get(name)
    what = f" ({fact.meaning})" if fact else ""
    return CertlabError(f"ixit: test_facts.{name}: the IXIT says the product has none ({reason}), but the ICS puts "
                        f"this test's provision in scope and the test needs it{what}; the test cannot be performed; "
                        "fix: answer the provision N/A in the ICS with its justification if it does not apply, or "
                        "give the value in the IXIT")


class Absent:
    """A fact the product does not have: false when tested, INCONCLUSIVE (CertlabError) when used."""

    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<absent test_facts.{self.name}: {self.reason}>"

    def _used(self, *_: Any, **__: Any) -> Any:
        raise absent_error(self.name, self.reason)

    __str__ = __format__ = __float__ = __int__ = __iter__ = __len__ = __getitem__ = __contains__ = _used
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _used
    __lt__ = __le__ = __gt__ = __ge__ = _used

    def __getattr__(self, attr: str) -> Any:  # .format(...), .get(...), .split(...)
        raise absent_error(self.name, self.reason)


class FactsView:
    """What a test gets as `test_facts`: the IXIT's facts, with an absent one as `Absent`."""

    def __init__(self, facts: Any) -> None:
        self._facts = facts

    def __getattr__(self, name: str) -> Any:
        facts = self.__dict__["_facts"]
        if name in facts.absent:
            return Absent(name, facts.absent[name])
        return getattr(facts, name)

    def need(self, name: str) -> Any:
        return self._facts.need(name)


def fact_value(facts: Any, name: str) -> str:
    """How `certlab product facts` shows a product's value: the value, 'none: why', or 'missing'."""
    if facts is None:
        return "missing (the IXIT has no test_facts)"
    if name in facts.absent:
        return f"none: {facts.absent[name]}"
    value = getattr(facts, name)
    if value is None or value == {}:
        return "missing"
    shown = ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return shown if name in facts.model_fields_set else f"{shown} (default)"


# --- which test cases read which fact (from the suites' source) --------------------------------


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)]


class _Reads:
    """Facts read through a parameter, followed into the functions it is passed to."""

    def __init__(self, modules: dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]]) -> None:
        self.modules = modules
        self.memo: dict[tuple[str, str, str], set[str]] = {}

    def _callee(self, module: str, func: ast.expr):
        if isinstance(func, ast.Name) and func.id in self.modules[module]:
            return module, self.modules[module][func.id]
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in self.modules
                and func.attr in self.modules[func.value.id]):
            return func.value.id, self.modules[func.value.id][func.attr]
        return None

    def of(self, module: str, fn: ast.FunctionDef | ast.AsyncFunctionDef, param: str, depth: int = 0) -> set[str]:
        key = (module, fn.name, param)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = set()  # a recursive call reads nothing more
        found: set[str] = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == param:
                found.add(node.attr)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "need"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == param and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.add(node.args[0].value)  # test_facts.need("user_data_dir")
            if isinstance(node, ast.Call) and depth < MAX_DEPTH:
                target = self._callee(module, node.func)
                if target is None:
                    continue
                callee_module, callee = target
                names = _params(callee)
                for i, arg in enumerate(node.args):
                    if isinstance(arg, ast.Name) and arg.id == param and i < len(names):
                        found |= self.of(callee_module, callee, names[i], depth + 1)
                for kw in node.keywords:
                    if isinstance(kw.value, ast.Name) and kw.value.id == param and kw.arg in names:
                        found |= self.of(callee_module, callee, kw.arg, depth + 1)
        found.discard("need")
        self.memo[key] = found
        return found


def readers(edition: str = "v2", root: Path | None = None) -> dict[str, list[str]]:
    """Fact name -> the test case ids (of `edition`) whose tests read it, sorted (root: a suites
    folder, default the shipped assessment suites)."""
    trees: dict[str, ast.Module] = {}
    root = resources.assessment_suites() if root is None else root
    for path in sorted(root.glob("*.py"))[:500]:
        try:
            trees[path.stem] = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
    modules = {name: _functions(tree) for name, tree in trees.items()}
    reads = _Reads(modules)
    found: dict[str, set[str]] = {}
    for name, functions in modules.items():
        if not name.startswith("test_"):
            continue
        for fn in functions.values():
            if not fn.name.startswith("test_") or "test_facts" not in _params(fn):
                continue
            cases = etsi_ids(fn, edition)
            for fact in reads.of(name, fn, "test_facts"):
                found.setdefault(fact, set()).update(cases)
    return {fact: sorted(cases, key=_case_order) for fact, cases in found.items()}


def _case_order(case: str) -> list[int | str]:
    """5.3-2-2 before 5.13-1-2: numbers compared as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"[.-]", case)]
