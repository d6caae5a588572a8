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

Beyond finite values, a share of cases (the *value mode*, drawn from the case's seed by
``choose_mode``) reaches what compilers get wrong (DESIGN §5):

* ``"limits"``: integer leaves without a preferred range take values across their
  dtype's range, near its limits too (``ValueSpec`` mode ``"limits"``), as long as eager
  does not overflow on them (``fuzzer.overflow``); otherwise the range shrinks level by
  level (full range, half of it, half the bits, a quarter of them: an add of two values
  fits at the second level, a product at the third), then falls back to small values.
* ``"special"``: once clean values are found, a few elements of some float leaves become
  NaN, +-inf, -0.0, subnormals or huge magnitudes (``ValueSpec`` mode ``"special"``), on
  leaves whose results never turn into integers (casting NaN to an integer is undefined,
  so no reference defines it). The checker accepts NaN/Inf in such a case's reference
  and compares NaN positions exactly (``oracles.compare.compare_nonfinite``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Mapping

import networkx as nx
import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import INT_DTYPES, is_float
from corpus.values import ValueSpec, make_value
from fuzzer.overflow import overflowing_operator, overflows
from oracles.rounding import op_rounding
from rules.execute import all_finite, run_eager
from rules.spec import OpSpec

DEFAULT_RANGES = {"float": (-2.0, 2.0), "signed": (-8, 8), "uint8": (0, 16), "bool": (0, 1)}
# Ranges drawn for the leaves behind an operator that produced NaN/Inf; positive ones
# first and most often, since most domains (log, sqrt, pow, div) want positive values.
REPAIR_RANGES = [(0.5, 2.0), (0.5, 1.0), (0.9, 1.1), (-2.0, -0.5), (-1.0, -0.5), (-0.5, 0.5), (1.0, 2.0)]
REPAIR_WEIGHTS = [4, 3, 2, 2, 1, 2, 1]
# Shares of the cases that can take them (integer leaves without a preferred range; float
# leaves) given wide-range integers and special floats: a minority each, so that the
# plain, finite cases still dominate.
LIMITS_SHARE = 0.3
SPECIAL_SHARE = 0.12
LIMIT_LEVELS = 4  # range shrinking steps before small values (see limits_range)


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


def limits_range(dtype: str, level: int) -> tuple[int, int]:
    """The integer range of shrink ``level`` (0: the dtype's whole range)."""
    info = np.iinfo(dtype)
    bits = info.bits - (1 if info.min < 0 else 0)
    keep = [bits, bits - 1, bits // 2, bits // 4][level]
    return (-(2**keep) if info.min < 0 else 0), 2**keep - 1


def wide_leaves(graph: Graph, ranges: Mapping[int, tuple[float, float]]) -> list[int]:
    """Integer leaves free to take any value: no consumer prefers a range (indices,
    inferred operators' size-like arguments do, and keep it)."""
    return [leaf for leaf in graph.leaves() if graph.node(leaf).types[0].dtype in INT_DTYPES
            and ranges[leaf] == _default(graph.node(leaf).types[0].dtype)]


def special_leaves(graph: Graph) -> list[int]:
    """Float leaves none of whose results is turned into integers (float -> int ops on
    NaN/Inf are undefined); comparisons, giving bools, are defined."""
    def to_int(n: int) -> bool:
        node = graph.node(n)
        return (node.kind == "op" and any(is_float(graph.type_of(v).dtype) for v in graph.inputs_of(n))
                and any(t.dtype in INT_DTYPES for t in node.types))

    return [leaf for leaf in graph.leaves() if is_float(graph.node(leaf).types[0].dtype)
            and not any(to_int(n) for n in nx.descendants(graph.nx, leaf))]


def choose_mode(graph: Graph, specs: Mapping[str, OpSpec], rng: random.Random,
                limits_share: float = LIMITS_SHARE, special_share: float = SPECIAL_SHARE) -> str:
    """The case's value mode: ``"limits"``, ``"special"`` or ``""`` (plain), one draw of
    ``rng``, among the modes the graph has leaves for."""
    u = rng.random()
    if u < limits_share and wide_leaves(graph, initial_ranges(graph, specs)):
        return "limits"
    if u >= 1.0 - special_share and special_leaves(graph):
        return "special"
    return ""


@dataclass
class SearchResult:
    values: dict[int, ValueSpec]
    outputs: list[np.ndarray] | None  # the graph outputs, None when no clean values were found
    error: str | None = None  # the last exception, when the model never ran
    mode: str = ""  # the value mode the values have ("" when plain: a mode may fall back)

    @property
    def ok(self) -> bool:
        return self.outputs is not None


def _with_all_values(graph: Graph) -> Graph:
    probe = graph.copy()
    probe.outputs = [v for v in probe.values() if probe.node(v[0]).kind == "op"]
    return probe


def with_specials(graph: Graph, framework: str, specs: Mapping[str, OpSpec], values: dict[int, ValueSpec],
                  rng: random.Random) -> SearchResult | None:
    """Clean ``values`` with special floats in some eligible leaves, if eager runs them."""
    eligible = special_leaves(graph)
    if not eligible:
        return None
    chosen = [leaf for leaf in eligible if rng.random() < 0.5] or [rng.choice(eligible)]
    trial = {leaf: (replace(v, mode="special") if leaf in chosen else v) for leaf, v in values.items()}
    try:
        outputs = run_eager(graph, framework, trial, specs)
    except Exception:  # noqa: BLE001 - the reference rejects them: keep the clean values
        return None
    return SearchResult(trial, outputs, mode="special")


def _out_of_range_cast(graph: Graph, probe: Graph, values: Mapping[int, ValueSpec],
                       everything: list[np.ndarray]) -> int | None:
    """An op turning floats into an integer dtype on values outside that dtype's range
    (``int8`` of 300.0, ``uint8`` of -2.0): undefined in C, so eager's own result means
    nothing and frameworks differ; such values are repaired like NaN/Inf."""
    value_of = dict(zip(probe.outputs, everything))
    for n in graph.op_nodes():
        ints = [t.dtype for t in graph.node(n).types if t.dtype.startswith(("int", "uint"))]
        if not ints:
            continue
        low = max(np.iinfo(d).min for d in ints)
        high = min(np.iinfo(d).max for d in ints)
        for v in graph.inputs_of(n):
            if not is_float(graph.type_of(v).dtype):
                continue
            a = value_of.get(v)
            if a is None and graph.node(v[0]).kind != "op":
                a = make_value(graph.type_of(v), values[v[0]])
            a = np.asarray(a, dtype=np.float64) if a is not None else None
            if a is not None and a.size and (a.min() <= low - 1 or a.max() >= high + 1):
                return n
    return None


def integer_arithmetic(graph: Graph, specs: Mapping[str, OpSpec]) -> list[int]:
    """The ops that compute integers from integers other than by moving them (pow, prod,
    sum: the ops that can overflow on small values)."""
    found = []
    for n in graph.op_nodes():
        node = graph.node(n)
        if op_rounding(specs[node.op]) == "exact":  # type: ignore[index]
            continue
        ins = [graph.type_of(v).dtype for v in graph.inputs_of(n)]
        if any(d in INT_DTYPES for d in ins) and any(t.dtype in INT_DTYPES for t in node.types):
            found.append(n)
    return found


def _small_values_overflow(graph: Graph, probe: Graph, framework: str, specs: Mapping[str, OpSpec],
                           values: Mapping[int, ValueSpec], everything: list) -> bool:
    """Does integer arithmetic wrap in eager on small values (pow of a sum, of a count)?
    Through the leaves (a chain widened whole), or at one op on its eager inputs (integers
    made from floats: a ``count_nonzero``, an ``argmax``)."""
    nodes = integer_arithmetic(graph, specs)
    if not nodes:
        return False
    if overflows(probe, framework, values, specs, everything, signed_only=True,
                 wide=[n for n in graph.leaves() if graph.node(n).types[0].dtype in INT_DTYPES]):
        return True
    env = {v: np.asarray(a) for v, a in zip(probe.outputs, everything)}
    for leaf in graph.leaves():
        env[(leaf, 0)] = np.asarray(make_value(graph.type_of((leaf, 0)), values[leaf]))
    return overflowing_operator(graph, framework, specs, nodes, env, signed_only=True) is not None


def search_values(graph: Graph, framework: str, specs: Mapping[str, OpSpec], rng: random.Random,
                  rounds: int = 10, mode: str = "") -> SearchResult:
    """Values for every leaf of ``graph`` on which eager computes only finite values (and,
    in mode ``"limits"``, no integer overflow); ``mode`` is the case's value mode
    (``choose_mode``): the result's ``mode`` says which one the values have."""
    ranges = initial_ranges(graph, specs)
    probe = _with_all_values(graph)
    position = {v: i for i, v in enumerate(probe.outputs)}
    error = None
    values: dict[int, ValueSpec] = {}
    wide = wide_leaves(graph, ranges) if mode == "limits" else []
    level = 0  # of limits_range; LIMIT_LEVELS: small values
    for _ in range(rounds):
        values = {leaf: ValueSpec(rng.randrange(2**31), *ranges[leaf]) for leaf in graph.leaves()}
        limits = bool(wide) and level < LIMIT_LEVELS
        for leaf in wide if limits else ():
            values[leaf] = ValueSpec(values[leaf].seed, *limits_range(graph.node(leaf).types[0].dtype, level), "limits")
        try:
            everything = run_eager(probe, framework, values, specs)
        except Exception as e:  # a failure of the framework under test: data, not our fault
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            level += limits
            continue
        bad_cast = _out_of_range_cast(graph, probe, values, everything)
        if all_finite(everything) and bad_cast is None:
            if limits:
                verdict = overflows(probe, framework, values, specs, everything)
                if verdict is not False:  # overflows, or cannot tell: shrink, or give up on limits
                    level = level + 1 if verdict else LIMIT_LEVELS
                    continue
            elif _small_values_overflow(graph, probe, framework, specs, values, everything):
                # small values can overflow too (pow of a sum): eager wraps, and a wrapped
                # reference proves nothing (a cannot-tell answer keeps the values, as before)
                error = "integer overflow in eager on every value drawn"
                continue
            result = SearchResult(values, [everything[position[v]] for v in graph.outputs],
                                  mode="limits" if limits else "")
            if mode == "special":
                result = with_specials(graph, framework, specs, values, rng) or result
            return result
        error = None
        culprit = bad_cast if bad_cast is not None else \
            next(v[0] for v, a in zip(probe.outputs, everything) if not all_finite([a]))
        ancestors = nx.ancestors(graph.nx, culprit)
        level += limits and any(leaf in ancestors for leaf in wide)
        for leaf in ancestors:
            if graph.node(leaf).kind == "op" or not is_float(graph.node(leaf).types[0].dtype):
                continue
            ranges[leaf] = rng.choices(REPAIR_RANGES, weights=REPAIR_WEIGHTS)[0]
    return SearchResult(values, None, error)
