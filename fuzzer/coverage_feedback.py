"""A campaign's coverage of the compilers under test (``dlfuzz fuzz --coverage``, DESIGN §8).

The campaign's side of ``oracles.sut_coverage`` (the workers measure) and
``reports.coverage_totals`` (the figures): it tells the sandbox to measure, takes each
job's count of new arcs (per operator kind and check kind of the job's cases, and for
guidance, ``fuzzer.guidance``), and every ``INTERVAL_S`` seconds of campaign time folds
the workers' data files into ``OUT/coverage/campaign.cov`` and appends a point to
``campaign.json``'s ``coverage.timeline``.

A combine costs ~0.1 s per worker file read and ~0.1 s writing the combined file, plus
the analysis of the files whose arcs changed (~0.3 s at first, less later); the first
one also loads the static analysis of the source files (0.1 s cached, ~15 s for
torch/_inductor and torch/_dynamo the first time on a machine; it runs in a thread from
the campaign's start). The interval grows to 20 times the last combine's cost, so that
combining stays under 5% of the parent's time.

A resumed campaign folds what is on disk (the combined file and any worker file an
interrupted run left) before its workers start, and they start from it; guidance's
bandit and seed pool start afresh. ``DLFUZZ_COVERAGE_INTERVAL_S`` sets the interval
(``bench/coverage.py``: 15 s, for finer timelines).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

from corpus.case import Case
from oracles.sut_coverage import COMBINED, WORKER_PREFIX, worker_env
from reports.coverage_totals import CoverageTotals
from rules.spec import OpSpec

INTERVAL_S = float(os.environ.get("DLFUZZ_COVERAGE_INTERVAL_S", 30.0))  # benchmarks want finer timelines
MAX_OVERHEAD = 0.05


class CoverageSourcesChanged(ValueError):
    """A resumed campaign measured other folders: its figures cannot continue."""


class CoverageFeedback:
    def __init__(self, out: Path, sources: Sequence[str], record: dict, specs: Mapping[str, OpSpec],
                 guide=None, interval_s: float | None = None) -> None:
        self.dir = Path(out) / "coverage"
        self.sources = [os.path.realpath(s) for s in sources]
        before = record.get("sources")
        if before is not None and sorted(before) != sorted(self.sources):
            raise CoverageSourcesChanged(
                f"{out} measured coverage of {', '.join(before)}; resume it with the same --coverage-source "
                f"or choose another --out")
        self.record = record
        record["sources"] = self.sources
        record.setdefault("timeline", [])
        record.setdefault("new_arcs", {})
        record.setdefault("jobs", {"measured": 0, "adding": 0})
        record["guided"] = guide is not None
        self.specs = specs
        self.guide = guide
        self.interval = self.base_interval = INTERVAL_S if interval_s is None else interval_s
        self.dir.mkdir(parents=True, exist_ok=True)
        self.totals = CoverageTotals(self.sources)
        self._last: float | None = None
        self._static_error = ""
        self._static = threading.Thread(target=self._load_static, name="dlfuzz-coverage-static", daemon=True)
        self._static.start()
        self._fold(live=set())  # what an earlier run left on disk: the workers start from it

    def _load_static(self) -> None:
        try:
            self.totals.static
        except Exception as e:  # noqa: BLE001 - no figures then, said in campaign.json
            self._static_error = f"{type(e).__name__}: {e}"

    def worker_env(self) -> dict[str, str]:
        return worker_env(self.sources, self.dir)

    # -- per job ---------------------------------------------------------------------------------
    def on_job(self, members: Sequence[Case], new_arcs: int | None, seconds: float | None = None,
               kind: str = "batch", at: float | None = None) -> None:
        """A job came back from a worker that measured it (``new_arcs`` None: not measured);
        ``seconds``: the worker's time on it; ``kind``: the campaign's job kind; ``at``:
        campaign time. Each measured job is a line of ``OUT/coverage/jobs.jsonl``."""
        if new_arcs is None or not members:
            return
        self._log_job(members, new_arcs, seconds, kind, at)
        jobs = self.record["jobs"]
        jobs["measured"] += 1
        if new_arcs > 0:
            jobs["adding"] += 1
            kinds: set[str] = set()
            for case in members:
                kinds |= {f"op kind: {getattr(self.specs.get(op), 'origin', 'spec')}" for op in case.graph.op_ids()}
                kinds |= {f"check: {k}" for k in case.plan.kinds()}
                kinds |= {f"option: {k}" for k in case.plan.options}  # (fuzzer.plan: the compile's options)
                kinds |= {f"harness: {case.plan.harness}"} if case.plan.harness else set()
            counts = self.record["new_arcs"]
            for k in sorted(kinds):
                counts[k] = counts.get(k, 0) + new_arcs
        if self.guide is not None:
            self.guide.feedback(members, new_arcs, seconds)

    def _log_job(self, members: Sequence[Case], new_arcs: int, seconds: float | None, kind: str,
                 at: float | None) -> None:
        """One line per measured job: what it had and what it added, for the steering's
        record (``bench/coverage.py`` reads it; a line lost to an interruption loses nothing
        a campaign found)."""
        plans = [c.plan for c in members]
        line = {"at": None if at is None else round(at, 1), "seconds": None if seconds is None else round(seconds, 2),
                "job": kind, "cases": len(members), "indices": [c.provenance.get("index") for c in members],
                "new_arcs": new_arcs, "harness": plans[0].harness, "options": sorted(plans[0].options),
                "checks": sorted({k for p in plans for k in p.kinds()}),
                "made": sorted({c.provenance.get("guide", "plain") for c in members})}
        with open(self.dir / "jobs.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    # -- combining -------------------------------------------------------------------------------
    def due(self, seconds: float) -> bool:
        return self._last is None or seconds - self._last >= self.interval

    def tick(self, seconds: float, live: set[int]) -> None:
        if self.due(seconds):
            self.combine(seconds, live)

    def finish(self, seconds: float) -> None:
        """After the workers have stopped: the last combine, worker files folded away."""
        self._static.join()
        self.combine(seconds, set())

    def combine(self, seconds: float, live: set[int]) -> None:
        start = time.monotonic()
        if self._last is None:
            self._last = seconds
        self._last = max(self._last, seconds)
        self._fold(live)
        if not self._static.is_alive():
            if self._static_error:
                self.record["error"] = f"no coverage figures: static analysis failed ({self._static_error})"
            else:
                t = self.totals.totals()
                self.record.update(t.to_json())
                point = [round(seconds, 1), round(t.lines_pct, 2), round(t.branches_pct, 2)]
                timeline = self.record["timeline"]
                if timeline and timeline[-1][0] >= point[0]:
                    timeline[-1] = point
                else:
                    timeline.append(point)
        cost = time.monotonic() - start
        self.record["combine_seconds"] = round(self.record.get("combine_seconds", 0.0) + cost, 2)
        self.record["combines"] = self.record.get("combines", 0) + 1
        if self.guide is not None:
            self.record["guide"] = {**dict(sorted(self.guide.made.items())), "seeds": len(self.guide.pool)}
        self.interval = max(self.base_interval, cost / MAX_OVERHEAD)

    def _fold(self, live: set[int]) -> None:
        """Fold every worker file into the union and write ``campaign.cov``; delete the
        files of workers that are gone once they are in it."""
        combined = self.dir / COMBINED
        n = self.totals.arc_count()
        if combined.exists() and n == 0:
            self.totals.add_file(combined)
        done: list[Path] = []
        for path in sorted(self.dir.glob(f"{WORKER_PREFIX}*.cov")):
            m = re.fullmatch(rf"{WORKER_PREFIX}(\d+)\.cov", path.name)
            if self.totals.add_file(path) and m and int(m.group(1)) not in live:
                done.append(path)
        if self.totals.arc_count() and (self.totals.arc_count() != n or not combined.exists()):
            self.totals.write(combined)
        for path in done:
            try:
                path.unlink()
            except OSError:
                pass
