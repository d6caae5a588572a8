"""The reducer's passes: small graph edits, each a generator of candidate Cases.

A pass looks at the current case and yields smaller variants of it, most promising
first; the reducer (``reports.reduce``) keeps the first one that still shows the bug and
runs the pass again on it, until the pass has nothing left to offer. Every candidate is
pruned (nodes no output depends on are dropped, and so are their value recipes); a
candidate that breaks an operator's rules is filtered out by the reducer before any
oracle call (``reports.validate``), so a pass may be optimistic.

The passes, cheapest and most effective first:

``plan``      drop each check of the case's plan the bug does not need (dynamic shapes,
              gradients, layouts; mutation is the graph's own), then each shape set and
              each layout entry: the reduced case keeps only the checks that show it, and
              every later candidate costs fewer calls
``outputs``   keep only the failing output; make one intermediate value the only output
              (the mismatch's culprit or the operators a crash names first), cutting
              everything after it; drop one output of several
``cut``       replace an operator's outputs by fresh input leaves of the same types,
              cutting the graph above it
``bypass``    remove an operator and reconnect its consumers to one of its inputs of the
              same type
``detach``    remove an operator between others: its consumers read fresh leaves, its
              producers become graph outputs
``dtypes``    float64 / float16 / bfloat16 -> float32 where the specs allow it
``shapes``    shrink leaf dimensions consistently (all halved at once, then each distinct
              size to 1 or to its half), re-deriving every type and re-solving integer
              attributes that depend on them
``attrs``     move integer attributes (kernel sizes, paddings, repeats ...) towards the low
              end of their domains
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping, Sequence

import networkx as nx

from corpus.case import Case
from corpus.graph import Graph, Value
from corpus.plan import CheckPlan
from corpus.tensor_type import TensorType, is_float
from corpus.values import ValueSpec
from reports.validate import int_attr_domains, retype
from rules.spec import OpSpec
from rules.specs.inplace import mutation_violations

# Default value ranges of fresh leaves, by dtype family (those of the generator's value
# search); a leaf feeding an operator with a preferred domain (log, asin) takes that.
DEFAULT_RANGES = {"float": (-2.0, 2.0), "signed": (-8.0, 8.0), "uint8": (0.0, 16.0), "bool": (0.0, 1.0)}
FRESH_SEED = 7919  # fresh leaf n draws from seed FRESH_SEED + n: deterministic, distinct


@dataclass
class Context:
    """What the passes know of the bug being reduced."""

    specs: Mapping[str, OpSpec]
    kind: str  # the verdict's status
    output: int | None = None  # the failing output of the current case (mismatch)
    focus: tuple[str, ...] = ()  # operators the bug is pinned on (culprit, ops a crash names)
    check: str = "forward"  # the check of the plan that sees the bug (``Verdict.check``)


Pass = Callable[[Case, Context], Iterator[Case]]


def rebuild(case: Case, graph: Graph, values: Mapping[int, ValueSpec] | None = None) -> Case:
    """A case with ``graph`` (pruned) and the value recipes of the leaves it still has."""
    graph.prune()
    source = case.values if values is None else values
    kept = {n: v for n, v in source.items() if n in graph.nx and graph.node(n).kind != "op"}
    inputs = {n for n in kept if graph.node(n).kind == "input"}
    return Case(graph, case.framework, kept, case.seed, dict(case.settings), dict(case.provenance),
                case.plan.restricted_to(inputs))


def default_value(graph: Graph, ttype: TensorType, users: list[tuple[int, int]], specs: Mapping[str, OpSpec],
                  seed: int) -> ValueSpec:
    """A value recipe for a fresh leaf of type ``ttype`` read by ``users``."""
    dtype = ttype.dtype
    preferred = None
    for user, arg in users:
        preferred = specs[graph.node(user).op].value_range(arg, dtype)  # type: ignore[index]
        if preferred is not None:
            break
    if dtype == "bool":
        low, high = DEFAULT_RANGES["bool"]
    elif is_float(dtype):
        low, high = preferred or DEFAULT_RANGES["float"]
    else:
        low, high = DEFAULT_RANGES["uint8" if dtype == "uint8" else "signed"]
        if preferred is not None:
            import math

            lo, hi = math.ceil(preferred[0]), math.floor(preferred[1])
            if dtype == "uint8":
                lo, hi = max(0, lo), max(1, hi)
            if lo <= hi:
                low, high = float(lo), float(hi)
    return ValueSpec(FRESH_SEED + seed, float(low), float(high))


def _op_count(case: Case) -> int:
    return len(case.graph.op_nodes())


# ---- plan ------------------------------------------------------------------------------

def with_plan(case: Case, plan: CheckPlan) -> Case:
    """``case`` (the same graph and values) checked by ``plan``."""
    return Case(case.graph.copy(), case.framework, dict(case.values), case.seed, dict(case.settings),
                dict(case.provenance), plan)


def plan_pass(case: Case, ctx: Context) -> Iterator[Case]:
    """The case without a check its bug does not need: each whole check but the one that
    sees the bug (forward outputs are always checked; mutation is what the graph does,
    not a choice of the plan), then one shape set (down to none: a fault of the dynamic
    compile itself shows at the case's own shapes), then one layout entry at a time, then
    the harness, then the compiler options (all of them, then one at a time)."""
    plan = case.plan
    for kind in plan.kinds():
        if kind not in ("forward", "mutation", ctx.check):
            yield with_plan(case, plan.without(kind))
    if plan.dynamic:
        for k in range(len(plan.shape_sets)):
            yield with_plan(case, CheckPlan(list(plan.dynamic_dims), plan.shape_sets[:k] + plan.shape_sets[k + 1:],
                                            plan.backward_seed, dict(plan.layouts), plan.mutation,
                                            dict(plan.options), plan.harness))
    if len(plan.layouts) > 1:
        for n in sorted(plan.layouts):
            yield with_plan(case, CheckPlan(list(plan.dynamic_dims), list(plan.shape_sets), plan.backward_seed,
                                            {m: k for m, k in plan.layouts.items() if m != n}, plan.mutation,
                                            dict(plan.options), plan.harness))
    if plan.harness:
        yield with_plan(case, replace(plan, harness=""))
    if plan.options:
        yield with_plan(case, plan.with_options({}))
        if len(plan.options) > 1:
            for name in sorted(plan.options):
                yield with_plan(case, plan.with_options({k: v for k, v in plan.options.items() if k != name}))


def plan_size(plan: CheckPlan) -> int:
    """How much a plan checks (the reducer's last size measure): its checks, shape sets,
    dynamic dims, layout entries, compiler options and harness."""
    return (len(plan.kinds()) + len(plan.shape_sets) + len(plan.dynamic_dims) + len(plan.layouts) + len(plan.options)
            + bool(plan.harness))


# ---- outputs ---------------------------------------------------------------------------

def outputs_pass(case: Case, ctx: Context) -> Iterator[Case]:
    graph = case.graph
    outs = list(graph.outputs)
    if ctx.kind == "mismatch" and ctx.output is not None and len(outs) > 1 and ctx.output < len(outs):
        g = graph.copy()
        g.outputs = [outs[ctx.output]]
        yield rebuild(case, g)
    values = [v for v in graph.values() if graph.node(v[0]).kind == "op" and [v] != outs]
    cone = {n: len(nx.ancestors(graph.nx, n)) for n in graph.op_nodes()}

    def order(v: Value) -> tuple:
        focused = graph.node(v[0]).op in ctx.focus
        # the operators the bug is pinned on, smallest cone first; then the others, the
        # largest cone first (they are likelier to keep the bug, and each cuts the tail)
        return (0, cone[v[0]], v) if focused else (1, -cone[v[0]], v)

    for v in sorted(values, key=order):
        g = graph.copy()
        g.outputs = [v]
        yield rebuild(case, g)
    if len(outs) > 1:
        for i in range(len(outs)):
            g = graph.copy()
            g.outputs = outs[:i] + outs[i + 1:]
            yield rebuild(case, g)


# ---- cut and bypass ------------------------------------------------------------------------

def _cut(case: Case, nid: int, specs: Mapping[str, OpSpec], keep: Sequence[Value] = ()) -> Case:
    g = case.graph.copy()
    g.outputs = list(g.outputs) + [v for v in keep if v not in g.outputs]
    values = dict(case.values)
    node = g.node(nid)
    for i, t in enumerate(node.types):
        users = g.users_of((nid, i))
        if not users and (nid, i) not in g.outputs:
            continue
        leaf = g.add_leaf(t)
        values[leaf[0]] = default_value(g, t, users, specs, leaf[0])
        g.replace_uses((nid, i), leaf)
    g.remove_node(nid)
    return rebuild(case, g, values)


def cut_pass(case: Case, ctx: Context) -> Iterator[Case]:
    graph = case.graph
    outputs = {v[0] for v in graph.outputs}
    candidates = [_cut(case, n, ctx.specs) for n in graph.op_nodes() if n not in outputs]
    candidates = [c for c in candidates if _op_count(c) > 0]
    yield from sorted(candidates, key=_op_count)  # the most removed first; stable: topological order


def bypass_pass(case: Case, ctx: Context) -> Iterator[Case]:
    graph = case.graph
    found = []
    for n in graph.op_nodes():
        node = graph.node(n)
        used = [i for i in range(len(node.types)) if graph.users_of((n, i)) or (n, i) in graph.outputs]
        inputs = graph.inputs_of(n)
        for src in dict.fromkeys(inputs):
            t = graph.type_of(src)
            if not used or any(node.types[i] != t for i in used):
                continue
            g = graph.copy()
            for i in used:
                g.replace_uses((n, i), src)
            g.remove_node(n)
            if mutation_violations(g, ctx.specs):
                continue  # a value written in place would gain another reader (rules.specs.inplace)
            cand = rebuild(case, g)
            if _op_count(cand) > 0:
                found.append(cand)
    yield from sorted(found, key=_op_count)


def detach_pass(case: Case, ctx: Context) -> Iterator[Case]:
    """Remove an operator that only connects others: its consumers read fresh leaves and the
    operators feeding it become graph outputs, so both sides stay, unconnected."""
    graph = case.graph
    found = []
    for n in graph.op_nodes():
        feeding = [v for v in dict.fromkeys(graph.inputs_of(n)) if graph.node(v[0]).kind == "op"]
        if not feeding:
            continue  # the cut pass covers it
        cand = _cut(case, n, ctx.specs, keep=feeding)
        if _op_count(cand) > 0:
            found.append(cand)
    yield from sorted(found, key=_op_count)


# ---- dtypes, shapes, attributes ------------------------------------------------------------

def _leaf_types(graph: Graph) -> dict[int, TensorType]:
    return {n: graph.node(n).types[0] for n in graph.leaves()}


def dtypes_pass(case: Case, ctx: Context) -> Iterator[Case]:
    graph = case.graph
    present = {t.dtype for n in graph.nodes() for t in graph.node(n).types}
    for dtype in ("float64", "float16", "bfloat16"):
        if dtype not in present:
            continue
        leaves = {n: TensorType(t.shape, "float32") for n, t in _leaf_types(graph).items() if t.dtype == dtype}
        casts = {n: {k: ("float32" if v == dtype else v) for k, v in graph.node(n).attrs.items()}
                 for n in graph.op_nodes() if dtype in graph.node(n).attrs.values()}
        for attrs in ((casts, {}) if casts else ({},)):
            if not leaves and not attrs:
                continue
            g = retype(graph, case.framework, ctx.specs, leaves, attrs, resolve=False)
            if g is not None:
                yield rebuild(case, g)


def _substitute_dims(case: Case, ctx: Context, mapping: Callable[[int], int]) -> Case | None:
    graph = case.graph
    leaves = {n: TensorType(tuple(mapping(d) for d in t.shape), t.dtype) for n, t in _leaf_types(graph).items()}
    leaves = {n: t for n, t in leaves.items() if t != graph.node(n).types[0]}
    if not leaves:
        return None
    # integer attributes equal to a changed size (a Linear's out_features, an expand
    # target) follow it; others are re-solved only if the new shapes need it
    attrs = {}
    for n in graph.op_nodes():
        node = graph.node(n)
        ins = [graph.type_of(v) for v in graph.inputs_of(n)]
        domains = int_attr_domains(ctx.specs[node.op], ins, node.attrs)  # type: ignore[index]
        new = {k: (max(lo, mapping(v)) if k in domains and isinstance(v, int) and v > 1 else v)
               for k, v in node.attrs.items() for lo in [domains.get(k, (0, 0))[0]]}
        if new != node.attrs:
            attrs[n] = new
    g = retype(graph, case.framework, ctx.specs, leaves, attrs, resolve=True)
    return None if g is None else rebuild(case, g)


def shapes_pass(case: Case, ctx: Context) -> Iterator[Case]:
    graph = case.graph
    sizes = sorted({d for t in _leaf_types(graph).values() for d in t.shape if d > 1}, reverse=True)
    if not sizes:
        return
    everything = _substitute_dims(case, ctx, lambda d: max(1, d // 2))
    if everything is not None:
        yield everything
    for size in sizes:
        for target in dict.fromkeys((1, size // 2)):
            if not 1 <= target < size:
                continue
            cand = _substitute_dims(case, ctx, lambda d, s=size, t=target: t if d == s else d)
            if cand is not None:
                yield cand


def attrs_pass(case: Case, ctx: Context) -> Iterator[Case]:
    graph = case.graph
    leaves = _leaf_types(graph)
    for n in graph.op_nodes():
        node = graph.node(n)
        ins = [graph.type_of(v) for v in graph.inputs_of(n)]
        for name, (lo, _) in int_attr_domains(ctx.specs[node.op], ins, node.attrs).items():  # type: ignore[index]
            v = node.attrs.get(name)
            if not isinstance(v, int) or v <= lo:
                continue
            for target in dict.fromkeys((lo, (v + lo) // 2)):
                if not lo <= target < v:
                    continue
                g = retype(graph, case.framework, ctx.specs, leaves, {n: {**node.attrs, name: target}},
                           resolve=True, frozen=frozenset({n}))
                if g is not None:
                    yield rebuild(case, g)


PASSES: list[tuple[str, Pass]] = [
    ("plan", plan_pass),
    ("outputs", outputs_pass),
    ("cut", cut_pass),
    ("bypass", bypass_pass),
    ("detach", detach_pass),
    ("dtypes", dtypes_pass),
    ("shapes", shapes_pass),
    ("attrs", attrs_pass),
]
