"""Input constraints: which predicates separate the valid records from the invalid ones.

Candidates are ``e == 0``, ``e > 0``, ``e >= 0`` and ``e == c`` for the expressions ``e``
of a bank built over valid *and* invalid records (plus the output-shape expressions,
whose positivity is often the real rule: a convolution's output must not be empty). A
candidate is kept if it holds on every valid record and rejects at least one invalid
record; an expression undefined on an invalid record (a division by a mutated zero)
rejects it.

A greedy set cover picks predicates until every invalid record is rejected: the most
newly rejected records first, then the smaller expression, then the tighter predicate
(``==`` before ``>`` before ``>=``: what the valid records show, no more). Invalid records no conjunction of single predicates
rejects, such as broadcasting's ``a == b or a == 1 or b == 1``, get disjunctions of up
to three small atoms. Finally z3 removes every predicate implied by the others (and by
the domain: dimensions are positive). If some invalid record is still accepted, the
template has no rule.
"""

from __future__ import annotations

import time
from itertools import combinations
from typing import Sequence

import numpy as np
import z3

from rules.infer.bank import Bank
from rules.infer.expr import Expr, Pred, eval_pred, evaluate, pred_symbols, pred_to_z3, sym, symbols_of

KIND_RANK = {"==": 0, ">": 1, ">=": 2}  # on equal evidence, the tighter fit to the valid records


class _Cands:
    """Candidate predicates: (kind, expression source, row, constant), their tie-break
    rank and the invalid records each rejects. Expressions are built only when chosen."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.rank: list[tuple] = []
        self.rejects: list[np.ndarray] = []

    def pred(self, i: int) -> Pred:
        kind, source, row, c = self.items[i]
        return (kind, source[row], c)

    def add_rows(self, source, vals: np.ndarray, valid: np.ndarray, inv: np.ndarray, sizes: Sequence[int]) -> None:
        if not len(vals):
            return
        vv = vals[:, valid]
        vi = vals[:, inv]
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(vv).all(axis=1)
            if vv.shape[1]:
                mn = np.where(finite, np.min(np.where(finite[:, None], vv, 0), axis=1), np.nan)
                mx = np.where(finite, np.max(np.where(finite[:, None], vv, 0), axis=1), np.nan)
            else:
                mn = mx = np.zeros(len(vals))
            for kind, ok_rows in (("==", finite & (mn == mx)), (">", finite & (mn > 0)), (">=", finite & (mn >= 0))):
                rows = np.nonzero(ok_rows)[0]
                if not len(rows):
                    continue
                if kind == "==":
                    R = ~(vi[rows] == mn[rows, None])
                elif kind == ">":
                    R = ~(vi[rows] > 0)
                else:
                    R = ~(vi[rows] >= 0)
                useful = R.any(axis=1)
                for r, rr in zip(rows[useful], R[useful]):
                    self.items.append((kind, source, int(r), int(mn[r]) if kind == "==" else 0))
                    self.rank.append((sizes[r], KIND_RANK[kind], len(self.items)))
                    self.rejects.append(rr)


class _LazyExprs:
    """Row index -> expression of one bank level, built only when asked."""

    def __init__(self, bank: Bank, k: int) -> None:
        self.bank, self.k = bank, k

    def __getitem__(self, r: int) -> Expr:
        return self.bank.expr(self.k, int(r))


def _greedy(cands: _Cands, uncovered: np.ndarray, max_size: int, consts: bool) -> list[int]:
    """Pick candidates of size <= ``max_size`` until no more invalid records can be
    rejected; updates ``uncovered`` in place."""
    chosen: list[int] = []
    if not cands.items:
        return chosen
    order = np.array(cands.rank, dtype=np.int64)  # (size, kind, index)
    nonzero_const = np.array([it[0] == "==" and it[3] != 0 for it in cands.items])
    allowed = np.nonzero((order[:, 0] <= max_size) & (nonzero_const if consts else ~nonzero_const))[0]
    if not len(allowed):
        return chosen
    M = np.array([cands.rejects[i] for i in allowed])
    order = order[allowed]
    while uncovered.any():
        gain = (M & uncovered).sum(axis=1)
        best = gain.max()
        if best == 0:
            break
        ties = np.nonzero(gain == best)[0]
        pick = ties[np.lexsort((order[ties, 2], order[ties, 1], order[ties, 0]))[0]]
        chosen.append(int(allowed[pick]))
        uncovered &= ~M[pick]
    return chosen


def _compress(cands: _Cands, chosen: list[int], fixed: np.ndarray, deadline: float) -> list[int]:
    """Replace two chosen predicates by one that rejects everything only they rejected.

    Greedy cover can take a small predicate that rejects most invalid records (``k - p > 0``)
    and patch the rest with another; one predicate covering both (``k - p * 2 >= 0``) is
    the better rule."""
    if len(chosen) < 2:
        return chosen
    M = np.array(cands.rejects)
    order = np.array(cands.rank, dtype=np.int64)
    ok_kind = np.array([not (it[0] == "==" and it[3] != 0) for it in cands.items])
    changed = True
    while changed and len(chosen) >= 2 and time.monotonic() < deadline:
        changed = False
        for a, b in combinations(range(len(chosen)), 2):
            rest = [chosen[k] for k in range(len(chosen)) if k not in (a, b)]
            others = fixed | (M[rest].any(axis=0) if rest else False)
            need = (M[chosen[a]] | M[chosen[b]]) & ~others
            if not need.any():
                continue
            fits = np.nonzero(M[:, need].all(axis=1) & ok_kind)[0]
            fits = fits[(fits != chosen[a]) & (fits != chosen[b])]
            if not len(fits):
                continue
            pick = fits[np.lexsort((order[fits, 2], order[fits, 1], order[fits, 0]))[0]]
            chosen = rest + [int(pick)]
            changed = True
            break
    return chosen


def _disjunctions(X: np.ndarray, names: Sequence[str], valid: np.ndarray, inv: np.ndarray, uncovered: np.ndarray,
                  deadline: float, groups: Sequence[set[str]] = ()) -> list[Pred]:
    """Disjunctions of two or three equalities (``a == b``, ``a == 1``, ``a == 0``) that hold
    on every valid record and reject uncovered invalid ones: broadcasting's vocabulary."""
    atoms: list[Pred] = []
    truth: list[np.ndarray] = []
    varying = [i for i in range(len(names)) if len(np.unique(X[i][valid])) > 1]
    for i in varying:
        for c in (0, 1):
            atoms.append(("==", sym(names[i]), c))
            truth.append(X[i] == c)
    for i, j in combinations(varying, 2):
        atoms.append(("==", ("-", sym(names[i]), sym(names[j])), 0))
        truth.append(X[i] == X[j])
    if not atoms:
        return []
    T = np.array(truth)
    Tv, Ti = T[:, valid], T[:, inv]
    syms_of = [pred_symbols(a) for a in atoms]
    out: list[Pred] = []
    left = uncovered.copy()
    while left.any() and time.monotonic() < deadline:
        # atoms false on some record still to reject, and true on some valid record
        useful = (~Ti[:, left]).any(axis=1) & Tv.any(axis=1) & ~Tv.all(axis=1)
        idx = np.nonzero(useful)[0]
        if not len(idx):
            break
        score = (~Ti[idx][:, left]).sum(axis=1)
        idx = idx[np.argsort(-score, kind="stable")[:60]]
        best, best_gain = None, 0
        V, L = Tv[idx], Ti[idx][:, left]
        m = len(idx)
        # Ties go to the disjunction whose symbols one shape expression combines (broadcasting:
        # the dims that max() joins), then to the fewest symbols: a cohesive rule, not a coincidence.
        def width(combo):
            used = set().union(*(syms_of[i] for i in combo))
            return (min((len(used - g) for g in groups), default=0), len(used), combo)

        iu = np.triu_indices(m, 1)
        cov2 = (V[:, None, :] | V[None, :, :]).all(axis=2)
        gain2 = (~(L[:, None, :] | L[None, :, :])).sum(axis=2)
        g = np.where(cov2, gain2, 0)[iu]
        if len(g) and g.max() > 0:
            ties = np.nonzero(g == g.max())[0][:5000]
            best = min(((int(idx[iu[0][k]]), int(idx[iu[1][k]])) for k in ties), key=width)
            best_gain = int(g.max())
        else:
            cands3: list[tuple[int, tuple]] = []
            for a in range(m - 2):
                if time.monotonic() > deadline:
                    break
                Va, La = V[a] | V[a + 1:, None, :] | V[None, a + 1:, :], L[a] | L[a + 1:, None, :] | L[None, a + 1:, :]
                gain3 = np.triu(np.where(Va.all(axis=2), (~La).sum(axis=2), 0), 1)
                if not gain3.size or gain3.max() == 0 or gain3.max() < best_gain:
                    continue
                if gain3.max() > best_gain:
                    best_gain, cands3 = int(gain3.max()), []
                for b, c in zip(*np.nonzero(gain3 == best_gain)):
                    if len(cands3) < 5000:
                        cands3.append((best_gain, (int(idx[a]), int(idx[a + 1 + b]), int(idx[a + 1 + c]))))
            if cands3:
                best = min((c for _, c in cands3), key=width)
        if best is None:
            break
        out.append(("or", [atoms[i] for i in best]))
        left &= np.logical_or.reduce(Ti[list(best)])
    return out


def prune_implied(preds: list[Pred], dims: Sequence[str], attrs: Sequence[str], timeout_ms: int = 500) -> list[Pred]:
    """Drop each predicate that the others (and positive dimensions) imply."""
    env = {n: z3.Int(n) for n in list(dims) + list(attrs)}
    domain = [env[d] >= 1 for d in dims]
    zs = [pred_to_z3(p, env) for p in preds]
    keep = list(range(len(preds)))
    for i in reversed(range(len(preds))):
        others = [zs[j] for j in keep if j != i]
        s = z3.Solver()
        s.set("timeout", timeout_ms)
        s.add(*domain, *others, z3.Not(zs[i]))
        if s.check() == z3.unsat:
            keep.remove(i)
    return [preds[i] for i in keep]


def infer_constraints(X: np.ndarray, names: Sequence[str], valid: np.ndarray, inv: np.ndarray,
                      extra: Sequence[Expr], dims: Sequence[str], attrs: Sequence[str], deadline: float,
                      max_size: int = 5, derived: list = (), disjunctions_after: int = 3) -> tuple[list[Pred], int]:
    """(predicates, invalid records left accepted). ``valid``/``inv``: column masks of X.
    ``disjunctions_after``: the size up to which single predicates are tried before the
    disjunctions (3; 1 puts broadcasting's disjunctions before ``2 - a >= 0``-like
    predicates that few records cannot tell from them)."""
    X = np.asarray(X, dtype=np.float64)
    n_inv = int(inv.sum())
    if n_inv == 0:
        return [], 0
    env = {n: X[i] for i, n in enumerate(names)}
    cands = _Cands()
    for e in extra:  # shape expressions come from the valid records: no extra hypothesis, rank as size 1
        vals = evaluate(e, env)
        cands.add_rows([e], np.broadcast_to(vals, (X.shape[1],))[None, :].copy(), valid, inv, [1])
    bank = Bank(X, list(names), check=valid, max_rows=30_000, max_cells=3e7, deadline=deadline, derived=list(derived))
    while bank.size < max_size:
        if bank.grow() is None:
            break
    for k, lv in bank.all_rows():
        rows = np.nonzero(lv.mask != 0)[0]
        if not len(rows):
            continue
        cands.add_rows(_RowMap(_LazyExprs(bank, k), rows), lv.vals[rows], valid, inv, [k] * len(rows))
    # Occam: small predicates first, then disjunctions of small atoms, then larger
    # predicates; equalities with a nonzero constant (the likeliest to memorize the values
    # of the few seed calls) only last.
    uncovered = np.ones(n_inv, bool)
    chosen = _greedy(cands, uncovered, disjunctions_after, consts=False)
    disj: list[Pred] = []
    fixed = np.zeros(n_inv, bool)  # rejected by the disjunctions
    if uncovered.any() and time.monotonic() < deadline:
        disj = _disjunctions(X, names, valid, inv, uncovered, deadline, [symbols_of(e) for e in extra])
        col_env = {n: X[i][inv] for i, n in enumerate(names)}
        for p in disj:
            fixed |= ~eval_pred(p, col_env)
        uncovered &= ~fixed
    for size in sorted({3, max_size}):
        if uncovered.any():
            chosen += _greedy(cands, uncovered, size, consts=False)
    if uncovered.any():
        chosen += _greedy(cands, uncovered, max_size, consts=True)
    if uncovered.any():
        return [cands.pred(i) for i in chosen] + disj, int(uncovered.sum())
    chosen = _compress(cands, chosen, fixed, deadline)
    col_env = {n: X[i][inv] for i, n in enumerate(names)}
    rejects = [cands.rejects[i] for i in chosen] + [~eval_pred(p, col_env) for p in disj]
    keep = _drop_redundant(rejects, len(chosen))
    preds = [([cands.pred(i) for i in chosen] + disj)[k] for k in keep]
    return prune_implied(preds, dims, attrs), 0


def _drop_redundant(rejects: list[np.ndarray], n_single: int) -> list[int]:
    """Indices of the predicates to keep: drop each one whose invalid records the others
    reject too. The single predicates were chosen before the disjunctions, on evidence
    that a disjunction may explain better (``2 - a >= 0`` where broadcasting's
    ``a == 1 or b == 1 or a == b`` is the rule), so they are tried first, the last chosen
    first; then the disjunctions, the last chosen first."""
    keep = list(range(len(rejects)))
    order = list(reversed(range(n_single))) + list(reversed(range(n_single, len(rejects))))
    for i in order:
        rest = [j for j in keep if j != i]
        if rest and np.logical_or.reduce([rejects[j] for j in rest]).all():
            keep = rest
    return keep


class _RowMap:
    def __init__(self, lazy: _LazyExprs, rows: np.ndarray) -> None:
        self.lazy, self.rows = lazy, rows

    def __getitem__(self, r: int) -> Expr:
        return self.lazy[self.rows[r]]
