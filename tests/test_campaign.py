"""The power-loss campaign table from synthetic power-cuts.json evidence (fast: no lab)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from lab.errors import CertlabError
from lab.orchestrator import campaign
from lab.orchestrator.campaign import (CLEAN, CONFIG_CORRUPT, FIRMWARE_UNEXPECTED, NO_COMEBACK, UNFINISHED,
                                       UNKNOWN_TIMING, collect_cuts, pytest_options, render, summarise, to_json)

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "5.9-2-2"


def _cut(n: int, phase: str, outcome: str | None, at: float, window: float | None = None, **extra) -> dict:
    row = {"cut": n, "phase": phase, "during": f"phase {phase}", "cut_after_s": at, "command_state": "-",
           "boot_banner_s": 1.5, "ssh_back_s": 0.3, **extra}
    if outcome is not None:
        row["outcome"] = outcome
    if window is not None:
        row["window_s"] = window
    return row


def _write(run: Path, bench: str, cuts: list[dict] | str, *, calibration: float | None = None) -> Path:
    folder = run / "evidence" / bench
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PREFIX}-power-cuts.json"
    path.write_text(cuts if isinstance(cuts, str) else json.dumps({"power_cuts_per_phase": 3, "cuts": cuts}))
    if calibration is not None:
        (folder / f"{PREFIX}-update-calibration.json").write_text(json.dumps({"seconds": calibration, "version": "1.5.0"}))
    return path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run with a clean bench, a bench whose config a cut corrupted, one that never came back, and broken ones."""
    _write(tmp_path, "conforming", [
        _cut(1, "a", "ok", 0.1, 0.9), _cut(2, "a", "ok", 0.4, 0.9), _cut(3, "a", "ok", 0.8, 0.9),
        _cut(4, "b", "ok", 0.5), _cut(5, "b", "ok", 1.9),  # window from the calibration file: 2.0 s
        _cut(6, "c", "ok", 1.0), _cut(7, "c", "ok", 2.0),  # no window known
    ], calibration=2.0)
    _write(tmp_path, "non_atomic", [
        _cut(1, "a", "FAIL: configuration garbled", 0.2, 0.9),
        _cut(2, "b", "ok", 0.5, 2.0), _cut(3, "b", "FAIL: unexpected firmware", 1.0, 2.0),
        _cut(4, "c", "FAIL: configuration unreadable", 0.5, 3.0),
    ])
    _write(tmp_path, "bricks", [_cut(1, "a", "ok", 0.1, 0.9), _cut(2, "b", "FAIL: did not come back", 1.5, 2.0)])
    _write(tmp_path, "cut_short", [_cut(1, "a", None, 0.3, 0.9)])  # a lab fault ended the test mid-cut
    _write(tmp_path, "corrupt", '{"power_cuts_per_phase": 3, "cuts": [')
    (tmp_path / "evidence" / "dead_relay").mkdir(parents=True)
    (tmp_path / "verdicts.json").write_text(json.dumps({"results": [
        {"bench": "dead_relay", "test": campaign.TEST_NAME, "verdict": "INCONCLUSIVE",
         "reason": "bench dead_relay: power relay fault: relay did not answer"}]}))
    return tmp_path


def _line(table, bench: str, phase: str, timing: str) -> dict[str, int]:
    [line] = [ln for ln in table.lines if (ln.bench, ln.phase, ln.timing) == (bench, phase, timing)]
    return {k: v for k, v in line.counts.items() if v}


def test_suite_node_names_the_resilience_test():
    path, _, func = campaign.SUITE_NODE.partition("::")
    assert "[" not in func, "the node id must not pin a bench"
    assert re.search(rf"^def {func}\(", (ROOT / path).read_text(), re.M)


def test_pytest_options():
    assert pytest_options(3, 7)[:4] == ["--power-cuts", "3", "--seed", "7"]
    assert pytest_options(10_000, 0)[:2] == ["--power-cuts", "10000"]


def test_pytest_timeout_grows_with_the_cuts():
    def timeout(cuts: int) -> int:
        opts = pytest_options(cuts, 1)
        assert opts[-2] == "-o"
        return int(opts[-1].removeprefix("timeout="))

    assert timeout(3) >= 900 and timeout(1000) > 3 * 1000 * 10  # the sim needs about 6 s per cut


@pytest.mark.parametrize("cuts", [0, -1, 10_001, True, 2.5, "3"])
def test_pytest_options_refuses_bad_cuts(cuts):
    with pytest.raises(CertlabError) as err:
        pytest_options(cuts, 1)
    message = str(err.value)
    assert message.startswith("--cuts") and "1 to 10000" in message and "\n" not in message


def test_pytest_options_refuses_bad_seed():
    with pytest.raises(CertlabError, match="^--seed"):
        pytest_options(3, "seven")  # type: ignore[arg-type]


def test_collect_classifies_every_cut_and_notes_unreadable_evidence(run: Path):
    rows = collect_cuts(run)
    cuts = [r for r in rows if not r.is_note]
    assert len(cuts) == 7 + 4 + 2 + 1
    assert {r.outcome for r in cuts if r.bench == "conforming"} == {CLEAN}
    assert [r.outcome for r in cuts if r.bench == "non_atomic"] == [CONFIG_CORRUPT, CLEAN, FIRMWARE_UNEXPECTED,
                                                                     CONFIG_CORRUPT]
    assert [r.outcome for r in cuts if r.bench == "cut_short"] == [UNFINISHED]
    assert next(r for r in cuts if r.bench == "conforming").source == f"evidence/conforming/{PREFIX}-power-cuts.json"
    notes = {r.bench: r.note for r in rows if r.is_note}
    assert set(notes) == {"corrupt", "dead_relay"}
    assert "not valid JSON" in notes["corrupt"]
    assert "no power cuts recorded" in notes["dead_relay"] and "power relay fault" in notes["dead_relay"]


def test_timing_thirds_of_the_window(run: Path):
    table = summarise(collect_cuts(run))
    assert _line(table, "conforming", "a", "early") == {CLEAN: 1}
    assert _line(table, "conforming", "a", "middle") == {CLEAN: 1}
    assert _line(table, "conforming", "a", "late") == {CLEAN: 1}
    # phase b without window_s: the window is the calibration install's duration
    assert _line(table, "conforming", "b", "early") == {CLEAN: 1}
    assert _line(table, "conforming", "b", "late") == {CLEAN: 1}
    assert _line(table, "conforming", "c", UNKNOWN_TIMING) == {CLEAN: 2}


def test_cut_after_the_command_ended_is_its_own_bucket(tmp_path: Path):
    _write(tmp_path, "b1", [_cut(1, "a", "ok", 0.09, 0.1, command_state="had exited 0"),
                            _cut(2, "a", "ok", 0.09, 0.1, command_state="running (cut off)")])
    table = summarise(collect_cuts(tmp_path))
    assert _line(table, "b1", "a", campaign.AFTER_END) == {CLEAN: 1}
    assert _line(table, "b1", "a", "late") == {CLEAN: 1}
    assert [ln.timing for ln in table.lines if ln.bench == "b1"] == ["late", campaign.AFTER_END]


def test_summary_per_bench_and_total(run: Path):
    table = summarise(collect_cuts(run))
    assert table.benches == ["bricks", "conforming", "corrupt", "cut_short", "dead_relay", "non_atomic"]
    assert table.outcomes == [CLEAN, CONFIG_CORRUPT, FIRMWARE_UNEXPECTED, NO_COMEBACK, UNFINISHED]
    assert table.bench_totals("non_atomic") == {CLEAN: 1, CONFIG_CORRUPT: 2, FIRMWARE_UNEXPECTED: 1, NO_COMEBACK: 0,
                                                UNFINISHED: 0}
    assert table.bench_totals("bricks")[NO_COMEBACK] == 1
    assert table.bench_totals(campaign.ALL_BENCHES) == {CLEAN: 9, CONFIG_CORRUPT: 2, FIRMWARE_UNEXPECTED: 1,
                                                        NO_COMEBACK: 1, UNFINISHED: 1}
    assert table.cuts == 14 and len(table.notes) == 2
    # per-bench lines come first, the all-benches lines last
    assert table.lines[-1].bench == campaign.ALL_BENCHES and table.lines[0].bench == "bricks"


def test_render_and_json(run: Path):
    table = summarise(collect_cuts(run))
    console = Console(record=True, width=200)
    console.print(render(table))
    text = console.export_text()
    assert "power-loss campaign: 14 cuts on 6 bench(es)" in text
    for word in ("config corrupt", "did not come back", "a: config write", "b: update", "c: operation + boot",
                 "not valid JSON", "all benches"):
        assert word in text, word
    doc = json.loads(json.dumps(to_json(table)))
    assert doc["total"][CONFIG_CORRUPT] == 2 and doc["cuts"] == 14
    assert doc["benches"]["conforming"][CLEAN] == 7
    assert len(doc["rows"]) == 14 and len(doc["notes"]) == 2


def test_empty_or_missing_run_dir(tmp_path: Path):
    table = summarise(collect_cuts(tmp_path))
    assert table.cuts == 0 and table.lines == [] and "no evidence/ folder" in table.notes[0]
    console = Console(record=True, width=120)
    console.print(render(table))
    assert "no cuts recorded" in console.export_text()


def test_odd_rows_are_skipped_with_a_note(tmp_path: Path):
    _write(tmp_path, "b1", [_cut(1, "a", "ok", 0.1, 0.9), "garbage", {"phase": "z"}, _cut(2, "a", "weird", 0.5, 0.9)])
    _write(tmp_path, "b2", '["not", "a", "mapping"]')
    _write(tmp_path, "b3", [])  # the test failed before its first cut
    rows = collect_cuts(tmp_path)
    table = summarise(rows)
    assert table.bench_totals("b1") == {CLEAN: 1, campaign.OTHER: 1}
    assert any("2 row(s) without a known phase" in n for n in table.notes)
    assert any("b2" in n and "no 'cuts' list" in n for n in table.notes)
    assert any("b3" in n and "records no cuts" in n for n in table.notes)
