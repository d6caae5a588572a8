"""Bottom-up enumeration of expressions with observational equivalence (DESIGN §4).

The bank holds every expression of the language up to a size, one per *value vector*:
an expression is evaluated on every record at once (a numpy row), and two expressions
whose rows are equal are one (the smaller, found first, is kept). Levels grow by size
(1, 3, 5, ...): level ``k`` combines levels ``a`` and ``b`` with ``a + b + 1 = k`` under
each operator, vectorized over all pairs of rows at once.

Canonical forms cut the pairs before they are computed: each symbol at most once (the
symbol bitmasks of the operands are disjoint), commutative operators take their operands
in one order only, at most one ``min``/``max`` per expression, no modulo by a constant
and no constant numerator of ``//``/``%``, constant sub-expressions only from two
constants (``1 + 2``, ``2 * 2``, ...). Everything else that is redundant (``x * 1``,
associativity) has a row equal to an earlier one and is dropped by the dedup.

Work is bounded by a row cap, a cell budget (row length times rows computed) and a
deadline, so a template with many symbols or records degrades to a smaller bank instead
of running away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from rules.infer.expr import COMMUTATIVE, Expr, apply_op, const, evaluate, sym

OP_ORDER = ("-", "+", "*", "//", "%", "max", "min")
MAX_LEAVES = 62  # symbol bitmasks are int64
NAN_KEY = 1.5e300  # NaN's stand-in when hashing (real values are capped at 2**40)


def row_hash(vals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row (wrapping uint64 arithmetic)."""
    v = np.where(np.isnan(vals), NAN_KEY, vals)
    bits = np.ascontiguousarray(v).view(np.uint64)
    bits = bits ^ (bits >> np.uint64(29))
    with np.errstate(over="ignore"):
        return (bits * weights).sum(axis=1, dtype=np.uint64)


@dataclass
class Level:
    vals: np.ndarray  # (E, R) float64
    mask: np.ndarray  # (E,) int64 symbol bitmask
    mm: np.ndarray  # (E,) bool: contains min/max
    op: np.ndarray  # (E,) int8: -1 leaf, else index into OP_ORDER
    left: np.ndarray  # (E,) int32 row in level lsize
    lsize: np.ndarray  # (E,) int16
    right: np.ndarray  # (E,) int32
    hashes: np.ndarray  # (E,) uint64

    def __len__(self) -> int:
        return len(self.mask)


class Bank:
    def __init__(self, values: np.ndarray, names: list[str], *, check: np.ndarray | None = None,
                 consts: tuple[int, ...] = (1, 2), max_rows: int = 50_000, max_cells: float = 6e7,
                 deadline: float | None = None, allow_minmax: bool = True, seed: int = 0,
                 derived: list[tuple[Expr, list[str]]] = ()) -> None:
        """``values``: (symbols, records); ``check``: the columns every kept row must be
        defined on (default: all). ``derived``: extra leaves, each an expression over
        symbols (a tensor's element count ``t0_0 * t0_1 * t0_2``) with the symbols it
        uses; it enters as one leaf that uses all of them."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError("values must be (symbols, records)")
        self.names = list(names[:MAX_LEAVES])
        env = {n: values[i] for i, n in enumerate(names)}
        self.derived = [(e, used) for e, used in derived if all(u in self.names for u in used)]
        extra = [evaluate(e, env) for e, _ in self.derived]
        values = values[: len(self.names)]
        self.R = values.shape[1]
        self.check = np.ones(self.R, bool) if check is None else np.asarray(check, bool)
        self.max_rows, self.max_cells, self.deadline = max_rows, max_cells, deadline
        self.ops = [o for o in OP_ORDER if allow_minmax or o not in ("min", "max")]
        rng = np.random.default_rng(seed + 17)
        self.weights = rng.integers(1, 2 ** 63, size=self.R, dtype=np.uint64) | np.uint64(1)
        self.cells = 0.0
        self.rows = 0
        self.exhausted = False  # a cap or the deadline stopped growth
        self.levels: dict[int, Level] = {}
        self.consts = list(consts)
        leaves = [values[i] for i in range(len(self.names))] + [np.full(self.R, float(c)) for c in self.consts] + extra
        vals = np.array(leaves, dtype=np.float64).reshape(len(leaves), self.R)
        n = len(self.names)
        bit = {name: 1 << i for i, name in enumerate(self.names)}
        mask = np.array([1 << i for i in range(n)] + [0] * len(self.consts)
                        + [sum(bit[u] for u in used) for _, used in self.derived], dtype=np.int64)
        ok = np.isfinite(vals[:, self.check]).all(axis=1)
        h = row_hash(vals, self.weights)
        _, first = np.unique(h, return_index=True)
        keep = np.sort(first)  # a symbol equal to another on every record is kept once
        keep = keep[ok[keep]]
        E = len(keep)
        self.levels[1] = Level(vals[keep], mask[keep], np.zeros(E, bool), np.full(E, -1, np.int8),
                               keep.astype(np.int32), np.zeros(E, np.int16), np.zeros(E, np.int32), h[keep])
        self.seen = np.sort(h[keep])
        self.rows = E
        self.size = 1

    # -- expressions ---------------------------------------------------------------------
    def expr(self, size: int, idx: int) -> Expr:
        lv = self.levels[size]
        op = int(lv.op[idx])
        if op < 0:
            leaf = int(lv.left[idx])
            n, c = len(self.names), len(self.consts)
            if leaf < n:
                return sym(self.names[leaf])
            return const(self.consts[leaf - n]) if leaf < n + c else self.derived[leaf - n - c][0]
        ls = int(lv.lsize[idx])
        return (self.ops_all[op], self.expr(ls, int(lv.left[idx])), self.expr(size - 1 - ls, int(lv.right[idx])))

    ops_all = OP_ORDER

    def all_rows(self):
        """(size, level) pairs, smallest first."""
        return sorted(self.levels.items())

    # -- growth -----------------------------------------------------------------------------
    def _out_of_budget(self) -> bool:
        return (self.rows >= self.max_rows or self.cells >= self.max_cells
                or (self.deadline is not None and time.monotonic() > self.deadline))

    def grow(self) -> Level | None:
        """Build the next level (size + 2); None when nothing more can be built."""
        if self.exhausted:
            return None
        k = self.size + 2
        parts: list[tuple] = []
        for op in self.ops:
            for a in range(1, k - 1, 2):
                b = k - 1 - a
                if a not in self.levels or b not in self.levels:
                    continue
                if op in COMMUTATIVE and a > b:
                    continue
                self._combine(op, a, b, k, parts)
                if self._out_of_budget():
                    self.exhausted = True
                    break
            if self.exhausted:
                break
        self.size = k
        if not parts:
            if self.exhausted:
                return None
            self.levels[k] = Level(np.zeros((0, self.R)), np.zeros(0, np.int64), np.zeros(0, bool),
                                   np.zeros(0, np.int8), np.zeros(0, np.int32), np.zeros(0, np.int16),
                                   np.zeros(0, np.int32), np.zeros(0, np.uint64))
            return self.levels[k]
        cols = list(zip(*parts))
        lv = Level(np.concatenate(cols[0]), np.concatenate(cols[1]), np.concatenate(cols[2]),
                   np.concatenate(cols[3]), np.concatenate(cols[4]), np.concatenate(cols[5]),
                   np.concatenate(cols[6]), np.concatenate(cols[7]))
        self.levels[k] = lv
        return lv

    def _combine(self, op: str, a: int, b: int, k: int, parts: list) -> None:
        A, B = self.levels[a], self.levels[b]
        if not len(A) or not len(B):
            return
        op_i = OP_ORDER.index(op)
        is_mm = op in ("min", "max")
        cA, cB = A.mask == 0, B.mask == 0
        # Rows of A per chunk so that a chunk's pairs stay near 2 million cells.
        chunk = max(1, int(2_000_000 / max(1, len(B) * max(self.R, 1) / 8)))
        ib = np.arange(len(B))
        for i0 in range(0, len(A), chunk):
            i1 = min(len(A), i0 + chunk)
            ia = np.arange(i0, i1)
            M = (A.mask[i0:i1, None] & B.mask[None, :]) == 0
            if is_mm:
                M &= ~A.mm[i0:i1, None] & ~B.mm[None, :]
            else:
                M &= ~(A.mm[i0:i1, None] & B.mm[None, :])
            both_const = cA[i0:i1, None] & cB[None, :]
            if a == 1 and b == 1 and op in ("+", "-", "*"):
                pass
            else:
                M &= ~both_const
            if op in ("//", "%"):
                M &= ~cA[i0:i1, None]  # no constant numerator
            if op == "%":
                M &= ~cB[None, :]  # no modulo by a constant
            if op in COMMUTATIVE and a == b:
                M &= (ia[:, None] < ib[None, :]) | (both_const & (ia[:, None] <= ib[None, :]))
            li, ri = np.nonzero(M)
            if not len(li):
                continue
            li = li + i0
            vals = apply_op(op, A.vals[li], B.vals[ri])
            self.cells += vals.size
            ok = np.isfinite(vals[:, self.check]).all(axis=1)
            if not ok.any():
                continue
            li, ri, vals = li[ok], ri[ok], vals[ok]
            h = row_hash(vals, self.weights)
            _, first = np.unique(h, return_index=True)
            first.sort()
            h, li, ri, vals = h[first], li[first], ri[first], vals[first]
            pos = np.searchsorted(self.seen, h)
            pos = np.minimum(pos, len(self.seen) - 1)
            new = self.seen[pos] != h
            if not new.any():
                continue
            h, li, ri, vals = h[new], li[new], ri[new], vals[new]
            room = self.max_rows - self.rows
            if len(h) > room:
                h, li, ri, vals = h[:room], li[:room], ri[:room], vals[:room]
            self.seen = np.union1d(self.seen, h)
            self.rows += len(h)
            E = len(h)
            parts.append((vals, A.mask[li] | B.mask[ri], A.mm[li] | B.mm[ri] | is_mm, np.full(E, op_i, np.int8),
                          li.astype(np.int32), np.full(E, a, np.int16), ri.astype(np.int32), h))
            if self._out_of_budget():
                return

    def find(self, target: np.ndarray, level: Level | None = None) -> list[tuple[int, int]]:
        """(size, row) of the rows equal to ``target``, smallest first."""
        th = row_hash(np.asarray(target, dtype=np.float64)[None, :], self.weights)[0]
        found = []
        for k, lv in ([(self.size, level)] if level is not None else self.all_rows()):
            for idx in np.nonzero(lv.hashes == th)[0]:
                if np.array_equal(lv.vals[idx], target, equal_nan=True):
                    found.append((k, int(idx)))
        return found
