"""The campaign loop (DESIGN §2, §7): generate, check in the sandbox, record, repeat.

Everything a campaign finds is on disk the moment it is found: each new bug's folder is
written at once (``reports.bugs``), and ``campaign.json`` (the counts and the index of
the next case) is rewritten atomically after every case. A campaign killed at any point
resumes from ``campaign.json`` with the same ``--out``: counts continue, no case index
is checked twice, nothing found is lost.

Generation and value search run in this process (eager runs of our own generated
models); every backend under test runs in the sandbox's worker processes.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from corpus.case import write_atomic
from fuzzer.generate import GenConfig, Generator
from fuzzer.models import make_model
from reports.bugs import BugStore
from reports.localize import culprit_op
from rules.specs import SPECS

STATE_VERSION = 1


class CampaignError(Exception):
    """A campaign that cannot start (bad --out, mismatched resume); one line for the user."""


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise ValueError(f"expected a duration like 90s, 10m or 2h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def campaign_framework(backends: list[str]) -> tuple[str, bool]:
    """(the framework cases are generated for, whether ops must exist in both)."""
    fws = {"tensorflow" if b.startswith("tf.") else "torch" for b in backends}
    if len(fws) == 1:
        return fws.pop(), False
    return "torch", True


@dataclass
class CampaignState:
    backends: list[str]
    seed: int
    max_nodes: int
    next_index: int = 0
    cases: int = 0  # models generated
    valid: int = 0  # models the reference ran cleanly
    bugs: int = 0  # distinct bugs
    sightings: int = 0  # failing verdicts, duplicates included
    bugs_by_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    ops: dict[str, int] = field(default_factory=dict)  # operator -> valid cases using it
    timeline: list[list[float]] = field(default_factory=list)  # [seconds, cases, distinct bugs]

    def to_json(self) -> dict:
        minutes = self.seconds / 60
        return {
            "version": STATE_VERSION, "backends": self.backends, "seed": self.seed, "max_nodes": self.max_nodes,
            "next_index": self.next_index, "cases": self.cases, "valid": self.valid, "bugs": self.bugs,
            "sightings": self.sightings, "bugs_by_kind": self.bugs_by_kind, "seconds": round(self.seconds, 2),
            "cases_per_minute": round(self.cases / minutes, 2) if minutes > 0 else 0.0,
            "distinct_ops": len(self.ops), "ops": dict(sorted(self.ops.items())), "timeline": self.timeline,
        }

    @classmethod
    def load(cls, path: Path) -> "CampaignState":
        try:
            d = json.loads(path.read_text())
            return cls(list(d["backends"]), int(d["seed"]), int(d["max_nodes"]), int(d["next_index"]), int(d["cases"]),
                       int(d["valid"]), int(d["bugs"]), int(d.get("sightings", 0)), dict(d["bugs_by_kind"]),
                       float(d["seconds"]), dict(d.get("ops", {})), list(d.get("timeline", [])))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CampaignError(f"{path} is not a readable dlfuzz campaign state ({type(e).__name__}: {e}); "
                                f"move it away or choose another --out") from None


@dataclass
class CampaignConfig:
    backends: list[str]
    out: Path
    time_s: float
    seed: int = 0
    workers: int = 1
    max_nodes: int = 10
    timeout_s: float = 60.0
    max_cases: int | None = None  # stop after this many cases (tests, benchmarks)


def _open_state(cfg: CampaignConfig) -> CampaignState:
    path = cfg.out / "campaign.json"
    if not path.exists():
        return CampaignState(list(cfg.backends), cfg.seed, cfg.max_nodes)
    state = CampaignState.load(path)
    if state.backends != list(cfg.backends) or state.seed != cfg.seed or state.max_nodes != cfg.max_nodes:
        raise CampaignError(
            f"{cfg.out} holds a campaign with backends {','.join(state.backends)}, seed {state.seed}, max-nodes "
            f"{state.max_nodes}; resume it with the same options or choose another --out")
    return state


def run_campaign(cfg: CampaignConfig, progress: Callable[[CampaignState], None] | None = None) -> CampaignState:
    from oracles.compare import tolerance
    from oracles.sandbox import Sandbox

    framework, both = campaign_framework(cfg.backends)
    state = _open_state(cfg)
    specs = [s for s in SPECS.values() if (not both or len(s.frameworks) == 2)]
    generator = Generator(framework, specs, GenConfig(max_nodes=cfg.max_nodes))
    store = BugStore(cfg.out, SPECS, cfg.backends[0], cfg.timeout_s)
    state_path = cfg.out / "campaign.json"
    start = time.monotonic()
    base_seconds = state.seconds
    checked = 0

    def save() -> None:
        state.seconds = base_seconds + (time.monotonic() - start)
        write_atomic(state_path, json.dumps(state.to_json(), indent=1))

    save()
    with Sandbox(cfg.backends, timeout_s=cfg.timeout_s, workers=cfg.workers) as sandbox:
        while time.monotonic() - start < cfg.time_s and (cfg.max_cases is None or checked < cfg.max_cases):
            index = state.next_index
            model = make_model(generator, SPECS, cfg.seed, index)
            if model.valid:
                result = sandbox.check(model.case)
                if result.valid:
                    state.valid += 1
                    for op in set(model.case.graph.op_ids()):
                        state.ops[op] = state.ops.get(op, 0) + 1
                    for verdict in result.bugs:
                        dtype = verdict.dtype or "float32"
                        culprit = culprit_op(model.case, verdict, sandbox.check) if verdict.status == "mismatch" else None
                        _, new = store.record(model.case, verdict, tolerance(dtype), index, culprit)
                        state.sightings += 1
                        if new:
                            state.bugs += 1
                            state.bugs_by_kind[verdict.status] = state.bugs_by_kind.get(verdict.status, 0) + 1
            state.cases += 1
            state.next_index = index + 1
            checked += 1
            state.seconds = base_seconds + (time.monotonic() - start)
            if not state.timeline or state.seconds - state.timeline[-1][0] >= 10:
                state.timeline.append([round(state.seconds, 1), state.cases, state.bugs])
            save()
            if progress is not None:
                progress(state)
    state.timeline.append([round(base_seconds + time.monotonic() - start, 1), state.cases, state.bugs])
    save()
    return state


def print_progress(state: CampaignState) -> None:
    rate = state.cases / (state.seconds / 60) if state.seconds > 0 else 0.0
    print(f"\rcases {state.cases}  valid {state.valid}  bugs {state.bugs}  {rate:.1f} cases/min  ",
          end="", file=sys.stderr, flush=True)
