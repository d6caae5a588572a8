"""What ``dlfuzz fuzz`` shows while it runs.

Three displays, chosen by ``campaign_display``:

- on a terminal, a live panel (``rich.live.Live``, redrawn twice a second): time elapsed
  and left, cases and calls per minute, the valid share, bugs by kind and by check, the
  last bug's one-line summary, workers alive and, with ``--coverage``, the compilers'
  line and branch coverage;
- ``--quiet``: one plain line a minute (and the command's final line);
- not a terminal (a log file, a pipe): the progress line rewritten per case, as before.

``--json`` shows nothing until its one line. Every display writes to the ``terminal``
stream ``fuzzer.quiet.native_output_to`` yields, never to ``sys.stdout`` or
``sys.stderr``: those are the campaign's log while it runs, where what the models under
test print and warn belongs. The live panel must not take ``sys.stdout`` over either (rich's
default), or a model's ``print`` would land on the screen.

The campaign loop calls the display with its ``CampaignState`` after each case; the live
panel copies the figures then (in the loop's thread) and its refresh thread draws only
that copy and the clock.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TextIO

REFRESH_PER_SECOND = 2
QUIET_INTERVAL_S = 60.0


def clock(seconds: float) -> str:
    """``1:05:09``, ``4:07``: a duration as a person reads it."""
    s = max(0, int(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _counts(counts: dict[str, int], prefix: str = "") -> str:
    """``crash 3 · mismatch 2``: the counts whose key starts with ``prefix``, largest first."""
    items = [(k[len(prefix):], v) for k, v in counts.items() if k.startswith(prefix) and v]
    return " · ".join(f"{k} {v:,}" for k, v in sorted(items, key=lambda kv: (-kv[1], kv[0])))


@dataclass
class Figures:
    """What the screen shows of a ``CampaignState``, copied when a case is done."""

    backends: list[str]
    cases: int = 0
    valid: int = 0
    valid_share: float = 1.0
    skipped: int = 0
    cases_per_minute: float = 0.0
    calls: int = 0
    calls_per_minute: float = 0.0
    calls_by_kind: str = ""
    bugs: int = 0
    sightings: int = 0
    ignored: int = 0
    parked: int = 0
    bugs_by_kind: str = ""
    bugs_by_check: str = ""
    last_bug: str = ""
    workers_alive: int = 0
    coverage: dict = field(default_factory=dict)

    @classmethod
    def of(cls, state) -> "Figures":
        checks = dict(state.checks)
        calls = sum(v for k, v in checks.items() if k.startswith("calls: "))
        minutes = (state.seconds - state.reduce_seconds) / 60
        cov = state.coverage or {}
        return cls(list(state.backends), state.cases, state.valid, state.valid_share, sum(state.skipped.values()),
                   state.cases_per_minute, calls, calls / minutes if minutes > 0 else 0.0,
                   _counts(checks, "calls: "), state.bugs, state.sightings, state.ignored, state.parked,
                   _counts(dict(state.bugs_by_kind)), _counts(checks, "bugs: "), state.last_bug,
                   state.workers_alive, {k: cov[k] for k in ("lines_pct", "branches_pct", "error") if k in cov})


def frame(fig: Figures, elapsed: float, time_s: float, workers: int, title: str = ""):
    """The panel for ``fig`` at ``elapsed`` seconds into a campaign of ``time_s``."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")

    left = time_s - elapsed
    when = f"{clock(elapsed)} elapsed · {clock(left)} left of {clock(time_s)}" if left > 0 else \
        f"{clock(elapsed)} elapsed · time is up, finishing (new bugs are reduced)"
    grid.add_row("time", Group(Text(when), ProgressBar(total=max(time_s, 1e-9), completed=min(elapsed, time_s),
                                                        width=40)))
    skipped = f" · skipped {fig.skipped:,}" if fig.skipped else ""
    share = Text(f"{fig.valid_share:.0%}", style="green" if fig.valid_share >= 0.9 else "yellow")
    grid.add_row("cases", Text.assemble(f"{fig.cases:,} · {fig.cases_per_minute:.1f}/min · valid {fig.valid:,} (",
                                        share, f"){skipped}"))
    calls = f"{fig.calls:,} calls · {fig.calls_per_minute:.1f}/min"
    grid.add_row("checks", calls + (f" · {fig.calls_by_kind}" if fig.calls_by_kind else ""))
    bugs = Text(f"{fig.bugs:,} distinct", style="bold red" if fig.bugs else "")
    extra = [f"{fig.sightings:,} sightings"] + ([f"{fig.ignored:,} known ignored"] if fig.ignored else []) + \
        ([f"{fig.parked:,} waiting for reduction"] if fig.parked else [])
    grid.add_row("bugs", Text.assemble(bugs, " · " + " · ".join(extra)))
    if fig.bugs_by_kind:
        grid.add_row("  by kind", fig.bugs_by_kind)
    if fig.bugs_by_check:
        grid.add_row("  by check", fig.bugs_by_check)
    grid.add_row("last bug", Text(fig.last_bug or "none yet", style="red" if fig.last_bug else "dim"))
    alive = Text(f"{fig.workers_alive} of {workers} alive",
                 style="green" if fig.workers_alive >= workers else "yellow")
    grid.add_row("workers", alive)
    if "lines_pct" in fig.coverage:
        grid.add_row("coverage", f"lines {fig.coverage['lines_pct']:.2f}% · branches "
                                 f"{fig.coverage.get('branches_pct', 0.0):.2f}%")
    elif "error" in fig.coverage:
        grid.add_row("coverage", Text(str(fig.coverage["error"]), style="yellow"))
    return Panel(grid, title=title or "dlfuzz fuzz " + " vs ".join(fig.backends), title_align="left",
                 subtitle="Ctrl-C stops; the same command resumes", subtitle_align="right")


class LiveScreen:
    """The live panel on ``terminal``; call it with the state after each case."""

    def __init__(self, terminal: TextIO, backends: list[str], time_s: float, workers: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from rich.console import Console

        self.terminal = terminal
        self.time_s, self.workers, self.clock = time_s, workers, clock
        self.console = Console(file=terminal)
        self.figures = Figures(list(backends))
        self.start = clock()
        self.live = None

    def __call__(self, state) -> None:
        self.figures = Figures.of(state)  # one assignment: the refresh thread sees the old or the new

    def render(self):
        try:  # descriptors 1 and 2 are the log: rich would size the panel from stdin or guess
            self.console.width = os.get_terminal_size(self.terminal.fileno()).columns
        except (OSError, ValueError, AttributeError):
            pass
        return frame(self.figures, self.clock() - self.start, self.time_s, self.workers)

    def __enter__(self) -> "LiveScreen":
        from rich.live import Live

        # redirect_*: rich would point sys.stdout and sys.stderr at the screen, and with
        # them whatever the models under test print and warn
        self.live = Live(console=self.console, get_renderable=self.render, refresh_per_second=REFRESH_PER_SECOND,
                         redirect_stdout=False, redirect_stderr=False, transient=False)
        self.live.start(refresh=True)
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()  # leaves the last frame on the screen


def progress_line(state, elapsed: float) -> str:
    """The ``--quiet`` line: one a minute, for logs."""
    return (f"[{clock(elapsed)}] cases {state.cases}  valid {state.valid} ({state.valid_share:.0%})  bugs {state.bugs}"
            f"{f' {state.bugs_by_kind}' if state.bugs else ''}  {state.cases_per_minute:.1f} cases/min")


class QuietLines:
    """``--quiet``: a plain line on ``terminal`` at most once a minute."""

    def __init__(self, terminal: TextIO, interval_s: float = QUIET_INTERVAL_S, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.terminal, self.interval_s, self.clock = terminal, interval_s, clock
        self.start = self.last = clock()

    def __call__(self, state) -> None:
        now = self.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            print(progress_line(state, now - self.start), file=self.terminal, flush=True)


@dataclass
class Display:
    """The display ``run_campaign`` is given (``progress``: None for ``--json``) and
    whether it leaves a line open that the command's own next line must end."""

    progress: Callable | None
    open_line: bool = False


@contextmanager
def campaign_display(terminal: TextIO, backends: list[str], time_s: float, workers: int, *, quiet: bool = False,
                     json: bool = False, live: bool | None = None) -> Iterator[Display]:
    """The display for a campaign; ``live`` defaults to whether ``terminal`` is a terminal."""
    from fuzzer.campaign import print_progress

    if json:
        yield Display(None)
    elif quiet:
        yield Display(QuietLines(terminal))
    elif live if live is not None else _is_terminal(terminal):
        with LiveScreen(terminal, backends, time_s, workers) as screen:
            yield Display(screen)
    else:
        yield Display(lambda s: print_progress(s, terminal), open_line=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (ValueError, AttributeError):
        return False
