"""JUnit XML of a run (`junit.xml` in the run directory), so Jenkins and GitLab show its verdicts.

A lab drives certlab from a CI server; the CI server reads JUnit XML (Jenkins: the junit or xunit
plugin; GitLab: `artifacts:reports:junit`). This module turns the run's verdicts document (the
`verdicts.json` of `lab.store.export_verdicts`) into that format, without adding anything to a
verdict or taking anything away:

- one `<testsuite>` per bench (the slot that tested its own sample), named after the bench, the
  DUT model (when the caller knows it: `verdicts.json` does not carry it) and the sample's serial;
  its `<properties>` hold the run id, edition, lab, bench, model, serials and firmware;
- one `<testcase>` per result: `classname` is the ETSI test case id (TS 103 701, e.g. `5.1-1-1`;
  the test module when a result has none), `name` the test with its bench (`test_x[bench]`), `time`
  its duration; `<system-out>` lists verdict, cause, reason, node id, attempt, where it ran and the
  evidence files, for the CI page;
- PASS -> a test case with no child (passed);
  FAIL -> `<failure type="FAIL" message="reason">`: the DUT's behaviour failed the test case;
  INCONCLUSIVE -> `<error type="INCONCLUSIVE" message="cause: reason">`: the lab could not decide
  (lab-fault, test-error, not-run, cancelled, sample-unusable, assessment-pending); an error, not a
  failure, because it says nothing against the DUT, and not a skip, because it is not decided;
  NOT_APPLICABLE -> `<skipped message="ICS: reason">`: the manufacturer's ICS rules it out;
  any other verdict (e.g. NOT_ASSESSED, a verdict of a future edition, none at all) ->
  `<error type="<verdict>" message="<verdict>: reason">`: it is not a decision certlab knows, so it
  is shown as undecided rather than quietly passed or skipped.
- counts (`tests`, `failures`, `errors`, `skipped`) and `time` on every `<testsuite>`; `tests`,
  `failures`, `errors` and `time` on `<testsuites>`. `<testsuites>` carries no `skipped`: the
  Jenkins xunit plugin validates against junit-10.xsd, which does not allow it there (the sum of the
  suites' `skipped` is the total).

Whatever a reason contains, the file is well-formed XML 1.0: characters XML cannot carry (control
characters, lone surrogates, U+FFFE/U+FFFF) are stripped and ElementTree escapes the rest. The
output depends on the document (and models) only, no clock: regenerating it gives the same bytes,
so a signed run still verifies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from lab.ownerfiles import write_private
from lab.reports.errors import ReportError
from lab.verdicts import Verdict

if TYPE_CHECKING:
    from lab.inventory import Inventory

JUNIT_FILE = "junit.xml"

# what XML 1.0 may carry (its Char production); everything else is stripped
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(value: object) -> str:
    """`value` as text XML 1.0 can carry: None is empty, forbidden characters are dropped."""
    return "" if value is None else _NOT_XML.sub("", str(value))


def _seconds(value: object) -> float:
    """A result's duration; anything that is not a finite, non-negative number counts as 0."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _time(seconds: float) -> str:
    return f"{seconds:.3f}"


def bench_models(inventory: Inventory) -> dict[str, str]:
    """Bench name -> DUT model, from the inventory the run used (the suites' names show it)."""
    return {b.name: b.dut.model for b in inventory.benches.values()}


def run_models(run_dir: Path) -> dict[str, str]:
    """Bench -> DUT model from the run's own copy of its inventory; {} when it cannot be read
    (the model is a courtesy in a suite's name, never a reason to fail)."""
    from lab.inventory import load_inventory

    copy = Path(run_dir) / "inputs" / "inventory.yaml"
    try:
        return bench_models(load_inventory(copy)) if copy.is_file() else {}
    except Exception:  # noqa: BLE001 - see the docstring
        return {}


def _results(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = doc.get("results") if isinstance(doc, Mapping) else None
    if not isinstance(results, list) or not all(isinstance(r, Mapping) for r in results):
        raise ReportError("verdicts document: 'results' is not a list of results; fix: give the verdicts.json "
                          "that `certlab run` wrote (lab.store.export_verdicts)")
    return results


def _test_name(r: Mapping[str, Any], bench: str) -> str:
    """The test with its parameters, e.g. `test_5_1_1_1_no_default_password[bench1]`; the bench is added
    when the node id does not name it, so one name never stands for two benches."""
    nodeid = clean(r.get("nodeid"))
    name = nodeid.rsplit("::", 1)[-1] if "::" in nodeid else clean(r.get("test")) or clean(r.get("test_case")) or nodeid
    name = name or "unnamed result"
    named = re.search(rf"[\[-]{re.escape(bench)}[\]-]", name) if bench else None
    return name if named else f"{name}[{bench}]"


def _classname(r: Mapping[str, Any]) -> str:
    """The ETSI test case id; else the test module (from the node id); else `certlab`."""
    case = clean(r.get("test_case"))
    if case and case != clean(r.get("nodeid")):
        return case
    module = clean(r.get("nodeid")).split("::", 1)[0]
    if module:
        return Path(module).stem
    return case or "certlab"


def _outcome(r: Mapping[str, Any]) -> tuple[str | None, str, str]:
    """(JUnit element or None for passed, its type, its message) of one result's verdict."""
    verdict = clean(r.get("verdict"))
    reason = clean(r.get("reason"))
    if verdict == Verdict.PASS:
        return None, "", ""
    if verdict == Verdict.FAIL:
        return "failure", Verdict.FAIL.value, reason or "FAIL (no reason recorded)"
    if verdict == Verdict.INCONCLUSIVE:
        cause = clean(r.get("cause")) or "cause not recorded"
        return "error", Verdict.INCONCLUSIVE.value, f"{cause}: {reason}" if reason else cause
    if verdict == Verdict.NOT_APPLICABLE:
        return "skipped", Verdict.NOT_APPLICABLE.value, reason if reason.startswith("ICS:") else f"ICS: {reason}"
    shown = verdict or "no verdict"
    return "error", shown, f"{shown}: {reason}" if reason else shown


def _details(r: Mapping[str, Any]) -> str:
    """The result's record, one `key: value` a line, for the CI page's output of the test case."""
    lines = [f"verdict: {clean(r.get('verdict')) or '(none)'}"]
    for key in ("cause", "reason", "test_case", "provision", "nodeid", "bench", "executed_on", "dut_serial",
                "firmware", "attempt", "finished"):
        value = r.get(key)
        if value not in (None, ""):
            lines.append(f"{key}: {clean(value)}")
    evidence = r.get("evidence") or []
    if isinstance(evidence, list) and evidence:
        lines.append("evidence:")
        lines.extend(f"  {clean(e)}" for e in evidence)
    return "\n".join(lines) + "\n"


def _start(rows: Iterable[Mapping[str, Any]]) -> str | None:
    """When the suite's first result started (its finish minus its duration), ISO 8601 UTC without zone."""
    starts = []
    for r in rows:
        try:
            finished = datetime.strptime(str(r.get("finished")), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            continue
        starts.append(finished - timedelta(seconds=_seconds(r.get("duration"))))
    return min(starts).strftime("%Y-%m-%dT%H:%M:%S") if starts else None


def _suite_name(bench: str, model: str, serials: list[str]) -> str:
    """e.g. `bench1 (TH-100, serial TH-0001)`: what was tested, where."""
    sample = ", ".join([model] * bool(model) + ([f"serial {' '.join(serials)}"] if serials else []))
    return f"{bench} ({sample})" if sample else bench


def junit_xml(doc: Mapping[str, Any], *, models: Mapping[str, str] | None = None) -> bytes:
    """The JUnit XML (UTF-8, with declaration) of a verdicts document; `models` maps bench -> DUT model."""
    results = _results(doc)
    models = models or {}
    run_id, edition, lab = clean(doc.get("run_id")), clean(doc.get("edition")), clean(doc.get("lab"))
    by_bench: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_bench.setdefault(clean(r.get("bench")) or "(no bench)", []).append(r)

    root = ET.Element("testsuites", {"name": f"certlab run {run_id}".strip()})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for bench in sorted(by_bench):
        rows = by_bench[bench]
        model = clean(models.get(bench))
        serials = sorted({clean(r.get("dut_serial")) for r in rows} - {""})
        firmware = sorted({clean(r.get("firmware")) for r in rows} - {""})
        suite = ET.SubElement(root, "testsuite", {"name": _suite_name(bench, model, serials)})
        props = ET.SubElement(suite, "properties")
        for name, value in (("run_id", run_id), ("edition", edition), ("lab", lab), ("bench", bench),
                            ("dut_model", model), ("dut_serial", " ".join(serials)),
                            ("firmware", " ".join(firmware))):
            if value:
                ET.SubElement(props, "property", {"name": name, "value": value})
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        for r in rows:
            seconds = _seconds(r.get("duration"))
            case = ET.SubElement(suite, "testcase", {"classname": _classname(r), "name": _test_name(r, bench),
                                                     "time": _time(seconds)})
            element, kind, message = _outcome(r)
            if element is not None:
                child = ET.SubElement(case, element, {"message": message} if element == "skipped"
                                      else {"type": kind, "message": message})
                child.text = clean(r.get("reason")) or message
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[element]] += 1
            ET.SubElement(case, "system-out").text = _details(r)
            counts["tests"] += 1
            suite_time += seconds
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", _time(suite_time))
        start = _start(rows)
        if start:
            suite.set("timestamp", start)
        total_time += suite_time
    for key in ("tests", "failures", "errors"):
        root.set(key, str(totals[key]))
    root.set("time", _time(total_time))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: Path, doc: Mapping[str, Any], *, models: Mapping[str, str] | None = None) -> None:
    """Write the run's JUnit XML atomically (tmp + rename, 0600 like the rest of the run directory)."""
    write_private(Path(path), junit_xml(doc, models=models))


def junit_for_run(run_dir: Path, out: Path | None = None) -> tuple[Path, dict[str, int]]:
    """(Re)write a run's JUnit XML from its verdicts.json (`certlab report junit`): to `out`, or to
    `junit.xml` in the run. A signed run's own junit.xml is replaced only by the same bytes (else
    `certlab verify` would report the run changed): give `out` to write elsewhere. Returns the path
    and the counts."""
    run_dir = Path(run_dir)
    source = run_dir / "verdicts.json"
    fix = "fix: give the directory of a finished run (reports/<run-id>, it holds verdicts.json)"
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{source}: not found; {fix}") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{source}: unreadable ({exc}); {fix}") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{source}: not a verdicts document; {fix}")
    try:
        data = junit_xml(doc, models=run_models(run_dir))
    except ReportError as exc:
        raise ReportError(f"{source}: {exc}") from None
    target = Path(out) if out is not None else run_dir / JUNIT_FILE
    if target.resolve().is_relative_to(run_dir.resolve()) and (run_dir / "manifest.json").is_file():
        try:
            same = target.read_bytes() == data
        except OSError:
            same = False
        if not same:
            raise ReportError(f"{run_dir} is signed: writing {target.name} there would make `certlab verify` report "
                              f"the run changed; fix: pass --out FILE outside the run directory")
    try:
        write_private(target, data)
    except OSError as exc:
        raise ReportError(f"{target}: cannot write ({exc.strerror}); fix: choose a writable path with --out") from None
    root = ET.fromstring(data)
    counts = {k: int(root.get(k, "0")) for k in ("tests", "failures", "errors")}
    counts["skipped"] = sum(int(s.get("skipped", "0")) for s in root.iter("testsuite"))
    return target, counts
