"""The comparison policy (DESIGN §6): when do a candidate's outputs differ from the
reference's enough to be a bug?

A report is worth something only if it is a genuine bug, so the policy errs towards
silence where rounding can explain a difference:

1. **Shapes and dtypes** must be equal, always.
2. **Unstable outputs** (``OpSpec.unstable_outputs``: argmax/sort indices under ties,
   nondeterministic ops), and every value computed from one, are compared for shape and
   dtype only.
3. **Integers and bools** must be equal exactly; **floats** within a tolerance
   ``|C - R| <= atol + rtol * |R|`` for the *least precise float dtype on the output's
   path* (a float32 output computed from bfloat16 values carries bfloat16 error):
   float16/bfloat16 loose, float32 medium, float64 tight. NaN/Inf in the candidate where
   the reference is finite is a mismatch (NaN/Inf in the reference makes the case invalid
   before any comparison), except across frameworks in float16, where one framework
   accumulates a reduction in float16 and overflows where the other accumulates in float32.
4. **The float64 judge**: an element beyond tolerance is still accepted when the candidate
   is close to a float64 recomputation ``R64`` of the graph:
   ``|C - R64| <= atol + rtol*|R64| + 3*|R - R64| + 2*spread``, where ``spread`` is how far
   runs of the graph with a few ulps of rounding noise injected after every op (scaled up
   for reductions) land from ``R64``: the candidate is no worse than rounding explains,
   however ill-conditioned the graph (``cos`` of a large float16 value, cancellation).
   Elements that the noise moves by half their magnitude or more (``tan`` next to a pole)
   are not compared at all.
   Integer elements that the noisy runs or ``R64`` change are not compared either.
5. **Discontinuities**: a value downstream of a discontinuous operator (floor, round,
   comparisons, casts to integer, ... and any float -> int/bool op) may legitimately jump
   when the operator's inputs differed within tolerance. A remaining difference in such an
   output is noise when one of those operators is *near* a discontinuity: perturbing its
   inputs (from the reference's eager run) by one tolerance changes its result.

The evidence for 4 and 5 is computed by ``oracles.recompute``; this module receives it as
callables and calls them only when a difference needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import networkx as nx
import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import is_float
from rules.spec import OpSpec

# dtype -> (atol, rtol). Half precision accumulates a few ulps per op (float16's ulp at 1
# is 1e-3, bfloat16's 8e-3) and fused code rounds at different places than eager.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
    "float32": (1e-5, 1e-4),
    "float64": (1e-7, 1e-7),  # torch.testing's float64 defaults
}
REF_ERROR_FACTOR = 3.0  # rule 4: how many times the reference's own error a candidate may have
SPREAD_FACTOR = 2.0  # rule 4: how many times the noisy runs' spread
CHAOS_FRACTION = 0.5  # rule 4: a spread beyond this share of the value: not compared
# least precise first: bfloat16 has fewer mantissa bits than float16
PRECISION_ORDER = ("bfloat16", "float16", "float32", "float64")
# Ops whose materialization in a framework computes in less precision than their dtype, a
# genuine and documented framework difference: TensorFlow's ResizeBilinear always returns
# float32 (the spec casts back), so a float64 bilinear resize carries float32 error there.
COMPUTE_PRECISION: dict[tuple[str, str], str] = {
    ("tensorflow", "core.InterpolateLinear"): "float32",
}


def precision_caps(frameworks: Sequence[str]) -> dict[str, str]:
    """Op id -> the precision it computes in, for ops any of ``frameworks`` runs coarser."""
    caps: dict[str, str] = {}
    for (fw, op), dtype in COMPUTE_PRECISION.items():
        if fw in frameworks:
            caps[op] = min(caps.get(op, dtype), dtype, key=PRECISION_ORDER.index)
    return caps


def tolerance(dtype: str) -> tuple[float, float]:
    """(atol, rtol) for a float dtype; (0, 0) for exact ones."""
    return TOLERANCES.get(dtype, (0.0, 0.0))


@dataclass(frozen=True)
class Output:
    """One output of one backend, framework-neutral (bfloat16 values travel as float32)."""

    dtype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass(frozen=True)
class Difference:
    """A mismatch on one output, as the verdict reports it."""

    output: int
    dtype: str
    message: str
    max_abs: float | None = None
    max_rel: float | None = None


@dataclass(frozen=True)
class Reference64:
    """Rule 4's evidence for one output: the float64 recomputation and the spread of the
    noisy runs around it (zeros where unknown)."""

    values: np.ndarray
    spread: np.ndarray


@dataclass(frozen=True)
class OutputKind:
    """What the graph says about how output ``i`` may be compared."""

    unstable: bool  # an unstable output, or computed from one: shape and dtype only
    discontinuous: frozenset[int]  # discontinuous op nodes it depends on (itself included)
    precision: str = ""  # least precise float dtype on its path ("" when no float is)


def value_precision(graph: Graph, node: int, caps: Mapping[str, str] | None = None) -> str:
    """The least precise float dtype among ``node``'s outputs and everything upstream
    (``caps``: ops that compute coarser than their dtype, see ``precision_caps``)."""
    dtypes = set()
    for n in nx.ancestors(graph.nx, node) | {node}:
        dtypes |= {t.dtype for t in graph.node(n).types}
        if caps and graph.node(n).op in caps and any(is_float(t.dtype) for t in graph.node(n).types):
            dtypes.add(caps[graph.node(n).op])  # type: ignore[index]
    return next((d for d in PRECISION_ORDER if d in dtypes), "")


def is_discontinuous(graph: Graph, node: int, specs: Mapping[str, OpSpec]) -> bool:
    """A spec marked discontinuous, or any op turning floats into integers or bools."""
    n = graph.node(node)
    if n.kind != "op":
        return False
    if specs[n.op].discontinuous:  # type: ignore[index]
        return True
    float_in = any(is_float(graph.type_of(v).dtype) for v in graph.inputs_of(node))
    return float_in and any(not is_float(t.dtype) for t in n.types)


def output_kinds(graph: Graph, specs: Mapping[str, OpSpec], frameworks: Sequence[str] = ()) -> list[OutputKind]:
    """How each output may be compared when ``frameworks`` (reference's and candidate's)
    run the graph."""
    g = graph.nx
    caps = precision_caps(frameworks)
    unstable_nodes: set[int] = set()  # nodes that read an unstable value, directly or not
    for n in graph.op_nodes():
        listed = specs[graph.node(n).op].unstable_outputs  # type: ignore[index]
        for i in listed:
            for user, _ in graph.users_of((n, i)):
                unstable_nodes.add(user)
                unstable_nodes |= nx.descendants(g, user)
    kinds = []
    for node, idx in graph.outputs:
        listed = graph.node(node).kind == "op" and idx in specs[graph.node(node).op].unstable_outputs  # type: ignore[index]
        ancestors = nx.ancestors(g, node) | {node}
        disc = frozenset(a for a in ancestors if is_discontinuous(graph, a, specs))
        kinds.append(OutputKind(listed or node in unstable_nodes, disc, value_precision(graph, node, caps)))
    return kinds


def _errors(c: np.ndarray, r: np.ndarray, atol: float) -> tuple[float | None, float | None]:
    if c.size == 0:
        return 0.0, 0.0
    diff = np.abs(c - r)
    if not np.isfinite(diff).all():
        return None, None
    rel = diff / np.maximum(np.abs(r), max(atol, np.finfo(np.float64).tiny))
    return float(diff.max()), float(rel.max())


def compare_output(i: int, ref: Output, cand: Output, kind: OutputKind,
                   float64: Callable[[], Reference64 | None],
                   near_discontinuity: Callable[[frozenset[int]], bool],
                   cross_framework: bool = False) -> Difference | None:
    """Rules 1-5 on one output. ``float64()`` gives rule 4's evidence for this output (or
    None); ``near_discontinuity(nodes)`` says whether any of those discontinuous nodes sits
    near a jump on this case's values."""
    if ref.shape != cand.shape:
        return Difference(i, ref.dtype, f"output {i}: shape {cand.shape} where the reference has {ref.shape}")
    if ref.dtype != cand.dtype:
        return Difference(i, ref.dtype, f"output {i}: dtype {cand.dtype} where the reference has {ref.dtype}")
    if kind.unstable:
        return None

    def noise() -> bool:
        return bool(kind.discontinuous) and near_discontinuity(kind.discontinuous)

    if not is_float(ref.dtype):
        r, c = ref.array, cand.array
        bad = r != c
        if not bad.any():
            return None
        evidence = float64()
        if evidence is not None and evidence.values.shape == r.shape:
            bad &= (evidence.values == r) & (evidence.spread == 0)
        if not bad.any() or noise():
            return None
        max_abs, max_rel = _errors(c[bad].astype(np.float64), r[bad].astype(np.float64), 1.0)
        return Difference(i, ref.dtype, f"output {i} ({ref.dtype}): {int(bad.sum())} of {bad.size} elements differ",
                          max_abs, max_rel)

    r = ref.array.astype(np.float64)
    c = cand.array.astype(np.float64)
    precision = min((kind.precision or ref.dtype, ref.dtype), key=PRECISION_ORDER.index)
    atol, rtol = tolerance(precision)
    nonfinite = ~np.isfinite(c)
    if nonfinite.any():
        overflow = cross_framework and precision == "float16" and not np.isnan(c).all()
        if overflow or noise():
            return None
        return Difference(i, ref.dtype, f"output {i} ({ref.dtype}): NaN/Inf in {int(nonfinite.sum())} of {c.size} "
                          "elements where the reference is finite")
    bad = np.abs(c - r) > atol + rtol * np.abs(r)
    if not bad.any():
        return None
    evidence = float64()
    if evidence is not None and evidence.values.shape == r.shape:
        r64 = evidence.values.astype(np.float64)
        allowed = (atol + rtol * np.abs(r64) + REF_ERROR_FACTOR * np.abs(r - r64)
                   + SPREAD_FACTOR * evidence.spread)
        # where rounding noise alone moves the value by half its size (tan near a pole),
        # the value is meaningless: any candidate goes
        allowed[evidence.spread > CHAOS_FRACTION * (np.abs(r64) + atol)] = np.inf
        with np.errstate(invalid="ignore"):
            bad &= ~(np.abs(c - r64) <= allowed)
        if not bad.any():
            return None
    if noise():
        return None
    max_abs, max_rel = _errors(c[bad], r[bad], atol)
    return Difference(i, ref.dtype, f"output {i} ({ref.dtype}): {int(bad.sum())} of {bad.size} elements beyond tolerance",
                      max_abs, max_rel)


def compare_outputs(ref: Sequence[Output], cand: Sequence[Output], kinds: Sequence[OutputKind],
                    float64: Callable[[], list[Reference64] | None] = lambda: None,
                    near_discontinuity: Callable[[frozenset[int]], bool] = lambda nodes: True,
                    cross_framework: bool = False) -> Difference | None:
    """The first output on which ``cand`` differs from ``ref`` (None: they agree).

    Without a ``near_discontinuity`` judge every output downstream of a discontinuous op
    counts as noise-prone, the conservative choice. ``cross_framework``: the candidate
    runs another framework than the reference (rule 3's float16 overflow exception).
    """
    if len(ref) != len(cand):
        return Difference(0, "", f"{len(cand)} outputs where the reference has {len(ref)}")
    for i, (r, c) in enumerate(zip(ref, cand)):
        def one64(i: int = i) -> Reference64 | None:
            outs = float64()
            return None if outs is None else outs[i]

        diff = compare_output(i, r, c, kinds[i], one64, near_discontinuity, cross_framework)
        if diff is not None:
            return diff
    return None


def all_finite(outputs: Sequence[Output]) -> bool:
    return all(not is_float(o.dtype) or bool(np.isfinite(o.array).all()) for o in outputs)
