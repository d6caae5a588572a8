"""Pin a mismatch on the operator where the candidate first diverges.

The case is re-checked with every operator's output made a graph output, in topological
order; the oracle reports the first output that differs, and the operator producing it
is the culprit: its inputs still agreed. Bugs are deduplicated by that operator, so a
wrong ``add`` is one bug whatever operators follow it. When the probe does not reproduce
the mismatch (the fault needs the fusion that extra outputs prevent), the operator that
produced the differing graph output stands in.
"""

from __future__ import annotations

from typing import Callable

from corpus.case import Case
from oracles.verdict import CheckResult, Verdict


def probe_case(case: Case) -> Case:
    graph = case.graph.copy()
    graph.outputs = [v for v in graph.values() if graph.node(v[0]).kind == "op"]
    return Case(graph, case.framework, dict(case.values), case.seed, dict(case.settings), dict(case.provenance))


def culprit_op(case: Case, verdict: Verdict, check: Callable[[Case], CheckResult]) -> str | None:
    """The operator id the mismatch ``verdict`` is pinned on (``check`` runs the oracle)."""
    probe = probe_case(case)
    return culprit_from_probe(case, verdict, probe, check(probe))


def culprit_from_probe(case: Case, verdict: Verdict, probe: Case, result: CheckResult) -> str | None:
    """The culprit, given the oracle's ``result`` on ``probe_case(case)``."""
    fallback = None
    if verdict.output is not None and verdict.output < len(case.graph.outputs):
        fallback = case.graph.node(case.graph.outputs[verdict.output][0]).op
    if not result.valid:
        return fallback
    found = result.verdict(verdict.backend)
    if found is None or found.status != "mismatch" or found.output is None:
        return fallback
    return probe.graph.node(probe.graph.outputs[found.output][0]).op
