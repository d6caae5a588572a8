"""The discontinuity probe (rule 5 of ``oracles.compare``), in the reference framework's
eager mode: which output elements may legitimately differ because a discontinuous op
(floor, round, comparisons, casts to integer, argmax, sort indices) sits near a jump.

Every value of the graph comes from one eager run; then each discontinuous op is re-run
alone on its inputs perturbed by the noise they may carry (up, down, opposite directions
for two-input ops, and random signs for ties): measured by ``oracles.recompute.Evidence``
where there is a float64 reference, else one tolerance, and none for inputs that carry no
rounding (``oracles.rounding.exact_nodes``: both sides see the same values, so ties on
them are compared exactly, as documented: first index, stable sort). The elements of its
result that jump are fed, in the reference's other values, through the graph below it:
the output elements that move depend on a near-jump, and only those are excused, never a
whole output for one element.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Mapping, Protocol, Sequence

import networkx as nx
import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import TensorType, is_float
from corpus.values import ValueSpec
from oracles.compare import (DISCONTINUOUS_APIS, NEAR_DISCONTINUITY, NEAR_KINK, NEAR_TIE, PROBE_FAILED, has_kink,
                             is_discontinuous, judged_tolerance, rounded_int_nodes, tolerance, value_precision)
from oracles.rounding import UNIT_ROUNDOFF, exact_nodes, is_index_op, ties_documented
from rules.execute import load_module
from rules.spec import OpSpec

RANDOM_TRIALS = 6
PROBE_FLOOR_ULPS = 16  # the least an input carrying rounding is moved, in its precision's roundoffs
SMALLEST_NORMAL = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126, "float64": 2.0**-1022}
PROBE_SEED = 0
# a second difference past this share of the first is a kink, not curvature (a smooth op
# moved by its noise, a few ulps to 1e-2 relative, curves by about that share of its slope)
KINK_SHARE = 0.1
Value = tuple[int, int]


class ValueEvidence(Protocol):
    def value(self, v: Value) -> tuple[np.ndarray, np.ndarray] | None: ...


def run_eager(framework: str, model: Any, inputs: list[Any]) -> Any:
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model(*inputs)
    return model(*inputs)


def all_values(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec]) -> dict[Value, np.ndarray]:
    """Every value (leaves and op outputs) of one eager run of ``graph``."""
    full = graph.copy()
    full.outputs = list(full.values())
    ns = load_module(full, framework, values, specs)
    model = ns["Model"](ns["CONSTS"]())
    outs = run_eager(framework, model, ns["INPUTS"]())
    return {v: ns["to_numpy"](o) for v, o in zip(full.outputs, outs)}


def op_runner(graph: Graph, node: int, framework: str, specs: Mapping[str, OpSpec]) -> tuple[Any, list[str]]:
    """A one-op model computing ``node`` from inputs fed as arrays: (callable, input dtypes)."""
    single = Graph()
    args = [single.add_leaf(graph.type_of(v)) for v in graph.inputs_of(node)]
    n = graph.node(node)
    single.outputs = single.add_op(n.op, n.attrs, args, list(n.types))  # type: ignore[arg-type]
    dummy = {leaf: ValueSpec(0, 0.0, 1.0) for leaf in single.leaves()}
    ns = load_module(single, framework, dummy, specs)
    model = ns["Model"]({})
    dtypes = [graph.type_of(v).dtype for v in graph.inputs_of(node)]

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [ns["to_tensor"](a, d) for a, d in zip(arrays, dtypes)]
        return [np.asarray(ns["to_numpy"](o)) for o in run_eager(framework, model, tensors)]

    return run, dtypes


def float64_runner(graph: Graph, node: int, framework: str, specs: Mapping[str, OpSpec]) -> Any:
    """``node`` alone with its float inputs and outputs in float64 (the kink probe's
    differences must not drown in the op's own rounding): arrays in, arrays out."""
    single = Graph()
    wide = [TensorType(t.shape, "float64") if is_float(t.dtype) else t for t in map(graph.type_of, graph.inputs_of(node))]
    args = [single.add_leaf(t) for t in wide]
    n = graph.node(node)
    out_types = [TensorType(t.shape, "float64") if is_float(t.dtype) else t for t in n.types]
    single.outputs = single.add_op(n.op, n.attrs, args, out_types)  # type: ignore[arg-type]
    ns = load_module(single, framework, {leaf: ValueSpec(0, 0.0, 1.0) for leaf in single.leaves()}, specs)
    model = ns["Model"]({})

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [ns["to_tensor"](a, t.dtype) for a, t in zip(arrays, wide)]
        return [np.asarray(ns["to_numpy"](o)) for o in run_eager(framework, model, tensors)]

    return run


def _step_like(deltas: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray | float:
    """The perturbation per output element (elementwise ops broadcast their inputs)."""
    if not deltas:
        return 0.0
    try:
        return np.max(np.stack([np.broadcast_to(d, shape) for d in deltas]), axis=0)
    except ValueError:
        return max(float(d.max()) if d.size else 0.0 for d in deltas)


def _jump_masks(base: list[np.ndarray], moved: list[np.ndarray], out_dtypes: list[str], deltas: list[np.ndarray],
                precision: str) -> list[np.ndarray]:
    """Per output of the op, the elements that jumped (moved much more than their inputs)."""
    masks = []
    for b, m, d in zip(base, moved, out_dtypes):
        if b.shape != m.shape:
            masks.append(np.ones(b.shape, dtype=bool))
        elif not is_float(d):
            masks.append(b != m)
        else:
            b64, m64 = b.astype(np.float64), m.astype(np.float64)
            atol, rtol = tolerance(precision or d)
            # a continuous op moves by about the perturbation; a jump by more, and one past the
            # tolerance is one the comparison would see (a floormod by 1.3e-5 jumps 1.3e-5,
            # under twice float32's atol)
            with np.errstate(invalid="ignore"):
                far = np.abs(m64 - b64) > (atol + rtol * np.abs(b64)) + 2 * _step_like(deltas, b.shape)
            masks.append(far | (~np.isfinite(m64) & np.isfinite(b64)))
    return masks


def _moved(x: np.ndarray, step: Any) -> np.ndarray:
    """``x`` moved by ``step``: floats through float64; integers in their own arithmetic,
    which wraps at the dtype's limits (one unit past int64's max is its min, the two values
    a float-to-integer cast at the limit may give: float64 would lose the unit there)."""
    x = np.asarray(x)
    if x.dtype.kind in "iu":  # (in int64, cast back: wraps for every width, unsigned too)
        with np.errstate(over="ignore", invalid="ignore"):
            return (x.astype(np.int64) + np.asarray(np.rint(step)).astype(np.int64)).astype(x.dtype)
    return (x.astype(np.float64) + step).astype(x.dtype)


def probe_jumps(graph: Graph, node: int, framework: str, specs: Mapping[str, OpSpec],
                env: Mapping[Value, np.ndarray], rng: random.Random, deltas: Mapping[int, np.ndarray],
                caps: Mapping[str, str] | None = None) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Re-run ``node`` alone with its inputs at position ``p`` moved by ``deltas[p]`` in
    several sign patterns: (per output, the elements that jumped in any pattern; the
    outputs of every pattern that made some element jump)."""
    args = graph.inputs_of(node)
    inputs = [env[v] for v in args]
    run, _ = op_runner(graph, node, framework, specs)
    base = run(inputs)
    jumps = [np.zeros(b.shape, dtype=bool) for b in base]
    floats = sorted(p for p, d in deltas.items() if np.any(d > 0))
    if not floats:
        return jumps, []  # nothing rounds on the way in: the op computes the same everywhere
    patterns: list[list[Any]] = [[1.0 if k % 2 == 0 else -1.0 for k in range(len(floats))],
                                 [-1.0 if k % 2 == 0 else 1.0 for k in range(len(floats))]]
    nprng = np.random.default_rng(rng.randrange(2**32))
    for _ in range(RANDOM_TRIALS):
        patterns.append([nprng.choice([-1.0, 1.0], size=inputs[p].shape) for p in floats])
    out_dtypes = [t.dtype for t in graph.node(node).types]
    precision = value_precision(graph, node, caps)
    jumped_runs = []
    for signs in patterns:
        moved = list(inputs)
        for k, p in enumerate(floats):
            moved[p] = _moved(inputs[p], signs[k] * deltas[p])
        outs = run(moved)
        # a one-unit move of a rounded integer (rounded_int_nodes) is no float perturbation
        # an output moves by in proportion: any move past the tolerance is that unit's jump
        # (per_image_standardization of a hue-adjusted integer image moved all 264 by 1.09)
        steps = [deltas[p] for p in floats if is_float(graph.type_of(args[p]).dtype)]
        masks = _jump_masks(base, outs, out_dtypes, steps, precision)
        if any(m.any() for m in masks):
            jumps = [j | m if j.shape == m.shape else m for j, m in zip(jumps, masks)]
            jumped_runs.append(outs)
    return jumps, jumped_runs


def _tolerance_deltas(graph: Graph, node: int, env: Mapping[Value, np.ndarray],
                      caps: Mapping[str, str] | None) -> dict[int, np.ndarray]:
    """One tolerance (of the least precise float dtype upstream) per float input."""
    deltas = {}
    for p, v in enumerate(graph.inputs_of(node)):
        dtype = graph.type_of(v).dtype
        if is_float(dtype):
            precision = value_precision(graph, v[0], caps) if graph.node(v[0]).kind == "op" else dtype
            atol, rtol = tolerance(precision or dtype)
            x = np.asarray(env[v], dtype=np.float64)
            with np.errstate(invalid="ignore"):  # a special input (inf, nan) is not moved
                deltas[p] = np.where(np.isfinite(x), atol + rtol * np.abs(x), 0.0)
    return deltas


def near_discontinuity(graph: Graph, node: int, framework: str, specs: Mapping[str, OpSpec],
                       env: Mapping[Value, np.ndarray], rng: random.Random,
                       caps: Mapping[str, str] | None = None) -> bool:
    """Does ``node``'s result change when its float inputs move by one tolerance (of the
    least precise float dtype upstream of each input)?"""
    jumps, _ = probe_jumps(graph, node, framework, specs, env, rng, _tolerance_deltas(graph, node, env, caps), caps)
    return any(j.any() for j in jumps)


class DiscontinuityProbe:
    """Answers, for one case, which output elements depend on a discontinuous op sitting
    near a jump; computes what it needs once, on demand."""

    def __init__(self, graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                 caps: Mapping[str, str] | None = None, evidence: ValueEvidence | None = None,
                 frameworks: Sequence[str] = ()) -> None:
        self.graph, self.framework, self.values, self.specs, self.caps = graph, framework, values, specs, caps
        self.evidence = evidence
        self.frameworks = tuple(frameworks) or (framework,)  # the reference's and the candidates'
        self._env: dict[Value, np.ndarray] | None = None
        self._exact = exact_nodes(graph, specs)
        self._rounded = rounded_int_nodes(graph, specs)
        self._runners: dict[int, Any] = {}
        # node -> (reason, per graph output: the elements depending on its near-jumps)
        self._found: dict[int, tuple[str, list[np.ndarray | None]]] = {}

    def near(self, nodes: Iterable[int], output: int | None = None) -> bool | dict[str, np.ndarray]:
        """For ``output``: reason -> mask of its elements that depend on a near-jump of one
        of ``nodes``. Without ``output``: whether any of them sits near a jump at all."""
        found: dict[str, np.ndarray] = {}
        for n in sorted(nodes):
            reason, masks = self._node(n)
            for k, m in enumerate(masks):
                if m is None or (output is not None and k != output):
                    continue
                if output is None and m.any():
                    return True
                found[reason] = found[reason] | m if reason in found else m
        return False if output is None else found

    def near_reason(self, nodes: Iterable[int]) -> str | None:
        """Why some of ``nodes`` sit near a jump or a kink (the first reason), None when none
        does: for values judged whole (gradients), counted under that reason."""
        for n in sorted(nodes):
            reason, masks = self._node(n)
            if any(m is not None and m.any() for m in masks):
                return reason
        return None

    def _node(self, node: int) -> tuple[str, list[np.ndarray | None]]:
        if node not in self._found:
            self._found[node] = self._probe(node)
        return self._found[node]

    def _probe(self, node: int) -> tuple[str, list[np.ndarray | None]]:
        none: list[np.ndarray | None] = [None] * len(self.graph.outputs)
        if not is_discontinuous(self.graph, node, self.specs, self._rounded):
            if has_kink(self.graph, node, self.specs):  # asked by the gradients' judge
                return self._probe_kink(node, none)
            return "", none
        spec = self.specs[self.graph.node(node).op]  # type: ignore[index]
        reason = NEAR_TIE if is_index_op(spec) else NEAR_DISCONTINUITY
        below = nx.descendants(self.graph.nx, node) | {node}
        everything = [np.ones(self.graph.type_of(v).shape, dtype=bool) if v[0] in below else None
                      for v in self.graph.outputs]
        # an index whose tie order is arbitrary by definition: exact ties count too
        arbitrary = is_index_op(spec) and not ties_documented(spec, self.frameworks)
        # an API that jumps inside on values it computes (hue wrapping around): a backend's
        # own rounding there moves it even on exact inputs, so those are moved too
        inside = bool(DISCONTINUOUS_APIS.search(getattr(spec, "api", "") or ""))
        try:
            env = self._values()
            deltas = self._deltas(node, env, arbitrary or inside)
            if arbitrary and (not deltas or self._has_ties(node, env)):
                # integer ties cannot be probed by moving values; exact float ties move
                # the index without moving the values the probe watches
                return reason, everything
            jumps, runs = probe_jumps(self.graph, node, self.framework, self.specs, env,
                                      random.Random(f"{PROBE_SEED}/{node}"), deltas, self.caps)
            if not runs:
                return reason, none
            return reason, self._dependents(node, jumps, runs, env)
        except Exception:  # noqa: BLE001 - cannot tell: what it feeds is excused, and counted apart
            return PROBE_FAILED, everything

    def _probe_kink(self, node: int, none: list[np.ndarray | None]) -> tuple[str, list[np.ndarray | None]]:
        """Does a value of ``node`` sit within its noise of a kink? The op runs in float64
        at its inputs moved by their noise (``_deltas``) both ways along several sign
        patterns: a smooth op's second difference is second order in the move, a kink's
        first order, so one past ``KINK_SHARE`` of the first difference is a kink. The
        gradients are judged whole (every one depends on the whole graph): an answer
        excuses them all, counted under ``NEAR_KINK``."""
        below = nx.descendants(self.graph.nx, node) | {node}
        everything = [np.ones(self.graph.type_of(v).shape, dtype=bool) if v[0] in below else None
                      for v in self.graph.outputs]
        try:
            env = self._values()
            deltas = self._deltas(node, env)
            if not deltas:
                return NEAR_KINK, none  # exact inputs: every backend sees the same side
            run = float64_runner(self.graph, node, self.framework, self.specs)
            inputs = [np.asarray(env[v]).astype(np.float64) if is_float(self.graph.type_of(v).dtype)
                      else np.asarray(env[v]) for v in self.graph.inputs_of(node)]
            base = run(inputs)
            nprng = np.random.default_rng(random.Random(f"{PROBE_SEED}/kink/{node}").randrange(2**32))
            for trial in range(2 + RANDOM_TRIALS):
                def moved(sign: float) -> list[np.ndarray]:
                    out = list(inputs)
                    for p, d in deltas.items():
                        pattern = 1.0 if trial == 0 else -1.0 if trial == 1 else \
                            nprng.choice([-1.0, 1.0], size=np.shape(inputs[p]))
                        out[p] = inputs[p] + sign * pattern * d
                    return out

                state = nprng.bit_generator.state
                up = run(moved(1.0))
                nprng.bit_generator.state = state  # the same pattern the other way
                down = run(moved(-1.0))
                for b, u, w in zip(base, up, down):
                    b, u, w = (np.asarray(a, dtype=np.float64) for a in (b, u, w))
                    if not (b.shape == u.shape == w.shape):
                        continue
                    with np.errstate(invalid="ignore", over="ignore"):
                        second = np.abs(u - 2 * b + w)
                        first = np.abs(u - w) / 2
                        scale = np.abs(b) + first
                        kink = second > KINK_SHARE * first + 2.0**-40 * scale
                    if np.any(kink & np.isfinite(second)):
                        return NEAR_KINK, everything
            return NEAR_KINK, none
        except Exception:  # noqa: BLE001 - cannot tell: the gradients are excused, and counted apart
            return PROBE_FAILED, everything

    def _has_ties(self, node: int, env: Mapping[Value, np.ndarray]) -> bool:
        """Does the index op's first input hold equal values (anywhere: a tie)?"""
        x = env.get(self.graph.inputs_of(node)[0])
        return x is not None and np.unique(np.asarray(x)).size < np.asarray(x).size

    def _values(self) -> dict[Value, np.ndarray]:
        if self._env is None:
            self._env = all_values(self.graph, self.framework, self.values, self.specs)
        return self._env

    def _deltas(self, node: int, env: Mapping[Value, np.ndarray], ties: bool = False) -> dict[int, np.ndarray]:
        """How far each float input of ``node`` may lie from the reference's: the measured
        noise where the float64 evidence has it, else one tolerance; nothing for inputs
        that carry no rounding, unless ``ties`` (one tolerance, to find exact ties)."""
        loose = _tolerance_deltas(self.graph, node, env, self.caps)
        deltas = {}
        for p, v in enumerate(self.graph.inputs_of(node)):
            if v[0] in self._rounded and not is_float(self.graph.type_of(v).dtype):
                deltas[p] = np.ones(np.shape(env[v]))  # one unit either way (rounded_int_nodes)
                continue
            if p not in loose:
                continue
            if v[0] in self._exact:
                if ties:  # a few of its own ulps: enough to split an exact tie, or to stand
                    # for a backend's rounding inside the op (not a tolerance, which moves a
                    # floormod's dividend past many periods of a small divisor)
                    dtype = self.graph.type_of(v).dtype
                    x = np.maximum(np.abs(np.asarray(env[v], dtype=np.float64)), SMALLEST_NORMAL.get(dtype, 0.0))
                    with np.errstate(invalid="ignore", over="ignore"):
                        ulps = PROBE_FLOOR_ULPS * UNIT_ROUNDOFF.get(dtype, 0.0) * x
                    deltas[p] = np.where(np.isfinite(ulps), np.minimum(ulps, loose[p]), 0.0)
                continue
            measured = self.evidence.value(v) if self.evidence is not None else None
            x = np.asarray(env[v], dtype=np.float64)
            if measured is None or np.shape(measured[0]) != x.shape:
                deltas[p] = loose[p]
                continue
            x64, spread = measured
            err = np.abs(x - x64)
            precision = value_precision(self.graph, v[0], self.caps) or self.graph.type_of(v).dtype
            _, rtol = judged_tolerance(precision)
            # rule 4's allowance around x64 (3 err + 2 spread), plus the reference's own
            # distance from it, at least PROBE_FLOOR_ULPS of the value (at most rule 4's rtol).
            # Not rule 4's floors in float32/64 (1e-4 relative is ~1,700 float32 ulps), nor its
            # absolute one (for outputs near zero): a floormod by 1.3e-5 (a product of 17
            # values) is 1e5 periods from zero, and moved by those floors every element
            # wraps while none sits near a jump.
            floor = min(rtol, PROBE_FLOOR_ULPS * UNIT_ROUNDOFF.get(precision, rtol))
            with np.errstate(invalid="ignore", over="ignore"):
                measured_delta = np.maximum(floor * np.abs(x64), 3 * err + 2 * spread) + err
            deltas[p] = np.where(np.isfinite(measured_delta), measured_delta, loose[p])
        return deltas

    def _dependents(self, node: int, jumps: list[np.ndarray], runs: list[list[np.ndarray]],
                    env: Mapping[Value, np.ndarray]) -> list[np.ndarray | None]:
        """Per graph output, the elements that move when the jumped elements of ``node``
        take their jumped values (each pattern in turn) and the graph below is recomputed."""
        below = nx.descendants(self.graph.nx, node)
        order = [n for n in self.graph.op_nodes() if n in below]
        base_outs = [env[(node, i)] for i in range(len(jumps))]
        base = self._propagate(node, base_outs, order, env)
        masks: list[np.ndarray | None] = [None] * len(self.graph.outputs)
        for outs in runs:
            mixed = [np.where(j, o, b) if j.shape == o.shape == b.shape else o
                     for j, o, b in zip(jumps, outs, base_outs)]
            moved = self._propagate(node, mixed, order, env)
            for k, v in enumerate(self.graph.outputs):
                if v[0] != node and v[0] not in below:
                    continue
                a, b = np.asarray(moved[v]), np.asarray(base[v])
                if a.shape != b.shape:
                    diff = np.ones(b.shape, dtype=bool)
                else:
                    diff = a != b
                    if a.dtype.kind == "f":
                        diff &= ~(np.isnan(a) & np.isnan(b))
                masks[k] = diff if masks[k] is None else masks[k] | diff
        return masks

    def _propagate(self, node: int, outs: list[np.ndarray], order: list[int],
                   env: Mapping[Value, np.ndarray]) -> dict[Value, np.ndarray]:
        local = dict(env)
        for i, o in enumerate(outs):
            local[(node, i)] = o
        for n in order:
            if n not in self._runners:
                self._runners[n] = op_runner(self.graph, n, self.framework, self.specs)[0]
            for i, o in enumerate(self._runners[n]([local[v] for v in self.graph.inputs_of(n)])):
                local[(n, i)] = o
        return local
