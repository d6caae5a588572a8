"""The comparison policy (DESIGN §6): when do a candidate's outputs differ from the
reference's enough to be a bug?

A report is worth something only if it is a genuine bug, and a real error must never be
excused: every allowance below is justified by measurement, and every element it excuses
is counted by reason (``compare_outputs(..., excused=)``, ``CheckResult.excused``).

1. **Shapes and dtypes** must be equal, always.
2. **Exact values** (an output computed from the inputs only by ops that select or move
   values, ``oracles.rounding``: max, slicing, indexing, sort values, reshape ...,
   or that have no float output: comparisons, integer arithmetic) must be equal exactly:
   no rounding happened anywhere, so a 1-ulp difference is a bug. **Integers and bools**
   too, except elements that the float64 reference or its noisy runs change (an integer
   computed from rounded floats).
3. **Floats** within a tolerance ``|C - R| <= atol + rtol * |R|`` for the *least precise
   float dtype on the output's path* (a float32 output computed from bfloat16 values
   carries bfloat16 error): two ulps in half precision (``JUDGED``), else the loose
   ``TOLERANCES``, which apply alone where there is no float64 reference (elements only
   they accept are counted, "no float64 reference"). NaN/Inf in the candidate where the
   reference is finite is a mismatch, except element by element across frameworks in
   float16, where one framework accumulates a reduction in float16 and overflows.
4. **The float64 judge**: an element beyond tolerance is still accepted when the candidate
   is close to a float64 recomputation ``R64`` of the graph:
   ``|C - R64| <= max(atol + rtol*|R64|, 3*|R - R64| + 2*spread)``, where ``spread`` is
   how far runs of the graph with rounding noise injected after every op land from
   ``R64`` (``oracles.recompute``). The noise is measured, never a size formula: one ulp
   per op in half precision (two in float32/64), none for exact ops, and for
   accumulations the float64 ``op(|x|)`` times the unit roundoff of the accumulation
   dtype, capped in half precision (``oracles.rounding.OWN_CAP``) so that a 5% error in
   a float16 or bfloat16 reduction is always reported. Elements that the noise moves by half their magnitude or more (``tan``
   next to a pole) are not compared ("rounding chaos").
5. **Discontinuities and indices**: a value downstream of a discontinuous operator
   (floor, round, comparisons, casts to integer, argmax, sort indices, any float ->
   int/bool op) may legitimately jump when the operator's inputs differ within the noise.
   The probe (``oracles.recompute.DiscontinuityProbe``) perturbs each such operator's
   inputs by the measured noise, and recomputes the graph downstream with the jumped
   elements to find which output elements depend on a near-jump: only those are excused
   ("near discontinuity", "near-tie index"). Inputs that carry no rounding (integers,
   bools, exact floats) never jump, so an index on them (first index, stable sort: the
   documented semantics) is compared exactly. An output that is unstable with no
   operator to probe (``OutputKind.unstable``, nondeterministic) is not compared
   ("unstable output").

The evidence for 4 and 5 is computed by ``oracles.recompute``; this module receives it as
callables and calls them only when a difference needs them.
"""

from __future__ import annotations

import re

import inspect
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import networkx as nx
import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import is_float
from oracles.rounding import PRECISION_ORDER, exact_nodes, is_index_op, op_rounding
from rules.spec import OpSpec

# dtype -> (atol, rtol) without a float64 reference. Half precision accumulates a few ulps
# per op (float16's ulp at 1 is 1e-3, bfloat16's 8e-3) and fused code rounds at different
# places than eager; without a measurement of that noise only a loose bound is safe.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
    "float32": (1e-5, 1e-4),
    "float64": (1e-7, 1e-7),  # torch.testing's float64 defaults
}
# dtype -> (atol, rtol) where the float64 reference measures the noise: about two ulps in
# half precision (torch.testing's bfloat16 rtol) and two float16 subnormal ulps, so that
# the measured noise, not a loose bound, decides whether a few percent are rounding (even
# in a mean that cancels down to 1e-4).
JUDGED: dict[str, tuple[float, float]] = {
    "float16": (2.0**-23, 2e-3),
    "bfloat16": (2.0**-23, 1.6e-2),
    "float32": TOLERANCES["float32"],
    "float64": TOLERANCES["float64"],
}
REF_ERROR_FACTOR = 3.0  # rule 4: how many times the reference's own error a candidate may have
SPREAD_FACTOR = 2.0  # rule 4: how many times the noisy runs' spread
CHAOS_FRACTION = 0.5  # rule 4: a spread beyond this share of the value: not compared
# Ops whose materialization in a framework computes in less precision than their dtype, a
# genuine and documented framework difference: TensorFlow's ResizeBilinear always returns
# float32 (the spec casts back), so a float64 bilinear resize carries float32 error there.
# Keys are op ids or, for inferred and concrete ops (``api#rule``), their API: TensorFlow's
# adjust_* image ops convert a float64 image to float32 and back (image_ops_impl.py).
COMPUTE_PRECISION: dict[tuple[str, str], str] = {
    ("tensorflow", "core.InterpolateLinear"): "float32",
    **{("tensorflow", f"tf.image.adjust_{what}"): "float32" for what in ("brightness", "contrast", "saturation", "hue")},
}

# Why elements were not judged (CheckResult.excused's keys).
NEAR_DISCONTINUITY = "near discontinuity"
NEAR_TIE = "near-tie index"
CROSS_HALF = "half-precision compute across frameworks"
DENORMAL = "subnormal flushed to zero"
INT_ROUNDING = "float rounding inside an integer op"
# An integer op that computes through float32 and saturates at the dtype's limit
# (tf.image.adjust_brightness, convert_image_dtype(1.0, int32)) casts float(max), which
# float32 rounds up past max for these dtypes: C++ leaves that cast undefined, and eager
# gives max where XLA wraps to min. Only that swap of the two limits is excused.
INT_LIMIT_CAST = "float to integer cast at the dtype's limit"
UNREPRESENTABLE_LIMITS = ("int32", "int64", "uint32", "uint64")
# Inferred APIs that jump inside (hue wraps around at 0 and 1; floor and round families
# are caught by their integer outputs or their specs): judged near a jump like floor
DISCONTINUOUS_APIS = re.compile(r"^tf\.image\.(adjust_hue|rgb_to_hsv|hsv_to_rgb|random_hue)$|"
                                r"^(tf\.math\.|torch\.|torch\.Tensor\.)(floor|ceil|round|rint|trunc|sign|"
                                r"floordiv|floor_divide|floormod|remainder|fmod|atan2|arctan2)$")
# APIs continuous in their values whose derivative jumps (a kink): a value near the kink
# moves a gradient by the jump (a bfloat16 sigmoid one ulp off made two neighbours of a
# total_variation tie on XLA, and sign(0) = 0 took their term out of the gradient: seed
# 33's false alarm). By the API's last name, lower case; hand-written specs by op id.
KINK_APIS = re.compile(r"abs|absolute|relu|relu6|leaky_relu|leakyrelu|hardtanh|hardshrink|softshrink|"
                       r"hardswish|hardsigmoid|clamp|clip|clip_by_value|maximum|minimum|fmax|fmin|max|min|amax|"
                       r"amin|reduce_max|reduce_min|total_variation|max_pool\w*|maxpool\w*|adaptive_max_pool\w*|"
                       r"l1_loss|smooth_l1_loss|huber_loss|median|nanmedian|kthvalue|cummax|cummin|sort|topk|"
                       r"norm|vector_norm|matrix_norm|dist|cdist|pairwise_distance|renorm|clip_by_norm|"
                       r"rrelu|celu|elu|selu")
NEAR_KINK = "near a kink (gradient)"
# APIs whose integer results are computed in floats and rounded back (image adjustments,
# colour-space and dtype conversions of integer images)
ROUNDS_THROUGH_FLOAT = re.compile(r"^tf\.image\.(adjust_\w+|convert_image_dtype|\w+_to_\w+|random_\w+|"
                                  r"per_image_\w+|resize\w*)$")
PROBE_FAILED = "discontinuity probe failed"
CHAOS = "rounding chaos"
OVERFLOW16 = "float16 overflow across frameworks"
UNSTABLE = "unstable output"
NO_REFERENCE64 = "no float64 reference"
EXTREME_FOR_INFINITY = "the dtype's extreme for an infinity (a max over only -inf)"
MATCHES_REFERENCE64 = "non-finite where the float64 reference is, the reference finite by rounding"

class PrecisionCaps(dict):
    """Op id -> the precision it computes in; an inferred op id (``api#rule``) is found by
    its API."""

    def __contains__(self, op: object) -> bool:
        return dict.__contains__(self, op) or (isinstance(op, str) and dict.__contains__(self, op.split("#")[0]))

    def __getitem__(self, op: str) -> str:
        return dict.__getitem__(self, op if dict.__contains__(self, op) else op.split("#")[0])

    def get(self, op: str, default=None):  # type: ignore[override]
        return self[op] if op in self else default


def precision_caps(frameworks: Sequence[str]) -> dict[str, str]:
    """Op id -> the precision it computes in, for ops any of ``frameworks`` runs coarser."""
    caps = PrecisionCaps()
    for (fw, op), dtype in COMPUTE_PRECISION.items():
        if fw in frameworks:
            caps[op] = min(caps.get(op, dtype), dtype, key=PRECISION_ORDER.index)
    return caps


def tolerance(dtype: str) -> tuple[float, float]:
    """(atol, rtol) for a float dtype without a float64 reference; (0, 0) for exact ones."""
    return TOLERANCES.get(dtype, (0.0, 0.0))


def judged_tolerance(dtype: str) -> tuple[float, float]:
    """(atol, rtol) for a float dtype where the float64 reference measures the noise."""
    return JUDGED.get(dtype, (0.0, 0.0))


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

    unstable: bool  # an unstable output, or computed from one: compared where no near-tie
    discontinuous: frozenset[int]  # discontinuous op nodes it depends on (itself included)
    precision: str = ""  # least precise float dtype on its path ("" when no float is)
    exact: bool = False  # no rounding anywhere on its path: compared exactly (rule 2)
    index: bool = False  # depends on an index op (argmax, sort indices): jumps are ties
    # made by an integer op that computes through floats and rounds back (tf.image's
    # adjust_* on integer images): one unit either way, or float32's resolution at the
    # output's magnitude (``float32_resolution``), is that rounding
    rounds_to_int: bool = False


def value_precision(graph: Graph, node: int, caps: Mapping[str, str] | None = None) -> str:
    """The least precise float dtype among ``node``'s outputs and everything upstream
    (``caps``: ops that compute coarser than their dtype, see ``precision_caps``)."""
    dtypes = set()
    for n in nx.ancestors(graph.nx, node) | {node}:
        dtypes |= {t.dtype for t in graph.node(n).types}
        if caps and graph.node(n).op in caps and any(is_float(t.dtype) for t in graph.node(n).types):
            dtypes.add(caps[graph.node(n).op])  # type: ignore[index]
    return next((d for d in PRECISION_ORDER if d in dtypes), "")


def is_discontinuous(graph: Graph, node: int, specs: Mapping[str, OpSpec], rounded: set[int] | None = None) -> bool:
    """A spec marked discontinuous or with unstable (index) outputs, or any op turning
    floats into integers or bools. ``rounded``: ``rounded_int_nodes(graph, specs)`` when
    the caller asks about many nodes of one graph (computed here otherwise)."""
    n = graph.node(node)
    if n.kind != "op":
        return False
    spec = specs[n.op]  # type: ignore[index]
    if spec.discontinuous or spec.unstable_outputs or DISCONTINUOUS_APIS.search(getattr(spec, "api", "") or ""):
        return True
    float_in = any(is_float(graph.type_of(v).dtype) for v in graph.inputs_of(node))
    if float_in and any(not is_float(t.dtype) for t in n.types):
        return True
    # integers a backend may round one unit apart inside an image op (see rounded_int_nodes)
    # jump through whatever is not a mere move of them: a comparison, arithmetic
    rounded = rounded_int_nodes(graph, specs) if rounded is None else rounded
    return node not in rounded and any(v[0] in rounded for v in graph.inputs_of(node))


def has_kink(graph: Graph, node: int, specs: Mapping[str, OpSpec]) -> bool:
    """An op continuous in its float inputs whose derivative jumps (``KINK_APIS``): its
    gradients depend on which side of the kink a value falls."""
    n = graph.node(node)
    if n.kind != "op" or not any(is_float(graph.type_of(v).dtype) for v in graph.inputs_of(node)):
        return False
    spec = specs[n.op]  # type: ignore[index]
    name = str(getattr(spec, "api", "") or n.op).split("#")[0].rsplit(".", 1)[-1].lower().rstrip("_")
    return bool(KINK_APIS.fullmatch(name))


def float32_resolution(r: np.ndarray, c: np.ndarray) -> float:
    """How far apart two roundings of one integer result computed through float32 may
    land: one unit, or two float32 ulps at the output's magnitude where that is more
    (an int32 image near its limits goes through float32 values with 24 bits: TensorFlow's
    ``adjust_contrast`` of values near 2^31 is exact only to 128 units). The output's
    largest magnitude stands for the op's terms (the image's values and their mean)."""
    if r.size == 0:
        return 1.0
    scale = max(float(np.abs(r.astype(np.float64)).max()), float(np.abs(c.astype(np.float64)).max()))
    return max(1.0, 2.0 * scale * 2.0**-24)


def rounded_int_nodes(graph: Graph, specs: Mapping[str, OpSpec]) -> set[int]:
    """Nodes whose integers may be one unit off by a rounding inside an integer op: the
    ops that compute through floats and round back (``ROUNDS_THROUGH_FLOAT``), and ops
    that only select or move such values (stack, slice, max: one unit in, one unit out;
    integer arithmetic on them may widen it, and stays judged exactly)."""
    rounded: set[int] = set()
    for n in graph.op_nodes():  # in topological order
        spec = specs[graph.node(n).op]  # type: ignore[index]
        if not any(t.dtype.startswith(("int", "uint")) for t in graph.node(n).types):
            continue  # (per_image_standardization of an integer image gives floats: judged as floats)
        if ROUNDS_THROUGH_FLOAT.search(getattr(spec, "api", "") or "") or (
                op_rounding(spec) == "exact" and any(v[0] in rounded for v in graph.inputs_of(n))):
            rounded.add(n)
    return rounded


def output_kinds(graph: Graph, specs: Mapping[str, OpSpec], frameworks: Sequence[str] = ()) -> list[OutputKind]:
    """How each output may be compared when ``frameworks`` (reference's and candidate's)
    run the graph."""
    g = graph.nx
    caps = precision_caps(frameworks)
    exact = exact_nodes(graph, specs)
    unstable_nodes: set[int] = set()  # nodes that read an unstable value, directly or not
    for n in graph.op_nodes():
        listed = specs[graph.node(n).op].unstable_outputs  # type: ignore[index]
        for i in listed:
            for user, _ in graph.users_of((n, i)):
                unstable_nodes.add(user)
                unstable_nodes |= nx.descendants(g, user)
    rounded = rounded_int_nodes(graph, specs)
    kinds = []
    for node, idx in graph.outputs:
        listed = graph.node(node).kind == "op" and idx in specs[graph.node(node).op].unstable_outputs  # type: ignore[index]
        ancestors = nx.ancestors(g, node) | {node}
        disc = frozenset(a for a in ancestors if is_discontinuous(graph, a, specs, rounded))
        index = any(is_index_op(specs[graph.node(a).op]) for a in disc)  # type: ignore[index]
        kinds.append(OutputKind(listed or node in unstable_nodes, disc, value_precision(graph, node, caps),
                                node in exact, index, node in rounded))
    return kinds


def _errors(c: np.ndarray, r: np.ndarray, atol: float) -> tuple[float | None, float | None]:
    if c.size == 0:
        return 0.0, 0.0
    diff = np.abs(c - r)
    if not np.isfinite(diff).all():
        return None, None
    rel = diff / np.maximum(np.abs(r), max(atol, np.finfo(np.float64).tiny))
    return float(diff.max()), float(rel.max())


NearJudge = Callable[[frozenset[int]], "bool | Mapping[str, np.ndarray]"]


def _count(excused: dict[str, int] | None, reason: str, mask: np.ndarray) -> None:
    n = int(np.count_nonzero(mask))
    if excused is not None and n:
        excused[reason] = excused.get(reason, 0) + n


def _excuse_denormal(bad: np.ndarray, r: np.ndarray, c: np.ndarray, dtype: str,
                     excused: dict[str, int] | None) -> np.ndarray:
    """Differences below the smallest normal number: a backend that flushes subnormals to
    zero (XLA on CPU does, by design) differs there and nowhere else. Counted."""
    tiny = float(np.finfo(np.float32 if dtype == "bfloat16" else dtype).tiny)
    with np.errstate(invalid="ignore"):
        flushed = bad & (np.abs(r.astype(np.float64) - c.astype(np.float64)) < tiny) & \
            ((np.abs(r) < tiny) | (np.abs(c) < tiny))
    _count(excused, DENORMAL, flushed)
    return bad & ~flushed


def _excuse_near(bad: np.ndarray, kind: OutputKind, near: NearJudge, excused: dict[str, int] | None) -> np.ndarray:
    """Rule 5: ``bad`` less the elements that depend on a near-jump, counted by reason.
    ``near(nodes)`` answers per element (reason -> mask) or, for a whole output, a bool."""
    if not kind.discontinuous or not bad.any():
        return bad
    masks = near(kind.discontinuous)
    if not isinstance(masks, Mapping):
        masks = {NEAR_TIE if kind.index else NEAR_DISCONTINUITY: np.full(bad.shape, bool(masks))}
    for reason, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != bad.shape:
            mask = np.full(bad.shape, bool(mask.any()))
        _count(excused, reason, bad & mask)
        bad = bad & ~mask
    return bad


def _excuse_extreme_for_infinity(bad: np.ndarray, r: np.ndarray, c: np.ndarray, dtype: str,
                                 excused: dict[str, int] | None) -> np.ndarray:
    """A max over nothing but -inf (a pooling window of -inf padding): TensorFlow's CPU
    kernel starts from the dtype's lowest finite value and returns it, XLA returns -inf
    (seed 35's false alarm: all 155 windows of a zero-width input). The one value for the
    other, same sign, counted; any other value in place of an infinity is still wrong."""
    if dtype not in ("float16", "bfloat16", "float32", "float64") or not bad.any():
        return bad
    top = float(np.finfo(np.float32 if dtype == "bfloat16" else dtype).max)
    if dtype == "bfloat16":
        top = 3.3895313892515355e38
    r64, c64 = r.astype(np.float64), c.astype(np.float64)
    swapped = bad & (((np.abs(r64) == top) & np.isinf(c64) & (np.sign(r64) == np.sign(c64))) |
                     ((np.abs(c64) == top) & np.isinf(r64) & (np.sign(r64) == np.sign(c64))))
    _count(excused, EXTREME_FOR_INFINITY, swapped)
    return bad & ~swapped


def compare_output(i: int, ref: Output, cand: Output, kind: OutputKind,
                   float64: Callable[[], Reference64 | None], near_discontinuity: NearJudge,
                   cross_framework: bool = False, excused: dict[str, int] | None = None) -> Difference | None:
    """Rules 1-5 on one output. ``float64()`` gives rule 4's evidence for this output (or
    None); ``near_discontinuity(nodes)`` says which elements depend on a near-jump of those
    discontinuous nodes on this case's values (reason -> mask, or a bool for all of them).
    ``excused`` (reason -> elements) hears every differing element not reported."""
    if ref.shape != cand.shape:
        return Difference(i, ref.dtype, f"output {i}: shape {cand.shape} where the reference has {ref.shape}")
    if ref.dtype != cand.dtype:
        return Difference(i, ref.dtype, f"output {i}: dtype {cand.dtype} where the reference has {ref.dtype}")
    if kind.unstable and not kind.discontinuous:  # nothing to probe: nondeterministic
        _count(excused, UNSTABLE, ref.array != cand.array)
        return None

    if not is_float(ref.dtype) or kind.exact:
        r, c = ref.array, cand.array
        bad = ~(r == c)
        if is_float(ref.dtype):
            bad = _excuse_denormal(bad, r, c, ref.dtype, excused)
            bad = _excuse_extreme_for_infinity(bad, r, c, ref.dtype, excused)
        elif kind.rounds_to_int:
            unit = bad & (np.abs(r.astype(np.float64) - c.astype(np.float64)) <= float32_resolution(r, c))
            _count(excused, INT_ROUNDING, unit)
            bad &= ~unit
            if ref.dtype in UNREPRESENTABLE_LIMITS:  # float(max) rounds past max: the cast back is undefined
                info = np.iinfo(ref.dtype)
                swapped = bad & (((r == info.max) & (c == info.min)) | ((r == info.min) & (c == info.max)))
                _count(excused, INT_LIMIT_CAST, swapped)
                bad &= ~swapped
        if not bad.any():
            return None
        evidence = float64() if not is_float(ref.dtype) and not kind.exact else None
        if evidence is not None and evidence.values.shape == r.shape:
            changed = (evidence.values != r) | (evidence.spread != 0)  # rounding moves it
            _count(excused, NEAR_TIE if kind.index else NEAR_DISCONTINUITY, bad & changed)
            bad &= ~changed
        bad = _excuse_near(bad, kind, near_discontinuity, excused)
        if not bad.any():
            return None
        max_abs, max_rel = _errors(c[bad].astype(np.float64), r[bad].astype(np.float64), 1.0)
        what = "differ" if not is_float(ref.dtype) else "differ (exact ops only: no rounding to allow)"
        return Difference(i, ref.dtype, f"output {i} ({ref.dtype}): {int(bad.sum())} of {bad.size} elements {what}",
                          max_abs, max_rel)

    r = ref.array.astype(np.float64)
    c = cand.array.astype(np.float64)
    precision = min((kind.precision or ref.dtype, ref.dtype), key=PRECISION_ORDER.index)
    nonfinite = ~np.isfinite(c)
    if nonfinite.any():
        if cross_framework and precision == "float16":
            _count(excused, OVERFLOW16, nonfinite)
        else:
            wrong = _excuse_near(nonfinite, kind, near_discontinuity, excused)
            evidence = float64() if wrong.any() else None
            if evidence is not None and evidence.values.shape == r.shape:
                # the exact value is that infinity (log of a deviation that is exactly 0,
                # which the reference's rounding left at 1e-8): the candidate is right there
                r64 = evidence.values.astype(np.float64)
                exact = wrong & ((c == r64) | (np.isnan(c) & np.isnan(r64)))
                _count(excused, MATCHES_REFERENCE64, exact)
                wrong = wrong & ~exact  # (not in place: wrong may be nonfinite itself)
            if wrong.any():
                return Difference(i, ref.dtype, f"output {i} ({ref.dtype}): NaN/Inf in {int(wrong.sum())} of {c.size} "
                                  "elements where the reference is finite")
    atol, rtol = judged_tolerance(precision)
    with np.errstate(invalid="ignore"):
        bad = ~nonfinite & (np.abs(c - r) > atol + rtol * np.abs(r))
    bad = _excuse_denormal(bad, r, c, ref.dtype, excused)
    if not bad.any():
        return None
    evidence = float64()
    if evidence is not None and evidence.values.shape == r.shape:
        r64 = evidence.values.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            allowed = np.maximum(atol + rtol * np.abs(r64),
                                 REF_ERROR_FACTOR * np.abs(r - r64) + SPREAD_FACTOR * evidence.spread)
            # where rounding noise alone moves the value by half its size (tan near a
            # pole), the value is meaningless: not compared, counted
            chaos = evidence.spread > CHAOS_FRACTION * (np.abs(r64) + atol)
            bad &= ~(np.abs(c - r64) <= allowed)
        _count(excused, CHAOS, bad & chaos)
        bad &= ~chaos
        unknown = ~np.isfinite(r64)  # (special inputs) no float64 value there: loose tolerance
    else:
        unknown = np.ones(r.shape, dtype=bool)
    loose_atol, loose_rtol = tolerance(precision)
    loose = np.abs(c - r) <= loose_atol + loose_rtol * np.abs(r)
    _count(excused, NO_REFERENCE64, bad & unknown & loose)
    bad &= ~(unknown & loose)
    if cross_framework and precision in ("float16", "bfloat16"):
        # Frameworks choose how precisely they compute inside a half-precision op (torch
        # upcasts to float32 per op, TensorFlow mostly rounds every step): a documented
        # design difference, not a bug; only the loose half tolerance applies, counted
        _count(excused, CROSS_HALF, bad & loose)
        bad &= ~loose
    bad = _excuse_near(bad, kind, near_discontinuity, excused)
    if not bad.any():
        return None
    max_abs, max_rel = _errors(c[bad], r[bad], atol)
    return Difference(i, ref.dtype, f"output {i} ({ref.dtype}): {int(bad.sum())} of {bad.size} elements beyond tolerance",
                      max_abs, max_rel)


def compare_outputs(ref: Sequence[Output], cand: Sequence[Output], kinds: Sequence[OutputKind],
                    float64: Callable[[], list[Reference64] | None] = lambda: None,
                    near_discontinuity: Callable[..., "bool | Mapping[str, np.ndarray]"] = lambda nodes: True,
                    cross_framework: bool = False, excused: dict[str, int] | None = None) -> Difference | None:
    """The first output on which ``cand`` differs from ``ref`` (None: they agree).

    ``near_discontinuity(nodes)`` or, to answer element by element,
    ``near_discontinuity(nodes, output=i)`` (``DiscontinuityProbe.near``). Without one
    every element downstream of a discontinuous op counts as noise-prone, the
    conservative choice. ``cross_framework``: the candidate runs another framework than
    the reference (rule 3's float16 overflow exception). ``excused`` (reason -> elements)
    is filled with every differing element not reported, over every output compared.
    """
    if len(ref) != len(cand):
        return Difference(0, "", f"{len(cand)} outputs where the reference has {len(ref)}")
    try:
        per_element = "output" in inspect.signature(near_discontinuity).parameters
    except (TypeError, ValueError):
        per_element = False
    for i, (r, c) in enumerate(zip(ref, cand)):
        def one64(i: int = i) -> Reference64 | None:
            outs = float64()
            return None if outs is None else outs[i]

        def near(nodes: frozenset[int], i: int = i) -> "bool | Mapping[str, np.ndarray]":
            return near_discontinuity(nodes, output=i) if per_element else near_discontinuity(nodes)

        diff = compare_output(i, r, c, kinds[i], one64, near, cross_framework, excused)
        if diff is not None:
            return diff
    return None


def all_finite(outputs: Sequence[Output]) -> bool:
    return all(not is_float(o.dtype) or bool(np.isfinite(o.array).all()) for o in outputs)


# ---- deliberate special values (NaN, +-inf) -------------------------------------------

def compare_nonfinite(ref: Sequence[Output], cand: Sequence[Output]) -> tuple[Difference | None, list[Output], list[Output]]:
    """For a case fed deliberate special floats (``corpus.values.has_special``), where the
    reference's NaN/Inf is the point, not a reason to discard the case (DESIGN §6).

    Where the reference is NaN the candidate must be NaN, where it is +-inf the same
    infinity: a backend that drops or invents a NaN, or flips an infinity's sign, is wrong
    whatever the tolerance. Returns (the first such difference or None, then both output
    lists with those agreeing non-finite elements zeroed), so that ``compare_outputs``
    judges the finite rest as usual, including NaN/Inf where the reference is finite.
    """
    masked_ref, masked_cand = list(ref), list(cand)
    for i, (r, c) in enumerate(zip(ref, cand)):
        if not is_float(r.dtype) or r.shape != c.shape or r.dtype != c.dtype:
            continue
        rv, cv = r.array.astype(np.float64), c.array.astype(np.float64)
        nan, inf = np.isnan(rv), np.isinf(rv)
        if not (nan.any() or inf.any()):
            continue
        lost = nan & ~np.isnan(cv)
        wrong = inf & (cv != rv)
        if lost.any() or wrong.any():
            what = [f"{int(lost.sum())} NaN the reference has, not the candidate"] if lost.any() else []
            what += [f"{int(wrong.sum())} infinities of another sign or value"] if wrong.any() else []
            return Difference(i, r.dtype, f"output {i} ({r.dtype}): {'; '.join(what)} (of {rv.size} elements)"), masked_ref, masked_cand
        agree = nan | inf
        masked_ref[i] = Output(r.dtype, r.shape, np.where(agree, 0, r.array).astype(r.array.dtype))
        masked_cand[i] = Output(c.dtype, c.shape, np.where(agree, 0, c.array).astype(c.array.dtype))
    return None, masked_ref, masked_cand
