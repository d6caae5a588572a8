"""Calls synthesized from a function's signature, for the ``probe`` source.

Docstring examples call a few hundred of TensorFlow's public functions, often with Python
literals, so most functions have no records that rule inference can use. Nothing states
a function's shape rules, but its parameter names are a strong hint: ``x``, ``y``,
``input``, ``logits`` are tensors; ``axis``, ``strides``, ``padding`` are attributes
with a handful of sensible values. A synthesized call is therefore:

- a *plan*, how the shapes of the required tensor parameters relate: all the same,
  broadcast, a scalar or a vector of the last dimension next to a tensor, matmul-like,
  square matrices, channels-last images, a convolution's input and filter; at a rank;
- a dtype for the tensors (parameters named like indices get int32); parameters named
  like lists (``add_n(inputs)``, ``stack(values)``) also get lists of two or three;
- a value for each required attribute, from a table keyed by the parameter's name
  (rank-aware where it must be: ``perm``, ``multiples``, ``paddings``).

Most first calls are wrong for the function, and that is wanted: they are invalid
records next to the valid ones. ``variants`` then varies a call that ran one thing at a
time (fresh dimensions, another dtype, another value of a required attribute, an
optional attribute such as ``axis``, ``keepdims`` or a flag), which gives a template
several valid records and their invalid neighbours before the ``mutate`` source takes
over.

Every choice is drawn from the ``random.Random`` the caller passes; the tensors' values
are drawn by the sandbox worker from the call's seed. Nothing here imports a framework.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Callable

FIRST_DTYPES = ("float32", "int32", "bool")
VARIANT_DTYPES = ("float32", "float64", "float16", "bfloat16", "int32", "int64", "int8", "uint8", "bool")
INDEX_NAMES = frozenset({"indices", "segment_ids", "partitions", "ids", "positions", "box_indices"})
LIST_NAMES = frozenset({"inputs", "values", "t_list", "tensors"})  # may take a list of tensors (add_n, stack)
MAX_FIRST = 48
MAX_VARIANTS = 72
MAX_BASES = 6


def _dtype(name: str) -> dict:
    return {"type": "dtype", "value": name}


def _spatial(shape: list[int]) -> int:
    return max(1, len(shape) - 2)


# Required non-tensor parameters: name -> candidate values, given the first tensor's shape.
# The first value is the likeliest; every value is tried on some call.
ATTRS: dict[str, Callable[[list[int]], list]] = {
    "padding": lambda s: ["SAME", "VALID"],
    "strides": lambda s: [1, 2, [1] * len(s)],
    "stride": lambda s: [1, 2],
    "ksize": lambda s: [2, 1, [1] + [2] * _spatial(s) + [1]],
    "ksizes": lambda s: [[1, 2, 2, 1]],
    "window_shape": lambda s: [[2] * _spatial(s), [1] * _spatial(s)],
    "pooling_type": lambda s: ["AVG", "MAX"],
    "rate": lambda s: [1, 2],
    "rates": lambda s: [[1, 1, 1, 1]],
    "dilation_rate": lambda s: [[1] * _spatial(s)],
    "dilations": lambda s: [[1] * len(s)],
    "block_size": lambda s: [2],
    "block_shape": lambda s: [[2] * _spatial(s), [1] * _spatial(s)],
    "crops": lambda s: [[[0, 0]] * _spatial(s)],
    "num_segments": lambda s: [3],
    "num_partitions": lambda s: [2],
    "k": lambda s: [1, 2],
    "num": lambda s: [2],
    "depth": lambda s: [3],
    "num_rows": lambda s: [3],
    "num_lower": lambda s: [1, 0],
    "num_upper": lambda s: [1, 0],
    "axis": lambda s: [0, -1],
    "axes": lambda s: [1, [[len(s) - 1], [0]]],
    "shape": lambda s: [[-1], [2] + s, list(reversed(s))],
    "perm": lambda s: [list(reversed(range(len(s))))],
    "multiples": lambda s: [[2] * len(s), [1] * len(s)],
    "begin": lambda s: [[0] * len(s)],
    "size": lambda s: [[1] * len(s), [4, 4]],
    "end": lambda s: [list(s)],
    "paddings": lambda s: [[[1, 1]] * len(s)],
    "repeats": lambda s: [2],
    "shift": lambda s: [1],
    "num_or_size_splits": lambda s: [1, 2],
    "fft_length": lambda s: [[4], [4, 4]],
    "frame_length": lambda s: [4, 2],
    "frame_step": lambda s: [2, 1],
    "window_length": lambda s: [8],
    "dtype": lambda s: [_dtype("float32"), _dtype("int32")],
    "type_value": lambda s: [_dtype("float32")],
    "variance_epsilon": lambda s: [0.001],
    "epsilon": lambda s: [0.001],
    "clip_value_min": lambda s: [-0.5],
    "clip_value_max": lambda s: [0.5],
    "clip_norm": lambda s: [1.0],
    "max_val": lambda s: [1.0],
    "max_output_size": lambda s: [3],
    "target_height": lambda s: [4],
    "target_width": lambda s: [4],
    "offset_height": lambda s: [1],
    "offset_width": lambda s: [1],
    "contrast_factor": lambda s: [0.5],
    "saturation_factor": lambda s: [0.5],
    "central_fraction": lambda s: [0.5],
    "delta": lambda s: [0.5, 1],
    "alpha": lambda s: [0.2],
    "scalar": lambda s: [2.0],
    "crop_size": lambda s: [[2, 2]],
    "input_shape": lambda s: [list(s)],
    "output_shape": lambda s: [list(s)],
    "scale_after_normalization": lambda s: [True],
    "data_format": lambda s: ["NHWC"],
    "dims": lambda s: [list(s) or [2]],
}

# Optional parameters worth varying on a call that ran (name -> values, given the default).
OPTIONAL: dict[str, Callable[[Any], list]] = {
    "axis": lambda d: [v for v in (-1, 0, 1) if v != d],
    "keepdims": lambda d: [True],
    "k": lambda d: [2, 3] if isinstance(d, int) else [],
    "batch_dims": lambda d: [1] if d == 0 else [],
}


@dataclass(frozen=True)
class Target:
    """What a function takes: required parameters (positional, then keyword-only) and the
    optional ones ``variants`` may set. ``tensors`` are the required ones fed tensors."""

    api: str
    positional: tuple[str, ...]
    keyword: tuple[str, ...]
    optional: tuple[tuple[str, Any], ...]

    @property
    def required(self) -> tuple[str, ...]:
        return self.positional + self.keyword

    @property
    def tensors(self) -> tuple[str, ...]:
        return tuple(p for p in self.required if p not in ATTRS)


@dataclass
class Candidate:
    target: Target
    plan: str
    rank: int
    shapes: list[list[int]]
    dtype: str
    attrs: dict[str, Any] = field(default_factory=dict)  # required attributes
    extra: dict[str, Any] = field(default_factory=dict)  # optional attributes set
    listed: int = 0  # > 0: a LIST_NAMES parameter gets a list of this many tensors of its shape

    def call(self) -> tuple[list, dict]:
        """The encoded call: required parameters positionally (keyword-only ones by name),
        optional ones by name, tensors as ``{shape, dtype}`` markers."""
        tensors = dict(zip(self.target.tensors, self.shapes))

        def value(name: str) -> Any:
            if name in tensors:
                dt = "int32" if name in INDEX_NAMES else self.dtype
                marker = {"shape": list(tensors[name]), "dtype": dt}
                return [dict(marker) for _ in range(self.listed)] if self.listed and name in LIST_NAMES else marker
            return self.attrs[name]

        args = [value(p) for p in self.target.positional]
        kwargs = {p: value(p) for p in self.target.keyword}
        kwargs.update(self.extra)
        return args, kwargs


def target(api: str, sig: inspect.Signature) -> Target | None:
    """The Target of a signature; None when it takes no tensor or needs ``*args``."""
    positional, keyword, optional = [], [], []
    for p in sig.parameters.values():
        if p.name == "name" or p.kind == p.VAR_KEYWORD:
            continue
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.default is p.empty:
            (keyword if p.kind == p.KEYWORD_ONLY else positional).append(p.name)
        elif p.name in OPTIONAL or isinstance(p.default, bool):
            optional.append((p.name, p.default))
    t = Target(api, tuple(positional), tuple(keyword), tuple(optional))
    return t if t.tensors else None


def _dim(rng) -> int:
    return rng.choice((1, 2, 3, 3, 4, 5, 6))


def shapes_for(plan: str, k: int, rank: int, rng) -> list[list[int]] | None:
    """Shapes of ``k`` tensors under ``plan`` at ``rank`` (None: the plan has no such rank)."""
    s = [_dim(rng) for _ in range(rank)]
    if plan == "same":
        return [list(s) for _ in range(k)]
    if plan == "bcast" and rank >= 1:
        return [s] + [[1 if rng.random() < 0.5 else d for d in s][rng.randint(0, rank - 1):] for _ in range(k - 1)]
    if plan == "scalar":
        return [s] + [[] for _ in range(k - 1)]
    if plan == "lastdim" and rank >= 1:
        return [s] + [[s[-1]] for _ in range(k - 1)]
    if plan in ("matmul", "square") and rank >= 2:
        batch, m, n, p = s[:-2], s[-2], s[-1], _dim(rng)
        if plan == "square":
            return [batch + [n, n] for _ in range(k)]
        return [batch + [m, n], batch + [n, p]] + [batch + [m, p] for _ in range(k - 2)]
    if plan == "image" and rank >= 3:
        img = s[:-3] + [s[-3] + 3, s[-2] + 3, 3]
        return [list(img) for _ in range(k)]
    if plan == "conv" and rank >= 3:
        c, o = s[-1], _dim(rng)
        spatial = [d + 4 for d in s[1:-1]]
        kernel = [rng.choice((1, 2, 3)) for _ in spatial]
        return [[s[0]] + spatial + [c], kernel + [c, o]] + [[o] for _ in range(k - 2)]
    return None


PLANS = {  # plan -> ranks tried first (float32)
    "same": (0, 1, 2, 3, 4),
    "image": (3, 4),
    "bcast": (1, 2, 3, 4),
    "scalar": (1, 2, 3),
    "lastdim": (1, 2, 3, 4),
    "matmul": (2, 3, 4),
    "square": (2, 3, 4),
    "conv": (3, 4, 5),
}
ONE_TENSOR_PLANS = ("same", "image", "square")


def _attrs(t: Target, shape: list[int], i: int) -> dict[str, Any]:
    """The ``i``-th rotation of the required attributes' candidate values."""
    return {p: (lambda vals: vals[i % len(vals)])(ATTRS[p](shape)) for p in t.required if p in ATTRS}


def first_calls(t: Target, rng) -> list[Candidate]:
    """The first calls tried: every plan at each of its ranks in float32, the ``same`` plan
    in the other first dtypes, and each required attribute's every value; at most MAX_FIRST."""
    k = len(t.tensors)
    plans = ONE_TENSOR_PLANS if k == 1 else tuple(PLANS)
    out: list[Candidate] = []
    i = 0
    for plan in plans:
        for rank in PLANS[plan] + ((5,) if plan == "same" else ()):  # rank 5: 3-d pooling, 3-d convolution
            shapes = shapes_for(plan, k, rank, rng)
            if shapes is not None:
                out.append(Candidate(t, plan, rank, shapes, "float32", _attrs(t, shapes[0], i)))
                i += 1
    for dtype in FIRST_DTYPES[1:]:
        for rank in (0, 2, 3):
            shapes = shapes_for("same", k, rank, rng)
            out.append(Candidate(t, "same", rank, shapes, dtype, _attrs(t, shapes[0], i)))
            i += 1
    if set(t.tensors) & LIST_NAMES:  # add_n([a, b]), stack([a, b, c])
        for n in (2, 3):
            for rank, dtype in ((0, "float32"), (1, "float32"), (2, "float32"), (3, "float32"), (2, "int32")):
                shapes = shapes_for("same", k, rank, rng)
                out.append(Candidate(t, "same", rank, shapes, dtype, _attrs(t, shapes[0], i), listed=n))
                i += 1
    widest = max((len(ATTRS[p]([1, 1, 1, 1])) for p in t.required if p in ATTRS), default=1)
    for j in range(1, widest):  # each value of each required attribute, on common plans
        for plan, rank in (("same", 2), ("same", 4), ("conv", 4), ("image", 4)):
            shapes = shapes_for(plan, k, rank, rng) if (k > 1 or plan in ONE_TENSOR_PLANS) else None
            if shapes is not None:
                out.append(Candidate(t, plan, rank, shapes, "float32", _attrs(t, shapes[0], j)))
    return out[:MAX_FIRST]


def _redrawn(name: str, value: Any, old: list[int], new: list[int]) -> Any:
    """A required attribute's value for new dimensions: the same choice of the table's,
    recomputed where it depends on the shape (``perm``, ``multiples``, ``end``)."""
    before = ATTRS[name](old)
    return ATTRS[name](new)[before.index(value)] if value in before else value


def variants(valid: list[Candidate], rng) -> list[Candidate]:
    """Neighbours of calls that ran: for up to MAX_BASES of them (one per plan and rank),
    fresh dimensions (four times), other dtypes (every one for the first base, four for
    the others), the required attributes' other values, and each optional attribute's
    values; at most MAX_VARIANTS, the bases interleaved."""
    bases: dict[tuple, Candidate] = {}
    for c in valid:
        if not c.extra:
            bases.setdefault((c.plan, c.rank, c.dtype == "float32", c.listed), c)
    per_base: list[list[Candidate]] = []
    for c in list(bases.values())[:MAX_BASES]:
        t, out = c.target, []
        k = len(t.tensors)
        for _ in range(4):
            shapes = shapes_for(c.plan, k, c.rank, rng)
            out.append(replace(c, shapes=shapes, attrs={p: _redrawn(p, v, c.shapes[0], shapes[0])
                                                        for p, v in c.attrs.items()}))
        others = [dt for dt in VARIANT_DTYPES if dt != c.dtype]
        out += [replace(c, dtype=dt) for dt in (others if not per_base else rng.sample(others, 4))]
        for p, v in c.attrs.items():
            out += [replace(c, attrs={**c.attrs, p: alt}) for alt in ATTRS[p](c.shapes[0]) if alt != v]
        for p, default in t.optional:
            alts = OPTIONAL[p](default) if p in OPTIONAL else ([not default] if isinstance(default, bool) else [])
            out += [replace(c, extra={p: alt}) for alt in alts]
        rng.shuffle(out)
        per_base.append(out)
    merged: list[Candidate] = []
    while any(per_base) and len(merged) < MAX_VARIANTS:
        for lst in per_base:
            if lst and len(merged) < MAX_VARIANTS:
                merged.append(lst.pop(0))
    return merged
