"""Value search: choose input and weight values so that no intermediate is NaN or Inf.

NNSmith searches by gradient steps; dlfuzz does a cheaper localized repair that works
well for the operator set at hand:

1. every leaf starts from its consumer's preferred range (``OpSpec.value_range``: positive
   for ``log``, inside (-1, 1) for ``asin`` ...) or a dtype default;
2. the model runs once in eager mode, returning *every* intermediate value;
3. if some value is NaN/Inf, the first operator producing one (in topological order) is
   the culprit: the float leaves it depends on draw new ranges from a palette (positive,
   negative, narrow, near one: ``log(neg(x))`` needs a negative ``x``, ``exp(exp(x))`` a
   small one) and new seeds; leaves that do not feed the culprit keep their ranges;
4. after a few rounds the model is either clean or discarded (never reported).

A run that raises is retried with new values too (gather indices, say, depend on values)
and then discarded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping

import networkx as nx
import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import is_float
from corpus.values import ValueSpec
from rules.execute import all_finite, run_eager
from rules.spec import OpSpec

DEFAULT_RANGES = {"float": (-2.0, 2.0), "signed": (-8, 8), "uint8": (0, 16), "bool": (0, 1)}
# Ranges drawn for the leaves behind an operator that produced NaN/Inf; positive ones
# first and most often, since most domains (log, sqrt, pow, div) want positive values.
REPAIR_RANGES = [(0.5, 2.0), (0.5, 1.0), (0.9, 1.1), (-2.0, -0.5), (-1.0, -0.5), (-0.5, 0.5), (1.0, 2.0)]
REPAIR_WEIGHTS = [4, 3, 2, 2, 1, 2, 1]


def _default(dtype: str) -> tuple[float, float]:
    if is_float(dtype):
        return DEFAULT_RANGES["float"]
    if dtype == "bool":
        return DEFAULT_RANGES["bool"]
    if dtype == "uint8":
        return DEFAULT_RANGES["uint8"]
    return DEFAULT_RANGES["signed"]


def initial_ranges(graph: Graph, specs: Mapping[str, OpSpec]) -> dict[int, tuple[float, float]]:
    ranges = {}
    for leaf in graph.leaves():
        dtype = graph.node(leaf).types[0].dtype
        preferred = None
        for user, arg in graph.users_of((leaf, 0)):
            preferred = specs[graph.node(user).op].value_range(arg, dtype)  # type: ignore[index]
            if preferred is not None:
                break
        if preferred is not None and dtype == "uint8":
            preferred = (max(0.0, preferred[0]), max(1.0, preferred[1]))
        if preferred is not None and not is_float(dtype) and dtype != "bool":
            preferred = (float(np.ceil(preferred[0])), float(np.floor(preferred[1])))
            if preferred[0] > preferred[1]:
                preferred = None
        ranges[leaf] = preferred if preferred is not None else _default(dtype)
    return ranges


@dataclass
class SearchResult:
    values: dict[int, ValueSpec]
    outputs: list[np.ndarray] | None  # the graph outputs, None when no clean values were found
    error: str | None = None  # the last exception, when the model never ran

    @property
    def ok(self) -> bool:
        return self.outputs is not None


def _with_all_values(graph: Graph) -> Graph:
    probe = graph.copy()
    probe.outputs = [v for v in probe.values() if probe.node(v[0]).kind == "op"]
    return probe


def search_values(graph: Graph, framework: str, specs: Mapping[str, OpSpec], rng: random.Random,
                  rounds: int = 10) -> SearchResult:
    ranges = initial_ranges(graph, specs)
    probe = _with_all_values(graph)
    position = {v: i for i, v in enumerate(probe.outputs)}
    error = None
    values: dict[int, ValueSpec] = {}
    for _ in range(rounds):
        values = {leaf: ValueSpec(rng.randrange(2**31), *ranges[leaf]) for leaf in graph.leaves()}
        try:
            everything = run_eager(probe, framework, values, specs)
        except Exception as e:  # a failure of the framework under test: data, not our fault
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        if all_finite(everything):
            return SearchResult(values, [everything[position[v]] for v in graph.outputs])
        error = None
        culprit = next(v[0] for v, a in zip(probe.outputs, everything) if not all_finite([a]))
        for leaf in nx.ancestors(graph.nx, culprit):
            if graph.node(leaf).kind == "op" or not is_float(graph.node(leaf).types[0].dtype):
                continue
            ranges[leaf] = rng.choices(REPAIR_RANGES, weights=REPAIR_WEIGHTS)[0]
    return SearchResult(values, None, error)
