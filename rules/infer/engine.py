"""Inference for one template: shape rules, constraints, held-out validation, the rule.

Per template (see :mod:`rules.infer.group`):

1. the valid records must have one output structure (one tensor, or a fixed tuple), and
   there must be ``min_valid`` of them, unless the template has tensors and no symbols;
2. about 20% of the valid and of the invalid records are held out (chosen by their
   fingerprints, so the split is the same on every run);
3. shape rules from the training valid records (:mod:`rules.infer.shapes`);
4. constraints (:mod:`rules.infer.constraints`) that reject every training invalid
   record, except those a dtype table already rejects (a dtype combination never seen
   valid) and those that are *value-dependent*: an invalid record with exactly the
   symbols and dtypes of a valid one failed because of its tensor values, which no
   shape rule can decide (counted in the evidence, and left to precision);
5. equalities that every record shows and none tests (a square matrix seen only square)
   are kept: without a record where they differ, generalizing past them is a guess;
6. the rule counts only if it is right on every held-out valid record (constraints hold,
   shapes predicted); its held-out accuracy counts the held-out invalid records too.

``sample_calls`` then draws new instances from the rule with z3 (through the same
``rules.solve.instantiate`` the generator uses) for the precision measurement.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from itertools import combinations
from typing import Iterator

import numpy as np

from rules.infer.constraints import infer_constraints
from rules.infer.expr import eval_int, holds, parse_expr, parse_pred, pred_to_str, sym, to_str
from rules.infer.group import Obs, Template
from rules.infer.shapes import infer_shapes

MAX_SAMPLES = 5  # valid records kept with a rule, for concrete replay
MAX_FLOATS = 4
MAX_ENUM_VALID = 160  # records given to enumeration (the rest only checks)
MAX_ENUM_INVALID = 240
MAX_SHAPE_VALID = 600  # records for relevance and sketches


@dataclass
class Outcome:
    rule: dict | None
    reason: str  # "ok" or why there is no rule
    heldout_right: int = 0
    heldout_total: int = 0


FOLDS = 3  # held-out folds tried in turn (of 5), see infer_template


def _held(o: Obs, fold: int = 0) -> bool:
    return int(o.record.fingerprint[:8] or "0", 16) % 5 == fold


def _matrix(obs: list[Obs], n: int) -> np.ndarray:
    return np.array([o.syms for o in obs], dtype=np.float64).reshape(len(obs), n).T


def _floordivs(e) -> list:
    if e[0] in ("s", "c"):
        return []
    return ([e] if e[0] == "//" else []) + _floordivs(e[1]) + _floordivs(e[2])


def _spread(obs: list[Obs], limit: int) -> list[Obs]:
    """At most ``limit`` records, evenly spread (deterministic)."""
    if len(obs) <= limit:
        return obs
    idx = np.linspace(0, len(obs) - 1, limit).round().astype(int)
    return [obs[i] for i in sorted(set(idx.tolist()))]


def _env(t: Template, o: Obs) -> dict[str, int]:
    return dict(zip(t.symbols, o.syms))


def _right_valid(t: Template, o: Obs, preds, shapes) -> bool:
    env = _env(t, o)
    if not all(holds(p, env) for p in preds):
        return False
    got = [[eval_int(e, env) for e in shape] for shape in shapes]
    return got == [list(s) for s, _ in o.outputs[1]]


def _samples(valid: list[Obs]) -> list[dict]:
    chosen: list[Obs] = []
    seen_dtypes: set = set()
    for o in valid:  # one per dtype combination first, then spread
        if o.dtypes not in seen_dtypes and len(chosen) < MAX_SAMPLES:
            seen_dtypes.add(o.dtypes)
            chosen.append(o)
    for o in _spread(valid, MAX_SAMPLES * 2):
        if len(chosen) >= MAX_SAMPLES:
            break
        if o not in chosen:
            chosen.append(o)
    return [{"args": o.record.args, "kwargs": o.record.kwargs, "outputs": o.record.outputs} for o in chosen]


def products(t: Template) -> list[tuple]:
    """Derived leaves for the enumeration: each tensor's element count and the product of
    each integer list (a target shape): reshape's rules are about these."""
    out = []

    def chain(names: list[str]):
        e = sym(names[0])
        for n_ in names[1:]:
            e = ("*", e, sym(n_))
        return (e, names)

    for i, slot in enumerate(t.slots):
        if slot.rank >= 2:
            out.append(chain([f"t{i}_{k}" for k in range(slot.rank)]))

    def walk(node):
        if isinstance(node, list):
            syms = [v["$sym"] for v in node if isinstance(v, dict) and "$sym" in v]
            if len(syms) >= 2:
                out.append(chain(syms))
            for v in node:
                walk(v)
        elif isinstance(node, dict) and not any(k.startswith("$") for k in node):
            pass

    walk(t.skeleton["args"])
    walk(list(t.skeleton["kwargs"].values()))
    return out


def untested_equalities(t: Template, valid: list[Obs], invalid: list[Obs]) -> list:
    """Equalities every record shows and none puts to the test: two symbols equal in every
    record, valid or invalid (``a - b == 0``), a symbol with one value in every record
    (``a == 3``). Without a record where they differ, generalizing past them is a guess
    (a square matrix, a grid's last dim of 2, one batch size across inputs)."""
    if not valid:
        return []
    X = _matrix(valid + invalid, len(t.symbols))
    out = []
    const_rows = set()
    for i, name in enumerate(t.symbols):
        if len(np.unique(X[i])) == 1:
            out.append(("==", sym(name), int(X[i][0])))
            const_rows.add(i)
    for i, j in combinations(range(len(t.symbols)), 2):
        if i in const_rows or j in const_rows:
            continue
        if np.array_equal(X[i], X[j]):
            out.append(("==", ("-", sym(t.symbols[i]), sym(t.symbols[j])), 0))
    return out


def infer_template(t: Template, deadline: float, min_valid: int = 2) -> Outcome:
    """The template's rule, validated on held-out records. When a held-out valid record
    breaks the rule (a constraint the few training records happened to satisfy), the
    constraint search runs again with disjunctions tried before the larger single
    predicates, and then both orders with the next fold held out, so that the records
    which showed the mistake are learned from and the new rule is still judged on
    records it never saw (at most ``FOLDS`` folds; precision sampling checks the final
    rule afresh)."""
    out = None
    for fold in range(FOLDS):
        for disjunctions_after in (3, 1):
            if out is not None and (time.monotonic() > deadline or not out.reason.startswith(
                    ("held-out valid record breaks", "shape wrong on a held-out"))):
                return out
            out = _infer_fold(t, deadline, min_valid, fold, disjunctions_after)
    return out


def _infer_fold(t: Template, deadline: float, min_valid: int, fold: int, disjunctions_after: int = 3) -> Outcome:
    valid = t.valid
    if not valid:
        return Outcome(None, "no valid records")
    forms = {(o.outputs[0], tuple(len(s) for s, _ in o.outputs[1])) if o.outputs else None for o in valid}
    if None in forms:
        return Outcome(None, "outputs are not tensors")
    if len(forms) != 1:
        return Outcome(None, "output structure varies")
    form, out_ranks = next(iter(forms))
    held_v = [o for o in valid if _held(o, fold)] if len(valid) >= 5 else []
    train_v = [o for o in valid if not (len(valid) >= 5 and _held(o, fold))]
    invalid = t.invalid
    held_i = [o for o in invalid if _held(o, fold)] if len(invalid) >= 5 else []
    train_i = [o for o in invalid if not (len(invalid) >= 5 and _held(o, fold))]
    if len(train_v) < min_valid and (t.symbols or not t.slots):
        # A template without symbols has one instance (its tensors are scalars): one valid
        # record is all there is to see. (Without tensors either it is a constant.)
        return Outcome(None, f"fewer than {min_valid} valid records")
    n = len(t.symbols)
    dtype_table: dict[tuple, tuple] = {}
    for o in valid:
        dtype_table.setdefault(o.dtypes, tuple(d for _, d in o.outputs[1]))
    twins = {(tuple(o.syms), o.dtypes) for o in valid}
    cover = [o for o in train_i if o.dtypes in dtype_table and (tuple(o.syms), o.dtypes) not in twins]
    dtype_rejected = sum(o.dtypes not in dtype_table for o in invalid)
    value_dependent = sum(o.dtypes in dtype_table and (tuple(o.syms), o.dtypes) in twins for o in invalid)

    # 3. shapes
    shape_v = _spread(train_v, MAX_SHAPE_VALID)
    targets, positions = [], []
    for j, r in enumerate(out_ranks):
        for k in range(r):
            targets.append(np.array([o.outputs[1][j][0][k] for o in shape_v], dtype=np.float64))
            positions.append((k, r))
    derived = products(t)
    exprs = infer_shapes(_matrix(shape_v, n), t.symbols, targets, deadline, positions=positions,
                         enum_columns=MAX_ENUM_VALID, derived=derived) if targets else []
    enum_v = _spread(train_v, MAX_ENUM_VALID)
    Xv = _matrix(enum_v, n)
    shapes, pos = [], 0
    for r in out_ranks:
        shapes.append(exprs[pos:pos + r])
        pos += r
    missing = [i for i, e in enumerate(exprs) if e is None]
    if missing:
        return Outcome(None, "no shape expression" if time.monotonic() < deadline else "time limit (shapes)")
    for o in train_v:  # enumeration saw a spread; every training record must agree
        env = _env(t, o)
        if [[eval_int(e, env) for e in s] for s in shapes] != [list(s) for s, _ in o.outputs[1]]:
            return Outcome(None, "shape expression wrong on a training record")

    # 4. constraints
    preds: list = []
    if cover:
        rounds = 0
        enum_i = _spread(cover, MAX_ENUM_INVALID)
        while True:
            X = np.concatenate([Xv, _matrix(enum_i, n)], axis=1)
            vmask = np.zeros(X.shape[1], bool)
            vmask[: len(enum_v)] = True
            extra = [e for shape in shapes for e in shape if e[0] not in ("s", "c")]
            extra += [("%", d[1], d[2]) for e in list(extra) for d in _floordivs(e)]  # exact divisions
            preds, left = infer_constraints(X, t.symbols, vmask, ~vmask, extra,
                                            [s for s in t.symbols if s not in t.attr_symbols], t.attr_symbols, deadline,
                                            derived=derived, disjunctions_after=disjunctions_after)
            if left:
                return Outcome(None, f"{left} invalid records not rejected" if time.monotonic() < deadline
                               else "time limit (constraints)")
            wrong_v = [o for o in train_v if not all(holds(p, _env(t, o)) for p in preds)]
            wrong_i = [o for o in cover if all(holds(p, _env(t, o)) for p in preds)]
            if not wrong_v and not wrong_i:
                break
            rounds += 1
            if rounds > 3 or time.monotonic() > deadline:
                return Outcome(None, "constraints do not generalize to all training records")
            enum_v = enum_v + [o for o in wrong_v if o not in enum_v][:40]
            enum_i = enum_i + [o for o in wrong_i if o not in enum_i][:60]
            Xv = _matrix(enum_v, n)

    # 4b. what the records never tested stays as they show it
    untested = untested_equalities(t, train_v, train_i)
    if untested:
        from rules.infer.constraints import prune_implied

        preds = prune_implied(preds + untested, [s for s in t.symbols if s not in t.attr_symbols], t.attr_symbols)

    # 5. held-out validation
    right = total = 0
    for o in held_v:
        total += 1
        env = _env(t, o)
        broken = [pred_to_str(p) for p in preds if not holds(p, env)]
        if broken:
            return Outcome(None, f"held-out valid record breaks {broken[0]}", 0, len(held_v))
        if not _right_valid(t, o, preds, shapes):
            return Outcome(None, "shape wrong on a held-out valid record", 0, len(held_v))
        right += 1
    for o in held_i:
        if o.dtypes in dtype_table and (tuple(o.syms), o.dtypes) in twins:
            continue
        total += 1
        env = _env(t, o)
        right += o.dtypes not in dtype_table or not all(holds(p, env) for p in preds)
    all_valid = train_v + held_v
    attrs = {}
    for name in t.attr_symbols:
        i = t.symbols.index(name)
        vals = [o.syms[i] for o in all_valid]
        attrs[name] = [int(min(vals)), int(max(vals))]
    floats = {}
    for fi, name in enumerate(t.floats):
        vals = sorted({o.floats[fi] for o in all_valid})
        floats[name] = vals[:MAX_FLOATS]
    rule = {
        "api": t.api, "signature": t.signature, "key": t.key,
        "template": {"args": t.skeleton["args"], "kwargs": t.skeleton["kwargs"],
                     "tensors": [{"label": s.label, "rank": s.rank, "kind": s.kind} for s in t.slots],
                     "attrs": attrs, "floats": floats},
        "dtypes": [{"in": list(k), "out": list(v)} for k, v in sorted(dtype_table.items())],
        "outputs": {"form": form, "shapes": [[to_str(e) for e in s] for s in shapes]},
        "constraints": [pred_to_str(p) for p in preds],
        "evidence": {"valid": len(train_v), "invalid": len(cover), "heldout_valid": len(held_v),
                     "heldout_invalid": len(held_i), "heldout_checked": total, "dtype_rejected": dtype_rejected,
                     "value_dependent": value_dependent},
        "heldout_accuracy": round(right / total, 4) if total else None,
        "precision": None,
        "samples": _samples(all_valid),
    }
    # the text forms must read back as the same formulas
    assert [parse_pred(c) for c in rule["constraints"]] == preds
    assert [[parse_expr(e) for e in s] for s in rule["outputs"]["shapes"]] == shapes
    return Outcome(rule, "ok", right, total)


# ---- precision sampling ------------------------------------------------------------------------

def _fill(node, in_types, attrs, tensors_meta):
    if isinstance(node, list):
        return [_fill(v, in_types, attrs, tensors_meta) for v in node]
    if isinstance(node, dict):
        if "$tensor" in node:
            i = node["$tensor"]
            marker = {"shape": list(in_types[i].shape), "dtype": in_types[i].dtype}
            if tensors_meta[i].get("kind"):
                marker["kind"] = tensors_meta[i]["kind"]
            return marker
        if "$sym" in node:
            return int(attrs[node["$sym"]])
        if "$float" in node:
            return float(attrs[node["$float"]])
    return node


def sample_calls(rule: dict, framework: str, n: int, seed: int = 0) -> list[dict]:
    """Up to ``n`` calls drawn from the rule: {"args", "kwargs", "expect": [[shape, dtype], ...]}."""
    return list(iter_sample_calls(rule, framework, n, seed))


def iter_sample_calls(rule: dict, framework: str, n: int, seed: int = 0) -> Iterator[dict]:
    """``sample_calls`` one call at a time, so that a caller that bounds the time (z3 can
    take long on a rule, and each instance is a solver run) keeps the calls made so far."""
    from rules.inferred import InferredSpec
    from rules.solve import Bounds, instantiate

    spec = InferredSpec(rule, framework)
    if not spec.table:
        return  # only dtypes the generator never makes (complex ...): no precision
    ranks = spec.ranks
    bounds = Bounds(max_rank=max([4, *ranks]), max_dim=64, max_elements=4096)
    rng = random.Random(f"{seed}/{rule['id']}")
    made = 0
    seen: set[str] = set()
    tpl = rule["template"]
    for _ in range(n * 2):
        if made >= n:
            break
        try:
            inst = instantiate(spec, framework, rng, bounds, timeout_ms=2000)
        except Exception:  # z3 gave up, or a malformed instance: no sample
            inst = None
        if inst is None:
            continue
        args = _fill(tpl["args"], inst.in_types, inst.attrs, tpl["tensors"])
        kwargs = {k: _fill(v, inst.in_types, inst.attrs, tpl["tensors"]) for k, v in tpl["kwargs"].items()}
        key = repr((args, kwargs))
        if key in seen:
            continue
        seen.add(key)
        made += 1
        yield {"args": args, "kwargs": kwargs, "expect": [[list(o.shape), o.dtype] for o in inst.out_types]}
