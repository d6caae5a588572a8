"""Other input shapes that the same graph admits: the dynamic-shapes check (DESIGN §6).

A compiler told that some input dims are dynamic (``torch.compile(dynamic=True)``,
``mark_dynamic``) compiles one program that must serve every size of those dims. To test
it, the case is compiled once and run again at other shape sets. Such a set must be
admitted by the *same* graph: the same operators with the same concrete attributes (a
reshape target, a conv kernel, a split size stay what they were), since those are baked
into the model the compiler saw. Only the dims of ``input`` leaves change; weights
(``const`` leaves) belong to the model and keep their shapes.

The graph holds concrete types only, so the dims are re-solved here: the listed input
dims become z3 variables, every other dim stays a constant, and each operator's spec
propagates them (``requires`` for the constraints, ``output_types`` for the shapes), in
the graph's topological order. Solutions other than the graph's own are asked for in a
compiler-minded order: a dim of size 1 first (compilers special-case it: broadcasting,
squeezing, guards that specialize on 1), a dim of size 0 next (empty tensors take their
own paths), then random sizes. The search reuses ``rules.solve``'s hint machinery and
resource limit (``RLIMIT``, not a wall clock), so the same seed and graph always give
the same sets, whatever z3 solved before.

Every set is checked by ``retype``, which recomputes each operator's output types from
the concrete new input types exactly as the generator would; a set it rejects is dropped.
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

import z3

from corpus.graph import Graph
from corpus.tensor_type import TensorType
from rules.solve import DIM_HINTS, Bounds, _solve
from rules.spec import OpSpec, SymTensor, numel

Shapes = dict[int, tuple[int, ...]]
# Random draws after the size-1 and size-0 sets, beyond the ``count`` wanted (a draw can
# repeat a set or fail ``retype``); each is one solver call with hints.
RANDOM_TRIES = 3
# Dims tried for the size-1 (and the size-0) set before giving up on it: each try is a
# solver call, and in a graph that pins its dims every one of them fails.
SPECIAL_TRIES = 4


def dynamic_dim_candidates(graph: Graph) -> list[tuple[int, int]]:
    """Every (input leaf id, dim index) of the graph: what a planner may mark dynamic."""
    return [(leaf, d) for leaf in graph.leaves("input") for d in range(graph.node(leaf).types[0].rank)]


def _spec_attrs(spec: OpSpec, ranks: tuple[int, ...], attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A node's attributes as ``instantiate`` handed them to the spec: sampled ones as they
    are, solved ones (``int_attrs``) as z3 integers. The node stores the solved ones as
    plain ints, but a spec may compute with them as z3 terms (``/`` is integer division
    only on z3 terms; on Python ints it would give a float)."""
    solved = spec.int_attrs(ranks, dict(attrs))
    return {k: (z3.IntVal(v) if k in solved and isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in attrs.items()}


def _propagate(graph: Graph, specs: Mapping[str, OpSpec], leaves: Mapping[int, list[Any]]):
    """Run every op's spec over symbolic leaf shapes: (constraints, value -> SymTensor).

    ``leaves`` gives the dims of the input leaves that change (z3 terms); other leaves
    keep their constant shapes. Raises (KeyError, ValueError, z3 errors, whatever a spec
    raises) when an op cannot be propagated; ``output_types`` must keep each output's
    rank and dtype, otherwise the spec disagrees with the graph (ValueError)."""
    vals: dict[tuple[int, int], SymTensor] = {}
    cons: list[Any] = []
    for n in graph.nodes():
        node = graph.node(n)
        if node.kind != "op":
            t = node.types[0]
            shape = list(leaves[n]) if n in leaves else [z3.IntVal(d) for d in t.shape]
            vals[(n, 0)] = SymTensor(shape, t.dtype)
            continue
        spec = specs[node.op]  # type: ignore[index]
        ins = [vals[v] for v in graph.inputs_of(n)]
        attrs = _spec_attrs(spec, tuple(t.rank for t in ins), node.attrs)
        cons += spec.requires(ins, attrs)
        outs = spec.output_types(ins, attrs)
        if len(outs) != len(node.types):
            raise ValueError(f"{node.op}: {len(outs)} outputs, the graph has {len(node.types)}")
        for i, (o, old) in enumerate(zip(outs, node.types)):
            if o.rank != old.rank or o.dtype != old.dtype:
                raise ValueError(f"{node.op}: output {i} is {o.dtype}[rank {o.rank}], the graph has {old}")
            vals[(n, i)] = SymTensor([z3.simplify(d) if z3.is_expr(d) else z3.IntVal(d) for d in o.shape], o.dtype)
        if spec.origin != "spec":
            # A rule inferred from traces (or a replay) is known only where it was seen:
            # on non-empty tensors. At 0 its formulas go wrong (broadcasting learned as
            # max(a, b) says 1 where 0 broadcast with 1 gives 0), so no empty tensor
            # reaches it or leaves it.
            cons += [d >= 1 for t in [*ins, *(vals[(n, i)] for i in range(len(outs)))] for d in t.shape]
    return cons, vals


def _holds(c: Any) -> bool:
    """A concrete requirement is true (a spec may return a Python bool, which
    ``instantiate`` hands to the solver as is)."""
    return c is True if isinstance(c, bool) else z3.is_true(z3.simplify(c))


def retype(graph: Graph, specs: Mapping[str, OpSpec], leaf_shapes: Mapping[int, tuple[int, ...]]) -> Graph | None:
    """``graph`` with the input leaves of ``leaf_shapes`` at those shapes and every op's
    output types recomputed; None if the same ops and attributes do not admit them.

    Not admitted: a requirement that is not true, an output dim that is not a
    non-negative integer, an output whose rank or dtype changes, or a spec that raises
    (a spec written for generation may raise on inputs it was never given)."""
    for leaf, shape in leaf_shapes.items():
        if leaf not in graph.nx or graph.node(leaf).kind != "input":
            raise ValueError(f"node {leaf} is not an input leaf")
        if len(shape) != graph.node(leaf).types[0].rank:
            raise ValueError(f"leaf {leaf} has rank {graph.node(leaf).types[0].rank}, not {len(shape)}")
    try:
        cons, vals = _propagate(graph, specs, {n: [z3.IntVal(d) for d in s] for n, s in leaf_shapes.items()})
        if not all(_holds(c) for c in cons):
            return None
        out = graph.copy()
        for n in out.nodes():
            node = out.node(n)
            for i, old in enumerate(node.types):
                dims = [z3.simplify(d) for d in vals[(n, i)].shape]
                if not all(z3.is_int_value(d) and d.as_long() >= 0 for d in dims):
                    return None
                node.types[i] = TensorType(tuple(d.as_long() for d in dims), old.dtype)
        return out
    except Exception:  # noqa: BLE001 - any failure of a spec means "not admitted"
        return None


def _hint(rng: random.Random, bounds: Bounds, allow_zero: bool) -> int:
    d = rng.choice(DIM_HINTS)
    return d if d <= bounds.max_dim else rng.randint(0 if allow_zero else 1, bounds.max_dim)


def other_shape_sets(graph: Graph, specs: Mapping[str, OpSpec], rng: random.Random,
                     dims: Sequence[tuple[int, int]], count: int = 2, bounds: Bounds = Bounds(),
                     allow_zero: bool = True) -> list[Shapes]:
    """Up to ``count`` shape sets (input leaf -> full shape), none the graph's own, in
    which only the ``dims`` (leaf, dim index) may differ from the graph's shapes.

    In order: a set of sizes 2 and more (the compiled symbolic kernels run as they are),
    then one with a dynamic dim at 1 or 0 (``allow_zero``; compilers specialize these and
    recompile), then more of the first kind. Dims tied to a changed one (the other side of an add, of a matmul's
    inner dim) follow it if they are dynamic too; otherwise the change is not admitted.
    Each set is the solution nearest its hints (other dims keep their sizes where they
    can), and depends only on ``rng`` and the graph. [] when the ops pin every dim."""
    dims = list(dict.fromkeys(dims))
    for leaf, d in dims:
        if leaf not in graph.nx or graph.node(leaf).kind != "input" or not 0 <= d < graph.node(leaf).types[0].rank:
            raise ValueError(f"({leaf}, {d}) is not a dim of an input leaf")
    if not dims or count <= 0:
        return []
    orig = {(leaf, d): graph.node(leaf).types[0].shape[d] for leaf, d in dims}
    var = {ld: z3.Int(f"dyn{ld[0]}_{ld[1]}") for ld in dims}
    leaves: dict[int, list[Any]] = {}
    for (leaf, d), v in var.items():
        leaves.setdefault(leaf, [z3.IntVal(x) for x in graph.node(leaf).types[0].shape])[d] = v
    try:
        cons, vals = _propagate(graph, specs, leaves)
    except Exception:  # noqa: BLE001 - a spec that cannot take symbolic dims: no sets
        return []
    low = 0 if allow_zero else 1
    cons = list(cons) + [c for v in var.values() for c in (v >= low, v <= bounds.max_dim)]
    for t in vals.values():
        cons += [d >= 0 for d in t.shape] + [numel(t.shape) <= bounds.max_elements]
    found: list[dict[tuple[int, int], int]] = [orig]
    out: list[Shapes] = []

    def attempt(pinned: tuple[tuple[int, int], int] | None, hints: dict[tuple[int, int], int]) -> bool:
        extra = [z3.Or([var[ld] != f[ld] for ld in dims]) for f in found]
        unknowns = [(var[ld], hints[ld]) for ld in dims]
        if pinned is not None:
            extra.append(var[pinned[0]] == pinned[1])
        model = _solve(cons + extra, unknowns, rng, timeout_ms=10_000)
        if model is None or model is False:
            return False
        sol = {ld: model.eval(var[ld], model_completion=True).as_long() for ld in dims}
        shapes: Shapes = {}
        for leaf in dict.fromkeys(leaf for leaf, _ in dims):
            shape = list(graph.node(leaf).types[0].shape)
            for (lf, d), x in sol.items():
                if lf == leaf:
                    shape[d] = x
            shapes[leaf] = tuple(shape)
        found.append(sol)  # never proposed again, admitted or not
        if retype(graph, specs, shapes) is None:
            return False
        out.append(shapes)
        return True

    def generic() -> None:
        # sizes of 2 and more: the symbolic kernels the compile made run as they are
        # (Dynamo and Inductor specialize 0 and 1, which recompiles)
        for _ in range(RANDOM_TRIES + 1):
            hints = {ld: max(2, _hint(rng, bounds, allow_zero)) for ld in dims}
            if attempt(None, hints):
                return

    generic()
    # then one set with a special size, one dim pinned to it, the others hinted to their
    # own sizes, so that it differs in that dim and in what it drags along
    specials = [1, 0] if allow_zero else [1]
    rng.shuffle(specials)
    for special in specials:
        if len(out) >= count:
            break
        order = [ld for ld in dims if orig[ld] != special]
        rng.shuffle(order)
        if any(attempt((ld, special), {**orig, ld: special}) for ld in order[:SPECIAL_TRIES]):
            break
    while len(out) < count and len(found) < count + 2 * RANDOM_TRIES + 8:
        before = len(found)
        generic()
        if len(found) == before:
            break
    return out[:count]
