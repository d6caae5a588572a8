"""The campaign screen (fuzzer.screen): the live panel's figures, --quiet's lines, and
which display a campaign gets. The campaigns that print and warn are in test_quiet.py."""

from __future__ import annotations

import io
import re
import sys

from rich.console import Console

from fuzzer.campaign import CampaignState
from fuzzer.screen import Figures, LiveScreen, QuietLines, campaign_display, clock, frame

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(renderable, width: int = 120) -> str:
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=width).print(renderable)
    return ANSI.sub("", out.getvalue())


def busy_state() -> CampaignState:
    state = CampaignState(["torch.eager", "torch.compile:aot_eager"], 3, 10, cases=120, valid=114, bugs=3,
                          sightings=5, bugs_by_kind={"crash": 2, "mismatch": 1}, seconds=150.0, reduce_seconds=30.0,
                          skipped={"value search failed": 4, "declined by torch.compile": 2})
    state.checks = {"cases: forward": 114, "cases: dynamic": 40, "calls: forward": 114, "calls: dynamic": 80,
                    "calls: backward": 46, "compiles": 200, "bugs: forward": 2, "bugs: backward": 1}
    state.last_bug = "case 17 · torch.exp · torch.compile:aot_eager: crash at compile: RuntimeError: planted"
    state.workers_alive = 1
    state.coverage = {"lines_pct": 12.345, "branches_pct": 5.6, "timeline": [[10.0, 1.0, 0.5]]}
    return state


def test_the_panel_shows_the_figures_of_the_state():
    text = plain(frame(Figures.of(busy_state()), elapsed=90.0, time_s=180.0, workers=2))
    rows = {line.strip("│ ").split("  ")[0]: line for line in text.splitlines()}
    assert "dlfuzz fuzz torch.eager vs torch.compile:aot_eager" in text
    assert "1:30 elapsed · 1:30 left of 3:00" in rows["time"]
    # 120 cases and 240 calls in 2 minutes of checking (the 30 s of reduction left out)
    assert "120 · 60.0/min · valid 114 (95%) · skipped 6" in rows["cases"]
    assert "240 calls · 120.0/min · forward 114 · dynamic 80 · backward 46" in rows["checks"]
    assert "3 distinct · 5 sightings" in rows["bugs"]
    assert "crash 2 · mismatch 1" in rows["by kind"]
    assert "forward 2 · backward 1" in rows["by check"]
    assert "case 17 · torch.exp · torch.compile:aot_eager: crash at compile: RuntimeError: planted" in rows["last bug"]
    assert "1 of 2 alive" in rows["workers"]
    assert "lines 12.35% · branches 5.60%" in rows["coverage"]


def test_a_fresh_campaign_shows_no_bugs_and_no_coverage_row():
    state = CampaignState(["torch.eager", "torch.compile"], 0, 10)
    text = plain(frame(Figures.of(state), elapsed=0.0, time_s=600.0, workers=1), width=100)
    assert "0:00 elapsed · 10:00 left of 10:00" in text
    assert "none yet" in text and "0 of 1 alive" in text
    assert "coverage" not in text and "by kind" not in text
    assert all(len(line) <= 100 for line in text.splitlines())
    # after the budget: reduction of new bugs
    assert "time is up" in plain(frame(Figures.of(state), elapsed=700.0, time_s=600.0, workers=1))
    # a long last bug is cut to the width, not wrapped
    state.last_bug = "case 1 · " + "x" * 500
    assert all(len(line) <= 100 for line in plain(frame(Figures.of(state), 1.0, 60.0, 1), width=100).splitlines())


def test_clock():
    assert [clock(s) for s in (0, 59.9, 61, 3600, 3725, -5)] == ["0:00", "0:59", "1:01", "1:00:00", "1:02:05", "0:00"]


def test_the_live_screen_draws_on_its_terminal_and_leaves_stdout_alone():
    terminal = io.StringIO()
    now = [100.0]
    screen = LiveScreen(terminal, ["torch.eager", "torch.compile"], 60.0, 2, clock=lambda: now[0])
    screen.console = Console(file=terminal, force_terminal=True, width=100)
    stdout, stderr = sys.stdout, sys.stderr
    with screen:
        assert sys.stdout is stdout and sys.stderr is stderr  # a model's print stays in the log
        now[0] += 30
        screen(busy_state())
    text = ANSI.sub("", terminal.getvalue())
    assert "0:30 elapsed · 0:30 left of 1:00" in text and "crash 2 · mismatch 1" in text


def test_quiet_prints_a_line_a_minute_not_a_line_a_case():
    terminal = io.StringIO()
    now = [0.0]
    quiet = QuietLines(terminal, clock=lambda: now[0])
    state = busy_state()
    for _ in range(200):  # 200 cases in 150 s
        now[0] += 0.75
        quiet(state)
    lines = terminal.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in terminal.getvalue()
    assert lines[0].startswith("[1:00] cases 120  valid 114 (95%)  bugs 3 {'crash': 2, 'mismatch': 1}")


def test_each_mode_gets_its_display():
    backends = ["torch.eager", "torch.compile"]
    pipe = io.StringIO()  # not a terminal
    with campaign_display(pipe, backends, 60, 1, json=True) as d:
        assert d.progress is None and not d.open_line
    with campaign_display(pipe, backends, 60, 1, quiet=True) as d:
        assert isinstance(d.progress, QuietLines) and not d.open_line
    with campaign_display(pipe, backends, 60, 1) as d:  # logs: today's progress line per case
        assert d.open_line
        d.progress(busy_state())
    assert pipe.getvalue().startswith("\rcases 120  valid 114 (95%)  bugs 3")
    with campaign_display(io.StringIO(), backends, 60, 1, live=True) as d:
        assert isinstance(d.progress, LiveScreen) and not d.open_line
