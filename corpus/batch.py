"""Several independent cases as one: the batching that makes compiler fuzzing cheap.

A compiler such as Inductor pays most of its cost once per compiled model (g++ start-up
and headers), little per operator. Merging K generated graphs side by side into one
model pays that cost once for K cases. The merged case keeps, for each of its outputs,
which member it came from, so that a verdict can be traced back; a batch that fails in
any way is re-checked member by member, so a bug is always confirmed (and reported) on a
single case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from corpus.case import Case
from corpus.graph import Graph
from corpus.plan import CheckPlan


@dataclass
class Batch:
    case: Case  # the merged case
    members: list[Case]
    owner: list[int]  # merged output index -> member index


def merge_cases(cases: Sequence[Case]) -> Batch:
    if not cases:
        raise ValueError("merge_cases needs at least one case")
    frameworks = {c.framework for c in cases}
    if len(frameworks) != 1:
        raise ValueError(f"cannot merge cases of different frameworks: {sorted(frameworks)}")
    merged = Graph()
    values = {}
    outputs = []
    owner = []
    plan = CheckPlan()
    for k, case in enumerate(cases):
        shift = merged.absorb(case.graph)
        merge_plan(plan, case.plan, shift)
        for leaf, spec in case.values.items():
            values[leaf + shift] = spec
        for src, out in case.graph.outputs:
            outputs.append((src + shift, out))
            owner.append(k)
    merged.outputs = outputs
    plan.options = common_options([c.plan.options for c in cases])
    harnesses = {c.plan.harness for c in cases}
    plan.harness = harnesses.pop() if len(harnesses) == 1 else ""  # (the same reason)
    first = cases[0]
    batch_case = Case(merged, first.framework, values, first.seed, dict(first.settings),
                      {"batch": [c.provenance.get("index") for c in cases]}, plan)
    return Batch(batch_case, list(cases), owner)


def common_options(options: Sequence[dict]) -> dict:
    """The compiler options every member has, with the same value: a batch is compiled
    under those only, so a member is never tested under an option it was not drawn with
    (the members of one batch draw theirs from one stream, so they are usually all)."""
    if not options:
        return {}
    first, *rest = options
    return {k: v for k, v in first.items() if all(k in o and o[k] == v for o in rest)}


def merge_plan(into: CheckPlan, plan: CheckPlan, shift: int) -> None:
    """Add a member's plan (its leaf ids shifted) to the batch's: one compile serves
    every member's checks. Shape set ``k`` of the batch is every member's set ``k``; a
    member with fewer sets keeps its own shapes there. The batch's cotangent seed is the
    first member's: the cotangent covers every output."""
    into.dynamic_dims += [(n + shift, d) for n, d in plan.dynamic_dims]
    for k, shapes in enumerate(plan.shape_sets):
        if k == len(into.shape_sets):
            into.shape_sets.append({})
        into.shape_sets[k].update({n + shift: s for n, s in shapes.items()})
    if into.backward_seed is None:
        into.backward_seed = plan.backward_seed
    into.layouts.update({n + shift: name for n, name in plan.layouts.items()})
    into.mutation = into.mutation or plan.mutation
