"""Sketch search for the shape rules that bottom-up enumeration cannot reach.

Convolution and pooling output sizes (``(x + 2p - d(k - 1) - 1) // s + 1``, and with
``ceil_mode`` a ``min`` of two such terms) are expressions of 15 to 30 nodes that use a
symbol more than once: far beyond what enumeration reaches. They share a shape, though:
an integer linear combination of *monomials* (1, the symbols, products of two symbols),
floor-divided by a divisor (1, a symbol, or 2), plus a constant. This module finds the
coefficients with z3 as a small integer program over the records, then sparser ones
while z3 finds them quickly, and also ``min``/``max`` of two such terms with one divisor. Records enter counter-example-guided: solve on a few, check on
all, add the records it got wrong.

This goes beyond NeuRI's language (a symbol may appear in several monomials); it is
tried only for the output dims enumeration did not explain, restricted to the symbols
the data shows to be relevant, under the per-operator deadline.
"""

from __future__ import annotations

import re
import time
from itertools import combinations
from typing import Sequence

import numpy as np
import z3

from rules.infer.expr import Expr, const, eval_int, sym

COEF = 3  # coefficients in [-COEF, COEF]
MAX_FEATURES = 24


def _features(relevant: Sequence[str], env: dict[str, np.ndarray], R: int) -> tuple[list[Expr], np.ndarray]:
    feats: list[Expr] = [const(1)] + [sym(s) for s in relevant]
    cols = [np.ones(R, np.int64)] + [env[s].astype(np.int64) for s in relevant]
    if len(relevant) <= 6:
        for a, b in combinations(relevant, 2):
            feats.append(("*", sym(a), sym(b)))
            cols.append(env[a].astype(np.int64) * env[b].astype(np.int64))
    return feats[:MAX_FEATURES], np.array(cols[:MAX_FEATURES], dtype=np.int64).T


def _linear(feats: list[Expr], coefs: list[int]) -> Expr:
    terms = [(c, f) for c, f in zip(coefs, feats) if c != 0 and f[0] != "c"]
    terms.sort(key=lambda cf: cf[0] < 0)  # a positive term first
    const_term = sum(c for c, f in zip(coefs, feats) if f[0] == "c" and c != 0)
    e: Expr | None = None
    for c, f in terms:
        t = f if abs(c) == 1 else ("*", f, const(abs(c)))
        if e is None:
            e = t if c > 0 else ("-", const(0), t)
        else:
            e = ("+" if c > 0 else "-", e, t)
    if e is None:
        return const(const_term)
    if const_term:
        e = ("+" if const_term > 0 else "-", e, const(abs(const_term)))
    return e


def _floor_term(num: Expr, q: Expr | None, k: int) -> Expr:
    e = num if q is None else ("//", num, q)
    if k:
        e = ("+" if k > 0 else "-", e, const(abs(k)))
    return e


def _check(e: Expr, env: dict[str, np.ndarray], t: np.ndarray) -> np.ndarray:
    """Indices of records where ``e`` differs from ``t``."""
    names = list(env)
    bad = []
    for r in range(len(t)):
        if eval_int(e, {n: int(env[n][r]) for n in names}) != int(t[r]):
            bad.append(r)
    return np.array(bad, dtype=np.int64)


class _Budget:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def ms(self) -> int:
        return max(1, int(1000 * (self.deadline - time.monotonic())))

    def over(self) -> bool:
        return time.monotonic() > self.deadline


def _solve_affine(F: np.ndarray, t: np.ndarray, q: np.ndarray | None, rows: np.ndarray, budget: _Budget,
                  max_terms: int) -> tuple[list[int], int] | None:
    m = F.shape[1]
    c = [z3.Int(f"c{i}") for i in range(m)]
    k = z3.Int("k")
    s = z3.Solver()
    s.set("timeout", budget.ms())
    s.add(*[z3.And(x >= -COEF, x <= COEF) for x in c], k >= -2, k <= 2)
    if q is None:
        s.add(k == 0)
    for r in rows:
        n = z3.Sum([int(F[r, i]) * c[i] for i in range(m)])
        if q is None:
            s.add(n == int(t[r]))
        else:
            qr = int(q[r])
            s.add(qr * (int(t[r]) - k) <= n, n <= qr * (int(t[r]) - k) + qr - 1)
    nz = z3.Sum([z3.If(x != 0, 1, 0) for x in c] + [z3.If(k != 0, 1, 0)])
    got = _sparsest(s, nz, max_terms, budget)
    if got is None:
        return None
    return [got.eval(x, model_completion=True).as_long() for x in c], got.eval(k, model_completion=True).as_long()


def _sparsest(s: z3.Solver, nz, max_terms: int, budget: _Budget, step_ms: int = 3000):
    """A model with at most ``max_terms`` nonzero coefficients, then sparser ones while
    each tighter check answers quickly (sat checks are cheap, proving unsat is not)."""
    s.set("timeout", budget.ms())
    if s.check(nz <= max_terms) != z3.sat:
        return None
    best = s.model()
    while not budget.over():
        n = best.eval(nz, model_completion=True).as_long()
        if n <= 1:
            break
        s.set("timeout", min(step_ms, budget.ms()))
        if s.check(nz <= n - 1) != z3.sat:
            break
        best = s.model()
    return best


def _solve_min(F: np.ndarray, t: np.ndarray, q: np.ndarray | None, rows: np.ndarray, budget: _Budget,
               max_terms: int, kind: str) -> tuple[list[int], int, list[int], int] | None:
    m = F.shape[1]
    c1 = [z3.Int(f"a{i}") for i in range(m)]
    c2 = [z3.Int(f"b{i}") for i in range(m)]
    k1, k2 = z3.Int("k1"), z3.Int("k2")
    s = z3.Solver()
    s.add(*[z3.And(x >= -COEF, x <= COEF) for x in c1 + c2], k1 >= -2, k1 <= 2, k2 >= -2, k2 <= 2)
    if q is None:
        s.add(k1 == 0, k2 == 0)
    # symmetry: the first term's coefficient vector is lexicographically no larger
    for r in rows:
        tr = int(t[r])
        vals = []
        for cs, kk, tag in ((c1, k1, "a"), (c2, k2, "b")):
            n = z3.Sum([int(F[r, i]) * cs[i] for i in range(m)])
            if q is None:
                vals.append(n)
            else:
                aux = z3.Int(f"{tag}_{r}")
                qr = int(q[r])
                s.add(qr * aux <= n, n <= qr * aux + qr - 1)
                vals.append(aux + kk)
        if kind == "min":
            s.add(tr <= vals[0], tr <= vals[1], z3.Or(tr == vals[0], tr == vals[1]))
        else:
            s.add(tr >= vals[0], tr >= vals[1], z3.Or(tr == vals[0], tr == vals[1]))
    nz = z3.Sum([z3.If(x != 0, 1, 0) for x in c1 + c2] + [z3.If(k1 != 0, 1, 0), z3.If(k2 != 0, 1, 0)])
    mdl = _sparsest(s, nz, 2 * max_terms, budget)
    if mdl is None:
        return None
    ev = lambda x: mdl.eval(x, model_completion=True).as_long()  # noqa: E731
    return [ev(x) for x in c1], ev(k1), [ev(x) for x in c2], ev(k2)


def search(env: dict[str, np.ndarray], t: np.ndarray, relevant: Sequence[str], deadline: float,
           max_terms: int = 6, with_min: bool = True, seed_rows: int = 12) -> Expr | None:
    """The sparsest sketch expression equal to ``t`` on every record, or None."""
    R = len(t)
    if R == 0 or not relevant:
        return None
    budget = _Budget(deadline)
    relevant = list(relevant)
    feats, F = _features(relevant, env, R)
    divisors: list[tuple[Expr | None, np.ndarray | None]] = [(None, None)]
    # attributes (strides, scales) before tensor dims as divisors, then 2
    for s_ in sorted(relevant, key=lambda n: re.fullmatch(r"t\d+_\d+", n) is not None):
        v = env[s_].astype(np.int64)
        if (v > 0).all() and len(set(v.tolist())) > 1:
            divisors.append((sym(s_), v))
    divisors.append((const(2), np.full(R, 2, np.int64)))
    order = np.random.default_rng(0).permutation(R)
    kinds = ["affine"] + (["min", "max"] if with_min and len(relevant) <= 6 else [])
    for kind in kinds:
        for q_expr, q in divisors:
            if kind != "affine" and q is None:
                continue  # min/max of linear forms: the bank's business
            rows = np.sort(order[:seed_rows])
            for _ in range(8):
                if budget.over():
                    return None
                if kind == "affine":
                    got = _solve_affine(F, t, q, rows, budget, max_terms)
                    if got is None:
                        break
                    e = _floor_term(_linear(feats, got[0]), q_expr, got[1])
                else:
                    got2 = _solve_min(F, t, q, rows, budget, max_terms, kind)
                    if got2 is None:
                        break
                    e = (kind, _floor_term(_linear(feats, got2[0]), q_expr, got2[1]),
                         _floor_term(_linear(feats, got2[2]), q_expr, got2[3]))
                bad = _check(e, env, t)
                if not len(bad):
                    return e
                rows = np.union1d(rows, bad[:6])
    return None
