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

A case's check plan (``corpus.plan``) adds calls of the same compiled model
(``oracles.calls``): other shape sets, other memory layouts, a backward, every input
compared after the call. A failure in one of them is a verdict of that check
(``Verdict.check``); a call the reference itself cannot make (eager rejects a shape set,
the backward of an in-place graph) is declined and counted in ``CheckResult.checks``.

This runs everything in-process: a segfault or a hang takes the caller with it.
``oracles.sandbox`` runs it in child processes with a timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from corpus.case import Case
from corpus.graph import Graph
from oracles.backends import Backend, CompileMode, StageTracker, resolve
from oracles.calls import Call, Failed, Ran, expects_recompile, prepare, run_call, to_outputs
from oracles.compare import Output, all_finite
from oracles.gradients import cotangents
from oracles.judge import (Expectation, GradientReference, expectation, gradient_kind, judge_gradients, judge_outputs,
                           mutated_inputs)
from oracles.layouts import KEEPS_VALUES
from oracles.verdict import CheckResult, Verdict, exception_message, is_argument_rejection, is_meta_rejection, meta_rejection_message
from rules.execute import load_module, setup_framework
from rules.semantics import nonunique_outputs
from rules.spec import OpSpec

Progress = Callable[[str, str], None]  # (backend name, stage) before each step
GRAPH_MODE_CONTRACT = "graph-mode contract"  # why a tf.xla failure tf.function shares is declined
STATIC_SHAPES = "static shapes needed at trace"  # a tf.function trace for unknown dims that fails: declined
OnVerdict = Callable[[Verdict], None]


def collect_outputs(framework: str, outs: Any, to_numpy: Callable[[Any], np.ndarray]) -> list[Output]:
    """Framework tensors -> framework-neutral outputs (dtype names as the graph spells them)."""
    return to_outputs(framework, outs if isinstance(outs, (tuple, list)) else (outs,), to_numpy)


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
        meta = not backend.eager and _compiles_at(backend.framework, stage) and \
            _rejects_arguments(backend.framework, e, message)
        message = meta_rejection_message(e) if meta and backend.framework == "torch" else message
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


def _input_positions(graph: Graph, leaves: Mapping[int, Any]) -> dict[int, int]:
    return {n: i for i, n in enumerate(graph.leaves("input")) if n in leaves}


@dataclass
class _Planned:
    """The calls a plan makes in one framework, and how each is judged."""

    calls: list[Call]
    expectations: dict[str, Expectation]
    declined: dict[str, int] = field(default_factory=dict)


def _planned_calls(case: Case, fw: str, ns: dict[str, Any], specs: Mapping[str, OpSpec], frameworks: Sequence[str],
                   mutation: bool, grad: bool) -> _Planned:
    plan, graph = case.plan, case.graph
    forward = Call("forward", "forward", ns, grad=grad)
    planned = _Planned([forward], {"forward": expectation(graph, fw, case.values, specs, ns, frameworks,
                                                          mutation=mutation)})
    if plan.layouts and fw == "torch":
        positions = _input_positions(graph, plan.layouts)
        layouts = {positions[n]: name for n, name in plan.layouts.items() if n in positions}
        if layouts:
            planned.calls.append(Call("layout", "layout", ns, layouts))
            same = all(name in KEEPS_VALUES for name in layouts.values())
            planned.expectations["layout"] = planned.expectations["forward"] if same else \
                expectation(graph, fw, case.values, specs, ns, frameworks, mutation=mutation, same_values=False)
    for k, shapes in enumerate(plan.shape_sets if plan.dynamic else ()):
        from rules.shape_sets import retype

        derived = retype(graph, specs, shapes)
        if derived is None:
            planned.declined["dynamic: shape set not admitted"] = planned.declined.get(
                "dynamic: shape set not admitted", 0) + 1
            continue
        try:
            ns_k = load_module(derived, fw, case.values, specs)
        except Exception:  # noqa: BLE001
            planned.declined["dynamic: cannot materialize"] = planned.declined.get("dynamic: cannot materialize", 0) + 1
            continue
        label = f"shape set {k + 1}"
        planned.calls.append(Call("dynamic", label, ns_k))
        planned.expectations[label] = expectation(derived, fw, case.values, specs, ns_k, frameworks, mutation=mutation)
    return planned


def silent_writes(graph: Graph, exp: Expectation, ref_outs: Sequence[Output], ns: dict[str, Any]) -> dict[int, Any]:
    """Inputs the reference changed although no op of the graph declares a write into
    them (an API updating running statistics, an ``inplace=True`` argument): judged
    output -> the graph value whose rounding stands for the write (the output of the
    input's first reader). A compiler's result there is rounded like any computed value;
    an input that eager leaves untouched is still compared bit for bit."""
    originals = to_outputs("torch", ns["INPUTS"](), ns["to_numpy"])
    out: dict[int, Any] = {}
    for k, n in enumerate(graph.leaves("input")):
        i = exp.model_outputs + k
        if exp.graph.outputs[i] != (n, 0) or i in (exp.opaque or {}):
            continue
        before, after = originals[k].array, ref_outs[i].array
        if before.shape == after.shape and np.array_equal(before, after, equal_nan=True):
            continue
        readers = graph.users_of((n, 0))
        if readers:
            out[i] = (readers[0][0], 0)
    return out


def _compiles_at(framework: str, stage: str) -> bool:
    """Whether a compiler may trace at ``stage``: at compile, and for torch.compile at run
    too (a recompile for another shape set; a fake-tensor rejection there is the same
    eager-validation gap as at the first compile: seed 22 gave it two folders)."""
    return stage == "compile" or (framework == "torch" and stage == "run")


def _rejects_arguments(framework: str, error: BaseException, message: str) -> bool:
    """A compile-stage failure that is the compiler's argument validation (torch: a
    fake-tensor/meta check; TensorFlow: XLA's shape inference on an attribute value)."""
    return is_meta_rejection(error) if framework == "torch" else is_argument_rejection(message)


def _count(d: dict[str, int], key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


def _failure_verdict(b: Backend, failed: Failed, check: str) -> Verdict:
    message = exception_message(failed.error)
    meta = not b.eager and _compiles_at(b.framework, failed.stage) and _rejects_arguments(b.framework, failed.error,
                                                                                            message)
    message = meta_rejection_message(failed.error) if meta and b.framework == "torch" else message
    if failed.stage == "backward":
        check = "backward"
    return Verdict(b.name, "eager-validation" if meta else "crash", failed.stage, message, seconds=failed.seconds,
                   unsupported=b.is_unsupported(message), check=check)


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

    plan = case.plan
    checks: dict[str, int] = {}
    mutation = plan.mutation and ref.framework == "torch"
    mutated = mutated_inputs(case.graph, specs) if mutation else []
    positions = _input_positions(case.graph, dict(plan.dynamic_dims))
    dims = tuple((positions[n], d) for n, d in plan.dynamic_dims if n in positions)

    options = tuple(sorted(plan.options.items()))  # not checks: every compile of the case has them
    harness = plan.harness if ref.framework == "torch" else ""

    def mode_for(b: Backend, grad: bool) -> CompileMode:
        return CompileMode(plan.dynamic and b.dynamic_shapes, dims, grad and b.framework == ref.framework, options,
                           harness)

    # the reference: prepare once, the forward call (invalid case if it fails), then each
    # planned call it can make (a call it cannot make is declined, never the backends' bug)
    grad = plan.backward
    planned = {fw: _planned_calls(case, fw, namespaces[fw], specs, frameworks, mutation and fw == "torch", grad)
               for fw in frameworks}
    ref_plan = planned[ref.framework]
    for reason, n in ref_plan.declined.items():
        _count(checks, f"declined: {reason}", n)
    cots: list = []

    # outputs that are not unique by definition (singular vectors: either sign) take no
    # part in the backward: a loss on them is ill-defined, its gradient backend-dependent
    nonunique = set(nonunique_outputs(case.graph, specs))

    def ref_cotangents(outs: Sequence[Any]) -> list:
        cots[:] = cotangents(plan.backward_seed or 0, outs, ref.framework)
        dropped = [k for k in nonunique if k < len(cots) and cots[k] is not None]
        for k in dropped:
            cots[k] = None
        if dropped:
            _count(checks, "declined: backward of non-unique outputs", len(dropped))
        return cots

    tracker = StageTracker((lambda stage: progress(ref.name, stage)) if progress else None)
    start = time.perf_counter()
    fn = prepare(ref, namespaces[ref.framework], tracker, mode_for(ref, grad))
    first = fn if isinstance(fn, Failed) else run_call(ref, fn, ref_plan.calls[0], tracker, mutation=mutation,
                                                       mutated=mutated, cotangents_for=ref_cotangents)
    if isinstance(first, Failed) and grad and first.stage != "backward":
        # a graph autograd cannot record (an in-place write into a leaf's view): plain forward
        _count(checks, "declined: backward (reference forward fails with autograd on)")
        grad = False
        ref_plan.calls[0] = replace(ref_plan.calls[0], grad=False)
        fn = prepare(ref, namespaces[ref.framework], tracker, mode_for(ref, False))
        first = fn if isinstance(fn, Failed) else run_call(ref, fn, ref_plan.calls[0], tracker, mutation=mutation,
                                                           mutated=mutated)
    if isinstance(first, Failed) and first.stage == "backward":
        _count(checks, "declined: backward (reference backward raised)")
        grad = False
        first = run_call(ref, fn, replace(ref_plan.calls[0], grad=False), tracker, mutation=mutation, mutated=mutated)
    if isinstance(first, Failed):
        v = _failure_verdict(ref, first, "forward")
        emit(v)
        why = "the generator made a model it rejects" if ref.eager else "it may be a bug of the reference backend"
        return CheckResult(False, f"reference {ref.name} raised at {v.stage} ({why}): {v.message}", (v,),
                           checks=checks)
    ref_verdict = Verdict(ref.name, "ok", seconds=time.perf_counter() - start)
    emit(ref_verdict)
    ref_exp = ref_plan.expectations["forward"]
    ref_outs = first.outputs
    if len(ref_outs) != len(ref_exp.graph.outputs):
        return CheckResult(False, f"reference {ref.name} gave {len(ref_outs)} outputs, the graph has "
                           f"{len(case.graph.outputs)}", (ref_verdict,), checks=checks)
    if not all_finite(ref_outs) and not ref_exp.special:
        return CheckResult(False, f"reference {ref.name} produced NaN/Inf", (ref_verdict,), checks=checks)
    ref_runs: dict[str, Ran] = {"forward": first}
    if mutation:
        silent = silent_writes(case.graph, ref_exp, ref_outs, namespaces[ref.framework])
        if silent:  # judged by the op that wrote them, not as untouched inputs
            _count(checks, "mutation: input written by an op that does not declare it", len(silent))
            for e in ref_plan.expectations.values():
                e.opaque = {**(e.opaque or {}), **silent}
    for call in ref_plan.calls[1:]:
        got = run_call(ref, fn, call, tracker, mutation=mutation, mutated=mutated)  # type: ignore[arg-type]
        if isinstance(got, Failed):
            _count(checks, f"declined: {call.check} (reference raised)")
        elif not all_finite(got.outputs) and not ref_exp.special:
            _count(checks, f"declined: {call.check} (reference non-finite)")
        else:
            ref_runs[call.label] = got
    grad_ref = None
    if grad and first.grads is not None:
        grad_ref = GradientReference(case.graph, ref.framework, case.values, specs, namespaces[ref.framework],
                                     list(cots), mutated)
    for kind in ("forward", "dynamic", "layout", "backward", "mutation"):
        ran = {"forward": True, "dynamic": any(c.check == "dynamic" for c in ref_plan.calls if c.label in ref_runs),
               "layout": "layout" in ref_runs, "backward": grad_ref is not None, "mutation": mutation}[kind]
        if ran:
            _count(checks, f"case: {kind}")
    excused: dict[str, int] = {}
    known: dict[str, Verdict] = {}

    def call_fails(b: Backend, mode: CompileMode, count: bool, label: str) -> bool:
        """Whether call ``label`` (no gradients) of ``b`` compiled in ``mode`` fails."""
        tracker = StageTracker()
        fn = prepare(b, namespaces[b.framework], tracker, mode)
        same = b.framework == ref.framework
        call = next(c for c in planned[b.framework].calls if c.label == label)
        got = fn if isinstance(fn, Failed) else run_call(b, fn, replace(call, grad=False), tracker,
                                                         mutation=mutation and same, mutated=mutated)
        if count:
            _count(checks, "compiles", tracker.compiles)
        if isinstance(got, Failed):
            return True
        exp = planned[b.framework].expectations[label]
        ref_outputs = ref_runs[label].outputs
        ref_outputs = ref_outputs if same or not mutation else ref_outputs[:exp.model_outputs]
        return judge_outputs(exp, specs, ref_outputs, got.outputs, (ref.framework, b.framework), None) is not None

    def plan_only(b: Backend, mode: CompileMode, count: bool, check: str, label: str) -> str:
        """The check a failure of call ``label`` (forward, layout, or an input after the
        call) of a model compiled in ``mode`` (dynamic, or for a backward) belongs to:
        ``check`` if a plain compile fails the same call too, else the mode that makes it
        fail ("dynamic" if a dynamic compile without gradients fails)."""
        if call_fails(b, CompileMode(options=options, harness=harness), count, label):
            return check
        if mode.dynamic and (not mode.grad or call_fails(b, replace(mode, grad=False), count, label)):
            return "dynamic"
        return "backward"

    def judge(b: Backend, step: Progress | None = progress, count: bool = True) -> Verdict:
        if b.name in known:
            return known[b.name]
        fw = b.framework
        same = fw == ref.framework
        tracker = StageTracker((lambda stage: step(b.name, stage)) if step else None)
        start = time.perf_counter()
        use_grad = grad and same and grad_ref is not None
        mode = mode_for(b, use_grad)
        fn = prepare(b, namespaces[fw], tracker, mode)
        v = _failure_verdict(b, fn, "forward") if isinstance(fn, Failed) else None
        if v is not None and fw == "tensorflow" and mode.dynamic and v.status == "crash":
            # tf.function traces once for unknown dims; a model (or op) that needs static
            # shapes at trace time is TensorFlow's documented contract, not a bug
            v = replace(v, check="dynamic", unsupported=True, declined=STATIC_SHAPES)
        calls = [c for c in planned[fw].calls if c.label in ref_runs
                 and (c.check != "dynamic" or b.dynamic_shapes) and (c.check != "layout" or same)]
        failed_label = "forward"
        for call in calls if v is None else ():
            failed_label = call.label
            if call.label == "forward" and not use_grad:
                call = replace(call, grad=False)
            got = run_call(b, fn, call, tracker, mutation=mutation and same, mutated=mutated,  # type: ignore[arg-type]
                           cotangents_for=lambda outs: cots)
            if count:
                _count(checks, f"calls: {call.check}")
            if isinstance(got, Failed):
                v = _failure_verdict(b, got, call.check)
                break
            if count and call.check == "dynamic" and got.compiles and not expects_recompile(
                    next(s for k, s in enumerate(case.plan.shape_sets) if f"shape set {k + 1}" == call.label),
                    {n: case.graph.node(n).types[0].shape for n in case.graph.leaves("input")}):
                _count(checks, "dynamic: unexpected recompile")
            exp = planned[fw].expectations[call.label]
            ref_call = ref_runs[call.label]
            ref_outputs = ref_call.outputs if same or not mutation else ref_call.outputs[:exp.model_outputs]
            diff = judge_outputs(exp, specs, ref_outputs, got.outputs, (ref.framework, fw), excused if count else None)
            check = call.check
            if diff is None and call.grad and ref_call.grads is not None and got.grads is not None:
                diff = judge_gradients(ref_call.grads, got.grads, gradient_kind(case.graph, specs, frameworks),
                                       grad_ref, exp.probe, excused if count else None)  # type: ignore[arg-type]
                check = "backward"
            elif diff is not None and check == "forward" and (diff.output >= exp.model_outputs or getattr(
                    specs.get(exp.graph.node(exp.graph.outputs[diff.output][0]).op), "mutates", ())):
                check = "mutation"  # an input after the call, or an output that is a tensor written in place
            if diff is not None:
                message = exp.describe(diff) if check != "backward" else diff.message
                if call.check == "dynamic":
                    message = f"{call.label}: {message}"
                v = Verdict(b.name, "mismatch", "backward" if check == "backward" else "run", message, diff.output,
                            diff.max_abs, diff.max_rel, diff.dtype, time.perf_counter() - start, check=check)
                break
        if v is not None and v.check in ("forward", "layout", "mutation") and not v.unsupported \
                and (mode.dynamic or mode.grad):
            v = replace(v, check=plan_only(b, mode, count, v.check, failed_label))
        if count:
            _count(checks, "compiles", tracker.compiles)
        v = v or Verdict(b.name, "ok", seconds=time.perf_counter() - start)
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
                and v.check == "forward" and case.provenance.get("localize") == "aten":  # a probe: name the ATen op
            from oracles.aten import localize_verdict

            v = localize_verdict(case, v, b, namespaces["torch"], specs, counts=checks)
        elif ref.framework == "tensorflow" and "tensorflow" in namespaces:
            from oracles import tf_graph

            if tf_graph.wants_graph_ops(case, v, b):  # a probe on XLA: name the graph op
                v = tf_graph.localize_verdict(case, v, b, namespaces["tensorflow"], specs, counts=checks)
        if v.status != "ok" and not v.unsupported:
            _count(checks, f"bugs: {v.check}")
        verdicts.append(emit(v))
    return CheckResult(True, "", tuple(verdicts), excused, checks)
