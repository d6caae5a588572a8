"""The calls a check plan makes of one compiled model (DESIGN §6, "What is checked").

A backend compiles a case once (``Backend.prepare`` with the plan's ``CompileMode``) and
the checker then *calls* it several times: the case's own inputs (the forward call, with
the backward when the plan has gradients), the same values in other memory layouts, and
inputs of the other shape sets of a dynamic plan. Each call is compared with the
reference's same call; a compile serves every check the plan has, so the plan's extra
checks cost runs, not compiles (a compiler that recompiles anyway is counted).

With a mutation plan every call also returns every input as it is after the call, so a
backend that drops (or invents) an in-place update of a graph input is seen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from oracles.backends import Backend, CompileMode, StageTracker
from oracles.compare import Output
from oracles.gradients import backward, grad_inputs
from oracles.layouts import relayout

Namespace = dict[str, Any]


@dataclass(frozen=True)
class Call:
    check: str  # "forward" | "dynamic" | "layout"
    label: str  # "forward", "shape set 1", "layout"
    ns: Namespace  # whose INPUTS() make this call's inputs
    layouts: Mapping[int, str] = field(default_factory=dict)  # input position -> layout name
    grad: bool = False  # take gradients too (the forward call of a backward plan)


@dataclass
class Ran:
    outputs: list[Output]  # the model's outputs, then (mutation) every input after the call
    grads: list[Output] | None = None
    compiles: int = 0  # compiler invocations during this call (recompiles)


@dataclass
class Failed:
    stage: str  # "compile", "run" or "backward"
    error: BaseException
    seconds: float = 0.0


CotangentsFor = Callable[[Sequence[Any]], list]  # the call's outputs -> one array or None each


def to_outputs(framework: str, tensors: Sequence[Any], to_numpy: Callable[[Any], np.ndarray]) -> list[Output]:
    out = []
    for t in tensors:
        dtype = str(t.dtype).removeprefix("torch.") if framework == "torch" else t.dtype.name
        array = np.asarray(to_numpy(t))
        out.append(Output(dtype, tuple(int(d) for d in array.shape), array))
    return out


def make_inputs(call: Call, framework: str) -> list[Any]:
    xs = list(call.ns["INPUTS"]())
    for i, name in call.layouts.items():
        xs[i] = relayout(xs[i], name)
    return xs


def prepare(backend: Backend, ns: Namespace, tracker: StageTracker, mode: CompileMode) -> Callable[..., Any] | Failed:
    start = time.perf_counter()
    tracker.check = "forward"
    try:
        tracker.set("compile")
        return backend.prepare(ns, tracker, mode)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the backend's failure is its verdict
        return Failed(tracker.current or "compile", e, time.perf_counter() - start)


def run_call(backend: Backend, fn: Callable[..., Any], call: Call, tracker: StageTracker, *, mutation: bool,
             mutated: Sequence[int] = (), cotangents_for: CotangentsFor | None = None) -> Ran | Failed:
    """One call of a prepared model. ``mutated``: input positions written in place (never
    gradient leaves); ``cotangents_for`` (grad calls) gives the cotangents for the call's
    outputs."""
    fw = backend.framework
    to_numpy = call.ns["to_numpy"]
    before = tracker.compiles
    start = time.perf_counter()
    tracker.check = call.check
    try:
        tracker.set("run")  # (torch.compile's first call moves to "compile" itself)
        xs = make_inputs(call, fw)
        marked = grad_inputs(xs, fw, lambda i: i not in mutated) if call.grad else []
        outs = fn(*xs)
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        tracker.set("run")
        outputs = to_outputs(fw, outs, to_numpy)
        if mutation:
            outputs += to_outputs(fw, xs, to_numpy)
        grads = None
        if call.grad and cotangents_for is not None:
            tracker.set("backward")
            grads = to_outputs(fw, backward(fn, xs, outs, cotangents_for(outs), marked, fw), to_numpy)
            tracker.set("run")
    except (Exception, SystemExit) as e:  # noqa: BLE001
        return Failed(tracker.current or "run", e, time.perf_counter() - start)
    return Ran(outputs, grads, tracker.compiles - before)


def expects_recompile(shapes: Mapping[int, tuple[int, ...]], original: Mapping[int, tuple[int, ...]]) -> bool:
    """Dynamo specializes sizes 0 and 1: a shape set that moves a dim to or from them
    recompiles by design; any other recompile of a dynamic compile is unexpected."""
    for n, shape in shapes.items():
        old = original.get(n, shape)
        for a, b in zip(shape, old):
            if a != b and (a in (0, 1) or b in (0, 1)):
                return True
    return False
