"""What an API's documentation promises about its outputs and demands of its inputs.

Two tables, by API name (the ``api`` of an inferred or concrete spec, for both
frameworks), because a differential oracle must not report what the API itself leaves
open, nor calls its documentation declares undefined:

* **Outputs not unique by definition** (``NON_UNIQUE``). The singular vectors of ``svd``,
  the eigenvectors of ``eigh`` and the ``Q`` of ``qr`` are each determined up to the sign
  of every vector (and, where singular or eigen values coincide, up to a rotation inside
  their subspace); ``R`` of ``qr`` follows ``Q``'s signs row by row. LAPACK and XLA pick
  different signs, and neither is wrong. Such an output is compared through what is
  unique: each vector of the candidate is first aligned in sign to the reference's, and
  vectors that still differ are excused only where the reference's own singular or eigen
  values (an output of the same call, when the graph returns it) coincide, and the
  candidate's vectors span the reference's subspace of that value. Values *computed from* such an output
  (``sum(u)``) inherit the ambiguity and are not compared at all. Every excused element
  is counted by reason (``CheckResult.excused``), never silent.
* **Value preconditions** (``SORTED_INPUTS``). ``searchsorted``'s sequence and
  ``bucketize``'s boundaries must be sorted; on other values the result is undefined and
  kernels legitimately differ (binary searches of different shapes). Random values are
  not sorted, and an intermediate value feeding such an input cannot be steered by the
  value search, so the precondition is met where the call is written:
  ``meet_preconditions`` sorts that argument (``tf.sort(x, axis=-1)``), which the
  reproducer then shows.

Imports numpy only: this module sits in ``rules`` and serves ``oracles.check``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

# How one output of an API is determined: "columns" (each column, over axis -2, a vector
# up to sign, the vectors orthonormal), "rows" (each row a vector up to sign, orthonormal),
# "rows-sign" (each row up to sign, not orthonormal: R of QR).
_SVD_TF = {1: "columns", 2: "columns"}  # (s, u, v)
_SVD_TORCH = {0: "columns", 2: "columns"}  # torch.svd: (U, S, V)
_EIGH = {1: "columns"}  # (values, vectors)
_QR = {0: "columns", 1: "rows-sign"}  # (Q, R)
NON_UNIQUE: dict[str, dict[int, str]] = {
    "tf.linalg.svd": _SVD_TF, "tf.raw_ops.Svd": _SVD_TF,
    "torch.linalg.svd": {0: "columns", 2: "rows"},  # (U, S, Vh)
    "torch.svd": _SVD_TORCH, "torch.Tensor.svd": _SVD_TORCH,
    "tf.linalg.eigh": _EIGH, "tf.raw_ops.SelfAdjointEigV2": _EIGH, "torch.linalg.eigh": _EIGH,
    "tf.linalg.qr": _QR, "tf.raw_ops.Qr": _QR, "torch.linalg.qr": _QR, "torch.qr": _QR, "torch.Tensor.qr": _QR,
}
# API -> the output holding the singular or eigen values the vectors belong to
VALUES_OUTPUT = {"tf.linalg.svd": 0, "tf.raw_ops.Svd": 0, "torch.linalg.svd": 1, "torch.svd": 1,
                 "torch.Tensor.svd": 1, "tf.linalg.eigh": 0, "tf.raw_ops.SelfAdjointEigV2": 0, "torch.linalg.eigh": 0}
DERIVED = "derived"  # an output computed from a non-unique one: not comparable


@dataclass(frozen=True)
class Mark:
    """How a graph output is determined: ``how`` ("columns", "rows", "rows-sign" or
    ``DERIVED``), ``values``, the graph output position of the singular/eigen values
    of the same call (None when the graph does not return them), and ``determined``, how
    many vectors have a value (``k = min(m, n)`` of an svd). The vectors past them
    (``full_matrices=True``) are any orthonormal completion: only their span, the
    orthogonal complement of the first ``k``, is defined, whether or not the graph
    returns the values."""

    how: str
    values: int | None = None
    determined: int | None = None  # vectors that belong to a value; past them, a completion


REASON_SUBSPACE = "non-unique: degenerate subspace"
REASON_DERIVED = "non-unique: computed from singular/eigen vectors"

# API -> the argument that must be sorted along its last axis: (keyword, position).
SORTED_INPUTS: dict[str, tuple[str, int]] = {
    "tf.searchsorted": ("sorted_sequence", 0),
    "tf.raw_ops.LowerBound": ("sorted_inputs", 0),
    "tf.raw_ops.UpperBound": ("sorted_inputs", 0),
    "torch.searchsorted": ("sorted_sequence", 0),
    "torch.bucketize": ("boundaries", 1),
    "tf.histogram_fixed_width": ("value_range", 1),
    "tf.histogram_fixed_width_bins": ("value_range", 1),
}
_SORT = {"tensorflow": "tf.sort({}, axis=-1)", "torch": "torch.sort({}, dim=-1).values"}
# API -> the shift amount, kept in 0..7: shifting by the bit width or more (or by a
# negative amount) is undefined in C, and eager and XLA differ there without a bug.
SHIFT_AMOUNTS: dict[str, tuple[str, int]] = {
    "tf.bitwise.left_shift": ("y", 1),
    "tf.bitwise.right_shift": ("y", 1),
    "tf.raw_ops.LeftShift": ("y", 1),
    "tf.raw_ops.RightShift": ("y", 1),
    "torch.bitwise_left_shift": ("other", 1),
    "torch.bitwise_right_shift": ("other", 1),
}
_IN_SHIFT_RANGE = {"tensorflow": "tf.bitwise.bitwise_and({}, 7)", "torch": "torch.bitwise_and({}, 7)"}
# API -> the float image whose values must lie in [0, 1]: colour-space conversions are
# defined there only (out of range, HSV round trips differ by implementation).
UNIT_RANGE_IMAGES: dict[str, tuple[str, int]] = {
    "tf.image.adjust_hue": ("image", 0),
    "tf.image.adjust_saturation": ("image", 0),
    "tf.image.rgb_to_hsv": ("images", 0),
    "tf.image.hsv_to_rgb": ("images", 0),
    "tf.image.rgb_to_yiq": ("images", 0),
    "tf.image.yiq_to_rgb": ("images", 0),
    "tf.image.rgb_to_yuv": ("images", 0),
    "tf.image.yuv_to_rgb": ("images", 0),
    "tf.image.convert_image_dtype": ("image", 0),
}
_IN_UNIT_RANGE = {"tensorflow": "({0} if {0}.dtype.is_integer else tf.clip_by_value({0}, 0.0, 1.0))"}
# API -> the argument that must be positive: the incomplete gamma functions are defined
# for a > 0 only (eager TensorFlow returns 0 for igamma(-1.2, 0.0), XLA NaN).
POSITIVE_ARGS: dict[str, tuple[str, int]] = {
    "tf.math.igamma": ("a", 0),
    "tf.math.igammac": ("a", 0),
    "tf.raw_ops.Igamma": ("a", 0),
    "tf.raw_ops.Igammac": ("a", 0),
    "torch.igamma": ("input", 0),
    "torch.igammac": ("input", 0),
    "torch.special.gammainc": ("input", 0),
    "torch.special.gammaincc": ("input", 0),
    "torch.Tensor.igamma": ("self", 0),
    "torch.Tensor.igammac": ("self", 0),
}
_POSITIVE = {"tensorflow": "(tf.math.abs({}) + 0.5)", "torch": "(torch.abs({}) + 0.5)"}


# ---- argument contracts ----------------------------------------------------------------------

def _group_norm_contract(shapes: Sequence[tuple[int, ...]], ints: Mapping[str, Any]) -> bool:
    """``native_group_norm(input, weight, bias, N, C, HxW, group, eps)``: N, C and HxW
    describe the input's shape, and the groups divide C."""
    if not shapes or len(shapes[0]) < 2 or not all(k in ints for k in ("N", "C", "HxW", "group")):
        return True
    x = shapes[0]
    return x[0] == ints["N"] and x[1] == ints["C"] and int(np.prod(x[2:])) == ints["HxW"] and \
        int(ints["group"]) > 0 and ints["C"] % ints["group"] == 0


# API -> whether a call's integer arguments agree with its tensors' shapes. Internal APIs
# take the shapes again as arguments, and eager does not check them: ``native_group_norm``
# of a [1, 6, 3] input with N=3, HxW=1 runs on the input's shape, while Inductor follows
# the arguments (the Inductor seed 23 false alarm, a replayed eager call). The contract is
# the API's, not the compiler's to keep: such calls are not generated.
ARGUMENT_CONTRACTS: dict[str, Any] = {
    "torch.native_group_norm": _group_norm_contract,
    "torch.ops.aten.native_group_norm": _group_norm_contract,
}


def keeps_argument_contract(api: str, shapes: Sequence[tuple[int, ...]], ints: Mapping[str, Any]) -> bool:
    """Whether a call of ``api`` with tensors of ``shapes`` and integer arguments ``ints``
    (by template name) keeps the API's argument contract (``ARGUMENT_CONTRACTS``)."""
    contract = ARGUMENT_CONTRACTS.get(api)
    return contract is None or bool(contract(shapes, ints))


# ---- value preconditions -------------------------------------------------------------------

def sorted_tensor(api: str, template: Mapping[str, Any], table: Mapping[str, tuple[str, int]] = SORTED_INPUTS
                  ) -> int | None:
    """Which tensor of a call template (``{"$tensor": i}``) must be sorted (or, with
    another ``table``, meet that table's precondition), if any."""
    where = table.get(api)
    if where is None:
        return None
    keyword, position = where
    node = template.get("kwargs", {}).get(keyword)
    if node is None and position < len(template.get("args", [])):
        node = template["args"][position]
    return node["$tensor"] if isinstance(node, dict) and "$tensor" in node else None


def meet_preconditions(api: str, template: Mapping[str, Any], framework: str, args: Sequence[str]) -> list[str]:
    """The argument expressions of a call with its value preconditions met: the tensor
    that must be sorted is sorted in the call itself, so every value that reaches it,
    a leaf or an intermediate, qualifies (``rules.inferred.InferredSpec.code``)."""
    out = list(args)
    for table, rewrite in ((SORTED_INPUTS, _SORT), (SHIFT_AMOUNTS, _IN_SHIFT_RANGE),
                           (UNIT_RANGE_IMAGES, _IN_UNIT_RANGE), (POSITIVE_ARGS, _POSITIVE)):
        i = sorted_tensor(api, template, table)
        if i is not None and i < len(out) and framework in rewrite:
            out[i] = rewrite[framework].format(out[i])
    return out


# ---- non-unique outputs --------------------------------------------------------------------

def nonunique_outputs(graph: Any, specs: Mapping[str, Any]) -> dict[int, Mark]:
    """Graph output position -> how it is determined (see ``Mark``); unique outputs are
    absent."""
    position = {v: k for k, v in enumerate(graph.outputs)}
    direct: dict[tuple[int, int], Mark] = {}
    for n in graph.op_nodes():
        api = getattr(specs.get(graph.node(n).op), "api", None)
        for i, how in NON_UNIQUE.get(api, {}).items():
            if i < len(graph.node(n).types):
                values = VALUES_OUTPUT.get(api)  # type: ignore[arg-type]
                types = graph.node(n).types
                k = types[values].shape[-1] if values is not None and values < len(types) and types[values].shape else None
                direct[(n, i)] = Mark(how, None if values is None else position.get((n, values)),
                                      None if k is None else int(k))
    if not direct:
        return {}
    tainted: set[int] = set()
    frontier = [user for v in direct for user, _ in graph.users_of(v)]
    while frontier:
        n = frontier.pop()
        if n in tainted:
            continue
        tainted.add(n)
        frontier += [user for i in range(len(graph.node(n).types)) for user, _ in graph.users_of((n, i))]
    marks: dict[int, Mark] = {}
    for k, (n, i) in enumerate(graph.outputs):
        if (n, i) in direct:
            marks[k] = direct[(n, i)]
        elif n in tainted:
            marks[k] = Mark(DERIVED)
    return marks


def _as_columns(a: np.ndarray, how: str) -> np.ndarray:
    """A view with the vectors as columns (axis -2 runs along each vector)."""
    return np.swapaxes(a, -1, -2) if how.startswith("rows") else a


def align_signs(cand: np.ndarray, ref: np.ndarray, how: str) -> np.ndarray:
    """``cand`` with each vector's sign flipped where that brings it closer to ``ref``."""
    c, r = _as_columns(cand.astype(np.float64), how), _as_columns(ref.astype(np.float64), how)
    if c.shape != r.shape or c.ndim < 2:
        return cand
    signs = np.where(np.sum(c * r, axis=-2, keepdims=True) < 0, -1.0, 1.0)
    return _as_columns(c * signs, how).astype(cand.dtype)


def _groups(values: np.ndarray, n_vectors: int, gap: float) -> list[list[int]]:
    """Vector positions whose values coincide (within ``gap``), in groups of two or more;
    vectors past the values (``full_matrices``) join the values near zero."""
    order = sorted(range(len(values)), key=lambda j: values[j])
    groups: list[list[int]] = []
    for j in order:
        if groups and abs(values[j] - values[groups[-1][-1]]) <= gap:
            groups[-1].append(j)
        else:
            groups.append([j])
    extra = list(range(len(values), n_vectors))
    if extra:
        zero = next((g for g in groups if abs(values[g[0]]) <= gap), None)
        groups.append(zero + extra if zero is not None else extra)
        if zero is not None:
            groups.remove(zero)
    return [g for g in groups if len(g) > 1]


def _span_excused(c: np.ndarray, r: np.ndarray, bad: np.ndarray, values: np.ndarray | None, tol: float,
                  determined: int | None = None) -> np.ndarray:
    """Per matrix of a batch (columns as vectors): the differing columns that belong to a
    degenerate value of the reference, or to the completion past the ``determined``
    vectors, and whose candidate vectors lie in the span of the reference's vectors of
    that group. Returns a boolean mask over the columns."""
    excused = np.zeros(bad.shape, dtype=bool)
    n_vectors = bad.shape[-1]
    if values is not None and values.shape[:-1] != bad.shape[:-1]:
        values = None
    if values is None and (determined is None or determined >= n_vectors - 1):
        return excused  # no values, and at most one completion vector: its sign was aligned
    for idx in np.ndindex(*bad.shape[:-1]):
        if values is None:
            groups = [list(range(determined, n_vectors))]  # type: ignore[arg-type]
        else:
            vals = values[idx].astype(np.float64)
            gap = 10 * tol * max(1.0, float(np.abs(vals).max(initial=0.0)))
            groups = _groups(vals, n_vectors, gap)
        for group in groups:
            cols = [j for j in group if bad[idx + (j,)]]
            if not cols:
                continue
            basis, cv, whole = r[idx][:, group], c[idx][:, cols], c[idx][:, group]
            residual = cv - basis @ (basis.T @ cv)  # in the span, and the group still orthonormal
            if np.all(np.abs(residual) <= tol) and np.allclose(whole.T @ whole, np.eye(len(group)), atol=tol):
                excused[idx + (cols,)] = True
    return excused


def judge_nonunique(ref: Sequence[Any], cand: Sequence[Any], marks: Mapping[int, Mark],
                    tolerance: Callable[[str], tuple[float, float]]) -> tuple[list[Any], dict[str, int]]:
    """The candidate's outputs made comparable to the reference's, and the elements
    excused by reason. Outputs are dataclasses with ``dtype``, ``shape`` and ``array``
    (``oracles.compare.Output``); ``tolerance(dtype) -> (atol, rtol)``.

    A ``DERIVED`` output, and the elements of excused vectors, take the reference's
    values, so that the comparison that follows judges everything else as usual; a
    shape or dtype difference is left for it to report."""
    out, excused = list(cand), {}
    for k, mark in marks.items():
        if k >= len(ref) or k >= len(cand):
            continue
        r, c, how = ref[k], cand[k], mark.how
        if r.shape != c.shape or r.dtype != c.dtype or r.array.size == 0:
            continue
        if how == DERIVED:
            out[k] = dataclasses.replace(c, array=r.array.copy())
            excused[REASON_DERIVED] = excused.get(REASON_DERIVED, 0) + int(r.array.size)
            continue
        if r.array.ndim < 2 or not np.issubdtype(r.array.dtype, np.floating):
            continue
        aligned = align_signs(c.array, r.array, how)  # compared after this: not an excuse
        atol, rtol = tolerance(r.dtype)
        if how in ("columns", "rows"):
            cc, rc = _as_columns(aligned.astype(np.float64), how), _as_columns(r.array.astype(np.float64), how)
            bad = np.any(np.abs(cc - rc) > atol + rtol * np.abs(rc), axis=-2)
            if bad.any():
                values = None if mark.values is None or mark.values >= len(ref) else ref[mark.values].array
                ok = _span_excused(cc, rc, bad, values, 10 * (atol + rtol), mark.determined)
                if ok.any():
                    cc = np.where(ok[..., None, :], rc, cc)
                    excused[REASON_SUBSPACE] = excused.get(REASON_SUBSPACE, 0) + int(ok.sum()) * cc.shape[-2]
                    aligned = _as_columns(cc, how).astype(c.array.dtype)
        out[k] = dataclasses.replace(c, array=aligned)
    return out, excused


def align_reference64(evidence: Sequence[Any] | None, ref: Sequence[Any], marks: Mapping[int, Mark]) -> Any:
    """The float64 recomputation's outputs (``values``, ``spread``) with their vector signs
    aligned to the reference's: float64 LAPACK may pick other signs than float32, and an
    unaligned recomputation would only widen the float64 judge's allowance."""
    if evidence is None or not marks:
        return evidence
    out = list(evidence)
    for k, mark in marks.items():
        if mark.how == DERIVED or k >= len(out) or out[k] is None or k >= len(ref):
            continue
        values = out[k].values
        if values.shape == ref[k].array.shape and values.ndim >= 2:
            out[k] = dataclasses.replace(out[k], values=align_signs(values, ref[k].array, mark.how))
    return out
