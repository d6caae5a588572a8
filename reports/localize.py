"""Pin a failure on the operator where the candidate first diverges, at two levels.

The case is re-checked as a *probe*: every operator's output made a graph output, in
topological order; the oracle reports the first output that differs, and the operator
producing it is the API-level culprit (``core.Add``, ``torch.nn.functional.bilinear#3f2a``):
its inputs still agreed. When the probe does not reproduce the mismatch (the fault needs
the fusion that extra outputs prevent), the operator that produced the differing graph
output stands in.

The probe is also marked for ATen-level localization (``oracles.aten``, run by the
oracle inside the sandbox worker): for torch backends the failing operator is lowered to
its ATen graph and the ATen operator that fails alone is named on the probe's verdict
(``Verdict.aten_ops``); on ``tf.xla`` the op of the traced ``tf.function`` graph that
XLA gets wrong (``oracles.tf_graph``, named ``tf.raw_ops.<Op>``). The compiler works at that level, and one faulty ATen operator
reached through a dozen Python APIs must be one bug, so the signature prefers it. A
crash whose message names no operator is probed the same way, for its ATen operators
(the API level names nothing for a crash).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from corpus.case import Case
from oracles.aten import HINT, MARK
from oracles.verdict import CheckResult, Verdict
from reports.signature import normalize_message, sign


@dataclass(frozen=True)
class Culprit:
    """Where a failure is pinned: the operator the user's model calls (``api``, the
    graph's op id; None for a crash) and the ATen operator(s) that are wrong (``aten``,
    empty when unknown: not torch, a fusion-only fault, a failed localization), with the
    dtype of the first value that differs (for the signature's dtype class)."""

    api: str | None = None
    aten: tuple[str, ...] = ()
    dtype: str = ""

    def to_json(self) -> dict:
        return {"api": self.api, "aten": list(self.aten), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict | None) -> "Culprit":
        data = data or {}
        return cls(data.get("api"), tuple(str(op) for op in data.get("aten") or ()), str(data.get("dtype") or ""))


def probe_case(case: Case, hint: Sequence[str] = ()) -> Case:
    """``case`` with every operator output a graph output, marked for ATen localization.
    ``hint``: ATen operators found on a bigger version of the case (reduction), tried first."""
    graph = case.graph.copy()
    graph.outputs = [v for v in graph.values() if graph.node(v[0]).kind == "op"]
    provenance = dict(case.provenance)
    provenance[MARK] = "aten"
    if hint:
        provenance[HINT] = list(hint)
    return Case(graph, case.framework, dict(case.values), case.seed, dict(case.settings), provenance, case.plan)


def culprit_op(case: Case, verdict: Verdict, check: Callable[[Case], CheckResult]) -> str | None:
    """The operator id the mismatch ``verdict`` is pinned on (``check`` runs the oracle)."""
    return localize(case, verdict, check).api


def localize(case: Case, verdict: Verdict, check: Callable[[Case], CheckResult], hint: Sequence[str] = ()) -> Culprit:
    """Both levels of ``verdict`` (a mismatch or a crash), with one probe check."""
    probe = probe_case(case, hint)
    return localize_from_probe(case, verdict, probe, check(probe))


def culprit_from_probe(case: Case, verdict: Verdict, probe: Case, result: CheckResult) -> str | None:
    """The API-level culprit, given the oracle's ``result`` on ``probe_case(case)``."""
    return localize_from_probe(case, verdict, probe, result).api


def localize_from_probe(case: Case, verdict: Verdict, probe: Case, result: CheckResult) -> Culprit:
    """Both levels, given the oracle's ``result`` on ``probe_case(case)``.

    A mismatch: the API culprit as above, and the ATen ops the probe's verdict names
    (only when the probe reproduced the mismatch, so that they belong to that operator).
    A crash: no API culprit; the ATen ops when the probe raised the same message."""
    found = result.verdict(verdict.backend) if result.valid else None
    if verdict.status == "mismatch" and verdict.check == "backward":
        return Culprit(None, (), verdict.dtype)  # every gradient depends on the whole graph
    if verdict.status == "crash":
        if found is not None and found.status == "crash" and \
                normalize_message(found.message) == normalize_message(verdict.message):
            return Culprit(None, tuple(found.aten_ops))
        return Culprit()
    fallback = None
    if verdict.output is not None:
        fallback = _output_op(case, verdict.output)
    if found is None or found.status != "mismatch" or found.output is None:
        return Culprit(fallback, (), verdict.dtype)
    api = _output_op(probe, found.output)
    return Culprit(api, tuple(found.aten_ops), found.dtype or verdict.dtype)


def _output_op(case: Case, output: int) -> str | None:
    """The operator behind compared output ``output``: a model output's producer, or for
    an input compared after the call (a mutation plan's outputs past the model's own) the
    operator that last wrote into it in place (None when none did)."""
    graph = case.graph
    if output < len(graph.outputs):
        return graph.node(graph.outputs[output][0]).op
    leaves = graph.leaves("input")
    if output - len(graph.outputs) >= len(leaves):
        return None
    from oracles.judge import final_value, written_through_views
    from rules.specs import SPECS

    leaf = leaves[output - len(graph.outputs)]
    try:
        node = graph.node((written_through_views(graph, SPECS).get(leaf) or final_value(graph, leaf, SPECS))[0])
    except KeyError:  # an operator outside the hand-written specs (they alone write in place)
        return None
    return node.op if node.kind == "op" else None


def needs_probe(case: Case, verdict: Verdict) -> bool:
    """Whether ``verdict`` is pinned through a probe: every mismatch, and a crash whose
    message names no operator of the case (the probe gives it ATen operators, or on XLA
    the ops of the traced graph: ``oracles.tf_graph``)."""
    if verdict.status == "mismatch":
        return verdict.check != "backward"  # a gradient names an input, not an operator: pinned by reduction
    return verdict.status == "crash" and not \
        sign(verdict.status, verdict.backend, verdict.where, verdict.message, case.graph.op_ids()).operators
