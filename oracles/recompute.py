"""Recomputations that judge a difference (the evidence behind rules 4 and 5 of
``oracles.compare``), all in the reference framework's eager mode:

* **the float64 reference**: the case's graph with every float leaf, float op output and
  float dtype attribute promoted to float64, *only where every op's spec accepts float64
  inputs* (otherwise there is none), fed with exactly the reference's input values
  upcast (not redrawn: a float32 input is the rounded value, and so must be its float64
  copy);
* **the noisy runs**: the promoted graph interpreted op by op, with a few ulps (of each
  value's original dtype) of random rounding noise injected after every op, more for
  reductions; how far they land from the float64 reference measures how much rounding
  the graph amplifies (Monte Carlo arithmetic);
* **the discontinuity probe**: every value of the graph from one eager run; then each
  discontinuous op is re-run alone on its inputs perturbed by one tolerance (up, down,
  opposite directions for two-input ops, and random signs for ties); if its result jumps,
  the op sits near a discontinuity and whatever it feeds may differ legitimately.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Mapping

import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import FLOAT_DTYPES, is_float
from corpus.values import ValueSpec
from oracles.compare import Reference64, is_discontinuous, tolerance, value_precision
from rules.execute import load_module
from rules.spec import OpSpec

RANDOM_TRIALS = 6
PROBE_SEED = 0
NOISE_TRIALS = 4  # all up, all down, then random signs
NOISE_ULPS = 4.0  # unit roundoffs per op: two ulps, as fused and unfused code may differ
UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24, "float64": 2.0**-53}


# ---- float64 ---------------------------------------------------------------------------

def promote_float64(graph: Graph, framework: str, specs: Mapping[str, OpSpec]) -> Graph | None:
    """A copy of ``graph`` computing in float64, or None where a spec forbids it."""
    data = graph.to_json()
    for node in data["nodes"]:
        for t in node["types"]:
            if t["dtype"] in FLOAT_DTYPES:
                t["dtype"] = "float64"
        if node["kind"] == "op":
            node["attrs"] = {k: ("float64" if isinstance(v, str) and v in FLOAT_DTYPES else v)
                             for k, v in node["attrs"].items()}
    promoted = Graph.from_json(data)
    for n in promoted.op_nodes():
        spec = specs[promoted.node(n).op]  # type: ignore[index]
        if framework not in spec.frameworks:
            return None
        combo = tuple(promoted.type_of(v).dtype for v in promoted.inputs_of(n))
        if combo not in {tuple(c) for c in spec.dtype_options(framework)}:
            return None
    return promoted


def _upcast(framework: str, t: Any) -> Any:
    if framework == "torch":
        import torch

        return t.to(torch.float64) if t.is_floating_point() else t
    import tensorflow as tf

    return tf.cast(t, tf.float64) if t.dtype.is_floating else t


def _run(framework: str, model: Any, inputs: list[Any]) -> Any:
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model(*inputs)
    return model(*inputs)


def float64_outputs(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                    ns: Mapping[str, Any] | None = None) -> list[np.ndarray] | None:
    """The graph's outputs computed in float64 (None when impossible or not finite).

    ``ns`` is the reference's namespace for the original graph (its leaf values are
    reused); it is loaded when not given.
    """
    promoted = promote_float64(graph, framework, specs)
    if promoted is None:
        return None
    try:
        ns = ns if ns is not None else load_module(graph, framework, values, specs)
        ns64 = load_module(promoted, framework, values, specs)
        consts = {k: _upcast(framework, v) for k, v in ns["CONSTS"]().items()}
        inputs = [_upcast(framework, x) for x in ns["INPUTS"]()]
        outs = _run(framework, ns64["Model"](consts), inputs)
        arrays = []
        for o in outs:
            a = np.asarray(ns64["to_numpy"](o))
            arrays.append(a.astype(np.float64) if a.dtype.kind == "f" else a)
    except Exception:  # noqa: BLE001 - no float64 reference, the policy falls back to tolerances
        return None
    if not all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f"):
        return None
    return arrays


def _leaf_arrays(graph: Graph, ns: Mapping[str, Any]) -> dict[tuple[int, int], np.ndarray]:
    """The reference's leaf values as numpy arrays (bfloat16 as float32)."""
    consts = ns["CONSTS"]()
    env = {(n, 0): np.asarray(ns["to_numpy"](x)) for n, x in zip(graph.leaves("input"), ns["INPUTS"]())}
    for n in graph.leaves("const"):
        env[(n, 0)] = np.asarray(ns["to_numpy"](consts[f"c{n}"]))
    return env


def noisy_spread(graph: Graph, framework: str, specs: Mapping[str, OpSpec], ns: Mapping[str, Any],
                 clean: list[np.ndarray], caps: Mapping[str, str] | None = None,
                 trials: int = NOISE_TRIALS) -> list[np.ndarray]:
    """Per output, the largest distance of a noisy run from ``clean`` (the float64 outputs).
    ``caps``: ops computing coarser than their dtype (``compare.precision_caps``)."""
    caps = caps or {}
    promoted = promote_float64(graph, framework, specs)
    assert promoted is not None
    leaves = {v: (a.astype(np.float64) if a.dtype.kind == "f" else a) for v, a in _leaf_arrays(graph, ns).items()}
    runners = {n: _op_runner(promoted, n, framework, specs)[0] for n in promoted.op_nodes()}
    spread = [np.zeros(np.shape(c), dtype=np.float64) for c in clean]
    for trial in range(trials):
        rng = np.random.default_rng(trial)

        def signs(shape: tuple[int, ...]) -> np.ndarray:
            if trial < 2:
                return np.full(shape, 1.0 if trial == 0 else -1.0)
            return rng.choice([-1.0, 1.0], size=shape)

        env = dict(leaves)
        for n in promoted.op_nodes():
            args = [env[v] for v in promoted.inputs_of(n)]
            outs = runners[n](args)
            widest = max((a.size for a in args), default=1)
            for i, (o, t) in enumerate(zip(outs, graph.node(n).types)):
                if t.dtype in UNIT_ROUNDOFF and o.size:
                    ulps = NOISE_ULPS * max(1.0, float(np.sqrt(widest / o.size)))  # reductions round more
                    eps = max(UNIT_ROUNDOFF[t.dtype], UNIT_ROUNDOFF[caps.get(graph.node(n).op, t.dtype)])  # type: ignore[arg-type]
                    o = o * (1.0 + ulps * eps * signs(o.shape))
                env[(n, i)] = o
        for k, v in enumerate(graph.outputs):
            with np.errstate(invalid="ignore"):
                spread[k] = np.fmax(spread[k], np.abs(env[v].astype(np.float64) - clean[k].astype(np.float64)))
    return spread


def reference64(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                ns: Mapping[str, Any] | None = None, caps: Mapping[str, str] | None = None) -> list[Reference64] | None:
    """Rule 4's evidence for every output: float64 outputs and the noisy runs' spread
    (zero spread when the noisy runs fail). None when there is no float64 reference."""
    clean = float64_outputs(graph, framework, values, specs, ns)
    if clean is None:
        return None
    try:
        ns = ns if ns is not None else load_module(graph, framework, values, specs)
        spread = noisy_spread(graph, framework, specs, ns, clean, caps)
    except Exception:  # noqa: BLE001 - the clean reference alone still judges
        spread = [np.zeros(np.shape(c)) for c in clean]
    return [Reference64(c, s) for c, s in zip(clean, spread)]


# ---- the discontinuity probe -----------------------------------------------------------

def all_values(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec]) -> dict[tuple[int, int], np.ndarray]:
    """Every value (leaves and op outputs) of one eager run of ``graph``."""
    full = graph.copy()
    full.outputs = list(full.values())
    ns = load_module(full, framework, values, specs)
    model = ns["Model"](ns["CONSTS"]())
    outs = _run(framework, model, ns["INPUTS"]())
    return {v: ns["to_numpy"](o) for v, o in zip(full.outputs, outs)}


def _op_runner(graph: Graph, node: int, framework: str, specs: Mapping[str, OpSpec]) -> tuple[Any, list[str]]:
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
        return [np.asarray(ns["to_numpy"](o)) for o in _run(framework, model, tensors)]

    return run, dtypes


def _step_like(deltas: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray | float:
    """The perturbation per output element (elementwise ops broadcast their inputs)."""
    try:
        return np.max(np.stack([np.broadcast_to(d, shape) for d in deltas]), axis=0)
    except ValueError:
        return max(float(d.max()) if d.size else 0.0 for d in deltas)


def _jumped(base: list[np.ndarray], moved: list[np.ndarray], out_dtypes: list[str], deltas: list[np.ndarray],
            precision: str) -> bool:
    for b, m, d in zip(base, moved, out_dtypes):
        if b.shape != m.shape:
            return True
        if not is_float(d):
            if (b != m).any():
                return True
            continue
        b64, m64 = b.astype(np.float64), m.astype(np.float64)
        atol, rtol = tolerance(precision or d)
        if (~np.isfinite(m64) & np.isfinite(b64)).any():
            return True
        # a continuous op moves by about the perturbation; a jump by much more
        if (np.abs(m64 - b64) > 2 * (atol + rtol * np.abs(b64)) + 2 * _step_like(deltas, b.shape)).any():
            return True
    return False


def near_discontinuity(graph: Graph, node: int, framework: str, specs: Mapping[str, OpSpec],
                       env: Mapping[tuple[int, int], np.ndarray], rng: random.Random,
                       caps: Mapping[str, str] | None = None) -> bool:
    """Does ``node``'s result change when its float inputs move by one tolerance (of the
    least precise float dtype upstream of each input)?"""
    args = graph.inputs_of(node)
    inputs = [env[v] for v in args]
    run, dtypes = _op_runner(graph, node, framework, specs)
    base = run(inputs)
    floats = [i for i, d in enumerate(dtypes) if is_float(d)]
    if not floats:
        return False  # exact inputs: the op computes the same everywhere
    deltas = {}
    for i in floats:
        precision = value_precision(graph, args[i][0], caps) if graph.node(args[i][0]).kind == "op" else dtypes[i]
        atol, rtol = tolerance(precision or dtypes[i])
        deltas[i] = atol + rtol * np.abs(inputs[i].astype(np.float64))
    patterns: list[list[Any]] = [[1.0 if k % 2 == 0 else -1.0 for k in range(len(floats))],
                                 [-1.0 if k % 2 == 0 else 1.0 for k in range(len(floats))]]
    nprng = np.random.default_rng(rng.randrange(2**32))
    for _ in range(RANDOM_TRIALS):
        patterns.append([nprng.choice([-1.0, 1.0], size=inputs[i].shape) for i in floats])
    out_dtypes = [t.dtype for t in graph.node(node).types]
    precision = value_precision(graph, node, caps)
    for signs in patterns:
        moved = list(inputs)
        for k, i in enumerate(floats):
            moved[i] = (inputs[i].astype(np.float64) + signs[k] * deltas[i]).astype(inputs[i].dtype)
        if _jumped(base, run(moved), out_dtypes, list(deltas.values()), precision):
            return True
    return False


class DiscontinuityProbe:
    """Answers ``near(nodes)`` for one case, computing what it needs once, on demand."""

    def __init__(self, graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                 caps: Mapping[str, str] | None = None) -> None:
        self.graph, self.framework, self.values, self.specs, self.caps = graph, framework, values, specs, caps
        self._env: dict[tuple[int, int], np.ndarray] | None = None
        self._near: dict[int, bool] = {}

    def near(self, nodes: Iterable[int]) -> bool:
        for n in sorted(nodes):
            if n not in self._near:
                self._near[n] = self._probe(n)
            if self._near[n]:
                return True
        return False

    def _probe(self, node: int) -> bool:
        if not is_discontinuous(self.graph, node, self.specs):
            return False
        try:
            if self._env is None:
                self._env = all_values(self.graph, self.framework, self.values, self.specs)
            return near_discontinuity(self.graph, node, self.framework, self.specs, self._env,
                                      random.Random(f"{PROBE_SEED}/{node}"), self.caps)
        except Exception:  # noqa: BLE001 - cannot tell: assume the worst (noise), never a false report
            return True
