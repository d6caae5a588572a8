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
    for k, case in enumerate(cases):
        shift = merged.absorb(case.graph)
        for leaf, spec in case.values.items():
            values[leaf + shift] = spec
        for src, out in case.graph.outputs:
            outputs.append((src + shift, out))
            owner.append(k)
    merged.outputs = outputs
    first = cases[0]
    batch_case = Case(merged, first.framework, values, first.seed, dict(first.settings),
                      {"batch": [c.provenance.get("index") for c in cases]})
    return Batch(batch_case, list(cases), owner)
