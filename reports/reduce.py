"""Reduction: delta debugging over the Graph, re-checking each candidate with the oracle.

The passes (``reports.passes``) propose smaller cases, cheapest and most effective first
(Shrink Ray style); each is run until it offers nothing that keeps the bug, and the whole
list again until none makes progress (a fixpoint) or the budget is spent. A candidate is

1. valid: every operator's rules hold on its concrete types and the recorded output types
   are the ones the spec gives (``reports.validate``; free, no oracle call), and it is
   strictly smaller than the current case (operators, nodes, outputs, elements, dtypes,
   attributes, compared in that order, so that reduction terminates);
2. the same bug: the oracle (``check(case) -> CheckResult``) gives the backend a verdict
   with the same signature (``reports.signature``), computed over the original case's
   operators: the same kind, stage and normalized message; for a mismatch the same
   culprit operator, found by a localization probe (``reports.localize``), a second call;
   where the bug is pinned on ATen operators (a mismatch, or a crash whose message names
   no operator), the probe must find the same ones (tried first, so it costs one compile).

Budgets: wall-clock seconds and oracle calls; the best case so far is kept whenever a
budget runs out. Identical candidates are checked once.

``reduce_bug_folder`` reduces a campaign's bug folder in place.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from corpus.case import Case
from corpus.tensor_type import FLOAT_DTYPES
from oracles.verdict import CheckResult, Verdict
from reports.localize import Culprit, localize_from_probe, probe_case
from reports.passes import PASSES, Context, Pass, plan_size
from reports.signature import Signature, sign
from reports.validate import is_valid
from rules.spec import OpSpec

Check = Callable[[Case], CheckResult]


class _OutOfBudget(Exception):
    pass


@dataclass
class Reduction:
    case: Case  # the smallest case that still shows the bug
    verdict: Verdict  # the backend's verdict on it
    result: CheckResult | None  # the oracle's whole result on it (None: no candidate was kept)
    culprit: str | None
    signature: Signature
    checks: int = 0  # oracle calls made
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)  # the passes whose candidates were kept, in order
    out_of_budget: bool = False
    errors: list[str] = field(default_factory=list)  # passes that failed (a dlfuzz bug; reduction goes on)
    nodes_before: int = 0
    nodes_after: int = 0
    operators_before: int = 0
    localized: Culprit = field(default_factory=Culprit)  # both levels of the culprit on ``case``
    operators_after: int = 0

    def stats(self) -> dict:
        return {"nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
                "operators_before": self.operators_before, "operators_after": self.operators_after,
                "reduce_seconds": round(self.seconds, 2), "reduce_checks": self.checks,
                "reduce_steps": self.steps, "reduce_out_of_budget": self.out_of_budget,
                **({"reduce_errors": self.errors} if self.errors else {})}


def size(case: Case) -> tuple:
    """What reduction minimizes, most important first (the checks of the plan last)."""
    g = case.graph
    types = [t for n in g.nodes() for t in g.node(n).types]
    odd_floats = sum(1 for t in types if t.dtype in FLOAT_DTYPES and t.dtype != "float32")
    attrs = sum(v for n in g.op_nodes() for v in g.node(n).attrs.values() if isinstance(v, int) and not isinstance(v, bool))
    return (len(g.op_nodes()), len(g), len(g.outputs), sum(t.numel for t in types), odd_floats, attrs,
            plan_size(case.plan))


def _guarded(make: Pass, case: Case, ctx: Context, name: str, errors: list[str],
             log: Callable[[str], None] | None):
    """The pass's candidates; a pass that raises ends early, recorded, instead of ending the
    reduction (a spec the passes do not handle must not cost the bug its report)."""
    try:
        yield from make(case, ctx)
    except _OutOfBudget:
        raise
    except Exception as e:  # noqa: BLE001
        errors.append(f"{name}: {type(e).__name__}: {e}")
        if log:
            log(f"{name} failed: {type(e).__name__}: {e}")


def _key(case: Case) -> str:
    return json.dumps({"g": case.graph.to_json(), "v": {str(k): v.to_json() for k, v in sorted(case.values.items())},
                       "p": case.plan.to_json()}, sort_keys=True)


def reduce_case(case: Case, verdict: Verdict, check: Check, specs: Mapping[str, OpSpec], *,
                culprit: str | Culprit | None = None, time_s: float = 60.0, max_checks: int = 500,
                passes: list[tuple[str, Pass]] | None = None,
                log: Callable[[str], None] | None = None) -> Reduction:
    """Minimize ``case`` while ``check`` keeps showing ``verdict``'s bug.

    ``culprit``: where the bug is pinned (as recorded): for a mismatch the API operator, and
    the ATen operators where known (``reports.localize.Culprit``; a bare id is the API one).
    """
    start = time.monotonic()
    original_ops = case.graph.op_ids()
    loc = culprit if isinstance(culprit, Culprit) else Culprit(culprit, (), verdict.dtype)
    target = sign(verdict.status, verdict.backend, verdict.where, verdict.message, original_ops, loc.api, loc.aten,
                  loc.dtype or verdict.dtype)
    focus = tuple(sorted({loc.api} if loc.api else set(target.operators) - set(loc.aten)))
    ctx = Context(specs, verdict.status, verdict.output, focus, verdict.check)
    red = Reduction(case, verdict, None, loc.api, target, nodes_before=len(case.graph),
                    operators_before=len(case.graph.op_nodes()), localized=loc)
    seen: dict[str, bool] = {_key(case): True}

    def call(c: Case) -> CheckResult:
        if red.checks >= max_checks or time.monotonic() - start >= time_s:
            raise _OutOfBudget
        red.checks += 1
        return check(c)

    def shows_bug(c: Case) -> tuple[CheckResult, Verdict, Culprit] | None:
        result = call(c)
        if not result.valid:
            return None
        v = result.verdict(verdict.backend)
        if v is None or v.unsupported or v.status != verdict.status or v.stage != verdict.stage:
            return None  # declined (XLA's limits, a graph-mode contract tf.function shares) is no bug
        found = Culprit()
        if v.status == "mismatch" or (v.status == "crash" and loc.aten):
            probe = probe_case(c, loc.aten)
            found = localize_from_probe(c, v, probe, call(probe))
        # a bug recorded at the API level (no ATen op known: a fusion fault, or a caller that
        # passed only the API culprit) is compared at that level
        if not loc.aten:
            found = Culprit(found.api, (), found.dtype)
        if sign(v.status, v.backend, v.where, v.message, original_ops, found.api, found.aten,
                found.dtype or v.dtype).digest != target.digest:
            return None
        return result, v, found

    try:
        progress = True
        while progress:
            progress = False
            for name, make in passes or PASSES:
                while True:
                    kept = False
                    current_size = size(red.case)
                    for cand in _guarded(make, red.case, ctx, name, red.errors, log):
                        k = _key(cand)
                        if k in seen or size(cand) >= current_size or not is_valid(cand, specs):
                            continue
                        outcome = shows_bug(cand)
                        seen[k] = outcome is not None
                        if outcome is None:
                            continue
                        red.case, (red.result, red.verdict, red.localized) = cand, outcome
                        red.culprit = red.localized.api
                        ctx.output = red.verdict.output
                        red.steps.append(name)
                        if log:
                            log(f"{name}: {len(cand.graph.op_nodes())} operators, {len(cand.graph)} nodes "
                                f"({red.checks} checks, {time.monotonic() - start:.1f} s)")
                        kept = progress = True
                        break
                    if not kept:
                        break
    except _OutOfBudget:
        red.out_of_budget = True
    red.seconds = time.monotonic() - start
    red.nodes_after = len(red.case.graph)
    red.operators_after = len(red.case.graph.op_nodes())
    return red


def reduce_bug_folder(folder: Path, check: Check, specs: Mapping[str, OpSpec], *, time_s: float = 60.0,
                      max_checks: int = 500, timeout_s: float = 60.0, verify: bool = False,
                      log: Callable[[str], None] | None = None) -> Reduction | None:
    """Reduce the bug in ``folder`` in place: rewrite case.json, program.py, repro.py and
    report.md for the reduced case, and record the figures in bug.json (``operators_before``,
    ``operators_after``, ``nodes_before``, ``nodes_after``, ``reduce_seconds`` ...). The first
    original case is kept as ``case.orig.json``.

    ``verify``: check the folder's case first; returns None (and changes nothing) when the
    bug no longer shows on it.
    """
    from corpus.case import write_atomic
    from oracles.compare import tolerance
    from reports.bugs import bug_culprit, write_bug_files

    bug = json.loads((folder / "bug.json").read_text())
    case = Case.load(folder / "case.json")
    verdict = Verdict.from_json(bug["verdict"])
    culprit = bug_culprit(bug)
    verdicts = [Verdict.from_json(v) for v in bug.get("verdicts", [])] or None
    if verify:
        result = check(case)
        v = result.verdict(verdict.backend) if result.valid else None
        if v is None or v.unsupported or v.status != verdict.status or v.stage != verdict.stage:
            return None
        verdict, verdicts = v, list(result.verdicts)
    red = reduce_case(case, verdict, check, specs, culprit=culprit, time_s=time_s, max_checks=max_checks, log=log)
    previous = {k: bug[k] for k in ("operators_before", "nodes_before") if k in bug}
    if red.result is not None:
        if not (folder / "case.orig.json").exists():
            write_atomic(folder / "case.orig.json", (folder / "case.json").read_text())
        verdicts = list(red.result.verdicts)
        # the folder's own signature: a distinct bug of an operator-less family carries the
        # operators reduction pinned it on, which the reduction's target (its base) lacks
        recorded = Signature.from_json(bug["signature_parts"]) if bug.get("signature_parts") else None
        if recorded is not None and recorded.digest != bug.get("signature"):
            recorded = None
        write_bug_files(folder, red.case, red.verdict, recorded or red.signature, bug["backends"][0], specs,
                        tolerance(red.verdict.dtype or "float32"), timeout_s, verdicts=verdicts,
                        reduced_from=(previous.get("operators_before", red.operators_before), red.operators_after),
                        culprit=red.localized, apis=bug.get("apis", []))
        bug["localized"] = red.localized.to_json()
        bug["verdict"] = red.verdict.to_json()
        bug["verdicts"] = [v.to_json() for v in verdicts]
        bug["operators_reduced"] = sorted(set(red.case.graph.op_ids()))
    bug.update(red.stats())
    bug.update(previous)  # a second reduction keeps the sizes the bug was found with
    write_atomic(folder / "bug.json", json.dumps(bug, indent=1, sort_keys=True))
    return red
