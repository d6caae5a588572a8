"""Recomputations that judge a difference (the evidence behind rules 4 and 5 of
``oracles.compare``), all in the reference framework's eager mode:

* **the float64 reference**: the case's graph with every float leaf, float op output and
  float dtype attribute promoted to float64, *only where every op's spec accepts float64
  inputs* (otherwise there is none), fed with exactly the reference's input values
  upcast (not redrawn: a float32 input is the rounded value, and so must be its float64
  copy);
* **the noisy runs**: the promoted graph interpreted op by op, with rounding noise of
  each value's original dtype injected after every op as ``oracles.rounding`` says (none
  for exact ops, one ulp in half precision, the accumulation's error for reductions,
  capped); how far they land from the float64 reference measures how much rounding the
  graph amplifies (Monte Carlo arithmetic). ``Evidence`` keeps both for every value of
  the graph, not only the outputs, so that the probe below perturbs by measured noise;
* the discontinuity probe that uses this evidence is ``oracles.probe`` (re-exported here).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import FLOAT_DTYPES
from corpus.values import ValueSpec, has_special
from oracles.compare import Reference64
from oracles.probe import DiscontinuityProbe, op_runner, run_eager, all_values, near_discontinuity  # noqa: F401 - re-exported
from oracles.rounding import NOISE_UNITS, OWN_CAP, UNIT_ROUNDOFF, accumulation_dtype, op_rounding
from rules.execute import load_module
from rules.spec import OpSpec

NOISE_TRIALS = 4  # all up, all down, then random signs
Value = tuple[int, int]


# ---- float64 ---------------------------------------------------------------------------

def promote_float64(graph: Graph, framework: str, specs: Mapping[str, OpSpec], strict: bool = True) -> Graph | None:
    """A copy of ``graph`` computing in float64, or None where a spec forbids it
    (``strict=False``: where a spec lacks the framework; its dtype options, learned from
    the samples seen, are not asked: the caller runs it and sees)."""
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
        if strict and combo not in {tuple(c) for c in spec.dtype_options(framework)}:
            return None
    return promoted


def _upcast(framework: str, t: Any) -> Any:
    if framework == "torch":
        import torch

        return t.to(torch.float64) if t.is_floating_point() else t
    import tensorflow as tf

    return tf.cast(t, tf.float64) if t.dtype.is_floating else t


def float64_outputs(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                    ns: Mapping[str, Any] | None = None) -> list[np.ndarray] | None:
    """The graph's outputs computed in float64 (None when impossible).

    ``ns`` is the reference's namespace for the original graph (its leaf values are
    reused); it is loaded when not given.
    """
    promoted = promote_float64(graph, framework, specs, strict=False)
    if promoted is None:
        return None
    try:
        ns = ns if ns is not None else load_module(graph, framework, values, specs)
        ns64 = load_module(promoted, framework, values, specs)
        consts = {k: _upcast(framework, v) for k, v in ns["CONSTS"]().items()}
        inputs = [_upcast(framework, x) for x in ns["INPUTS"]()]
        outs = run_eager(framework, ns64["Model"](consts), inputs)
        arrays = []
        for o in outs:
            a = np.asarray(ns64["to_numpy"](o))
            arrays.append(a.astype(np.float64) if a.dtype.kind == "f" else a)
    except Exception:  # noqa: BLE001 - no float64 reference, the policy falls back to tolerances
        return None
    # non-finite elements (log of an exact zero) are unknown to rule 4 and judged loosely,
    # and where the candidate gives that same infinity it is right (oracles.compare)
    return arrays


def _leaf_arrays(graph: Graph, ns: Mapping[str, Any]) -> dict[tuple[int, int], np.ndarray]:
    """The reference's leaf values as numpy arrays (bfloat16 as float32)."""
    consts = ns["CONSTS"]()
    env = {(n, 0): np.asarray(ns["to_numpy"](x)) for n, x in zip(graph.leaves("input"), ns["INPUTS"]())}
    for n in graph.leaves("const"):
        env[(n, 0)] = np.asarray(ns["to_numpy"](consts[f"c{n}"]))
    return env


def _own_rounding(graph: Graph, node: int, specs: Mapping[str, OpSpec]) -> str:
    """``op_rounding``, and "accumulate" for an op of unknown rounding that has fewer
    output elements than its widest input (it reduces)."""
    kind = op_rounding(specs[graph.node(node).op])  # type: ignore[index]
    if kind:
        return kind
    widest = max((graph.type_of(v).numel for v in graph.inputs_of(node)), default=1)
    return "accumulate" if any(t.numel < widest for t in graph.node(node).types) else ""


def measure_noise(graph: Graph, framework: str, specs: Mapping[str, OpSpec], ns: Mapping[str, Any],
                  caps: Mapping[str, str] | None = None, frameworks: Sequence[str] = (),
                  trials: int = NOISE_TRIALS) -> tuple[dict[Value, np.ndarray], dict[Value, np.ndarray]]:
    """Every value computed in float64 op by op, and the largest distance of a noisy run
    from it. ``caps``: ops computing coarser than their dtype (``compare.precision_caps``);
    ``frameworks``: those whose accumulation dtypes count (``rounding.accumulation_dtype``)."""
    caps = caps or {}
    promoted = promote_float64(graph, framework, specs, strict=False)
    assert promoted is not None
    leaves = {v: (a.astype(np.float64) if a.dtype.kind == "f" else a) for v, a in _leaf_arrays(graph, ns).items()}
    runners = {n: op_runner(promoted, n, framework, specs)[0] for n in promoted.op_nodes()}
    kinds = {n: _own_rounding(graph, n, specs) for n in graph.op_nodes()}
    own: dict[Value, np.ndarray] = {}  # the noise each op's result may carry, from the clean run

    fallback: dict[int, Any] = {}

    def call(n: int, args: list[np.ndarray]) -> list[np.ndarray]:
        """``n`` in float64; an op whose float64 version rejects its inputs (a float32
        constant inside it: normalize_moments' shift) runs in its own dtypes instead, its
        values carrying that rounding, so that the rest of the graph is still measured."""
        if n not in fallback:
            try:
                return runners[n](args)
            except Exception:  # noqa: BLE001 - the op's own dtypes below
                fallback[n] = op_runner(graph, n, framework, specs)[0]
        outs = fallback[n](args)
        return [o.astype(np.float64) if o.dtype.kind == "f" else o for o in outs]

    def run(signs: Callable[[tuple[int, ...]], np.ndarray] | None) -> dict[Value, np.ndarray]:
        env = dict(leaves)
        for n in promoted.op_nodes():
            args = [env[v] for v in promoted.inputs_of(n)]
            outs = call(n, args)
            if signs is None:
                _own_noise(graph, n, kinds[n], args, outs, lambda a, n=n: call(n, a), caps, frameworks, own)
            for i, o in enumerate(outs):
                if signs is not None and (n, i) in own:
                    with np.errstate(invalid="ignore", over="ignore"):  # special inputs: inf * 0
                        o = o + own[(n, i)] * signs(o.shape)
                env[(n, i)] = o
        return env

    clean = run(None)
    spread = {v: np.zeros(np.shape(a)) for v, a in clean.items()}
    for trial in range(trials):
        rng = np.random.default_rng(trial)

        def signs(shape: tuple[int, ...], trial: int = trial) -> np.ndarray:
            if trial < 2:
                return np.full(shape, 1.0 if trial == 0 else -1.0)
            return rng.choice([-1.0, 1.0], size=shape)

        noisy = run(signs)
        for v in spread:
            with np.errstate(invalid="ignore"):
                spread[v] = np.fmax(spread[v], np.abs(noisy[v].astype(np.float64) - clean[v].astype(np.float64)))
    return clean, spread


def _own_noise(graph: Graph, n: int, kind: str, args: list[np.ndarray], outs: list[np.ndarray], runner: Any,
               caps: Mapping[str, str], frameworks: Sequence[str], own: dict[Value, np.ndarray]) -> None:
    """The rounding noise ``n``'s float results may carry (absolute, per element), into ``own``."""
    if kind == "exact":
        return
    acc: list[np.ndarray] | None = None
    for i, (o, t) in enumerate(zip(outs, graph.node(n).types)):
        if t.dtype not in UNIT_ROUNDOFF or not o.size:
            continue
        eps = max(UNIT_ROUNDOFF[t.dtype], UNIT_ROUNDOFF[caps.get(graph.node(n).op, t.dtype)])  # type: ignore[arg-type]
        size = np.nan_to_num(np.abs(o.astype(np.float64)), nan=0.0, posinf=0.0)  # special values: no noise
        noise = NOISE_UNITS[t.dtype] * eps * size
        if kind == "remainder":  # relative to the dividend (either operand: __rmod__ swaps them)
            with np.errstate(invalid="ignore", over="ignore"):
                for a in args:
                    if a.dtype.kind != "f":
                        continue
                    magnitude = np.nan_to_num(np.abs(a.astype(np.float64)), nan=0.0, posinf=0.0)
                    try:
                        noise = np.maximum(noise, NOISE_UNITS[t.dtype] * eps * np.broadcast_to(magnitude, o.shape))
                    except ValueError:  # (not elementwise after all: the plain noise)
                        pass
        if kind == "composite":  # each step rounds relative to a product of (1 + |operand|)
            terms = np.ones(o.shape)
            with np.errstate(invalid="ignore", over="ignore"):
                try:
                    for a in args:
                        if a.dtype.kind == "f":
                            terms = terms * np.broadcast_to(1.0 + np.abs(a.astype(np.float64)), o.shape)
                    noise = np.maximum(noise, NOISE_UNITS[t.dtype] * eps * np.nan_to_num(terms, nan=0.0, posinf=0.0))
                except ValueError:  # (not elementwise after all: the plain noise)
                    pass
        if kind == "products":  # a cancelled difference of products: relative to the largest product
            magnitudes = [float(np.nanmax(np.abs(a.astype(np.float64)), initial=0.0)) for a in args
                          if a.dtype.kind == "f" and a.size]
            if len(magnitudes) >= 2:
                largest = 2.0 * float(np.prod(sorted(magnitudes)[-2:]))
                noise = np.maximum(noise, NOISE_UNITS[t.dtype] * eps * (largest if np.isfinite(largest) else 0.0))
        if kind in ("accumulate", "fused"):  # fused: each step may round in the dtype itself
            if acc is None:  # op(|x|): the sum of magnitudes a sum, mean or matmul rounds over
                try:
                    acc = [np.abs(a) for a in runner([np.abs(x) if x.dtype.kind == "f" else x for x in args])]
                except Exception:  # noqa: BLE001 - an op that rejects |x|: the cap below decides
                    acc = [np.full(np.shape(x), np.inf) for x in outs]
            u = eps if kind == "fused" else UNIT_ROUNDOFF.get(accumulation_dtype(t.dtype, frameworks), eps)
            with np.errstate(invalid="ignore", over="ignore"):
                extra = u * acc[i] if np.shape(acc[i]) == o.shape else np.zeros(o.shape)
            if t.dtype in ("float16", "bfloat16") and kind == "accumulate" and _sums_many(args, o):
                # a 5% error in a half reduction is always reported (a fused op's two roundings,
                # and a linear layer of one input feature, x * w + b, are bounded by eps * terms)
                extra = np.minimum(extra, np.maximum(OWN_CAP * size - noise, 0.0))
            noise = noise + np.nan_to_num(extra, posinf=0.0)
        if kind in ("solve", "solve-squared"):
            noise = np.maximum(noise, _conditioned_noise(args, o, NOISE_UNITS[t.dtype] * eps, kind == "solve-squared"))
        own[(n, i)] = noise


REDUCTION_TERMS = 4  # an accumulation summing fewer terms per result is a fused op, not a reduction


def _sums_many(args: list[np.ndarray], out: np.ndarray) -> bool:
    """Does an accumulating op sum at least ``REDUCTION_TERMS`` terms per result element
    (the widest float input's elements per output element)?"""
    sizes = [x.size for x in args if x.dtype.kind == "f"]
    return not sizes or max(sizes) >= REDUCTION_TERMS * max(out.size, 1)


def _conditioned_noise(args: list[np.ndarray], out: np.ndarray, unit: float, squared: bool = False
                       ) -> np.ndarray | float:
    """A matrix op's noise: ``unit`` times cond(A) times the scale of its result, per
    matrix of the first (batched) float matrix input, square or not (QR and lstsq of a
    tall matrix: its 2-norm condition, the singular values' ratio); 0 where that cannot
    be told."""
    a = next((x for x in args if x.dtype.kind == "f" and x.ndim >= 2 and x.size), None)
    if a is None or not np.isfinite(a).all():
        return 0.0
    batch = a.shape[:-2]
    if out.ndim < len(batch):
        return 0.0
    with np.errstate(all="ignore"):
        try:
            cond = np.linalg.cond(a.astype(np.float64))
        except np.linalg.LinAlgError:
            return 0.0
        cond = np.where(np.isfinite(cond), cond, 1.0 / UNIT_ROUNDOFF["float64"])  # singular: meaningless
        flat = np.abs(np.nan_to_num(out.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0))
        if out.shape[:len(batch)] == batch:  # per matrix: its result's scale
            scale = flat.reshape(batch + (-1,)).max(axis=-1) if flat.size else np.zeros(batch)
        else:  # batch dimensions that broadcast: the whole result's
            scale = np.full(batch, flat.max() if flat.size else 0.0)
        cond = np.maximum(cond, 1.0)
        per_matrix = unit * (cond * cond if squared else cond) * scale
    try:  # batch dimensions broadcast (lstsq of one matrix against a batch of right-hand sides)
        return np.broadcast_to(per_matrix.reshape(batch + (1,) * (out.ndim - len(batch))), out.shape).copy()
    except ValueError:
        return 0.0


class Evidence:
    """Rule 4's evidence for one case, computed once, on demand: the float64 outputs, and
    for every value of the graph its float64 recomputation and the noisy runs' spread."""

    def __init__(self, graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                 ns: Mapping[str, Any] | None = None, caps: Mapping[str, str] | None = None,
                 frameworks: Sequence[str] = ()) -> None:
        self.graph, self.framework, self.values, self.specs = graph, framework, values, specs
        self.ns, self.caps, self.frameworks = ns, caps, tuple(frameworks) or (framework,)
        self._done = False
        self._outputs: list[Reference64] | None = None
        self._all: tuple[dict[Value, np.ndarray], dict[Value, np.ndarray]] | None = None

    def outputs(self) -> list[Reference64] | None:
        """Per output: float64 values and spread (zero spread when the noisy runs fail);
        None when there is no float64 reference."""
        self._compute()
        return self._outputs

    def value(self, v: Value) -> tuple[np.ndarray, np.ndarray] | None:
        """(float64 value, spread) of one value of the graph, or None when unknown."""
        self._compute()
        return None if self._all is None or v not in self._all[0] else (self._all[0][v], self._all[1][v])

    def _compute(self) -> None:
        if self._done:
            return
        self._done = True
        clean = float64_outputs(self.graph, self.framework, self.values, self.specs, self.ns)
        if clean is not None:
            self._outputs = [Reference64(c, np.zeros(np.shape(c))) for c in clean]
        try:
            ns = self.ns if self.ns is not None else load_module(self.graph, self.framework, self.values, self.specs)
            self._all = measure_noise(self.graph, self.framework, self.specs, ns, self.caps, self.frameworks)
        except Exception:  # noqa: BLE001 - the clean reference alone still judges
            return
        if clean is None:  # the whole model would not run in float64; op by op (some ops in
            # their own dtypes, measure_noise's fallback) it did
            if not all(v in self._all[0] for v in self.graph.outputs):
                self._all = None
                return
            clean = [self._all[0][v] for v in self.graph.outputs]
        spread = self._all[1]
        self._outputs = [Reference64(c, spread[v] if np.shape(spread[v]) == np.shape(c) else np.zeros(np.shape(c)))
                         for c, v in zip(clean, self.graph.outputs)]


def reference64(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                ns: Mapping[str, Any] | None = None, caps: Mapping[str, str] | None = None,
                frameworks: Sequence[str] = ()) -> list[Reference64] | None:
    """Rule 4's evidence for every output (``Evidence.outputs``)."""
    return Evidence(graph, framework, values, specs, ns, caps, frameworks).outputs()
