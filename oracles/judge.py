"""How one call of a case is judged: the comparison policy bound to the call's graph.

``oracles.compare`` holds the policy (exact ops bit-exact, float outputs judged against a
float64 recomputation, elements near a discontinuity excused and counted). An
``Expectation`` binds it to what one call computes: the case's own graph for the forward
call and its layouts, a retyped graph for each other shape set of a dynamic plan, and, in
a mutation plan, the graph extended by every input's value after the call (the last
in-place write into it), so an input written wrongly is judged like an output.

Gradients (``judge_gradients``) are judged with the same policy: the float64 evidence is
the same backward computed in float64 by eager on the same values and cotangents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from corpus.graph import Graph, Value
from corpus.values import ValueSpec, has_special
from oracles.backends import CompileMode, eager_backend
from oracles.compare import (Difference, Output, OutputKind, Reference64, compare_nonfinite, compare_output,
                             compare_outputs, has_kink, is_discontinuous, output_kinds, precision_caps,
                             rounded_int_nodes, tolerance, value_precision)
from oracles.gradients import backward, grad_inputs
from oracles.recompute import DiscontinuityProbe, Evidence, _upcast, promote_float64
from rules.execute import load_module
from rules.semantics import align_reference64, judge_nonunique, nonunique_outputs
from rules.spec import OpSpec


def final_value(graph: Graph, leaf: int, specs: Mapping[str, OpSpec]) -> Value:
    """The value that holds input ``leaf``'s contents after the model ran: the output of
    the last op that wrote into it in place (the leaf itself when none did)."""
    v: Value = (leaf, 0)
    while True:
        writers = [n for n, arg in graph.users_of(v) if arg in getattr(specs[graph.node(n).op], "mutates", ())]
        if not writers:
            return v
        v = (writers[0], 0)


def written_through_views(graph: Graph, specs: Mapping[str, OpSpec]) -> dict[int, Value]:
    """Input leaves written through a view (``x.t().copy_(y)`` as two graph ops): no graph
    value holds their contents after the call. Leaf -> the output of the last op that
    wrote into its storage (its ancestors say how precisely the contents are computed)."""
    from rules.specs.inplace import family

    out: dict[int, Value] = {}
    order = {n: k for k, n in enumerate(graph.nodes())}  # the program's statement order
    writes = [(n, graph.inputs_of(n)[p]) for n in graph.op_nodes()
              for p in getattr(specs[graph.node(n).op], "mutates", ())]
    for leaf in graph.leaves("input") if writes else ():
        direct, v = {(leaf, 0)}, (leaf, 0)
        while (v := _next_write(graph, v, specs)) is not None:  # type: ignore[assignment]
            direct.add(v)
        writers = [n for n, v in writes if (leaf, 0) in family(graph, specs, v)]
        if any(v not in direct for n, v in writes if n in writers):
            out[leaf] = (max(writers, key=order.__getitem__), 0)  # the last write the program makes
    return out


def _next_write(graph: Graph, v: Value, specs: Mapping[str, OpSpec]) -> Value | None:
    writers = [n for n, arg in graph.users_of(v) if arg in getattr(specs[graph.node(n).op], "mutates", ())]
    return (writers[0], 0) if writers else None


def mutated_inputs(graph: Graph, specs: Mapping[str, OpSpec]) -> list[int]:
    """Positions (in the model's input order) of the inputs the graph writes in place,
    directly or through a view."""
    through = written_through_views(graph, specs)
    return [i for i, n in enumerate(graph.leaves("input")) if final_value(graph, n, specs) != (n, 0) or n in through]


def with_inputs_after(graph: Graph, specs: Mapping[str, OpSpec]) -> Graph:
    """``graph`` whose outputs also list every input's value after the call, in input
    order (what a mutation plan compares)."""
    extended = graph.copy()
    extended.outputs = list(graph.outputs) + [final_value(graph, n, specs) for n in graph.leaves("input")]
    return extended


@dataclass
class Expectation:
    """What one call's outputs are judged against (see the module docstring)."""

    graph: Graph  # the judged graph: the model's outputs, then (mutation) inputs after the call
    evidence: Evidence | None  # None: values differ from the case's (expanded layout)
    probe: DiscontinuityProbe | None  # None: values differ from the case's (expanded layout)
    special: bool  # deliberate NaN/Inf inputs
    model_outputs: int  # how many of ``graph.outputs`` the model itself returns
    # judged outputs (inputs after the call) that no graph value holds, written through a
    # view -> the last write: judged without float64 evidence, as precisely as that write
    opaque: Mapping[int, Value] | None = None

    def describe(self, diff: Difference) -> str:
        """The difference's message, naming an input after the call where it is one."""
        if diff.output < self.model_outputs:
            return diff.message
        leaf = self.graph.leaves("input")[diff.output - self.model_outputs]
        return diff.message.replace(f"output {diff.output}", f"input x{leaf} after the call", 1)


def expectation(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                ns: Mapping[str, Any], frameworks: Sequence[str], *, mutation: bool, same_values: bool = True
                ) -> Expectation:
    judged = with_inputs_after(graph, specs) if mutation else graph
    caps = precision_caps(frameworks)
    # the case's values in float64: no evidence for a call on other values (expanded layout)
    evidence = Evidence(judged, framework, values, specs, ns, caps, frameworks) if same_values else None
    probe = DiscontinuityProbe(judged, framework, values, specs, caps, evidence, frameworks) if same_values else None
    through = written_through_views(graph, specs) if mutation else {}
    opaque = {len(graph.outputs) + k: through[n] for k, n in enumerate(graph.leaves("input")) if n in through}
    return Expectation(judged, evidence, probe, has_special(values.values()), len(graph.outputs), opaque)


def judge_outputs(exp: Expectation, specs: Mapping[str, OpSpec], ref: Sequence[Output], cand: Sequence[Output],
                  frameworks: tuple[str, str], excused: dict[str, int] | None) -> Difference | None:
    """The first difference between a candidate's outputs and the reference's on one call."""
    graph = exp.graph
    marks = nonunique_outputs(graph, specs)  # outputs not unique by definition (svd vectors ...)
    if marks:
        cand, more = judge_nonunique(ref, cand, marks, tolerance)
        for reason, n in more.items() if excused is not None else ():
            excused[reason] = excused.get(reason, 0) + n

    opaque = exp.opaque or {}

    def float64() -> list[Reference64] | None:
        if exp.evidence is None:
            return None
        outs = exp.evidence.outputs()
        outs = align_reference64(outs, ref, marks) if marks else outs
        return outs if outs is None or not opaque else [None if i in opaque else o for i, o in enumerate(outs)]

    near = exp.probe.near if exp.probe is not None else (lambda nodes: True)
    if opaque:
        probe_near = exp.probe.near if exp.probe is not None else (lambda nodes, output=None: True)

        def near(nodes, output=None):  # type: ignore[no-redef]
            if output is None or output in opaque:  # no graph value to answer element by element
                return probe_near(nodes)
            return probe_near(nodes, output=output)

        graph = graph.copy()  # the kinds of a view-written input are those of its last write
        graph.outputs = [opaque.get(i, v) for i, v in enumerate(graph.outputs)]
    kinds = output_kinds(graph, specs, frameworks)
    diff, ref_cmp, cand = compare_nonfinite(ref, cand) if exp.special else (None, ref, cand)
    return diff or compare_outputs(ref_cmp, cand, kinds, float64, near, frameworks[0] != frameworks[1], excused)


def gradient_kind(graph: Graph, specs: Mapping[str, OpSpec], frameworks: Sequence[str]) -> OutputKind:
    """Every gradient depends on the whole graph: its least precise float dtype, and its
    discontinuous ops (a forward value near a jump moves the backward's path) and ops with
    a kink (a value near it moves the gradient: ``DiscontinuityProbe`` probes their slopes)."""
    caps = precision_caps(frameworks)
    nodes = graph.nodes()
    rounded = rounded_int_nodes(graph, specs)
    disc = frozenset(n for n in nodes if is_discontinuous(graph, n, specs, rounded) or has_kink(graph, n, specs))
    precision = min((value_precision(graph, n, caps) or "float64" for n in nodes),
                    key=lambda d: ("float16", "bfloat16", "float32", "float64").index(d) if d in (
                        "float16", "bfloat16", "float32", "float64") else 4)
    return OutputKind(False, disc, precision)


class GradientReference:
    """The same backward in float64 (eager, on the reference's values and cotangents),
    computed once when a difference needs it."""

    def __init__(self, graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
                 ns: Mapping[str, Any], cots: Sequence[np.ndarray | None], mutated: Sequence[int]) -> None:
        self.args = graph, framework, values, specs, ns, cots, mutated
        # the most terms a gradient element can sum: the largest value of the graph
        self.terms = max((int(np.prod(t.shape)) for n in graph.nodes() for t in graph.node(n).types), default=1)
        self._done = False
        self._grads: list[np.ndarray] | None = None

    def grads(self) -> list[np.ndarray] | None:
        if not self._done:
            self._done = True
            try:
                self._grads = self._compute()
            except Exception:  # noqa: BLE001 - no float64 gradients: the tolerances judge alone
                self._grads = None
        return self._grads

    def _compute(self) -> list[np.ndarray] | None:
        graph, framework, values, specs, ns, cots, mutated = self.args
        promoted = promote_float64(graph, framework, specs, strict=False)  # an op that refuses float64 raises
        if promoted is None:
            return None
        ns64 = dict(load_module(promoted, framework, values, specs))
        ns64["CONSTS"] = lambda: {k: _upcast(framework, v) for k, v in ns["CONSTS"]().items()}
        ns64["INPUTS"] = lambda: [_upcast(framework, x) for x in ns["INPUTS"]()]
        fn = eager_backend(framework).prepare(ns64, None, CompileMode(grad=True))
        xs = ns64["INPUTS"]()
        marked = grad_inputs(xs, framework, lambda i: i not in mutated)
        outs = fn(*xs)
        grads = backward(fn, xs, outs, cots, marked, framework)
        arrays = [np.asarray(ns64["to_numpy"](g), dtype=np.float64) for g in grads]
        return arrays if all(np.isfinite(a).all() for a in arrays) else None


# unit roundoff per dtype: a backward accumulates in its dtype (TensorFlow's half-precision
# kernels do), so a gradient element carries rounding noise of about eps * sqrt(terms)
EPS = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24, "float64": 2.0 ** -53}
MAX_TERMS_FACTOR = 8.0  # sqrt(terms) at most: accumulations are blocked, and a larger allowance hides bugs


def gradient_noise(g: np.ndarray, precision: str, terms: int) -> np.ndarray:
    """The rounding spread allowed a gradient: eps * min(sqrt(terms), 8) times the
    element's magnitude plus the tensor's mean magnitude (a gradient element is a sum
    whose terms may cancel to far less than their size). Unlike the forward outputs',
    this spread is modelled, not measured: the backward has no per-op recomputation."""
    eps = EPS.get(precision, EPS["float32"])
    scale = np.abs(g) + (float(np.mean(np.abs(g))) if g.size else 0.0)
    return eps * min(float(np.sqrt(max(terms, 1))), MAX_TERMS_FACTOR) * scale


HALF_MAX = {"float16": 65504.0, "bfloat16": 3.3895e38}
OVERFLOW = "gradient near its dtype's largest value"


def judge_gradients(ref: Sequence[Output], cand: Sequence[Output], kind: OutputKind, reference: GradientReference,
                    probe: DiscontinuityProbe | None, excused: dict[str, int] | None) -> Difference | None:
    """The first gradient on which ``cand`` differs from ``ref`` (same policy as outputs)."""
    if len(ref) != len(cand):
        return Difference(0, "", f"{len(cand)} gradients where the reference has {len(ref)}")
    # a gradient may be infinite or NaN in eager itself (acos' at 1, from values the
    # forward keeps finite: aot_eager seed 7's false alarm): the same NaN or infinity is
    # agreement, a dropped or flipped one a difference, as for special inputs
    nonfinite, ref, cand = compare_nonfinite(ref, cand)
    if nonfinite is not None:
        return Difference(nonfinite.output, nonfinite.dtype,
                          nonfinite.message.replace(f"output {nonfinite.output}", f"gradient {nonfinite.output}", 1))
    def near(nodes: frozenset[int]) -> "bool | dict[str, bool]":
        """Gradients are judged whole, under the reason the probe found (a kink, a jump)."""
        if probe is None:
            return True
        reason = probe.near_reason(nodes)
        return {} if reason is None else {reason: True}

    for i, (r, c) in enumerate(zip(ref, cand)):
        def one64(i: int = i) -> Reference64 | None:
            grads = reference.grads()
            if grads is None:
                return None
            g = grads[i]
            noise = gradient_noise(g, replace_precision(kind, r.dtype).precision, reference.terms)
            # the reference's own worst error in this gradient measures how ill-conditioned
            # it is (a layer norm over two elements amplifies rounding a hundredfold): no
            # element may be held to less than that
            with np.errstate(invalid="ignore"):
                worst = np.nanmax(np.abs(r.array.astype(np.float64) - g)) if g.size else 0.0
            return Reference64(g, np.maximum(noise, worst if np.isfinite(worst) else 0.0))

        scratch: dict[str, int] = {}
        diff = compare_output(i, r, c, replace_precision(kind, r.dtype), one64, near, False, scratch)
        grads = reference.grads() if diff is not None and r.dtype in HALF_MAX else None
        if grads is not None and grads[i].shape == r.array.shape:
            # where the true gradient is near the dtype's largest value, overflowing is a
            # matter of the order of the backward's steps (eager's and a compiler's differ)
            beyond = np.abs(grads[i]) > 0.5 * HALF_MAX[r.dtype]
            if beyond.any():
                scratch = {OVERFLOW: int(np.count_nonzero(beyond & ~(r.array == c.array)))}
                c = Output(c.dtype, c.shape, np.where(beyond, r.array, c.array))
                diff = compare_output(i, r, c, replace_precision(kind, r.dtype), one64, near, False, scratch)
        for reason, n in scratch.items() if excused is not None else ():
            if n:
                excused[reason] = excused.get(reason, 0) + n
        if diff is not None:
            return Difference(i, diff.dtype, diff.message.replace(f"output {i}", f"gradient {i}", 1),
                              diff.max_abs, diff.max_rel)
    return None


def replace_precision(kind: OutputKind, dtype: str) -> OutputKind:
    order = ("float16", "bfloat16", "float32", "float64")
    precision = min(kind.precision or dtype, dtype, key=lambda d: order.index(d) if d in order else 4)
    return OutputKind(kind.unstable, kind.discontinuous, precision, kind.exact, kind.index, kind.rounds_to_int)
