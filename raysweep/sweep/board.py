"""The sweep's live trials table (no Ray): one row per trial, shown in place or one line per change.

:class:`TrialBoard` holds what the terminal shows; the Tune callback in :mod:`raysweep.launch.console`
feeds it. On a terminal a ``rich`` table is redrawn in place; elsewhere (CI, ``ray job logs``, a
file) each change is one line, so a log holds the sweep's history and no copies of whole tables.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class TrialRow:
    """What the board knows about one trial."""

    trial_id: str
    values: dict
    status: str = "PENDING"
    epoch: int = 0
    metric: float | None = None
    steps_per_s: float | None = None
    seed: int | None = None
    note: str = ""


@dataclass
class TrialBoard:
    """Trials of a sweep with epoch, step rate and latest metric, drawn on ``stream``.

    Args:
        metric: the metric shown (the sweep's ``sweep.metric``).
        keys: swept config keys shown as columns.
        max_epochs: ``train.epochs`` (shown as ``epoch/max``).
        stream: where to draw (default: ``sys.stdout`` when drawing); a terminal gets the live table.
        live: force the live table on (True) or off (False); None: when ``stream`` is a terminal.
    """

    metric: str
    keys: list[str]
    max_epochs: int
    stream: object = None
    live: bool | None = None
    rows: dict[str, TrialRow] = field(default_factory=dict)

    def __post_init__(self):
        self._live = None
        self._last_line: dict[str, str] = {}

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment: no stream, no live display in the state.
        state = dict(self.__dict__)
        state.update(stream=None if self.stream is sys.stdout else self.stream, _live=None)
        return state

    @property
    def out(self):
        """The stream drawn on: ``stream``, else the current ``sys.stdout``."""
        return self.stream or sys.stdout

    @property
    def is_live(self) -> bool:
        return self.live if self.live is not None else bool(getattr(self.out, "isatty", lambda: False)())

    def update(self, trial_id: str, values: dict, **changes) -> None:
        """Set fields of a trial's row (``status``, ``epoch``, ``metric``, ``steps_per_s``, ``note``), then redraw."""
        row = self.rows.setdefault(trial_id, TrialRow(trial_id, dict(values)))
        for key, value in changes.items():
            if value is not None:
                setattr(row, key, value)
        self._draw(row)

    def start(self) -> None:
        if self.is_live and self._live is None:
            from rich.console import Console
            from rich.live import Live

            # Nothing else writes to this terminal while the table is up (Ray's lines are off), so
            # rich need not capture stdout/stderr: a stray print just lands above the table.
            console = Console(file=self.out, force_terminal=True)
            self._live = Live(self.table(), console=console, refresh_per_second=2, redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    def stop(self) -> None:
        """Leave the last table on screen (terminal); nothing is drawn after this."""
        if self._live is not None:
            self._live.update(self.table(), refresh=True)
            self._live.stop()
            self._live = None

    def table(self):
        """The rich Table of every trial."""
        from rich.table import Table

        table = Table(title=time.strftime("trials at %H:%M:%S"), title_justify="left", box=None, pad_edge=False)
        for name, justify in [("trial", "left"), ("status", "left"), ("epoch", "right"), (self.metric, "right"),
                              ("steps/s", "right"), *[(k, "left") for k in self.keys]]:  # fmt: skip
            table.add_column(name, justify=justify)
        for row in sorted(self.rows.values(), key=lambda r: r.trial_id):
            table.add_row(*self._cells(row), style=STATUS_STYLES.get(row.status, ""))
        return table

    def line(self, row: TrialRow) -> str:
        """One plain line for a change of ``row`` (the non-terminal form)."""
        trial, status, epoch, metric, rate, *vals = self._cells(row)
        values = " ".join(f"{k}={v}" for k, v in zip(self.keys, vals))
        note = f"  {row.note}" if row.note else ""
        return f"[{time.strftime('%H:%M:%S')}] trial {trial} {status:8s} epoch {epoch:>5s}  {self.metric} {metric}  {rate} steps/s  {values}{note}"

    def _cells(self, row: TrialRow) -> list[str]:
        metric = f"{row.metric:.4f}" if isinstance(row.metric, (int, float)) else "-"
        rate = f"{row.steps_per_s:.2f}" if isinstance(row.steps_per_s, (int, float)) else "-"
        return [row.trial_id, row.status, f"{row.epoch}/{self.max_epochs}", metric, rate, *[str(row.values.get(k, "-")) for k in self.keys]]

    def _draw(self, row: TrialRow) -> None:
        if self.is_live:
            if self._live is None:
                self.start()
            self._live.update(self.table(), refresh=True)
            return
        text = self.line(row)
        key = text.split("] ", 1)[1]  # the same state again (a repeated callback) is not a change
        if self._last_line.get(row.trial_id) == key:
            return
        self._last_line[row.trial_id] = key
        print(text, file=self.out, flush=True)


STATUS_STYLES = {"RUNNING": "", "EVAL": "cyan", "DONE": "green", "STOPPED": "yellow", "ERROR": "red", "PENDING": "dim"}
