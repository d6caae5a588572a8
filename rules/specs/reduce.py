"""Reductions, scans, sorting: sum/mean/prod/max/min/any/all, variance, logsumexp, norm,
argmax/argmin, cumulative ops, sort and top-k. Each is one table row.

The reduced dims and ``keepdim`` are sampled concretely. ``single`` ops take one dim (as
``torch.prod`` / ``torch.max(x, dim)`` / scans do), the others a non-empty set of distinct
dims (all of them one time in five). Output dtypes are what both frameworks return:
integer sums, products and cumulative sums are kept in the input dtype on the torch side
(``dtype=x.dtype``; wrap-around arithmetic agrees with TensorFlow's), argmax/argmin and
sort/top-k indices are int64 on both sides (TensorFlow's int32 indices are cast).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import z3

from corpus.tensor_type import FLOAT_DTYPES, INT_DTYPES
from rules.spec import OpSpec, SymTensor, numel

MAX_RANK = 5
NUMERIC = FLOAT_DTYPES + INT_DTYPES
# torch orders bools (max/min/sort/cummax); TensorFlow's kernels for these lack bool.
ORDERED = {"dtypes": NUMERIC + ("bool",), "tf_dtypes": NUMERIC}
# Lowered on purpose: float16 products of 64 values in [-2, 2] overflow.
PROD_RANGE = {"float": (-1.25, 1.25), "int": (-3.0, 3.0)}

TF_VAR = '''
def tf_var(x, axis, keepdims, correction):
    mean = tf.math.reduce_mean(x, axis, keepdims=True)
    n = tf.size(x) // tf.size(mean)
    ssd = tf.math.reduce_sum(tf.math.square(x - mean), axis, keepdims=keepdims)
    return ssd / tf.cast(n - correction, x.dtype)
'''

TF_SCAN = '''
def tf_scan_along(fn, x, axis):
    rank = len(x.shape)
    axis = axis % rank
    perm = [axis] + [d for d in range(rank) if d != axis]
    inverse = [perm.index(d) for d in range(rank)]
    return tf.transpose(tf.scan(fn, tf.transpose(x, perm)), inverse)
'''

TF_TOPK = '''
def tf_topk(x, k, axis):
    rank = len(x.shape)
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    values, indices = tf.math.top_k(tf.transpose(x, perm), k)
    return tf.transpose(values, perm), tf.cast(tf.transpose(indices, perm), tf.int64)
'''


class Reduce(OpSpec):
    """One row: templates over ``{x}``, ``{dims}`` (a list, or an int for ``single``),
    ``{keep}`` (keepdim) and ``{corr}`` (variance correction). A ``scan`` keeps the
    input's shape and has no keepdim."""

    n_inputs = 1

    def __init__(self, name: str, torch_t: str, tf_t: str, dtypes: Sequence[str], *,
                 tf_dtypes: Sequence[str] | None = None, single: bool = False, scan: bool = False,
                 out_dtype: str | None = None, domain: dict[str, tuple[float, float]] | None = None,
                 helpers: dict[str, str] | None = None, correction: bool = False,
                 discontinuous: bool = False) -> None:
        self.id = f"core.{name}"
        self.torch_t, self.tf_t = torch_t, tf_t
        self._dtypes = {"torch": tuple(dtypes), "tensorflow": tuple(tf_dtypes if tf_dtypes is not None else dtypes)}
        self.single, self.scan = single, scan
        self.out_dtype = out_dtype
        self.domain = domain or {}
        self._helpers = helpers or {}
        self.correction = correction
        self.discontinuous = discontinuous

    # -- signature and attributes ----------------------------------------------------------
    def rank_options(self) -> list[tuple[int, ...]]:
        return [(r,) for r in range(1, MAX_RANK + 1)]

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        return [(d,) for d in self._dtypes[framework]]

    def sample_attrs(self, ranks: tuple[int, ...], dtypes: tuple[str, ...], rng: random.Random) -> dict[str, Any]:
        r = ranks[0]
        if self.single:
            dims = [rng.randrange(r)]
        elif rng.random() < 0.2:
            dims = list(range(r))
        else:
            dims = sorted(rng.sample(range(r), rng.randint(1, r)))
        dims = [d - r if rng.random() < 0.25 else d for d in dims]
        attrs: dict[str, Any] = {"dims": dims[0] if self.single else dims}
        if not self.scan:
            attrs["keepdim"] = rng.random() < 0.5
        if self.correction:
            attrs["correction"] = rng.choice([0, 1])
        return attrs

    def _dims(self, attrs: dict[str, Any], rank: int) -> list[int]:
        dims = [attrs["dims"]] if self.single else attrs["dims"]
        return sorted(d % rank for d in dims)

    # -- constraints and types -------------------------------------------------------------
    def requires(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[z3.BoolRef]:
        if not self.correction:
            return []
        reduced = [ins[0].shape[d] for d in self._dims(attrs, ins[0].rank)]
        return [numel(reduced) > attrs["correction"]]

    def output_types(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[SymTensor]:
        x = ins[0]
        dims = self._dims(attrs, x.rank)
        if self.scan:
            shape = list(x.shape)
        elif attrs["keepdim"]:
            shape = [z3.IntVal(1) if i in dims else d for i, d in enumerate(x.shape)]
        else:
            shape = [d for i, d in enumerate(x.shape) if i not in dims]
        return [SymTensor(shape, self.out_dtype or x.dtype)]

    # -- materialization -------------------------------------------------------------------
    def _fields(self, args: Sequence[str], attrs: dict[str, Any]) -> dict[str, Any]:
        dims = attrs["dims"]
        return {"x": args[0], "dims": dims if self.single else list(dims), "keep": attrs.get("keepdim", False),
                "corr": attrs.get("correction", 0)}

    def torch_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        return self.torch_t.format(**self._fields(args, attrs))

    def tf_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        return self.tf_t.format(**self._fields(args, attrs))

    def helpers(self, framework: str) -> dict[str, str]:
        return self._helpers if framework == "tensorflow" else {}

    def value_range(self, position: int, dtype: str) -> tuple[float, float] | None:
        return self.domain.get("float" if dtype in FLOAT_DTYPES else "int")


class ArgReduce(Reduce):
    """argmax/argmin: int64 indices; TensorFlow has no keepdims, so it re-inserts the dim."""

    unstable_outputs = (0,)

    def __init__(self, name: str, torch_fn: str, tf_fn: str, dtypes: Sequence[str], **kw: Any) -> None:
        super().__init__(name, f"torch.{torch_fn}({{x}}, {{dims}}, keepdim={{keep}})",
                         f"tf.math.{tf_fn}({{x}}, {{dims}}, output_type=tf.int64)", dtypes,
                         single=True, out_dtype="int64", discontinuous=True, **kw)

    def tf_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        code = super().tf_code(args, attrs)
        return f"tf.expand_dims({code}, {attrs['dims']})" if attrs["keepdim"] else code


class Sort(Reduce):
    """Sorted values and their (stable-sort) int64 indices; indices are unstable outputs
    because equal values may come from either framework's tie order."""

    unstable_outputs = (1,)

    def __init__(self, dtypes: Sequence[str], **kw: Any) -> None:
        super().__init__("Sort", "", "", dtypes, single=True, scan=True, **kw)

    def sample_attrs(self, ranks, dtypes, rng):
        return {**super().sample_attrs(ranks, dtypes, rng), "descending": rng.random() < 0.5}

    def output_types(self, ins, attrs):
        values = SymTensor(list(ins[0].shape), ins[0].dtype)
        return [values, SymTensor(list(ins[0].shape), "int64")]

    def torch_code(self, args, attrs):
        return f"tuple(torch.sort({args[0]}, dim={attrs['dims']}, descending={attrs['descending']}, stable=True))"

    def tf_code(self, args, attrs):
        d = "'DESCENDING'" if attrs["descending"] else "'ASCENDING'"
        return (f"(tf.sort({args[0]}, {attrs['dims']}, {d}), "
                f"tf.cast(tf.argsort({args[0]}, {attrs['dims']}, {d}, stable=True), tf.int64))")


class TopK(Reduce):
    """The ``k`` largest along a dim (``k`` solved, at most the dim), sorted, with int64
    indices (unstable under ties)."""

    unstable_outputs = (1,)

    def __init__(self, dtypes: Sequence[str], **kw: Any) -> None:
        super().__init__("TopK", "", "", dtypes, single=True, scan=True, helpers={"tf_topk": TF_TOPK}, **kw)

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dims": rng.randrange(ranks[0])}  # non-negative: the tf helper swaps it with the last

    def int_attrs(self, ranks, sampled):
        return {"k": (1, 32)}

    def requires(self, ins, attrs):
        return [attrs["k"] <= ins[0].shape[attrs["dims"]]]

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        shape[attrs["dims"]] = attrs["k"]
        return [SymTensor(shape, ins[0].dtype), SymTensor(list(shape), "int64")]

    def torch_code(self, args, attrs):
        return f"tuple(torch.topk({args[0]}, {attrs['k']}, {attrs['dims']}, largest=True, sorted=True))"

    def tf_code(self, args, attrs):
        return f"tf_topk({args[0]}, {attrs['k']}, {attrs['dims']})"


_SCAN = {"tf_scan_along": TF_SCAN}
_VAR = {"tf_var": TF_VAR}
R = Reduce

SPECS: list[OpSpec] = [
    R("Sum", "torch.sum({x}, {dims}, keepdim={keep}, dtype={x}.dtype)",
      "tf.math.reduce_sum({x}, {dims}, keepdims={keep})", NUMERIC),
    R("Mean", "torch.mean({x}, {dims}, keepdim={keep})",
      "tf.math.reduce_mean({x}, {dims}, keepdims={keep})", FLOAT_DTYPES),
    R("Prod", "torch.prod({x}, {dims}, keepdim={keep}, dtype={x}.dtype)",
      "tf.math.reduce_prod({x}, {dims}, keepdims={keep})", NUMERIC, single=True, domain=PROD_RANGE),
    R("Max", "torch.max({x}, {dims}, keepdim={keep}).values",
      "tf.math.reduce_max({x}, {dims}, keepdims={keep})", **ORDERED, single=True),
    R("Min", "torch.min({x}, {dims}, keepdim={keep}).values",
      "tf.math.reduce_min({x}, {dims}, keepdims={keep})", **ORDERED, single=True),
    R("Amax", "torch.amax({x}, {dims}, keepdim={keep})",
      "tf.math.reduce_max({x}, {dims}, keepdims={keep})", **ORDERED),
    R("Amin", "torch.amin({x}, {dims}, keepdim={keep})",
      "tf.math.reduce_min({x}, {dims}, keepdims={keep})", **ORDERED),
    R("Any", "torch.any({x}, {dims}, keepdim={keep})",
      "tf.math.reduce_any({x}, {dims}, keepdims={keep})", ("bool",)),
    R("All", "torch.all({x}, {dims}, keepdim={keep})",
      "tf.math.reduce_all({x}, {dims}, keepdims={keep})", ("bool",)),
    R("Var", "torch.var({x}, {dims}, correction={corr}, keepdim={keep})",
      "tf_var({x}, {dims}, {keep}, {corr})", FLOAT_DTYPES, correction=True, helpers=_VAR),
    R("Std", "torch.std({x}, {dims}, correction={corr}, keepdim={keep})",
      "tf.math.sqrt(tf_var({x}, {dims}, {keep}, {corr}))", FLOAT_DTYPES, correction=True, helpers=_VAR),
    R("LogSumExp", "torch.logsumexp({x}, {dims}, keepdim={keep})",
      "tf.math.reduce_logsumexp({x}, {dims}, keepdims={keep})", FLOAT_DTYPES),
    R("Norm", "torch.linalg.vector_norm({x}, 2, {dims}, keepdim={keep})",
      "tf.math.sqrt(tf.math.reduce_sum(tf.math.square({x}), {dims}, keepdims={keep}))", FLOAT_DTYPES),
    ArgReduce("ArgMax", "argmax", "argmax", NUMERIC),
    ArgReduce("ArgMin", "argmin", "argmin", NUMERIC),
    R("CumSum", "torch.cumsum({x}, {dims}, dtype={x}.dtype)", "tf.math.cumsum({x}, {dims})", NUMERIC,
      single=True, scan=True),
    R("CumProd", "torch.cumprod({x}, {dims}, dtype={x}.dtype)", "tf.math.cumprod({x}, {dims})", NUMERIC,
      single=True, scan=True, domain=PROD_RANGE),
    R("CumMax", "torch.cummax({x}, {dims}).values", "tf_scan_along(tf.math.maximum, {x}, {dims})", **ORDERED,
      single=True, scan=True, helpers=_SCAN),
    R("CumMin", "torch.cummin({x}, {dims}).values", "tf_scan_along(tf.math.minimum, {x}, {dims})", **ORDERED,
      single=True, scan=True, helpers=_SCAN),
    Sort(**ORDERED),
    TopK(NUMERIC),
]
# selections (no rounding of their own) and accumulations (oracles.compare.op_rounding)
_SELECT = {"Max", "Min", "Amax", "Amin", "Any", "All", "ArgMax", "ArgMin", "CumMax", "CumMin", "Sort", "TopK"}
for _spec in SPECS:
    _spec.rounding = "exact" if _spec.id.removeprefix("core.") in _SELECT else "accumulate"
