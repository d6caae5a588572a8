"""From a seed to a checked Case: generation, value search, saving.

Model ``i`` of a run with seed ``s`` draws from ``random.Random(f"{s}/{i}")``, so any
single model can be regenerated without the ones before it, and the same seed always
gives the same models.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from corpus.case import Case, write_atomic
from fuzzer.generate import GenConfig, Generator
from fuzzer.plan import Steer, cycle_slot, draw_harness, draw_options, draw_plan
from fuzzer.values import SearchResult, choose_mode, search_values
from rules.codegen import program_source
from rules.spec import OpSpec


# A graph whose values cannot be made finite (``sqrt(x)`` beside ``sqrt(neg(x))``) is
# discarded and redrawn, at most this many times; discards are counted, never hidden.
DRAWS_PER_MODEL = 3


@dataclass
class Model:
    case: Case
    search: SearchResult
    discarded: int = 0  # graphs drawn and thrown away before this one
    # coverage guidance cuts batches itself (fuzzer.guidance.Guide.batch_size): whether this
    # model is its batch's last; None where the campaign fills batches to its size
    ends_batch: bool | None = None

    @property
    def valid(self) -> bool:
        return self.search.ok


def model_rng(seed: int, index: int, draw: int = 0) -> random.Random:
    return random.Random(f"{seed}/{index}" if draw == 0 else f"{seed}/{index}/draw{draw}")


def make_case(generator: Generator, seed: int, index: int, draw: int = 0) -> Case:
    rng = model_rng(seed, index, draw)
    graph = generator.generate(rng)
    cfg = generator.config
    settings = {"max_nodes": cfg.max_nodes, "max_rank": cfg.bounds.max_rank, "max_dim": cfg.bounds.max_dim,
                "max_elements": cfg.bounds.max_elements}
    return Case(graph, generator.framework, {}, seed=seed, settings=settings,
                provenance={"generator": "dlfuzz", "index": index, "draw": draw})


def make_model(generator: Generator, specs: Mapping[str, OpSpec], seed: int, index: int, *,
               special_values: bool = True, checks: Sequence[str] = ("forward",),
               frameworks: Sequence[str] | None = None, case_for: Callable[[int], Case | None] | None = None,
               group: int | None = None, options: bool = False, harness: bool = False,
               steer: Steer | None = None) -> Model:
    """Generate model ``index`` and search values for it (runs it in eager mode).
    ``special_values``: False for torch-vs-tensorflow and XLA campaigns, where NaN and
    infinity propagate by each framework's own documented rules (``tf.maximum``; XLA's
    fast min/max), not a bug. ``checks``: the check kinds its plan may use
    (``fuzzer.plan``); ``frameworks``: those of the backends under test. ``case_for(draw)``:
    a case made otherwise (coverage guidance's mutants, ``fuzzer.guidance``), or None for
    the generated one. ``group``: models of one group (a campaign's batch) draw which
    checks their plans have from one stream (``fuzzer.plan.draw_plan``'s ``kinds``), and
    their compiler options too. ``options``: draw Inductor options for the plan
    (``fuzzer.plan.draw_options``; only where Inductor is under test). ``harness``: draw
    a harness (``fuzzer.plan.draw_harness``; only where torch.compile is under test).
    ``steer``: coverage guidance's choices for the model's batch (``fuzzer.plan.Steer``)."""
    steer = steer or Steer()
    for draw in range(DRAWS_PER_MODEL):
        case = (case_for(draw) if case_for is not None else None) or make_case(generator, seed, index, draw)
        # the value mode (wide integers, special floats) has its own stream: plain cases
        # keep the values they had before modes existed
        mode = choose_mode(case.graph, specs, random.Random(f"{seed}/{index}/{draw}/mode"),
                           **({} if special_values else {"special_share": 0.0}))
        search = search_values(case.graph, case.framework, specs, random.Random(f"{seed}/{index}/{draw}/values"),
                               mode=mode)
        case.values = search.values
        case.provenance["values_mode"] = search.mode or "plain"
        if search.ok:
            break
    if search.ok and set(checks) - {"forward"}:
        kinds = None if group is None else random.Random(f"{seed}/group{group}/checks")
        case.plan = draw_plan(case, specs, random.Random(f"{seed}/{index}/{draw}/plan"), checks,
                              frameworks or (case.framework,), kinds, steer.shares)
    slot = cycle_slot(seed, group)
    if search.ok and options:
        stream = f"{seed}/group{group}/options" if group is not None else f"{seed}/{index}/options"
        case.plan.options = draw_options(random.Random(stream), slot, steer.heavy)
    if search.ok and harness:
        stream = f"{seed}/group{group}/harness" if group is not None else f"{seed}/{index}/harness"
        case.plan.harness = draw_harness(random.Random(stream), case.plan.mutation, slot, steer.harness)
    return Model(case, search, discarded=draw)


def program_header(case: Case) -> str:
    ops = ", ".join(sorted(set(case.graph.op_ids())))
    return (f"dlfuzz model {case.provenance.get('index', '')} (seed {case.seed}, {case.framework}).\n"
            f"Operators: {ops}")


def save_model(case: Case, folder: Path, specs: Mapping[str, OpSpec]) -> None:
    """Write ``case.json`` and a standalone ``program.py`` into ``folder``."""
    case.save(folder / "case.json")
    write_atomic(folder / "program.py", program_source(case.graph, case.framework, case.values, specs, program_header(case)))
