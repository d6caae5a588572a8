"""Check one Case on a list of backends, in this process (DESIGN §6).

The first backend is the reference. It must run the case cleanly, with finite outputs;
otherwise the case is *invalid* (the generator made a model the reference rejects, or
values it cannot compute), never a bug, and the other backends are not run. Each other
backend then runs in two stages, ``compile`` (``Backend.prepare``) and ``run`` (calling
the prepared function); an exception is a ``crash`` verdict of that stage, outputs that
differ beyond the comparison policy (``oracles.compare``) a ``mismatch``.

Backends of another framework than the reference's run the same graph materialized for
their framework (codegen writes both), so ``torch.eager,tf.eager`` compares PyTorch with
TensorFlow on one model; every op of such a case must have both materializations.

This runs everything in-process: a segfault or a hang takes the caller with it.
``oracles.sandbox`` runs it in child processes with a timeout.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from corpus.case import Case
from corpus.values import has_special
from oracles.backends import Backend, StageTracker, resolve
from oracles.compare import (Output, Reference64, all_finite, compare_outputs, output_kinds, precision_caps,
                             tolerance)
from oracles.compare import compare_nonfinite
from oracles.recompute import DiscontinuityProbe, Evidence
from oracles.verdict import CheckResult, Verdict, exception_message, is_meta_rejection, meta_rejection_message
from rules.execute import load_module, setup_framework
from rules.semantics import align_reference64, judge_nonunique, nonunique_outputs
from rules.spec import OpSpec

Progress = Callable[[str, str], None]  # (backend name, stage) before each step
GRAPH_MODE_CONTRACT = "graph-mode contract"  # why a tf.xla failure tf.function shares is declined
OnVerdict = Callable[[Verdict], None]


def collect_outputs(framework: str, outs: Any, to_numpy: Callable[[Any], np.ndarray]) -> list[Output]:
    """Framework tensors -> framework-neutral outputs (dtype names as the graph spells them)."""
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    result = []
    for o in outs:
        dtype = str(o.dtype).removeprefix("torch.") if framework == "torch" else o.dtype.name
        array = np.asarray(to_numpy(o))
        result.append(Output(dtype, tuple(int(d) for d in array.shape), array))
    return result


def run_backend(backend: Backend, ns: dict[str, Any], progress: Progress | None = None) -> tuple[Verdict, list[Output] | None]:
    """Prepare and run ``backend`` on a model namespace: (verdict, outputs or None).

    The verdict is ``ok`` or a ``crash`` with its stage; comparing is the caller's job. A
    compiler's compile-stage rejection by a fake-tensor/meta check is ``eager-validation``:
    it only reaches here for a model the eager reference ran.
    """
    tracker = StageTracker((lambda stage: progress(backend.name, stage)) if progress else None)
    start = time.perf_counter()
    try:
        tracker.set("compile")
        fn = backend.prepare(ns, tracker)
        tracker.set("run")
        outputs = collect_outputs(backend.framework, fn(*ns["INPUTS"]()), ns["to_numpy"])
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure of the backend is its verdict
        message = exception_message(e)
        stage = tracker.current or "compile"
        meta = not backend.eager and backend.framework == "torch" and stage == "compile" and is_meta_rejection(e)
        message = meta_rejection_message(e) if meta else message
        return Verdict(backend.name, "eager-validation" if meta else "crash", stage, message,
                       seconds=time.perf_counter() - start, unsupported=backend.is_unsupported(message)), None
    return Verdict(backend.name, "ok", seconds=time.perf_counter() - start), outputs


def unsupported_ops(case: Case, frameworks: Sequence[str], specs: Mapping[str, OpSpec]) -> list[str]:
    """Ops of the case that some framework cannot run as the graph has them: no spec, no
    materialization, or input dtypes outside the framework's options (a torch case can
    take ``amax`` of bools, TensorFlow cannot)."""
    out: set[str] = set()
    graph = case.graph
    for n in graph.op_nodes():
        op = graph.node(n).op
        spec = specs.get(op)  # type: ignore[arg-type]
        if spec is None:
            out.add(f"{op} (no spec)")
            continue
        missing = [fw for fw in frameworks if fw not in spec.frameworks]
        if missing:
            out.add(f"{op} (no {'/'.join(missing)})")
            continue
        combo = tuple(graph.type_of(v).dtype for v in graph.inputs_of(n))
        for fw in frameworks:
            if fw != case.framework and combo not in {tuple(c) for c in spec.dtype_options(fw)}:
                out.add(f"{op} on {'/'.join(combo)} (not in {fw})")
    return sorted(out)


def check_case(case: Case, backend_names: Sequence[str], specs: Mapping[str, OpSpec], *,
               skip: Collection[str] = (), progress: Progress | None = None,
               on_verdict: OnVerdict | None = None) -> CheckResult:
    """Run ``case`` on every backend (the first is the reference) and judge each.

    ``skip``: backends (not the reference) to leave out, e.g. those a sandbox has already
    judged. ``progress(backend, stage)`` hears each step before it begins, ``on_verdict``
    each verdict as soon as it is known. Raises BackendError for an unknown backend name;
    everything that goes wrong with the case itself ends up in the result.
    """
    backends = [resolve(n) for n in backend_names]
    if not backends:
        raise ValueError("check_case needs at least one backend")
    ref = backends[0]
    frameworks = list(dict.fromkeys(b.framework for b in backends))
    missing = unsupported_ops(case, frameworks, specs)
    if missing:
        return CheckResult(False, f"ops not available as used in {', '.join(frameworks)}: {', '.join(missing)}")
    namespaces: dict[str, dict[str, Any]] = {}
    for fw in frameworks:
        try:
            setup_framework(fw)
            namespaces[fw] = load_module(case.graph, fw, case.values, specs)
        except Exception as e:  # noqa: BLE001
            return CheckResult(False, f"cannot materialize the model for {fw}: {exception_message(e)}")

    def emit(v: Verdict) -> Verdict:
        if on_verdict is not None:
            on_verdict(v)
        return v

    ref_verdict, ref_outs = run_backend(ref, namespaces[ref.framework], progress)
    emit(ref_verdict)
    if ref_outs is None:
        why = "the generator made a model it rejects" if ref.eager else "it may be a bug of the reference backend"
        return CheckResult(False, f"reference {ref.name} raised at {ref_verdict.stage} ({why}): {ref_verdict.message}",
                           (ref_verdict,))
    if len(ref_outs) != len(case.graph.outputs):
        return CheckResult(False, f"reference {ref.name} gave {len(ref_outs)} outputs, the graph has "
                           f"{len(case.graph.outputs)}", (ref_verdict,))
    special = has_special(case.values.values())  # deliberate NaN/Inf inputs: NaN/Inf outputs are the point
    if not all_finite(ref_outs) and not special:
        return CheckResult(False, f"reference {ref.name} produced NaN/Inf", (ref_verdict,))

    # rule 4's evidence for every value of the graph, computed once when a difference needs it
    evidence = Evidence(case.graph, ref.framework, case.values, specs, namespaces[ref.framework],
                        precision_caps(frameworks), frameworks)

    def float64() -> list[Reference64] | None:
        return evidence.outputs()

    probe = DiscontinuityProbe(case.graph, ref.framework, case.values, specs, precision_caps(frameworks), evidence,
                               frameworks)
    marks = nonunique_outputs(case.graph, specs)  # outputs not unique by definition (svd vectors ...)
    aligned64 = (lambda: align_reference64(float64(), ref_outs, marks)) if marks else float64
    excused: dict[str, int] = {}
    known: dict[str, Verdict] = {}

    def judge(b: Backend, step: Progress | None = progress, count: bool = True) -> Verdict:
        if b.name in known:
            return known[b.name]
        v, outs = run_backend(b, namespaces[b.framework], step)
        if outs is not None:
            if marks:
                outs, more = judge_nonunique(ref_outs, outs, marks, tolerance)
                for reason, n in more.items() if count else ():
                    excused[reason] = excused.get(reason, 0) + n
            kinds = output_kinds(case.graph, specs, (ref.framework, b.framework))
            diff, ref_cmp, outs = compare_nonfinite(ref_outs, outs) if special else (None, ref_outs, outs)
            diff = diff or compare_outputs(ref_cmp, outs, kinds, aligned64, probe.near, b.framework != ref.framework,
                                           excused if count else None)
            if diff is not None:
                v = Verdict(b.name, "mismatch", "run", diff.message, diff.output, diff.max_abs, diff.max_rel,
                            diff.dtype, v.seconds)
        known[b.name] = v
        return v

    verdicts = [ref_verdict]
    for b in backends[1:]:
        if b.name in skip:
            continue
        v = judge(b)
        if b.name == "tf.xla" and v.status in ("crash", "mismatch") and not v.unsupported:
            # an XLA bug only if tf.function without XLA runs the same graph and agrees
            # with eager; a failure both share is TensorFlow's graph-mode contract (the
            # confirming run reports its steps as tf.xla's: a crash in it is seen there)
            step = (lambda _, stage: progress("tf.xla", stage)) if progress else None
            alike = judge(resolve("tf.function"), step, count=False)
            if alike.status == v.status:
                v = replace(v, unsupported=True, declined=GRAPH_MODE_CONTRACT)
        if v.status in ("mismatch", "crash") and not v.unsupported and b.framework == ref.framework == "torch" \
                and case.provenance.get("localize") == "aten":  # a probe: name the ATen op (oracles.aten)
            from oracles.aten import localize_verdict

            v = localize_verdict(case, v, b, namespaces["torch"], specs)
        verdicts.append(emit(v))
    return CheckResult(True, "", tuple(verdicts), excused)
