"""Shape, indexing and layout operators: reshape and friends, concatenation and splitting,
slicing and gathering, tiling, flips and rolls, ``where``, ``clamp``, casts, triangles.

Dims, axes and permutations are sampled concretely (``sample_attrs``); sizes that shape
an output (reshape targets, split sizes, slice bounds, repeats) are z3 integers solved
together with the input shapes. Axes are sometimes drawn negative, which both
frameworks accept with Python's meaning.

Most ops are written as two templates, ``torch_t`` and ``tf_t``, over the arguments
(``{0}``, ``{1}`` ...) and the attributes by name.

Index inputs (Gather, IndexSelect, GatherElements) are int weights whose values the value
search keeps in ``[0, INDEX_MAX]`` (``value_range``); the indexed dim is required to be
larger than ``INDEX_MAX``, so every index is in range whatever values are drawn (the
value search's repair ranges stay inside it too).
"""

from __future__ import annotations

import random
from typing import Sequence

import z3

from corpus.tensor_type import ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, SIGNED_INT_DTYPES
from rules.spec import OpSpec, SymTensor, broadcast, numel, same_dtype_options, tf_dtype, torch_dtype

MAX_RANK = 5
NUMERIC = FLOAT_DTYPES + INT_DTYPES
INDEX_MAX = 3  # gather indices lie in [0, INDEX_MAX]; the indexed dim exceeds it
INDEX_DTYPES = ("int32", "int64")


def _axis(rng: random.Random, rank: int) -> int:
    """A dim of a rank-``rank`` tensor, negative (Python style) one time in four."""
    d = rng.randrange(rank)
    return d - rank if rng.random() < 0.25 else d


def _norm(d: int, rank: int) -> int:
    return d % rank if rank else 0


def _index(x: str, axis: int, item: str) -> str:
    """``x[:, :, item]`` with ``item`` at position ``axis`` (non-negative)."""
    return f"{x}[{':, ' * axis}{item}]"


def _numbered(attrs: dict, prefix: str, n: int) -> list:
    return [attrs[f"{prefix}{i}"] for i in range(n)]


class Shaped(OpSpec):
    """Common plumbing: one dtype for all inputs, ranks from ``ranks``, code from the
    templates, output of the input's type unless overridden."""

    dtypes: Sequence[str] = ALL_DTYPES
    ranks: Sequence[int] = range(1, MAX_RANK + 1)
    torch_t = tf_t = ""
    rounding = "exact"  # reshaping, slicing, indexing, where, clamp: values are moved, never computed
    tf_helpers: dict[str, str] = {}

    def rank_options(self):
        return [(r,) * self.n_inputs for r in self.ranks]

    def dtype_options(self, framework):
        return same_dtype_options(self.dtypes, self.n_inputs)

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        return self.torch_t.format(*args, **attrs)

    def tf_code(self, args, attrs):
        return self.tf_t.format(*args, **attrs)

    def helpers(self, framework):
        return self.tf_helpers if framework == "tensorflow" else {}


# ---- reshaping ----------------------------------------------------------------------------

class Reshape(Shaped):
    """Target dims ``s0..s{k-1}`` solved so that their product is the input's numel; one of
    them is sometimes written as -1 (inferred)."""

    id = "core.Reshape"
    ranks = range(0, MAX_RANK + 1)

    def sample_attrs(self, ranks, dtypes, rng):
        out_rank = 0 if rng.random() < 0.05 else rng.randint(1, 4)  # rank 0 needs numel 1
        return {"out_rank": out_rank, "infer": rng.randrange(out_rank) if out_rank and rng.random() < 0.3 else -1}

    def int_attrs(self, ranks, sampled):
        return {f"s{i}": (1, 4096) for i in range(sampled["out_rank"])}

    def requires(self, ins, attrs):
        return [numel(_numbered(attrs, "s", attrs["out_rank"])) == numel(ins[0].shape)]

    def output_types(self, ins, attrs):
        return [SymTensor(_numbered(attrs, "s", attrs["out_rank"]), ins[0].dtype)]

    def _code(self, fn, args, attrs):
        shape = [-1 if i == attrs["infer"] else s for i, s in enumerate(_numbered(attrs, "s", attrs["out_rank"]))]
        return f"{fn}({args[0]}, {shape})"

    def torch_code(self, args, attrs):
        return self._code("torch.reshape", args, attrs)

    def tf_code(self, args, attrs):
        return self._code("tf.reshape", args, attrs)


class Flatten(Shaped):
    id = "core.Flatten"
    torch_t, tf_t = "torch.flatten({0}, {start}, {end})", "tf_flatten({0}, {start}, {end})"
    tf_helpers = {"tf_flatten": '''
def tf_flatten(x, start, end):
    s = tf.shape(x)
    return tf.reshape(x, tf.concat([s[:start], [-1], s[end + 1:]], 0))
'''}

    def sample_attrs(self, ranks, dtypes, rng):
        start = rng.randrange(ranks[0])
        return {"start": start, "end": rng.randrange(start, ranks[0])}

    def output_types(self, ins, attrs):
        s, e, shape = attrs["start"], attrs["end"], ins[0].shape
        return [SymTensor(shape[:s] + [numel(shape[s:e + 1])] + shape[e + 1:], ins[0].dtype)]


class Transpose(Shaped):
    """Two dims swapped: ``torch.transpose`` / ``tf.transpose`` with the swapped ``perm``."""

    id = "core.Transpose"
    ranks = range(2, MAX_RANK + 1)
    torch_t, tf_t = "torch.transpose({0}, {dim0}, {dim1})", "tf.transpose({0}, {perm})"

    def sample_attrs(self, ranks, dtypes, rng):
        a, b = rng.sample(range(ranks[0]), 2)
        perm = list(range(ranks[0]))
        perm[a], perm[b] = b, a
        return {"dim0": a, "dim1": b, "perm": perm}

    def output_types(self, ins, attrs):
        return [SymTensor([ins[0].shape[p] for p in attrs["perm"]], ins[0].dtype)]


class Permute(Shaped):
    id = "core.Permute"
    torch_t, tf_t = "torch.permute({0}, {perm})", "tf.transpose({0}, {perm})"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"perm": rng.sample(range(ranks[0]), ranks[0])}

    def output_types(self, ins, attrs):
        return [SymTensor([ins[0].shape[p] for p in attrs["perm"]], ins[0].dtype)]


class Squeeze(Shaped):
    id = "core.Squeeze"
    torch_t, tf_t = "torch.squeeze({0}, {dim})", "tf.squeeze({0}, [{dim}])"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dim": _axis(rng, ranks[0])}

    def requires(self, ins, attrs):
        return [ins[0].shape[attrs["dim"]] == 1]

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        del shape[attrs["dim"]]
        return [SymTensor(shape, ins[0].dtype)]


class Unsqueeze(Shaped):
    id = "core.Unsqueeze"
    ranks = range(0, MAX_RANK)
    torch_t, tf_t = "torch.unsqueeze({0}, {dim})", "tf.expand_dims({0}, {dim})"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dim": _axis(rng, ranks[0] + 1)}

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        shape.insert(_norm(attrs["dim"], ins[0].rank + 1), z3.IntVal(1))
        return [SymTensor(shape, ins[0].dtype)]


class Expand(Shaped):
    """To solved sizes ``e{i}`` (size-1 dims may grow) with ``lead`` new leading dims; torch
    writes -1 for the dims in ``keep`` (``Tensor.expand``), tf all sizes (``broadcast_to``)."""

    id = "core.Expand"
    ranks = range(0, MAX_RANK)

    def sample_attrs(self, ranks, dtypes, rng):
        lead = rng.randint(0 if ranks[0] else 1, min(2, MAX_RANK - ranks[0]))
        return {"lead": lead, "out_rank": lead + ranks[0],
                "keep": [i for i in range(lead, lead + ranks[0]) if rng.random() < 0.25]}

    def int_attrs(self, ranks, sampled):
        return {f"e{i}": (1, 64) for i in range(sampled["out_rank"])}

    def requires(self, ins, attrs):
        cons = []
        for i, d in enumerate(ins[0].shape, start=attrs["lead"]):
            cons.append(attrs[f"e{i}"] == d if i in attrs["keep"] else z3.Or(attrs[f"e{i}"] == d, d == 1))
        return cons

    def output_types(self, ins, attrs):
        return [SymTensor(_numbered(attrs, "e", attrs["out_rank"]), ins[0].dtype)]

    def torch_code(self, args, attrs):
        sizes = [-1 if i in attrs["keep"] else e for i, e in enumerate(_numbered(attrs, "e", attrs["out_rank"]))]
        return f"{args[0]}.expand({sizes})"

    def tf_code(self, args, attrs):
        return f"tf.broadcast_to({args[0]}, {_numbered(attrs, 'e', attrs['out_rank'])})"


# ---- joining and splitting ------------------------------------------------------------------

class Concat(Shaped):
    def __init__(self, n: int) -> None:
        self.id, self.n_inputs = f"core.Concat{n}", n

    def sample_attrs(self, ranks, dtypes, rng):
        return {"axis": _axis(rng, ranks[0])}

    def requires(self, ins, attrs):
        a = _norm(attrs["axis"], ins[0].rank)
        return [t.shape[k] == ins[0].shape[k] for t in ins[1:] for k in range(ins[0].rank) if k != a]

    def output_types(self, ins, attrs):
        a = _norm(attrs["axis"], ins[0].rank)
        shape = list(ins[0].shape)
        shape[a] = z3.Sum([t.shape[a] for t in ins])
        return [SymTensor(shape, ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"torch.cat([{', '.join(args)}], {attrs['axis']})"

    def tf_code(self, args, attrs):
        return f"tf.concat([{', '.join(args)}], {attrs['axis']})"


class Stack(Shaped):
    ranks = range(0, MAX_RANK)

    def __init__(self, n: int) -> None:
        self.id, self.n_inputs = f"core.Stack{n}", n

    def sample_attrs(self, ranks, dtypes, rng):
        return {"axis": _axis(rng, ranks[0] + 1)}

    def requires(self, ins, attrs):
        return [a == b for t in ins[1:] for a, b in zip(t.shape, ins[0].shape)]

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        shape.insert(_norm(attrs["axis"], ins[0].rank + 1), z3.IntVal(self.n_inputs))
        return [SymTensor(shape, ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"torch.stack([{', '.join(args)}], {attrs['axis']})"

    def tf_code(self, args, attrs):
        return f"tf.stack([{', '.join(args)}], {attrs['axis']})"


class Split(Shaped):
    """Into ``n`` (2 or 3) chunks of solved sizes ``sz{i}`` along ``axis``; with ``equal``
    the sizes are equal and the call takes the chunk size (torch) / the count (tf)."""

    id = "core.Split"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"axis": _axis(rng, ranks[0]), "n": rng.choice([2, 3]), "equal": rng.random() < 0.5}

    def int_attrs(self, ranks, sampled):
        return {f"sz{i}": (1, 64) for i in range(sampled["n"])}

    def requires(self, ins, attrs):
        sizes = _numbered(attrs, "sz", attrs["n"])
        return [z3.Sum(sizes) == ins[0].shape[attrs["axis"]]] + ([s == sizes[0] for s in sizes] if attrs["equal"] else [])

    def output_types(self, ins, attrs):
        a, outs = _norm(attrs["axis"], ins[0].rank), []
        for size in _numbered(attrs, "sz", attrs["n"]):
            shape = list(ins[0].shape)
            shape[a] = size
            outs.append(SymTensor(shape, ins[0].dtype))
        return outs

    def torch_code(self, args, attrs):
        split = attrs["sz0"] if attrs["equal"] else _numbered(attrs, "sz", attrs["n"])
        return f"torch.split({args[0]}, {split}, {attrs['axis']})"

    def tf_code(self, args, attrs):
        split = attrs["n"] if attrs["equal"] else _numbered(attrs, "sz", attrs["n"])
        return f"tuple(tf.split({args[0]}, {split}, {attrs['axis']}))"


# ---- slicing and indexing -------------------------------------------------------------------

class Slice(Shaped):
    """``x[..., start:end:step, ...]`` on ``axis`` with 0 <= start < min(end, dim), step >= 1,
    end up to dim + 2 (both clamp it): Python slicing in torch, ``tf.strided_slice`` with
    masks on the other dims in tf."""

    id = "core.Slice"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"axis": rng.randrange(ranks[0]), "rank": ranks[0]}

    def int_attrs(self, ranks, sampled):
        return {"start": (0, 63), "end": (1, 66), "step": (1, 4)}

    def requires(self, ins, attrs):
        dim = ins[0].shape[attrs["axis"]]
        return [attrs["start"] < dim, attrs["start"] < attrs["end"], attrs["end"] <= dim + 2]

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        end = z3.If(attrs["end"] < shape[attrs["axis"]], attrs["end"], shape[attrs["axis"]])
        shape[attrs["axis"]] = (end - attrs["start"] + attrs["step"] - 1) / attrs["step"]
        return [SymTensor(shape, ins[0].dtype)]

    def torch_code(self, args, attrs):
        return _index(args[0], attrs["axis"], "{start}:{end}:{step}".format(**attrs))

    def tf_code(self, args, attrs):
        r, a = attrs["rank"], attrs["axis"]
        begin, end, strides = [0] * r, [0] * r, [1] * r
        begin[a], end[a], strides[a] = attrs["start"], attrs["end"], attrs["step"]
        mask = ((1 << r) - 1) & ~(1 << a)
        return f"tf.strided_slice({args[0]}, {begin}, {end}, {strides}, begin_mask={mask}, end_mask={mask})"


class Indexing(Shaped):
    """Input 0 data, input 1 an int index weight with values in [0, INDEX_MAX]."""

    n_inputs = 2
    weight_inputs = (1,)
    index_ranks: Sequence[int] = (1,)
    index_dtypes = INDEX_DTYPES

    def rank_options(self):
        return [(r, ri) for r in range(1, MAX_RANK) for ri in self.index_ranks]

    def dtype_options(self, framework):
        return [(d, i) for d in ALL_DTYPES for i in self.index_dtypes]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"axis": _axis(rng, ranks[0]), "rank": ranks[0]}

    def requires(self, ins, attrs):
        return [ins[0].shape[attrs["axis"]] > INDEX_MAX]

    def value_range(self, position, dtype):
        return (0, INDEX_MAX) if position == 1 else None


class Gather(Indexing):
    """``tf.gather`` with an index of rank 0-2 / torch advanced indexing at ``axis``:
    out = x.shape[:axis] + idx.shape + x.shape[axis+1:]."""

    id = "core.Gather"
    index_ranks = (0, 1, 2)
    tf_t = "tf.gather({0}, {1}, axis={axis})"

    def output_types(self, ins, attrs):
        x, idx = ins
        a = _norm(attrs["axis"], x.rank)
        return [SymTensor(x.shape[:a] + idx.shape + x.shape[a + 1:], x.dtype)]

    def torch_code(self, args, attrs):
        return _index(args[0], _norm(attrs["axis"], attrs["rank"]), args[1])


class IndexSelect(Indexing):
    id = "core.IndexSelect"
    torch_t, tf_t = "torch.index_select({0}, {axis}, {1})", "tf.gather({0}, {1}, axis={axis})"

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        shape[attrs["axis"]] = ins[1].shape[0]
        return [SymTensor(shape, ins[0].dtype)]


class GatherElements(Indexing):
    """``torch.gather`` / ``take_along_axis``: the index has the data's rank and its dims
    except ``axis``; out has the index's shape."""

    id = "core.GatherElements"
    index_dtypes = ("int64",)
    torch_t = "torch.gather({0}, {axis}, {1})"
    tf_t = "tf.experimental.numpy.take_along_axis({0}, {1}, {axis})"

    def rank_options(self):
        return [(r, r) for r in range(1, MAX_RANK)]

    def requires(self, ins, attrs):
        a = _norm(attrs["axis"], ins[0].rank)
        return super().requires(ins, attrs) + [ins[1].shape[k] == ins[0].shape[k] for k in range(ins[0].rank) if k != a]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[1].shape), ins[0].dtype)]


# ---- tiling -----------------------------------------------------------------------------------

class Tile(Shaped):
    """Solved reps ``r{i}``, one per dim plus ``lead`` extra leading ones for
    ``Tensor.repeat`` (tf: reshape to the longer rank, then ``tf.tile``)."""

    ranks = range(1, MAX_RANK)

    def __init__(self, name: str, max_lead: int) -> None:
        self.id, self.max_lead = f"core.{name}", max_lead

    def sample_attrs(self, ranks, dtypes, rng):
        lead = rng.randint(0, min(self.max_lead, MAX_RANK - ranks[0]))
        return {"lead": lead, "n": lead + ranks[0]}

    def int_attrs(self, ranks, sampled):
        return {f"r{i}": (1, 4) for i in range(sampled["n"])}

    def output_types(self, ins, attrs):
        reps = _numbered(attrs, "r", attrs["n"])
        lead = attrs["lead"]
        return [SymTensor(reps[:lead] + [d * r for d, r in zip(ins[0].shape, reps[lead:])], ins[0].dtype)]

    def torch_code(self, args, attrs):
        reps = _numbered(attrs, "r", attrs["n"])
        return f"{args[0]}.repeat({reps})" if self.max_lead else f"torch.tile({args[0]}, {reps})"

    def tf_code(self, args, attrs):
        x = args[0]
        if attrs["lead"]:
            x = f"tf.reshape({x}, tf.concat([{[1] * attrs['lead']}, tf.shape({x})], 0))"
        return f"tf.tile({x}, {_numbered(attrs, 'r', attrs['n'])})"


class RepeatInterleave(Shaped):
    id = "core.RepeatInterleave"
    torch_t = "torch.repeat_interleave({0}, {repeats}, {axis})"
    tf_t = "tf.repeat({0}, {repeats}, axis={axis})"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"axis": _axis(rng, ranks[0])}

    def int_attrs(self, ranks, sampled):
        return {"repeats": (1, 4)}

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        shape[attrs["axis"]] = shape[attrs["axis"]] * attrs["repeats"]
        return [SymTensor(shape, ins[0].dtype)]


# ---- reordering (same shape) ------------------------------------------------------------------

class Flip(Shaped):
    id = "core.Flip"
    torch_t, tf_t = "torch.flip({0}, {dims})", "tf.reverse({0}, {dims})"

    def sample_attrs(self, ranks, dtypes, rng):
        dims = rng.sample(range(ranks[0]), rng.randint(1, ranks[0]))
        return {"dims": [d - ranks[0] if rng.random() < 0.25 else d for d in dims]}


class Roll(Shaped):
    """Shifts ``shift{i}`` (solved, negative or past the dim too) along sampled dims."""

    id = "core.Roll"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dims": rng.sample(range(ranks[0]), rng.randint(1, min(2, ranks[0])))}

    def int_attrs(self, ranks, sampled):
        return {f"shift{i}": (-8, 8) for i in range(len(sampled["dims"]))}

    def torch_code(self, args, attrs):
        return f"torch.roll({args[0]}, {_numbered(attrs, 'shift', len(attrs['dims']))}, {attrs['dims']})"

    def tf_code(self, args, attrs):
        return f"tf.roll({args[0]}, {_numbered(attrs, 'shift', len(attrs['dims']))}, {attrs['dims']})"


class Tri(Shaped):
    """Lower/upper triangle of the last two dims at offset ``diagonal``; tf by a mask."""

    ranks = range(2, MAX_RANK + 1)
    tf_t = "tf_tri({0}, {diagonal}, {upper})"
    tf_helpers = {"tf_tri": '''
def tf_tri(x, k, upper):
    rows = tf.range(tf.shape(x)[-2])[:, None]
    cols = tf.range(tf.shape(x)[-1])[None, :]
    keep = cols - rows >= k if upper else cols - rows <= k
    return tf.where(keep, x, tf.zeros_like(x))
'''}

    def __init__(self, upper: bool) -> None:
        self.upper = upper
        self.id = "core.Triu" if upper else "core.Tril"
        self.torch_t = f"torch.{'triu' if upper else 'tril'}({{0}}, {{diagonal}})"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"diagonal": rng.randint(-3, 3), "upper": self.upper}


# ---- selection and value ops --------------------------------------------------------------------

class Where(Shaped):
    """``where(cond, x, y)``, all three broadcast together."""

    id = "core.Where"
    n_inputs = 3
    torch_t, tf_t = "torch.where({0}, {1}, {2})", "tf.where({0}, {1}, {2})"

    def rank_options(self):
        return [(a, b, c) for a in range(MAX_RANK) for b in range(MAX_RANK) for c in range(MAX_RANK)]

    def dtype_options(self, framework):
        return [("bool", d, d) for d in ALL_DTYPES]

    def _bcast(self, ins):
        c1, s = broadcast(ins[0].shape, ins[1].shape)
        c2, s = broadcast(s, ins[2].shape)
        return c1 + c2, s

    def requires(self, ins, attrs):
        return self._bcast(ins)[0]

    def output_types(self, ins, attrs):
        return [SymTensor(self._bcast(ins)[1], ins[1].dtype)]


def clamp_bounds(dtype: str, rng) -> dict:
    """``min`` <= ``max`` for a clamp of ``dtype``: around zero, within what the dtype holds."""
    if dtype in FLOAT_DTYPES:
        lo, hi = rng.randint(-16, 4) / 8, rng.randint(-4, 16) / 8
    else:
        lo, hi = rng.randint(0 if dtype == "uint8" else -6, 3), rng.randint(0, 6)
    return {"min": min(lo, hi), "max": max(lo, hi)}


class Clamp(Shaped):
    """Bounds drawn as multiples of 1/8 (exact in every float dtype), integers for ints."""

    id = "core.Clamp"
    dtypes = NUMERIC
    ranks = range(0, MAX_RANK + 1)
    torch_t, tf_t = "torch.clamp({0}, {min}, {max})", "tf.clip_by_value({0}, {min}, {max})"

    def sample_attrs(self, ranks, dtypes, rng):
        return clamp_bounds(dtypes[0], rng)


class Cast(Shaped):
    """To a sampled dtype ``to``. ``core.Cast`` takes the casts defined for every value
    (no float -> int/bool); ``core.CastFloatToInt`` the truncating ones, fed values inside
    every target's range and never to uint8 (negatives wrap differently per framework)."""

    ranks = range(0, MAX_RANK + 1)
    rounding = ""  # a cast to a narrower float rounds

    def __init__(self, name: str, sources: Sequence[str], targets: Sequence[str], *, float_to_int: bool) -> None:
        self.id = f"core.{name}"
        self.dtypes, self.targets = tuple(sources), tuple(targets)
        self.float_to_int = self.discontinuous = float_to_int

    def sample_attrs(self, ranks, dtypes, rng):
        src = dtypes[0]
        targets = self.targets if self.float_to_int or src not in FLOAT_DTYPES else FLOAT_DTYPES
        return {"to": rng.choice([t for t in targets if t != src])}

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), attrs["to"])]

    def torch_code(self, args, attrs):
        return f"{args[0]}.to({torch_dtype(attrs['to'])})"

    def tf_code(self, args, attrs):
        return f"tf.cast({args[0]}, {tf_dtype(attrs['to'])})"

    def value_range(self, position, dtype):
        return (-100.0, 100.0) if self.float_to_int else None


SPECS: list[OpSpec] = [
    Reshape(), Flatten(), Transpose(), Permute(), Squeeze(), Unsqueeze(), Expand(),
    Concat(2), Concat(3), Stack(2), Stack(3), Split(), Slice(),
    Gather(), IndexSelect(), GatherElements(),
    Tile("Tile", 0), Tile("Repeat", 2), RepeatInterleave(),
    Flip(), Roll(), Tri(False), Tri(True),
    Where(), Clamp(),
    Cast("Cast", ALL_DTYPES, ALL_DTYPES, float_to_int=False),
    Cast("CastFloatToInt", FLOAT_DTYPES, SIGNED_INT_DTYPES + ("bool",), float_to_int=True),
]
