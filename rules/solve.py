"""Solving one operator instance with z3: attributes and unknown input shapes.

``instantiate`` is the single entry point used by the generator (forward insertion:
inputs known; backward insertion: output known, inputs fresh) and by the per-operator
tests (everything fresh). Randomness enters only through *hints*: for each unknown a
value drawn from the seed is assumed; when the assumptions conflict, a maximal subset is
kept greedily in a seeded order, and every unknown left free is pinned to its smallest
feasible value. The result is a solution near the random draw that depends only on the
seed and the constraints, never on z3's internal state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

import z3

from corpus.tensor_type import TensorType
from rules.spec import OpSpec, SymTensor, numel

# Dims a compiler treats specially (1), small primes that defeat vectorization, and sizes
# in the tens that take vectorized and tiled paths.
DIM_HINTS = (1, 1, 2, 3, 4, 5, 7, 8, 11, 13, 16, 17, 24, 31, 32, 48, 64)


RLIMIT = 5_000_000  # z3 resource units per solver (a few hundred ms of the hardest instances)


@dataclass(frozen=True)
class Bounds:
    max_rank: int = 4
    max_dim: int = 64
    max_elements: int = 4096


@dataclass
class Instance:
    spec: OpSpec
    attrs: dict[str, Any]
    in_types: list[TensorType]
    out_types: list[TensorType]
    ranks: tuple[int, ...] = field(default=())
    dtypes: tuple[str, ...] = field(default=())


def _hint_dim(rng: random.Random, bounds: Bounds) -> int:
    d = rng.choice(DIM_HINTS)
    return d if d <= bounds.max_dim else rng.randint(1, bounds.max_dim)


def _hint_attr(rng: random.Random, lo: int, hi: int) -> int:
    if rng.random() < 0.6:
        return rng.randint(lo, min(hi, lo + 3))
    return rng.randint(lo, hi)


def _as_int(expr: z3.ArithRef, model: z3.ModelRef | None) -> int:
    val = model.eval(expr, model_completion=True) if model is not None else z3.simplify(expr)
    if not z3.is_int_value(val):
        raise ValueError(f"expression {expr} did not evaluate to an integer")
    return val.as_long()


def instantiate(spec: OpSpec, framework: str, rng: random.Random, bounds: Bounds = Bounds(),
                inputs: Sequence[TensorType | None] | None = None, target: TensorType | None = None,
                ranks: tuple[int, ...] | None = None, dtypes: tuple[str, ...] | None = None,
                timeout_ms: int = 20000) -> Instance | None:
    """One random valid instance of ``spec``, or None if none fits the givens.

    ``inputs[i]`` fixes input i's type (None: a fresh tensor the solver shapes);
    ``target`` fixes output 0's type (backward insertion).
    """
    given = list(inputs) if inputs is not None else [None] * spec.n_inputs
    if len(given) != spec.n_inputs:
        raise ValueError(f"{spec.id} takes {spec.n_inputs} inputs, got {len(given)}")
    rank_opts = [r for r in spec.rank_options() if all(x <= bounds.max_rank for x in r)
                 and all(g is None or g.rank == x for g, x in zip(given, r))]
    dtype_opts = [d for d in spec.dtype_options(framework) if all(g is None or g.dtype == x for g, x in zip(given, d))]
    if ranks is not None:
        rank_opts = [r for r in rank_opts if r == ranks]
    if dtypes is not None:
        dtype_opts = [d for d in dtype_opts if d == dtypes]
    if not rank_opts or not dtype_opts:
        return None
    combos = [(r, d) for r in rank_opts for d in dtype_opts]
    rng.shuffle(combos)
    if target is not None:
        # Most ops keep the dtype and often the rank: try those combinations first.
        combos.sort(key=lambda c: (target.dtype not in c[1], target.rank not in c[0]))
    for ranks, dtypes in combos[:12]:
        built = _build(spec, given, ranks, dtypes, rng, bounds, target)
        if built is not None:
            break
    else:
        return None
    cons, unknowns, ins, attrs, outs = built
    model = _solve(cons, unknowns, rng, timeout_ms)
    if model is False:
        return None
    concrete = {k: (_as_int(v, model) if isinstance(v, z3.ArithRef) else v) for k, v in attrs.items()}
    in_types = [g if g is not None else TensorType(tuple(_as_int(d, model) for d in t.shape), t.dtype)
                for g, t in zip(given, ins)]
    out_types = [TensorType(tuple(_as_int(d, model) for d in o.shape), o.dtype) for o in outs]
    return Instance(spec, concrete, in_types, out_types, tuple(ranks), tuple(dtypes))


def _build(spec: OpSpec, given: list[TensorType | None], ranks: tuple[int, ...], dtypes: tuple[str, ...],
           rng: random.Random, bounds: Bounds, target: TensorType | None):
    """The symbolic problem for one rank/dtype choice; None if its output cannot be ``target``."""
    sampled = spec.sample_attrs(ranks, dtypes, rng)
    ins: list[SymTensor] = []
    fresh: list[SymTensor] = []
    for i, (g, r, dt) in enumerate(zip(given, ranks, dtypes)):
        if g is not None:
            ins.append(SymTensor([z3.IntVal(d) for d in g.shape], dt))
        else:
            ins.append(SymTensor([z3.Int(f"in{i}_{k}") for k in range(r)], dt))
            fresh.append(ins[-1])
    attrs: dict[str, Any] = dict(sampled)
    domains = spec.int_attrs(ranks, sampled)
    for name in domains:
        attrs[name] = z3.Int(f"attr_{name}")
    outs = spec.output_types(ins, attrs)
    if target is not None and (outs[0].rank != target.rank or outs[0].dtype != target.dtype):
        return None  # decided before any constraint is built: backward insertion tries many

    unknowns: list[tuple[z3.ArithRef, int]] = []  # (var, hint)
    cons: list[z3.BoolRef] = []
    # Fresh dims are hinted, most of the time, to the right-aligned dim of a known tensor:
    # most operators want equal or broadcastable dims, and a good hint saves solver rounds.
    known = [g.shape for g in given if g is not None] + ([target.shape] if target is not None else [])
    for t in fresh:
        for k, d in enumerate(t.shape):
            cons += [d >= 1, d <= bounds.max_dim]
            aligned = [s[k - t.rank + len(s)] for s in known if k - t.rank + len(s) >= 0]
            hint = rng.choice(aligned) if aligned and rng.random() < 0.75 else _hint_dim(rng, bounds)
            unknowns.append((d, hint))
    for name, (lo, hi) in domains.items():
        v = attrs[name]
        cons += [v >= lo, v <= hi]
        unknowns.append((v, _hint_attr(rng, lo, hi)))
    if target is not None:
        cons += [o == t for o, t in zip(outs[0].shape, target.shape)]
    cons += spec.requires(ins, attrs)
    for t in fresh:
        cons.append(numel(t.shape) <= bounds.max_elements)
    for o in outs:
        cons += [d >= 1 for d in o.shape]
        cons.append(numel(o.shape) <= bounds.max_elements)
    return cons, unknowns, ins, attrs, outs


def _solve(cons: list[z3.BoolRef], unknowns: list[tuple[z3.ArithRef, int]], rng: random.Random,
           timeout_ms: int) -> z3.ModelRef | None | bool:
    """A model of ``cons`` close to the hints; None when nothing is unknown and the
    constraints hold; False when unsatisfiable (or z3 gave up)."""
    if not unknowns:
        # Everything is concrete: simplification decides, no solver needed.
        for c in cons:
            if not z3.is_true(z3.simplify(c)):
                return False
        return None
    s = z3.Solver()
    # A resource limit, not a wall-clock timeout: it gives up at the same point whatever
    # the machine's load, so the same seed gives the same models. The timeout is a guard.
    s.set("rlimit", RLIMIT)
    s.set("timeout", timeout_ms)
    s.add(*cons)
    trackers: dict[str, z3.BoolRef] = {}
    for k, (var, hint) in enumerate(unknowns):
        b = z3.Bool(f"hint{k}")
        trackers[f"hint{k}"] = b
        s.add(z3.Implies(b, var == hint))
    active = list(trackers.values())
    r = s.check(*active)
    if r == z3.unknown:
        return False
    if r == z3.unsat:
        # Keep a random, maximal subset of the hints, chosen greedily in a seeded order.
        # (z3's unsat cores are not unique and depend on the solver's history, so they
        # cannot decide which hint to drop if the same seed must give the same model.)
        order = list(active)
        rng.shuffle(order)
        active = []
        for b in order:
            r = s.check(*active, b)
            if r == z3.sat:
                active.append(b)
            elif r == z3.unknown:
                return False
        if s.check(*active) != z3.sat:
            return False
    # z3 picks values for the unknowns whose hints were dropped arbitrarily, and its
    # choice depends on the process's solver history. Pin each such unknown, in order, to
    # its smallest feasible value so that the same seed always gives the same instance.
    kept = {b.decl().name() for b in active}
    pins = list(active)
    free = [var for k, (var, _) in enumerate(unknowns) if f"hint{k}" not in kept]
    # Variables a spec introduced itself (not an attribute or a dim) are pinned too.
    named = {str(var) for var, _ in unknowns}
    free += [z3.Int(d.name()) for d in sorted(s.model().decls(), key=lambda d: d.name())
             if d.arity() == 0 and d.range() == z3.IntSort() and d.name() not in named]
    for var in free:
        least = _least_value(s, pins, var, s.model().eval(var, model_completion=True).as_long())
        if least is None:
            return False
        pins.append(var == least)
        if s.check(*pins) != z3.sat:
            return False
    return s.model()


def _least_value(s: z3.Solver, pins: list[z3.BoolRef], var: z3.ArithRef, feasible: int) -> int | None:
    """The smallest value of ``var`` under ``pins`` (``feasible`` is one value it can
    take), by galloping down then bisecting: O(log range) checks, where stepping down one
    model at a time could take millions (an attribute whose range spans the int32s). None
    when unbounded below within 2**62 or when z3 gives up."""
    def below(t: int) -> bool | None:  # some value <= t?
        r = s.check(*pins, var <= t)
        return None if r == z3.unknown else r == z3.sat

    hi, step = feasible, 1  # invariant: some value <= hi
    while True:
        t = hi - step
        r = below(t)
        if r is None:
            return None
        if not r:
            lo = t  # no value <= lo
            break
        hi, step = t, step * 2
        if step > 2 ** 62:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = below(mid)
        if r is None:
            return None
        hi, lo = (mid, lo) if r else (hi, mid)
    return hi
