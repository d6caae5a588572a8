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
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from corpus.case import Case
from oracles.backends import Backend, StageTracker, resolve
from oracles.compare import Output, Reference64, all_finite, compare_outputs, output_kinds, precision_caps
from oracles.recompute import DiscontinuityProbe, reference64
from oracles.verdict import CheckResult, Verdict, exception_message
from rules.execute import load_module, setup_framework
from rules.spec import OpSpec

Progress = Callable[[str, str], None]  # (backend name, stage) before each step
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

    The verdict is ``ok`` or a ``crash`` with its stage; comparing is the caller's job.
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
        return Verdict(backend.name, "crash", tracker.current or "compile", message,
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
    if not all_finite(ref_outs):
        return CheckResult(False, f"reference {ref.name} produced NaN/Inf", (ref_verdict,))

    memo: dict[str, Any] = {}

    def float64() -> list[Reference64] | None:
        if "f64" not in memo:
            memo["f64"] = reference64(case.graph, ref.framework, case.values, specs, namespaces[ref.framework],
                                      precision_caps(frameworks))
        return memo["f64"]

    probe = DiscontinuityProbe(case.graph, ref.framework, case.values, specs, precision_caps(frameworks))
    verdicts = [ref_verdict]
    for b in backends[1:]:
        if b.name in skip:
            continue
        v, outs = run_backend(b, namespaces[b.framework], progress)
        if outs is not None:
            kinds = output_kinds(case.graph, specs, (ref.framework, b.framework))
            diff = compare_outputs(ref_outs, outs, kinds, float64, probe.near, b.framework != ref.framework)
            if diff is not None:
                v = Verdict(b.name, "mismatch", "run", diff.message, diff.output, diff.max_abs, diff.max_rel,
                            diff.dtype, v.seconds)
        verdicts.append(emit(v))
    return CheckResult(True, "", tuple(verdicts))
