"""Concrete re-validation of a Case's operators, for the reducer.

Every candidate the reducer makes must stay a case the generator could have made: each
operator's input ranks and dtypes among its spec's options, its integer attributes in
their domains, its ``requires`` true and its ``output_types`` equal to the types the
graph records. The specs speak z3, so the check builds each operator's constraints over
constant shapes and simplifies them: no solver is needed unless an attribute must be
re-solved (``resolve_attrs``: after a shape shrank, the z3-solved integer attributes are
solved again, as near their old values as the constraints allow).

``retype`` rebuilds a graph's types from new leaf types (and attribute overrides),
operator by operator in topological order: the way shapes and dtypes are simplified.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import z3

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from rules.spec import OpSpec, SymTensor

MAX_ELEMENTS = 1 << 20  # a sanity bound; reduction only ever shrinks tensors


class Invalid(ValueError):
    """Why an operator instance is not valid (for logs and tests)."""


def _concrete_bool(c: Any) -> bool:
    if isinstance(c, bool):
        return c
    return z3.is_true(z3.simplify(c))


def _concrete_int(x: Any) -> int | None:
    if isinstance(x, int):
        return int(x)
    v = z3.simplify(x)
    return v.as_long() if z3.is_int_value(v) else None


def _sym(types: Sequence[TensorType]) -> list[SymTensor]:
    return [SymTensor([z3.IntVal(d) for d in t.shape], t.dtype) for t in types]


def int_attr_domains(spec: OpSpec, in_types: Sequence[TensorType], attrs: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """The z3-solved integer attributes of an instance and their domains."""
    try:
        return dict(spec.int_attrs(tuple(t.rank for t in in_types), dict(attrs)))
    except (KeyError, TypeError, ValueError):
        return {}


def output_types(spec: OpSpec, framework: str, in_types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
    """The output types of ``spec`` on these concrete inputs and attributes; raises
    :class:`Invalid` if the instance breaks any of the spec's rules."""
    if len(in_types) != spec.n_inputs:
        raise Invalid(f"{spec.id}: {len(in_types)} inputs, expected {spec.n_inputs}")
    if framework not in spec.frameworks:
        raise Invalid(f"{spec.id}: not available in {framework}")
    ranks = tuple(t.rank for t in in_types)
    if ranks not in {tuple(r) for r in spec.rank_options()}:
        raise Invalid(f"{spec.id}: input ranks {ranks} not allowed")
    dtypes = tuple(t.dtype for t in in_types)
    if dtypes not in {tuple(d) for d in spec.dtype_options(framework)}:
        raise Invalid(f"{spec.id}: input dtypes {dtypes} not allowed")
    for name, (lo, hi) in int_attr_domains(spec, in_types, attrs).items():
        v = attrs.get(name)
        if not isinstance(v, int) or not lo <= v <= hi:
            raise Invalid(f"{spec.id}: attribute {name}={v!r} outside [{lo}, {hi}]")
    ins = _sym(in_types)
    try:
        for c in spec.requires(ins, dict(attrs)):
            if not _concrete_bool(c):
                raise Invalid(f"{spec.id}: requirement {c} fails")
        outs = spec.output_types(ins, dict(attrs))
    except Invalid:
        raise
    except (z3.Z3Exception, KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
        raise Invalid(f"{spec.id}: {type(e).__name__}: {e}") from None
    result = []
    for o in outs:
        dims = [_concrete_int(d) for d in o.shape]
        if any(d is None or d < 1 for d in dims):
            raise Invalid(f"{spec.id}: output shape {dims} is not positive")
        t = TensorType(tuple(dims), o.dtype)  # type: ignore[arg-type]
        if t.numel > MAX_ELEMENTS:
            raise Invalid(f"{spec.id}: output of {t.numel} elements")
        result.append(t)
    return result


def resolve_attrs(spec: OpSpec, framework: str, in_types: Sequence[TensorType], attrs: Mapping[str, Any],
                  timeout_ms: int = 2000) -> tuple[dict[str, Any], list[TensorType]] | None:
    """Re-solve the z3-solved integer attributes for new input types, each as near its
    value in ``attrs`` as possible (sampled attributes stay as they are). Returns the new
    attributes and output types, or None when no solution exists."""
    domains = int_attr_domains(spec, in_types, attrs)
    if not domains:
        return None
    variables = {name: z3.Int(f"attr_{name}") for name in domains}
    sym_attrs = {**dict(attrs), **variables}
    ins = _sym(in_types)
    try:
        cons = list(spec.requires(ins, sym_attrs))
        outs = spec.output_types(ins, sym_attrs)
    except (z3.Z3Exception, KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    s = z3.Solver()
    s.set("timeout", timeout_ms)
    for name, (lo, hi) in domains.items():
        s.add(variables[name] >= lo, variables[name] <= hi)
    for c in cons:
        s.add(c)
    for o in outs:
        for d in o.shape:
            s.add(d >= 1)
    if s.check() != z3.sat:
        return None
    # Keep the old values where possible (in attribute order), then move the others as
    # little as possible: deterministic, whatever z3's internal state.
    pins: list[z3.BoolRef] = []
    moved: list[z3.ArithRef] = []
    for name, var in variables.items():
        old = attrs.get(name)
        if isinstance(old, int) and s.check(*pins, var == old) == z3.sat:
            pins.append(var == old)
        else:
            old = old if isinstance(old, int) else domains[name][0]
            moved.append(z3.If(var >= old, var - old, old - var))
    if moved:
        opt = z3.Optimize()
        opt.set("timeout", timeout_ms)
        opt.add(*s.assertions(), *pins)
        opt.minimize(z3.Sum(moved) if len(moved) > 1 else moved[0])
        if opt.check() != z3.sat:
            return None
        model = opt.model()
    else:
        if s.check(*pins) != z3.sat:
            return None
        model = s.model()
    new_attrs = dict(attrs)
    for name, var in variables.items():
        new_attrs[name] = model.eval(var, model_completion=True).as_long()
    try:
        return new_attrs, output_types(spec, framework, in_types, new_attrs)
    except Invalid:
        return None


def check_graph(graph: Graph, framework: str, specs: Mapping[str, OpSpec]) -> None:
    """Raise :class:`Invalid` unless every operator of ``graph`` is a valid instance whose
    recorded output types are the ones its spec gives."""
    if not graph.outputs:
        raise Invalid("the graph has no outputs")
    for n in graph.op_nodes():
        node = graph.node(n)
        spec = specs.get(node.op)  # type: ignore[arg-type]
        if spec is None:
            raise Invalid(f"node {n}: unknown operator {node.op}")
        ins = [graph.type_of(v) for v in graph.inputs_of(n)]
        outs = output_types(spec, framework, ins, node.attrs)
        if outs != list(node.types):
            raise Invalid(f"node {n} ({node.op}): recorded types {[str(t) for t in node.types]}, "
                          f"spec gives {[str(t) for t in outs]}")


def is_valid(case: Case, specs: Mapping[str, OpSpec]) -> bool:
    try:
        check_graph(case.graph, case.framework, specs)
    except Invalid:
        return False
    return all(n in case.values for n in case.graph.leaves())


def retype(graph: Graph, framework: str, specs: Mapping[str, OpSpec], leaf_types: Mapping[int, TensorType],
           attrs: Mapping[int, Mapping[str, Any]] | None = None, resolve: bool = True,
           frozen: frozenset[int] = frozenset()) -> Graph | None:
    """A copy of ``graph`` whose leaves listed in ``leaf_types`` take those types and whose
    op nodes listed in ``attrs`` take those attributes; every operator's output types are
    recomputed in topological order. An operator the new types make invalid gets its
    integer attributes re-solved (``resolve``; not for the ``frozen`` nodes); None when
    that fails or a graph output would change its rank."""
    g = graph.copy()
    attrs = attrs or {}
    for n in g.nodes():
        node = g.node(n)
        if node.kind != "op":
            if n in leaf_types:
                node.types = [leaf_types[n]]
            continue
        spec = specs.get(node.op)  # type: ignore[arg-type]
        if spec is None:
            return None
        if n in attrs:
            node.attrs = dict(attrs[n])
        ins = [g.type_of(v) for v in g.inputs_of(n)]
        try:
            outs = output_types(spec, framework, ins, node.attrs)
        except Invalid:
            if not resolve or n in frozen:
                return None
            solved = resolve_attrs(spec, framework, ins, node.attrs)
            if solved is None:
                return None
            node.attrs, outs = solved
        if len(outs) != len(node.types):
            return None
        node.types = outs
    return g
