"""Shape rules: for each output dimension, the smallest expression matching every valid record.

The search, cheapest first, stopping for each dimension at the first match:

1. the bank over all symbols, level by level (sizes 1, 3, 5): the first row equal to
   the dimension's value vector is the smallest expression (observational equivalence:
   one expression per vector, so a match is found in one hash lookup per level);
2. for the dimensions still open, the bank over their *relevant* symbols only, up to
   size 7 (or 9 when few symbols are relevant). A symbol is relevant when two valid
   records that differ in that symbol alone have different values of the dimension
   (mutation makes many such pairs), or when the data has no such pair to tell;
3. the sketch search (:mod:`rules.infer.sketch`) over the relevant symbols;
4. a literal constant, when the dimension never varies.
"""

from __future__ import annotations

import re
import time
from typing import Sequence

import numpy as np

from rules.infer import sketch
from rules.infer.bank import Bank
from rules.infer.expr import Expr, const, evaluate, sym


SKETCH_SECONDS = 10.0  # per output dimension


def _groups(X: np.ndarray, rows: Sequence[int]) -> dict[bytes, list[int]]:
    keys = np.ascontiguousarray(X[list(rows)].T) if len(rows) else np.zeros((X.shape[1], 0))
    out: dict[bytes, list[int]] = {}
    for r in range(X.shape[1]):
        out.setdefault(keys[r].tobytes(), []).append(r)
    return out


def _pair_evidence(X: np.ndarray, t: np.ndarray, fixed: Sequence[int], j: int) -> tuple[int, int, int, int]:
    """Among pairs of records equal on ``fixed``: (pairs differing in symbol j, how many of
    those differ in t, pairs equal in j, how many of those differ in t)."""
    pd = cd = ps = cs = 0
    for rows in _groups(X, fixed).values():
        if len(rows) < 2:
            continue
        xs, ts = X[j, rows], t[rows]
        for a in range(len(rows) - 1):
            diff = xs[a + 1:] != xs[a]
            tdiff = ts[a + 1:] != ts[a]
            pd += int(diff.sum())
            cd += int((diff & tdiff).sum())
            ps += int((~diff).sum())
            cs += int((~diff & tdiff).sum())
            if pd + ps > 2000:
                return pd, cd, ps, cs
    return pd, cd, ps, cs


def _determines(X: np.ndarray, t: np.ndarray, rows: Sequence[int]) -> bool:
    return all(len(np.unique(t[g])) == 1 for g in _groups(X, rows).values())


def relevant_symbols(X: np.ndarray, names: Sequence[str], t: np.ndarray, limit: int = 8) -> list[str]:
    """The symbols ``t`` depends on, at most ``limit``, in the order they were found.

    Exact evidence first: a symbol whose change alone (two records equal in every other
    symbol: mutation makes many) changes ``t`` is relevant. Then, while ``t`` is not yet a
    function of the symbols found, the candidate whose changes most often change ``t``
    among records that agree on the symbols found so far joins them (a grid or random
    calls have few exact pairs, but many that agree on a few symbols), measured against
    pairs that agree on it too; without such pairs, the candidate most rank-correlated
    with ``t``."""
    n, R = X.shape
    varying = [i for i in range(n) if len(np.unique(X[i])) > 1]
    if len(np.unique(t)) < 2:
        return []
    found: list[int] = []
    for i in varying:
        if _pair_evidence(X, t, [k for k in range(n) if k != i], i)[1]:
            found.append(i)
    rt = _ranks(t)
    corr = {}
    for i in varying:
        c = np.corrcoef(_ranks(X[i]), rt)[0, 1]
        corr[i] = 0.0 if np.isnan(c) else abs(float(c))
    while len(found) < limit and not _determines(X, t, found):
        rest = [i for i in varying if i not in found]
        if not rest:
            break
        scored = []
        for j in rest:
            # lift: how much more often t changes when j changes than when it does not
            # (other unfixed relevant symbols change t either way)
            pd, cd, ps, cs = _pair_evidence(X, t, found, j)
            if pd >= 3:
                scored.append((cd / pd - (cs / ps if ps else 0.0), corr[j], j))
        if scored and max(scored)[0] >= 0.1:
            found.append(max(scored)[2])
            continue
        best = max(rest, key=lambda j: corr[j])
        if corr[best] < 0.1:
            break
        found.append(best)
    return [names[i] for i in found[:limit]]


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v))
    return r


def _alias(X: np.ndarray, names: Sequence[str], e: Expr, position: tuple[int, int] | None) -> Expr:
    """Among symbols equal to ``e`` on every record, the one at the output's position
    (dim k of an input of the output's rank), else ``e``: the data cannot tell them apart."""
    if e[0] != "s" or position is None:
        return e
    i = list(names).index(e[1])
    same = [names[j] for j in range(len(names)) if np.array_equal(X[j], X[i])]
    k, rank = position
    for n in same:
        m = re.fullmatch(r"t(\d+)_(\d+)", n)
        if m and int(m.group(2)) == k and sum(1 for x in names if x.startswith(f"t{m.group(1)}_")) == rank:
            return sym(n)
    return e


def _spread_cols(R: int, limit: int) -> np.ndarray:
    if R <= limit:
        return np.arange(R)
    return np.unique(np.linspace(0, R - 1, limit).round().astype(int))


def infer_shapes(X: np.ndarray, names: Sequence[str], targets: Sequence[np.ndarray], deadline: float,
                 max_rows: int = 40_000, positions: Sequence[tuple[int, int]] | None = None,
                 enum_columns: int = 160, derived: list = ()) -> list[Expr | None]:
    """One expression per target vector (None where nothing matched in time).

    Enumeration sees at most ``enum_columns`` records (spread over ``X``); every match is
    checked on all of them. ``positions[j]``: (dim index, output rank) of target j, to
    resolve aliased symbols."""
    found: list[Expr | None] = [None] * len(targets)
    if not len(targets):
        return found
    X = np.asarray(X, dtype=np.float64)
    T = [np.asarray(t, dtype=np.float64) for t in targets]
    env = {n: X[i] for i, n in enumerate(names)}
    cols = _spread_cols(X.shape[1], enum_columns)

    def match(bank: Bank, t: np.ndarray, level=None) -> Expr | None:
        for hit in bank.find(t[cols], level):
            e = bank.expr(*hit)
            with np.errstate(all="ignore"):
                if np.array_equal(evaluate(e, env), t):
                    return e
        return None

    # 1. the bank over every symbol
    bank = Bank(X[:, cols], list(names), max_rows=max_rows, max_cells=4e7, deadline=deadline, derived=list(derived))
    constant = [len(np.unique(t)) == 1 for t in T]
    for j, t in enumerate(T):
        e = match(bank, t)
        if e is not None:
            found[j] = _alias(X, names, e, positions[j] if positions else None)
        elif constant[j]:  # never varies: a symbol equal to it, or the literal, not a coincidence of several
            found[j] = const(int(t[0]))
    while any(f is None for f in found) and bank.size < 5:
        lv = bank.grow()
        if lv is None:
            break
        for j, t in enumerate(T):
            if found[j] is None:
                found[j] = match(bank, t, lv)
    # 2. and 3. per open target: relevant symbols, a deeper bank, then sketches
    for j, t in enumerate(T):
        if found[j] is not None or time.monotonic() > deadline:
            continue
        if len(np.unique(t)) == 1:
            found[j] = const(int(t[0]))
            continue
        rel = relevant_symbols(X, names, t)
        if not rel:
            continue
        idx = [list(names).index(r) for r in rel]
        small = Bank(X[idx][:, cols], rel, max_rows=max_rows * 3, max_cells=1.5e8, deadline=deadline)
        limit = 9 if len(rel) <= 4 else 7
        while small.size < limit:
            lv = small.grow()
            if lv is None:
                break
            found[j] = match(small, t, lv)
            if found[j] is not None:
                break
        if found[j] is None and time.monotonic() < deadline:
            found[j] = sketch.search({r: env[r] for r in rel}, t.astype(np.int64), rel,
                                     min(deadline, time.monotonic() + SKETCH_SECONDS))
    return found
