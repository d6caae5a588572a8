"""How each operator rounds, which sets the rounding noise the comparison allows it
(``oracles.compare``, rule 4; DESIGN §6: noise is measured, never a size formula).

* "exact": the op selects or moves values (max, slicing, indexing, sort values,
  reshape ...): it adds no noise, and an output computed only by such ops (or by ops
  without float outputs) from the inputs must be equal bit for bit;
* "accumulate": the op sums many terms (sum, mean, matmul, conv ...): beyond its final
  rounding it may add the float64 ``op(|x|)`` times the unit roundoff of the dtype the
  frameworks accumulate in (``accumulation_dtype``), capped in half precision at
  ``OWN_CAP`` of its value so that a 5% error in a float16 or bfloat16 reduction is
  always reported;
* "fused": the op fuses a product into a sum (addcmul, addcdiv, lerp ...), which a
  compiler may evaluate as separate steps each rounded in the dtype: like "accumulate"
  with the dtype's own roundoff (same cap);
* "remainder": x mod y computes x - floor(x / y) * y, whose rounding is relative to the
  dividend x, not to the (possibly tiny) remainder: the dtype's roundoff of |x|;
* "solve": linear algebra that solves or factors a matrix (inv, solve, det, qr, svd ...):
  a backward-stable algorithm's error grows with the matrix's condition number, so the
  dtype's roundoff of the result's scale times cond(A), per matrix (an XLA float16 inv
  computed in float16 where eager computes in float32 is no bug; 5% on a well-conditioned
  matrix still is);
* "solve-squared": least squares through the normal equations (lstsq): cond(A) squared;
* "composite": a formula of several rounded steps whose terms may cancel (losses with
  logits, batch normalization with given statistics, colour-space round trips)
  (``weighted_cross_entropy_with_logits`` is ``(1-z)*x + (1+(q-1)*z)*softplus(-x)``): each
  step rounds relative to its terms, each bounded by the product of ``1 + |operand|``
  over the float operands (the formulas are of degree one in each), so the dtype's
  roundoff of that product (a float16 loss one ulp off after a cancellation was XLA's
  false alarm; 5% of an uncancelled loss is still reported);
* "products": differences of products of elements at other positions (cross products,
  ``a1*b2 - a2*b1``): each product rounds in the dtype, and the result may cancel, so the
  dtype's roundoff of twice the largest product of the operands' magnitudes (a float16
  ``tf.linalg.cross`` one ulp of its terms off after a cancellation was seed 33's XLA
  false alarm; 5% of a component of the terms' size is still reported);
* "": a few ulps of its own result.

Hand-written specs say it in ``OpSpec.rounding``; inferred and concrete operators are
looked up by API name in one small table, so that ``torch.amax`` rounds like
``core.Amax``: one policy decides, not the operator's origin.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from corpus.graph import Graph
from corpus.tensor_type import is_float
from rules.spec import OpSpec

PRECISION_ORDER = ("bfloat16", "float16", "float32", "float64")  # least precise first
UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24, "float64": 2.0**-53}
# Unit roundoffs of noise per op: one ulp in half precision (eager rounds each op's
# result, fused code only the last: at most half an ulp apart per op, doubled); two ulps
# in float32/64, whose transcendental kernels differ by a few ulps between backends.
NOISE_UNITS = {"bfloat16": 2.0, "float16": 2.0, "float32": 4.0, "float64": 4.0}
# The most noise an accumulation of half-precision values may add, as a share of its
# value: 3 * 1/2 ulp (the reference's error) + 2 * OWN_CAP stays under 5% in bfloat16.
OWN_CAP = 0.015
# The dtype a framework accumulates sums of a dtype in, where it is not float32 for half
# precision and the dtype itself otherwise (measured: TensorFlow's CPU reduce_sum of 4,096
# float16 values is off by 0.9% where torch, accumulating in float32, is off by 0.01%).
ACCUMULATION: dict[tuple[str, str], str] = {
    ("tensorflow", "float16"): "float16",
}

# Inferred operators by API name (the last dotted part, lower case), so that an API and
# its hand-written counterpart round alike: one policy, whatever the operator's origin.
# Not ``round``: torch.round(x, decimals=k) scales by 10**k and back, which rounds.
EXACT_APIS = re.compile(
    r"a?max|a?min|maximum|minimum|fmax|fmin|abs|absolute|neg|negative|positive|relu6?|hardtanh|clamp|clip|"
    r"clip_by_value|floor|ceil|rint|trunc|fix|sign|reshape|view|view_as|flatten|unflatten|ravel|"
    r"transpose|permute|t|mt|movedim|moveaxis|swapaxes|swapdims|squeeze|unsqueeze|expand|expand_as|expanddims|"
    r"expand_dims|broadcast_to|broadcastto|cat|concat|concatv2|concatenate|stack|pack|unpack|unstack|hstack|"
    r"vstack|dstack|split|splitv|chunk|tensor_split|unbind|narrow|select|selectv2|where|slice|stridedslice|"
    r"index_select|gather|gatherv2|gather_nd|gathernd|take|take_along_dim|masked_fill|flip|fliplr|flipud|"
    r"reverse|reversev2|roll|rot90|tile|repeat|repeat_interleave|tril|triu|matrixbandpart|diag|diagonal|"
    r"diag_part|matrix_diag|matrix_diag_part|matrix_set_diag|set_diag|band_part|matrix_band_part|"
    r"diag_embed|pad|padv2|mirrorpad|sort|msort|topk|topkv2|argmax|argmin|argsort|cummax|cummin|kthvalue|"
    r"identity|clone|contiguous|pixel_shuffle|pixel_unshuffle|max_pool\w*|maxpool\w*|adaptive_max_pool\w*|"
    r"zeros_like|ones_like|copy|detach|reduce_max|reduce_min")
ACCUMULATE_APIS = re.compile(
    r"sum|nansum|mean|nanmean|prod|reduce_sum|reduce_mean|reduce_prod|reduce_logsumexp|reduce_euclidean_norm|"
    r"logsumexp|cumsum|cumprod|logcumsumexp|var|std|var_mean|std_mean|norm|\w*_norm|matmul|batchmatmul\w*|mm|"
    r"bmm|addmm|addbmm|baddbmm|addmv|mv|dot|vdot|inner|einsum|tensordot|linear|bilinear|conv\w*|"
    r"avg_pool\w*|avgpool\w*|adaptive_avg_pool\w*|trace|cdist|cosine_similarity|pairwise_distance|"
    r"trapz|trapezoid|cumulative_trapezoid|cumulative_trapz")
# APIs that fuse a product (or quotient) into a sum: a compiler may evaluate them as
# separate steps, each rounded in the dtype, so their noise is the dtype's roundoff of the
# terms' magnitudes, not of the (possibly cancelled) result
FUSED_APIS = re.compile(r"addcmul|addcdiv|lerp|fma|addr|xlogy|hypot")
SOLVE_APIS = re.compile(
    r"inv|pinv|matrix_inverse|inverse|solve\w*|matrix_solve\w*|lstsq|matrix_solve_ls|cholesky\w*|lu|lu_factor\w*|"
    r"lu_solve|lu_reconstruct|triangular_solve|det|slogdet|logdet|logabsdet|matrix_determinant|log_matrix_determinant|"
    r"qr|svd|svdvals|eig|eigh|eigvals|eigvalsh|self_adjoint_eig\w*|expm|matrix_exp|matrix_power|tensorinv|"
    r"tensorsolve|sqrtm|matrix_square_root|logm|matrix_logarithm")
# formulas of several steps, elementwise (the reducing torch losses stay "")
COMPOSITE_APIS = re.compile(r"\w*_with_logits|log_poisson_loss|\w*_cross_entropy\w*|"
                            r"batch_norm_with_global_normalization|batch_normalization|"  # (x - m) * s + b
                            # colour-space round trips: a channel that comes back as 0 is a
                            # cancellation of terms of the pixels' size
                            r"adjust_hue|adjust_saturation|rgb_to_hsv|hsv_to_rgb|rgb_to_yiq|yiq_to_rgb|"
                            r"rgb_to_yuv|yuv_to_rgb")
# differences of products across positions (see "products" above)
PRODUCTS_APIS = re.compile(r"cross|linalg_cross")
# least squares through the normal equations (TensorFlow's lstsq with fast=True, its
# default, documents it): the error grows with cond(A) squared
NORMAL_EQUATION_APIS = re.compile(r"lstsq|matrix_solve_ls|matrixsolvels")
# APIs computing a remainder (the dunder names lose their trailing underscores)
REMAINDER_APIS = re.compile(r"_*r?mod|fmod|floormod|floor_mod|truncatemod|remainder")
INDEX_APIS = re.compile(r"argmax|argmin|argsort|sort|msort|topk|topkv2|kthvalue|mode|median|nanmedian|max|min")


def accumulation_dtype(dtype: str, frameworks: Sequence[str] = ()) -> str:
    """The least precise dtype any of ``frameworks`` accumulates a sum of ``dtype`` in."""
    default = "float32" if dtype in ("float16", "bfloat16") else dtype
    found = [ACCUMULATION.get((fw, dtype), default) for fw in frameworks] or [default]
    return min(found, key=lambda d: PRECISION_ORDER.index(d) if d in PRECISION_ORDER else len(PRECISION_ORDER))


def _api_name(spec: OpSpec) -> str:
    """``torch.Tensor.addmm_`` -> ``addmm``: an in-place variant rounds as its function does."""
    return str(getattr(spec, "api", "") or "").rsplit(".", 1)[-1].lower().rstrip("_")


def op_rounding(spec: OpSpec) -> str:
    """How an operator rounds: "exact", "accumulate", "fused", "remainder", "solve",
    "solve-squared", "composite", "products" or "" (see the module docstring):
    the spec's ``rounding``, else its API name's."""
    if spec.rounding:
        return spec.rounding
    name = _api_name(spec)
    if EXACT_APIS.fullmatch(name):
        return "exact"
    if ACCUMULATE_APIS.fullmatch(name):
        return "accumulate"
    if FUSED_APIS.fullmatch(name):
        return "fused"
    if REMAINDER_APIS.fullmatch(name):
        return "remainder"
    if NORMAL_EQUATION_APIS.fullmatch(name):
        return "solve-squared"
    if SOLVE_APIS.fullmatch(name):
        return "solve"
    if COMPOSITE_APIS.fullmatch(name):
        return "composite"
    if PRODUCTS_APIS.fullmatch(name):
        return "products"
    return ""


def is_index_op(spec: OpSpec) -> bool:
    """An op whose integer output is an index (argmax, sort and topk indices): its jumps
    are ties, counted as "near-tie index"."""
    return bool(spec.unstable_outputs) or bool(INDEX_APIS.fullmatch(_api_name(spec)))


def exact_nodes(graph: Graph, specs: Mapping[str, OpSpec]) -> set[int]:
    """Nodes whose values carry no rounding: leaves, and ops whose inputs carry none and
    that are exact or have no float output (comparisons, integer arithmetic)."""
    exact: set[int] = set()
    for n in graph.nodes():
        node = graph.node(n)
        if node.kind != "op":
            exact.add(n)
            continue
        if all(v[0] in exact for v in graph.inputs_of(n)) and (
                op_rounding(specs[node.op]) == "exact"  # type: ignore[index]
                or not any(is_float(t.dtype) for t in node.types)):
            exact.add(n)
    return exact


# Index ops whose tie order the framework documents, so that ties on values both sides
# share (integers, exact floats) are compared exactly: torch's argmax/argmin and max/min
# with a dim give the first index; the hand-written sort is stable on both sides.
# Elsewhere a tie's index is arbitrary by definition (torch.nanmedian, torch.topk,
# tf.math.argmax: "the identity of the return value is not guaranteed").
DOCUMENTED_TIES_API = {"torch": re.compile(r"argmax|argmin|max|min")}
DOCUMENTED_TIES_SPEC = {"core.ArgMax": ("torch",), "core.ArgMin": ("torch",), "core.Sort": ("torch", "tensorflow")}


def ties_documented(spec: OpSpec, frameworks: Sequence[str]) -> bool:
    """Does every one of ``frameworks`` document which index ``spec`` gives under a tie?"""
    if spec.id in DOCUMENTED_TIES_SPEC:
        return all(fw in DOCUMENTED_TIES_SPEC[spec.id] for fw in frameworks)
    name = _api_name(spec)
    return bool(name) and all(fw in DOCUMENTED_TIES_API and DOCUMENTED_TIES_API[fw].fullmatch(name) for fw in frameworks)
