"""Live progress of a run, read from the store: a bar per bench, its current test, verdict counts.

It reads what workers wrote (planned and final results, test-started events), the same way a
web view or a second terminal would, so it shows the truth even for workers on other hosts.
On a terminal it redraws in place; in a log (CI, a pipe) it prints a line when a bench moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lab.store import Store, events, result_counts
from lab.verdicts import VERDICTS

SHORT = {"PASS": ("pass", "green"), "FAIL": ("fail", "bold red"), "NOT_APPLICABLE": ("n/a", "dim"),
         "INCONCLUSIVE": ("inc", "yellow")}


@dataclass
class BenchLine:
    bench: str
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    current: str = "waiting"
    note: str = ""

    @property
    def done(self) -> int:
        return sum(self.counts.get(v, 0) for v in VERDICTS)


class Progress:
    def __init__(self, store: Store, run_id: str, benches: list[str], console: Console, *, title: str) -> None:
        self.store = store
        self.run_id = run_id
        self.console = console
        self.title = title
        self.lines = {b: BenchLine(b) for b in benches}
        self._event_mark = 0
        self._printed: dict[str, tuple] = {}
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def note(self, bench: str, text: str) -> None:
        """Something the orchestrator did to a bench (quarantine, failover, retry)."""
        line = self.lines.setdefault(bench, BenchLine(bench))
        line.note = text
        if self._live is None:
            self.console.print(f"{bench}: {text}", highlight=False)

    def refresh(self) -> None:
        try:
            counts = result_counts(self.store, run_id=self.run_id)
            new = events(self.store, run_id=self.run_id, after_id=self._event_mark, limit=10_000)
        except Exception:  # noqa: BLE001 - a busy database only delays the display
            return
        for ev in new:
            self._event_mark = ev.id
            if ev.kind == "test-started" and ev.bench in self.lines:
                self.lines[ev.bench].current = ev.message.rsplit("::", 1)[-1]
        for bench, c in counts.items():
            line = self.lines.setdefault(bench, BenchLine(bench))
            line.total = c.get("total", 0)
            line.counts = {v: c.get(v, 0) for v in VERDICTS}
            if line.total and line.done >= line.total:
                line.current = "done"
        if self._live is not None:
            self._live.update(self._render())
        else:
            self._print_changes()

    def _print_changes(self) -> None:
        for line in self.lines.values():
            key = (line.done, line.total, tuple(sorted(line.counts.items())))
            if line.total and self._printed.get(line.bench) != key:
                self._printed[line.bench] = key
                self.console.print(f"{line.bench}: {line.done}/{line.total} {self._counts_text(line).plain}",
                                   highlight=False)

    @staticmethod
    def _counts_text(line: BenchLine) -> Text:
        text = Text()
        for verdict in VERDICTS:
            n = line.counts.get(verdict, 0)
            if n:
                word, style = SHORT[verdict]
                text.append(f"{word} {n} ", style=style)
        return text

    def _render(self) -> Group:
        table = Table(title=self.title, expand=False)
        for col in ("bench", "progress", "done", "verdicts", "now"):
            table.add_column(col, no_wrap=True, overflow="ellipsis", max_width=60 if col == "now" else None)
        for line in self.lines.values():
            bar = ProgressBar(total=max(line.total, 1), completed=line.done, width=24)
            now = line.current if not line.note else f"{line.current} ({line.note})"
            table.add_row(line.bench, bar, f"{line.done}/{line.total or '?'}", self._counts_text(line), now[:70])
        return Group(table)
