"""In-place operators and mutation through views (DESIGN §5 and §6, "mutation and
aliasing"), PyTorch only: TensorFlow tensors are immutable.

Each spec writes into its input 0 (``mutates = (0,)``) and its code is ONE expression
that performs the write and evaluates to the whole mutated tensor, never to the view it
wrote through: ``x.add_(y)``, ``(x[1:3:1].mul_(y), x)[1]``, ``(x.t().copy_(y), x)[1]``.
So output 0 has input 0's type, and the graph reads the new contents from it.

Other inputs are never promoted into the written tensor's dtype: every input has the
written tensor's dtype (masks are bool), and a right-hand side only broadcasts *into* it
(``_into``: in-place ops cannot grow their target). Indices (``index_put_``) are distinct
constants in range, built in the expression from solved attributes.

**The mutation rule.** A write must not make a model's meaning depend on the order of its
statements. So a value written in place must be read by nothing else, before or after: it
has no user when the write is added, and is *spent* afterwards (the write's output stands
for the new contents). The same holds for every value that may share its storage: the
inputs it is a view of, through view operators (``VIEW_OPS``) and earlier writes, which
must each have that one user. Inferred and replayed operators are assumed to return
views of all their tensor inputs (``torch.Tensor.view``, ``narrow``, ``expand`` ... may),
and an operator whose output may overlap itself (``expand``) is never written through:
eager refuses such writes. ``spent_values``, ``writable`` and ``mutation_violations``
implement the rule for the generator, the code generator and the reducer.
"""

from __future__ import annotations

import random
import re
from typing import Any, Mapping, Sequence

import z3

from corpus.graph import Graph, Value
from corpus.tensor_type import ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, SIGNED_INT_DTYPES
from rules.spec import OpSpec, SymTensor, numel
from rules.specs.shape import clamp_bounds

MAX_RANK = 5
NUMERIC = FLOAT_DTYPES + INT_DTYPES
SIGNED = FLOAT_DTYPES + SIGNED_INT_DTYPES
POSITIVE = (0.5, 3.0)
TORCH_ONLY = "TensorFlow tensors are immutable: it has no in-place operators and no views to write through"


# ---- helpers -------------------------------------------------------------------------------

def _into(target: Sequence[z3.ArithRef], other: Sequence[z3.ArithRef]) -> list:
    """``other`` broadcasts into ``target`` without changing its shape (in-place ops
    cannot grow the tensor they write)."""
    if len(other) > len(target):
        return [z3.BoolVal(False)]
    tail = list(target)[len(target) - len(other):]
    return [z3.Or(o == t, o == 1) for o, t in zip(other, tail)]


def _scalar(dtype: str, rng: random.Random) -> Any:
    """A fill value exact in ``dtype``: multiples of 1/8 for floats, small integers."""
    if dtype == "bool":
        return rng.random() < 0.5
    if dtype in FLOAT_DTYPES:
        return rng.randint(-16, 16) / 8
    return rng.randint(0 if dtype == "uint8" else -6, 6)


def _axis(rng: random.Random, rank: int) -> int:
    d = rng.randrange(rank)
    return d - rank if rng.random() < 0.25 else d


def _index(x: str, axis: int, item: str) -> str:
    return f"{x}[{':, ' * axis}{item}]"


class Inplace(OpSpec):
    """Common plumbing: writes input 0, returns it; output type = input 0's type."""

    mutates = (0,)
    frameworks = ("torch",)
    one_framework_reason = TORCH_ONLY
    dtypes: Sequence[str] = ALL_DTYPES

    def dtype_options(self, framework):
        return [(d,) * self.n_inputs for d in self.dtypes]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]


# ---- whole-tensor writes ------------------------------------------------------------------------

class InplaceUnary(Inplace):
    """``x.relu_()``, ``x.neg_()`` ..."""

    n_inputs = 1

    def __init__(self, name: str, method: str, dtypes: Sequence[str], *, domain: tuple[float, float] | None = None,
                 exact: bool = False) -> None:
        self.id = f"core.{name}Inplace"
        self.method, self.dtypes, self.domain = method, tuple(dtypes), domain
        self.rounding = "exact" if exact else ""

    def rank_options(self):
        return [(r,) for r in range(MAX_RANK + 1)]

    def torch_code(self, args, attrs):
        return f"{args[0]}.{self.method}()"

    def value_range(self, position, dtype):
        return self.domain


class Fill(Inplace):
    """``x.fill_(value)``: a sampled scalar exact in the dtype."""

    id = "core.FillInplace"
    n_inputs = 1
    rounding = "exact"

    def rank_options(self):
        return [(r,) for r in range(MAX_RANK + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"value": _scalar(dtypes[0], rng)}

    def torch_code(self, args, attrs):
        return f"{args[0]}.fill_({attrs['value']!r})"


class Clamp(Inplace):
    """``x.clamp_(min, max)`` with bounds as ``core.Clamp`` draws them."""

    id = "core.ClampInplace"
    n_inputs = 1
    rounding = "exact"
    dtypes = NUMERIC

    def rank_options(self):
        return [(r,) for r in range(MAX_RANK + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        return clamp_bounds(dtypes[0], rng)  # the bounds core.Clamp draws

    def torch_code(self, args, attrs):
        return f"{args[0]}.clamp_({attrs['min']!r}, {attrs['max']!r})"


class InplaceBinary(Inplace):
    """``x.add_(y)`` ...: ``y`` of ``x``'s dtype broadcasts into ``x``."""

    n_inputs = 2

    def __init__(self, name: str, method: str, dtypes: Sequence[str], *, rhs_domain: tuple[float, float] | None = None,
                 exact: bool = False) -> None:
        self.id = f"core.{name}Inplace"
        self.method, self.dtypes, self.rhs_domain = method, tuple(dtypes), rhs_domain
        self.rounding = "exact" if exact else ""

    def rank_options(self):
        return [(a, b) for a in range(MAX_RANK + 1) for b in range(a + 1)]

    def requires(self, ins, attrs):
        return _into(ins[0].shape, ins[1].shape)

    def torch_code(self, args, attrs):
        return f"{args[0]}.{self.method}({args[1]})"

    def value_range(self, position, dtype):
        return self.rhs_domain if position == 1 else None


class MaskedFill(Inplace):
    """``x.masked_fill_(mask, value)``, a bool mask broadcasting into ``x``."""

    id = "core.MaskedFillInplace"
    n_inputs = 2
    rounding = "exact"

    def rank_options(self):
        return [(a, b) for a in range(MAX_RANK + 1) for b in range(a + 1)]

    def dtype_options(self, framework):
        return [(d, "bool") for d in ALL_DTYPES]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"value": _scalar(dtypes[0], rng)}

    def requires(self, ins, attrs):
        return _into(ins[0].shape, ins[1].shape)

    def torch_code(self, args, attrs):
        return f"{args[0]}.masked_fill_({args[1]}, {attrs['value']!r})"


class Addcmul(Inplace):
    """``x.addcmul_(a, b, value=v)``: a fused multiply-add into ``x``."""

    id = "core.AddcmulInplace"
    n_inputs = 3
    rounding = "fused"  # a compiler may round the product before the sum
    dtypes = FLOAT_DTYPES

    def rank_options(self):
        return [(r, a, b) for r in range(MAX_RANK + 1) for a in range(r + 1) for b in range(r + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"value": rng.choice([0.5, -1.0, 2.0, 1.0])}

    def requires(self, ins, attrs):
        return _into(ins[0].shape, ins[1].shape) + _into(ins[0].shape, ins[2].shape)

    def torch_code(self, args, attrs):
        return f"{args[0]}.addcmul_({args[1]}, {args[2]}, value={attrs['value']!r})"


class IndexPut(Inplace):
    """``x.index_put_((idx,), y[, accumulate=True])`` along dim 0, with ``k`` (1-3)
    distinct solved indices in range, built as a constant int64 tensor in the expression;
    ``y`` broadcasts into ``(k, *x.shape[1:])``."""

    n_inputs = 2

    def __init__(self, accumulate: bool) -> None:
        self.accumulate = accumulate
        self.id = "core.IndexPutAccumulateInplace" if accumulate else "core.IndexPutInplace"
        self.dtypes = NUMERIC if accumulate else ALL_DTYPES
        self.rounding = "" if accumulate else "exact"

    def rank_options(self):
        return [(a, b) for a in range(1, MAX_RANK + 1) for b in range(a + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"k": rng.choice([1, 1, 2, 3])}

    def int_attrs(self, ranks, sampled):
        return {f"i{j}": (0, 63) for j in range(sampled["k"])}

    def requires(self, ins, attrs):
        idx = [attrs[f"i{j}"] for j in range(attrs["k"])]
        cons = [i < ins[0].shape[0] for i in idx]
        if len(idx) > 1:
            cons.append(z3.Distinct(*[z3.IntVal(i) if isinstance(i, int) else i for i in idx]))
        return cons + _into([z3.IntVal(attrs["k"])] + list(ins[0].shape[1:]), ins[1].shape)

    def torch_code(self, args, attrs):
        idx = [attrs[f"i{j}"] for j in range(attrs["k"])]
        extra = ", accumulate=True" if self.accumulate else ""
        return f"{args[0]}.index_put_((torch.tensor({idx}, dtype=torch.int64),), {args[1]}{extra})"


# ---- writes through a view -----------------------------------------------------------------------

class FlatViewAdd(Inplace):
    """``x.view(-1).add_(y)``, ``y`` of shape ``(numel(x),)``. ``view`` needs strides it can
    flatten: a non-contiguous ``x`` (an elementwise op keeps its input's strides; a layout
    check feeds strided inputs) takes the same update through ``y.reshape(x.shape)``."""

    id = "core.FlatViewAddInplace"
    n_inputs = 2
    dtypes = NUMERIC

    def rank_options(self):
        return [(r, 1) for r in range(1, MAX_RANK + 1)]

    def requires(self, ins, attrs):
        return [ins[1].shape[0] == numel(ins[0].shape)]

    def torch_code(self, args, attrs):
        x, y = args
        return f"({x}.view(-1).add_({y}) if {x}.is_contiguous() else {x}.add_({y}.reshape({x}.shape)), {x})[1]"


class SliceMul(Inplace):
    """``x[..., start:end:step].mul_(y)`` on ``axis`` (bounds as ``core.Slice``)."""

    id = "core.SliceMulInplace"
    n_inputs = 2
    dtypes = NUMERIC

    def rank_options(self):
        return [(a, b) for a in range(1, MAX_RANK + 1) for b in range(a + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"axis": rng.randrange(ranks[0])}

    def int_attrs(self, ranks, sampled):
        return {"start": (0, 63), "end": (1, 66), "step": (1, 4)}

    def _view(self, x, attrs):
        shape = list(x.shape)
        a = attrs["axis"]
        end = z3.If(attrs["end"] < shape[a], attrs["end"], shape[a])
        shape[a] = (end - attrs["start"] + attrs["step"] - 1) / attrs["step"]
        return shape

    def requires(self, ins, attrs):
        dim = ins[0].shape[attrs["axis"]]
        return [attrs["start"] < dim, attrs["start"] < attrs["end"], attrs["end"] <= dim + 2] + \
            _into(self._view(ins[0], attrs), ins[1].shape)

    def torch_code(self, args, attrs):
        view = _index(args[0], attrs["axis"], "{start}:{end}:{step}".format(**attrs))
        return f"({view}.mul_({args[1]}), {args[0]})[1]"


class TransposeCopy(Inplace):
    """``x.transpose(a, b).copy_(y)``, ``y`` broadcasting into the transposed shape."""

    id = "core.TransposeCopyInplace"
    n_inputs = 2
    rounding = "exact"

    def rank_options(self):
        return [(a, b) for a in range(2, MAX_RANK + 1) for b in range(a + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        a, b = rng.sample(range(ranks[0]), 2)
        return {"dim0": a, "dim1": b}

    def requires(self, ins, attrs):
        shape = list(ins[0].shape)
        a, b = attrs["dim0"], attrs["dim1"]
        shape[a], shape[b] = shape[b], shape[a]
        return _into(shape, ins[1].shape)

    def torch_code(self, args, attrs):
        return f"({args[0]}.transpose({attrs['dim0']}, {attrs['dim1']}).copy_({args[1]}), {args[0]})[1]"


class TransposeCopy2(TransposeCopy):
    """``x.t().copy_(y)`` on a matrix."""

    id = "core.TCopyInplace"

    def rank_options(self):
        return [(2, b) for b in range(3)]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dim0": 0, "dim1": 1}

    def torch_code(self, args, attrs):
        return f"({args[0]}.t().copy_({args[1]}), {args[0]})[1]"


class SelectFill(Inplace):
    """``x.select(dim, index).fill_(value)``, ``index`` solved in range."""

    id = "core.SelectFillInplace"
    n_inputs = 1
    rounding = "exact"

    def rank_options(self):
        return [(r,) for r in range(1, MAX_RANK + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dim": _axis(rng, ranks[0]), "value": _scalar(dtypes[0], rng)}

    def int_attrs(self, ranks, sampled):
        return {"index": (0, 63)}

    def requires(self, ins, attrs):
        return [attrs["index"] < ins[0].shape[attrs["dim"]]]

    def torch_code(self, args, attrs):
        return f"({args[0]}.select({attrs['dim']}, {attrs['index']}).fill_({attrs['value']!r}), {args[0]})[1]"


class Narrow(Inplace):
    """``x.narrow(dim, start, length)`` then a fill (``y`` absent) or an ``add_(y)``."""

    rounding = "exact"

    def __init__(self, add: bool) -> None:
        self.add = add
        self.n_inputs = 2 if add else 1
        self.id = "core.NarrowAddInplace" if add else "core.NarrowFillInplace"
        self.dtypes = NUMERIC if add else ALL_DTYPES
        self.rounding = "" if add else "exact"

    def rank_options(self):
        if self.add:
            return [(a, b) for a in range(1, MAX_RANK + 1) for b in range(a + 1)]
        return [(r,) for r in range(1, MAX_RANK + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        out = {"dim": _axis(rng, ranks[0])}
        if not self.add:
            out["value"] = _scalar(dtypes[0], rng)
        return out

    def int_attrs(self, ranks, sampled):
        return {"start": (0, 63), "length": (1, 64)}

    def requires(self, ins, attrs):
        dim = ins[0].shape[attrs["dim"]]
        cons = [attrs["start"] + attrs["length"] <= dim]
        if self.add:
            shape = list(ins[0].shape)
            shape[attrs["dim"]] = attrs["length"]
            cons += _into(shape, ins[1].shape)
        return cons

    def torch_code(self, args, attrs):
        view = f"{args[0]}.narrow({attrs['dim']}, {attrs['start']}, {attrs['length']})"
        write = f"add_({args[1]})" if self.add else f"fill_({attrs['value']!r})"
        return f"({view}.{write}, {args[0]})[1]"


class UnsqueezeMul(Inplace):
    """``x.unsqueeze(dim).mul_(y)``, ``y`` broadcasting into the unsqueezed shape."""

    id = "core.UnsqueezeMulInplace"
    n_inputs = 2
    dtypes = NUMERIC

    def rank_options(self):
        return [(a, b) for a in range(MAX_RANK) for b in range(a + 2)]

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dim": _axis(rng, ranks[0] + 1)}

    def requires(self, ins, attrs):
        shape = list(ins[0].shape)
        shape.insert(attrs["dim"] % (ins[0].rank + 1), z3.IntVal(1))
        return _into(shape, ins[1].shape)

    def torch_code(self, args, attrs):
        return f"({args[0]}.unsqueeze({attrs['dim']}).mul_({args[1]}), {args[0]})[1]"


class DiagonalFill(Inplace):
    """``x.diagonal(offset, dim1, dim2).fill_(value)`` (an empty diagonal writes nothing)."""

    id = "core.DiagonalFillInplace"
    n_inputs = 1
    rounding = "exact"

    def rank_options(self):
        return [(r,) for r in range(2, MAX_RANK + 1)]

    def sample_attrs(self, ranks, dtypes, rng):
        a, b = rng.sample(range(ranks[0]), 2)
        return {"offset": rng.randint(-2, 2), "dim1": a, "dim2": b, "value": _scalar(dtypes[0], rng)}

    def torch_code(self, args, attrs):
        return (f"({args[0]}.diagonal({attrs['offset']}, {attrs['dim1']}, {attrs['dim2']}).fill_({attrs['value']!r}), "
                f"{args[0]})[1]")


SPECS: list[OpSpec] = [
    InplaceUnary("Relu", "relu_", SIGNED, exact=True),
    InplaceUnary("Neg", "neg_", SIGNED, exact=True),
    InplaceUnary("Abs", "abs_", SIGNED, exact=True),
    InplaceUnary("Sigmoid", "sigmoid_", FLOAT_DTYPES),
    InplaceUnary("Tanh", "tanh_", FLOAT_DTYPES),
    InplaceUnary("Exp", "exp_", FLOAT_DTYPES),
    InplaceUnary("Sqrt", "sqrt_", FLOAT_DTYPES, domain=POSITIVE),
    InplaceUnary("Zero", "zero_", ALL_DTYPES, exact=True),
    Fill(), Clamp(),
    InplaceBinary("Add", "add_", NUMERIC),
    InplaceBinary("Sub", "sub_", NUMERIC),
    InplaceBinary("Mul", "mul_", NUMERIC),
    InplaceBinary("Div", "div_", FLOAT_DTYPES, rhs_domain=POSITIVE),
    InplaceBinary("Copy", "copy_", ALL_DTYPES, exact=True),
    InplaceBinary("BitwiseXor", "bitwise_xor_", INT_DTYPES + ("bool",), exact=True),
    MaskedFill(), Addcmul(), IndexPut(False), IndexPut(True),
    FlatViewAdd(), SliceMul(), TransposeCopy(), TransposeCopy2(), SelectFill(), Narrow(False), Narrow(True), UnsqueezeMul(),
    DiagonalFill(),
]


# ---- the mutation rule -------------------------------------------------------------------------

# Hand-written ops whose torch result may share storage with their input 0 (a view, or
# the input itself; ``x[idx]`` with a 0-d index is a view); tests/test_inplace.py checks
# the list against eager.
VIEW_OPS = frozenset({"core.Reshape", "core.Flatten", "core.Transpose", "core.Permute", "core.Squeeze",
                      "core.Unsqueeze", "core.Expand", "core.Split", "core.Slice", "core.Gather"})
# ... of which these may return a tensor overlapping itself (eager refuses to write it)
OVERLAPPING_OPS = frozenset({"core.Expand"})
# multi-output views whose outputs are disjoint (a write into one never shows in another)
DISJOINT_OPS = frozenset({"core.Split"})
# APIs of inferred and replayed operators that may return self-overlapping views
OVERLAPPING_API = re.compile(r"expand|broadcast|unfold|as_strided|meshgrid|stride")


def alias_inputs(spec: OpSpec) -> tuple[int, ...]:
    """Input positions whose storage ``spec``'s outputs may share."""
    written = tuple(getattr(spec, "mutates", ()))
    if written:
        return written
    if spec.origin == "spec":
        return (0,) if spec.id in VIEW_OPS else ()
    return tuple(i for i in range(spec.n_inputs) if i not in spec.weight_inputs)


def writes_through(spec: OpSpec, n_outputs: int) -> bool:
    """Whether a write into an output of ``spec`` may land in its aliased inputs cleanly:
    no self-overlap, and (several outputs) disjoint outputs."""
    if spec.origin == "spec" and not getattr(spec, "mutates", ()):
        return spec.id not in OVERLAPPING_OPS and (n_outputs == 1 or spec.id in DISJOINT_OPS)
    return n_outputs == 1 and not OVERLAPPING_API.search(getattr(spec, "api", spec.id))


def family(graph: Graph, specs: Mapping[str, OpSpec], v: Value) -> list[Value]:
    """``v`` and every value it may be a view of (through view ops and earlier writes)."""
    out: list[Value] = []
    stack = [v]
    while stack:
        w = stack.pop()
        if w in out:
            continue
        out.append(w)
        node = graph.node(w[0])
        if node.kind == "op":
            ins = graph.inputs_of(w[0])
            stack.extend(ins[p] for p in alias_inputs(specs[node.op]) if p < len(ins))  # type: ignore[index]
    return out


def _family_problem(graph: Graph, specs: Mapping[str, OpSpec], v: Value) -> str | None:
    """Why the storage of ``v`` cannot be written (given that ``v``'s own users are
    checked by the caller), or None."""
    for a in family(graph, specs, v):
        node = graph.node(a[0])
        if node.kind == "const":
            return f"{a} is a weight"
        if a in graph.outputs:
            return f"{a} is a graph output"
        if a != v and len(graph.users_of(a)) != 1:
            return f"{a}, whose storage {v} may share, has {len(graph.users_of(a))} users"
        if node.kind == "op":
            spec = specs[node.op]  # type: ignore[index]
            if alias_inputs(spec) and not writes_through(spec, len(node.types)):
                return f"{a} comes from {node.op}, whose result cannot be written through"
    return None


def has_mutation(graph: Graph, specs: Mapping[str, OpSpec]) -> bool:
    return any(getattr(specs[graph.node(n).op], "mutates", ()) for n in graph.op_nodes())  # type: ignore[index]


def spent_values(graph: Graph, specs: Mapping[str, OpSpec]) -> set[Value]:
    """Values written in place (directly or through a view) by some op: nothing else may
    read them."""
    spent: set[Value] = set()
    for n in graph.op_nodes():
        written = getattr(specs[graph.node(n).op], "mutates", ())  # type: ignore[index]
        if written:
            ins = graph.inputs_of(n)
            for p in written:
                spent.update(family(graph, specs, ins[p]))
    return spent


def writable(graph: Graph, specs: Mapping[str, OpSpec], v: Value, spent: set[Value] | None = None) -> bool:
    """May a new op write ``v`` in place? It has no user yet, is not spent, and nothing
    that may share its storage is read elsewhere, a weight, an output or self-overlapping."""
    if spent is None:
        spent = spent_values(graph, specs)
    return v not in spent and not graph.users_of(v) and _family_problem(graph, specs, v) is None


def mutation_violations(graph: Graph, specs: Mapping[str, OpSpec]) -> list[str]:
    """Every breach of the mutation rule in ``graph`` (empty: its meaning does not depend
    on the order of its statements)."""
    bad = []
    for n in graph.op_nodes():
        op = graph.node(n).op
        written = getattr(specs[op], "mutates", ())  # type: ignore[index]
        for p in written:
            v = graph.inputs_of(n)[p]
            users = graph.users_of(v)
            if users != [(n, p)]:
                bad.append(f"node {n} ({op}) writes {v}, which is also read by {[u for u in users if u != (n, p)]}")
            why = _family_problem(graph, specs, v)
            if why:
                bad.append(f"node {n} ({op}) writes {v}: {why}")
    return bad


def written_inputs(graph: Graph, specs: Mapping[str, OpSpec]) -> list[int]:
    """The ``input`` leaves a call may write in place (directly or through views): the
    ones an oracle compares after the call, and that cannot be gradient leaves."""
    spent = spent_values(graph, specs)
    return [n for n in graph.leaves("input") if (n, 0) in spent]
