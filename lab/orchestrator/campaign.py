"""The power-loss campaign: many seeded power cuts on chosen benches, turned into one table.

`certlab run --campaign power-loss --cuts N --seed S` runs the 5.9-2-2 resilience test with
`--power-cuts N --seed S`. That test leaves, per bench, `evidence/<bench>/<case>-power-cuts.json`
(`{"power_cuts_per_phase", "cuts": [row, ...]}`, one row per cut). This module names the test,
builds its options, and tabulates the rows: *when* in the DUT's life each cut fell (phase, and
the third of the phase's window when the evidence gives the window) against *what happened*.
Evidence that is missing or unreadable becomes a note in the table, never a crash: a campaign
that lost one bench to a lab fault still reports the others.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from lab.errors import CertlabError

SUITE_NODE = "testsuites/en303645/test_5_9_resilience.py::test_5_9_2_2_recovers_cleanly_after_power_loss"
TEST_NAME = SUITE_NODE.rpartition("::")[2]
MAX_CUTS = 10_000  # the same bound as the plugin's --power-cuts
PHASE_COUNT = 3  # the test makes --power-cuts cuts in each of its phases a, b, c
CUT_BUDGET_S = 120  # per cut: power off, boot, SSH back, checks (a real product boots far slower than the sim)
BASE_TIMEOUT_S = 900  # the worker's per-test timeout (WorkItem.pytest_args), for the test's other steps

EVIDENCE_GLOB = "*power-cuts.json"
CALIBRATION_SUFFIX = "update-calibration.json"  # phase b's window: one undisturbed install
MAX_BENCHES = 1_000
MAX_FILES_PER_BENCH = 16
MAX_ROWS_PER_FILE = PHASE_COUNT * MAX_CUTS
MAX_FILE_BYTES = 64 * 1024 * 1024

PHASES = {"a": "config write", "b": "update", "c": "operation + boot"}
TIMINGS = ("early", "middle", "late")  # thirds of the phase's window
AFTER_END = "after it ended"  # the write or update had already finished: the cut did not interrupt it
UNKNOWN_TIMING = "-"  # the evidence does not say how long the phase's window was

CLEAN = "clean recovery"
CONFIG_CORRUPT = "config corrupt"
FIRMWARE_UNEXPECTED = "firmware unexpected"
NOT_WORKING = "not working"
NO_COMEBACK = "did not come back"
UNFINISHED = "unfinished"  # no outcome recorded: the test stopped (lab fault, test error) mid-cut
OTHER = "other"
OUTCOMES = (CLEAN, CONFIG_CORRUPT, FIRMWARE_UNEXPECTED, NOT_WORKING, NO_COMEBACK, UNFINISHED, OTHER)
BAD_OUTCOMES = frozenset(OUTCOMES) - {CLEAN, UNFINISHED}

# The test's own outcome words (test_5_9_resilience.py) -> the campaign's categories.
_OUTCOME_OF = {
    "ok": CLEAN,
    "FAIL: configuration unreadable": CONFIG_CORRUPT,
    "FAIL: configuration garbled": CONFIG_CORRUPT,
    "FAIL: unexpected firmware": FIRMWARE_UNEXPECTED,
    "FAIL: not working": NOT_WORKING,
    "FAIL: did not come back": NO_COMEBACK,
}

ALL_BENCHES = "all benches"


def pytest_options(cuts: int, seed: int) -> list[str]:
    """The test's options for `--cuts`/`--seed`, checked here so bad input stops before any bench is touched.

    The per-test timeout grows with the cuts (a later `-o timeout=` wins over the worker's own):
    with a fixed 900 s, more than about 50 cuts per phase would be killed as a hang.
    """
    if isinstance(cuts, bool) or not isinstance(cuts, int) or not 1 <= cuts <= MAX_CUTS:
        raise CertlabError(f"--cuts {cuts!r}: give the number of power cuts per phase as a whole number "
                           f"from 1 to {MAX_CUTS}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CertlabError(f"--seed {seed!r}: give a whole number (the same seed repeats the same cut moments)")
    timeout = BASE_TIMEOUT_S + PHASE_COUNT * cuts * CUT_BUDGET_S
    return ["--power-cuts", str(cuts), "--seed", str(seed), "-o", f"timeout={timeout}"]


@dataclass(frozen=True)
class CutRow:
    """One power cut as the test recorded it, classified; or (phase "") a note about a bench's evidence."""

    bench: str
    phase: str = ""
    timing: str = UNKNOWN_TIMING
    outcome: str = ""
    cut: int | None = None
    cut_after_s: float | None = None
    window_s: float | None = None
    during: str = ""
    detail: str = ""  # the test's own outcome text
    source: str = ""  # the evidence file, relative to the run directory
    note: str = ""

    @property
    def is_note(self) -> bool:
        return bool(self.note)


@dataclass(frozen=True)
class CampaignLine:
    """Counts of outcomes for one bench (or all benches), one phase and one timing bucket."""

    bench: str
    phase: str
    timing: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class CampaignTable:
    benches: list[str]
    outcomes: list[str]  # the columns, in OUTCOMES order, only those that occurred (CLEAN always)
    lines: list[CampaignLine]  # per bench, then ALL_BENCHES
    rows: list[CutRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def cuts(self) -> int:
        return len(self.rows)

    def bench_totals(self, bench: str) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for line in self.lines:
            if line.bench == bench:
                totals.update(line.counts)
        return {o: totals.get(o, 0) for o in self.outcomes}


# --- reading the evidence ------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _timing(cut_after_s: float | None, window_s: float | None, command_state: str) -> str:
    """Which third of the phase's window the cut fell in; a cut after the command ended says so first."""
    if command_state.startswith("had exited"):
        return AFTER_END
    if cut_after_s is None or not window_s or window_s <= 0:
        return UNKNOWN_TIMING
    frac = cut_after_s / window_s
    return TIMINGS[0] if frac < 1 / 3 else TIMINGS[1] if frac < 2 / 3 else TIMINGS[2]


def _outcome(raw: Any) -> str:
    if raw is None or raw == "":
        return UNFINISHED
    return _OUTCOME_OF.get(str(raw), OTHER)


def _load(path: Path) -> tuple[Any, str]:
    """The parsed JSON, or (None, why not)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        return json.loads(path.read_text(encoding="utf-8")), ""
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON (line {exc.lineno}: {exc.msg})"


def _update_window(evidence_file: Path) -> float | None:
    """Phase b's window is one undisturbed install: the test's calibration evidence beside the cuts."""
    prefix = evidence_file.name[: -len("power-cuts.json")]
    data, _ = _load(evidence_file.with_name(prefix + CALIBRATION_SUFFIX))
    return _number(data.get("seconds")) if isinstance(data, dict) else None


def _verdict_reasons(run_dir: Path) -> dict[str, str]:
    """bench -> the resilience test's verdict and reason, to explain a bench without cut evidence."""
    data, _ = _load(run_dir / "verdicts.json")
    results = data.get("results") if isinstance(data, dict) else None
    reasons: dict[str, str] = {}
    for result in (results if isinstance(results, list) else [])[: 100 * MAX_BENCHES]:
        if isinstance(result, dict) and result.get("test") == TEST_NAME and result.get("bench"):
            reasons[str(result["bench"])] = f"{result.get('verdict')}: {str(result.get('reason') or '')[:300]}"
    return reasons


def _rows_of(bench: str, path: Path, rel: str) -> list[CutRow]:
    data, why = _load(path)
    if data is None:
        return [CutRow(bench, source=rel, note=f"{bench}: {rel} {why}; its cuts are not counted")]
    cuts = data.get("cuts") if isinstance(data, dict) else None
    if not isinstance(cuts, list):
        return [CutRow(bench, source=rel, note=f"{bench}: {rel} has no 'cuts' list; its cuts are not counted")]
    if not cuts:
        return [CutRow(bench, source=rel, note=f"{bench}: {rel} records no cuts (the test stopped before its first)")]
    rows: list[CutRow] = []
    skipped = 0
    update_window: float | None = None
    update_window_read = False
    for raw in cuts[:MAX_ROWS_PER_FILE]:
        if not isinstance(raw, dict) or str(raw.get("phase")) not in PHASES:
            skipped += 1
            continue
        phase = str(raw["phase"])
        window = _number(raw.get("window_s"))
        if window is None and phase == "b":
            if not update_window_read:
                update_window, update_window_read = _update_window(path), True
            window = update_window
        at = _number(raw.get("cut_after_s"))
        cut = raw.get("cut")
        timing = _timing(at, window, str(raw.get("command_state", "")))
        rows.append(CutRow(
            bench=bench, phase=phase, timing=timing, outcome=_outcome(raw.get("outcome")),
            cut=cut if isinstance(cut, int) and not isinstance(cut, bool) else None, cut_after_s=at, window_s=window,
            during=str(raw.get("during", "")), detail=str(raw.get("outcome", "")), source=rel))
    if skipped:
        rows.append(CutRow(bench, source=rel, note=f"{bench}: {rel}: {skipped} row(s) without a known phase skipped"))
    if len(cuts) > MAX_ROWS_PER_FILE:
        rows.append(CutRow(bench, source=rel, note=f"{bench}: {rel}: only the first {MAX_ROWS_PER_FILE} cuts counted"))
    return rows


def collect_cuts(run_dir: Path) -> list[CutRow]:
    """Every bench's recorded cuts in `run_dir`; a bench without readable evidence gives a note row."""
    run_dir = Path(run_dir)
    evidence = run_dir / "evidence"
    if not evidence.is_dir():
        return [CutRow("", note=f"{run_dir}: no evidence/ folder; the resilience test did not run here")]
    reasons = _verdict_reasons(run_dir)
    rows: list[CutRow] = []
    bench_dirs = sorted(p for p in evidence.iterdir() if p.is_dir())
    for bench_dir in bench_dirs[:MAX_BENCHES]:
        bench = bench_dir.name
        files = sorted(bench_dir.glob(EVIDENCE_GLOB))
        if not files:
            why = f" ({reasons[bench]})" if bench in reasons else ""
            rows.append(CutRow(bench, note=f"{bench}: no power cuts recorded{why}"))
            continue
        for path in files[:MAX_FILES_PER_BENCH]:
            rows.extend(_rows_of(bench, path, str(path.relative_to(run_dir))))
        if len(files) > MAX_FILES_PER_BENCH:
            rows.append(CutRow(bench, note=f"{bench}: only the first {MAX_FILES_PER_BENCH} power-cuts files read"))
    if len(bench_dirs) > MAX_BENCHES:
        rows.append(CutRow("", note=f"{evidence}: only the first {MAX_BENCHES} benches read"))
    return rows


# --- the table -----------------------------------------------------------------------------


def summarise(rows: list[CutRow]) -> CampaignTable:
    """Count outcomes per bench x phase x timing, and over all benches; notes pass through."""
    cuts = [r for r in rows if not r.is_note]
    notes = [r.note for r in rows if r.is_note]
    benches = list(dict.fromkeys(r.bench for r in rows if r.bench))
    seen = {r.outcome for r in cuts}
    outcomes = [o for o in OUTCOMES if o in seen or o == CLEAN]
    timing_order = {t: i for i, t in enumerate((*TIMINGS, AFTER_END, UNKNOWN_TIMING))}

    def lines_for(bench: str, subset: list[CutRow]) -> list[CampaignLine]:
        counts: dict[tuple[str, str], Counter[str]] = {}
        for row in subset:
            counts.setdefault((row.phase, row.timing), Counter())[row.outcome] += 1
        keys = sorted(counts, key=lambda k: (list(PHASES).index(k[0]), timing_order[k[1]]))
        return [CampaignLine(bench, phase, timing, {o: counts[(phase, timing)].get(o, 0) for o in outcomes})
                for phase, timing in keys]

    lines: list[CampaignLine] = []
    for bench in benches:
        lines.extend(lines_for(bench, [r for r in cuts if r.bench == bench]))
    if cuts:
        lines.extend(lines_for(ALL_BENCHES, cuts))
    return CampaignTable(benches=benches, outcomes=outcomes, lines=lines, rows=cuts, notes=notes)


def render(table: CampaignTable) -> Table:
    """A rich table: one section per bench, then all benches; outcomes that are not clean in red."""
    out = Table(title=f"power-loss campaign: {table.cuts} cuts on {len(table.benches)} bench(es)",
                caption="\n".join(table.notes) or None, caption_justify="left")
    out.add_column("bench")
    out.add_column("cut during")
    out.add_column("when in window")
    for outcome in table.outcomes:
        out.add_column(outcome, justify="right")
    out.add_column("total", justify="right")
    previous = None
    for line in table.lines:
        if previous is not None and line.bench != previous:
            out.add_section()
        cells = []
        for outcome in table.outcomes:
            n = line.counts.get(outcome, 0)
            cells.append(f"[red]{n}[/red]" if n and outcome in BAD_OUTCOMES else str(n) if n else "·")
        out.add_row(line.bench if line.bench != previous else "", f"{line.phase}: {PHASES[line.phase]}", line.timing,
                    *cells, str(line.total), style="bold" if line.bench == ALL_BENCHES else None)
        previous = line.bench
    if not table.lines:
        out.add_row("(no cuts recorded)", "", "", *["" for _ in table.outcomes], "0")
    return out


def to_json(table: CampaignTable) -> dict[str, Any]:
    """campaign.json: the counts, every classified cut (traceable to its evidence file) and the notes."""
    return {
        "phases": PHASES,
        "timings": {"thirds of the window": list(TIMINGS), "after the command ended": AFTER_END,
                    "window unknown": UNKNOWN_TIMING},
        "outcomes": table.outcomes,
        "benches": {b: table.bench_totals(b) for b in table.benches},
        "total": table.bench_totals(ALL_BENCHES),
        "cuts": table.cuts,
        "lines": [{"bench": line.bench, "phase": line.phase, "timing": line.timing, "counts": line.counts,
                   "total": line.total} for line in table.lines],
        "rows": [asdict(r) for r in table.rows],
        "notes": table.notes,
    }
