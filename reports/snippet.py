"""The ten-second reproducer at the top of report.md.

``repro.py`` is the full harness (a child process for aborts and hangs, the oracle's
tolerances, exit codes); a maintainer reading an issue wants less: the imports, the
inputs as literals, the model as a plain function, the compiled call and one assertion.
Small inputs are written out (``torch.tensor([...])`` / ``tf.constant([...])``); larger
ones are drawn from a seeded numpy generator, one line each. A one-operator bug fits in
well under 25 lines.

A bug that only a check of the case's plan sees (``Verdict.check``) gets the few lines
that check adds: ``dynamic=True`` (or an ``input_signature`` of unknown dims) and the
inputs of the failing shape set; the layout expression applied to the inputs; the
backward with the seeded cotangents; the inputs compared after the call.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from corpus.case import Case
from corpus.tensor_type import is_float
from corpus.values import VALUE_SOURCE, make_value
from oracles.verdict import Verdict
from reports.repro import backend_framework, backend_source, failing_item, harness_source, with_options
from rules.codegen import helpers_source, value_name
from rules.spec import OpSpec

LITERAL_ELEMENTS = 24  # at most this many elements are written out; more are drawn

# as dlfuzz's workers run the framework: some kernels differ with threads (an Inductor
# argmin under dynamic shapes showed only with one)
ONE_THREAD = {"torch": ["torch.set_num_threads(1)  # as dlfuzz ran it"],
              "tensorflow": ["tf.config.threading.set_intra_op_parallelism_threads(1)  # as dlfuzz ran it",
                             "tf.config.threading.set_inter_op_parallelism_threads(1)"]}


def _bfloat16(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest, ties to even), as float32: written
    out exactly, they are the values the framework's cast produced."""
    u = a.astype(np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def _literal(array: np.ndarray, dtype: str) -> str:
    """Nested lists of the shortest decimals that give back exactly these values."""
    if dtype == "bool":
        return repr(array.astype(bool).tolist())
    if not is_float(dtype):
        return repr(array.astype(np.int64).tolist())
    typed = _bfloat16(array) if dtype == "bfloat16" else array

    def nested(a: np.ndarray) -> str:
        if a.ndim == 0:
            x = float(a)
            if not np.isfinite(x):  # Python has no inf/nan literals
                return "float('nan')" if np.isnan(x) else ("float('inf')" if x > 0 else "-float('inf')")
            if x == 0:
                return "-0.0" if np.signbit(x) else "0.0"  # "-0" would read as the integer 0
            return np.format_float_positional(a[()], unique=True, trim="-") if abs(float(a)) < 1e6 or a == 0 \
                else np.format_float_scientific(a[()], unique=True, trim="-")
        return "[" + ", ".join(nested(x) for x in a) + "]"

    return nested(typed)


def _leaf_line(name: str, array: np.ndarray, dtype: str, framework: str, spec) -> str:
    if array.size <= LITERAL_ELEMENTS:
        if framework == "torch":
            return f"{name} = torch.tensor({_literal(array, dtype)}, dtype=torch.{dtype})"
        return f"{name} = tf.constant({_literal(array, dtype)}, dtype=tf.{dtype})"
    draw = _plain_draw(list(array.shape), dtype, spec) if not getattr(spec, "mode", "") else \
        f"make_value({list(array.shape)!r}, {dtype!r}, {spec.seed!r}, {spec.low!r}, {spec.high!r}, {spec.mode!r})"
    if framework == "torch":
        return f"{name} = torch.from_numpy({draw}).to(torch.{dtype})"
    return f"{name} = tf.cast({draw}, tf.{dtype})"


def _plain_draw(shape: list[int], dtype: str, spec) -> str:
    """``make_value``'s draw for a plain recipe, as one numpy expression (the same values:
    ``tests/test_report.py`` checks it)."""
    rng = f"np.random.default_rng({spec.seed!r})"
    if dtype == "bool":
        return f"({rng}.random(size={shape!r}) < 0.5)"
    if dtype.startswith(("int", "uint")):
        return f"{rng}.integers({int(spec.low)!r}, {int(spec.high)!r}, size={shape!r}, endpoint=True).astype({dtype!r})"
    carrier = "float32" if dtype == "bfloat16" else dtype
    return f"{rng}.uniform({spec.low!r}, {spec.high!r}, size={shape!r}).astype({carrier!r})"


def _compiled(candidate: str, leaves: list[str]) -> str:
    """The candidate's call on ``f``, as the oracle makes it (``reports.repro``)."""
    if candidate == "torch.jit":
        return f"torch.jit.trace(f, ({', '.join(leaves)},), check_trace=False)"
    return backend_source(candidate)[1].removeprefix("fn = ").replace("model.__call__", "f").replace("(model", "(f")


def snippet(case: Case, specs: Mapping[str, OpSpec], reference: str, verdict: Verdict,
            tolerance: tuple[float, float] = (1e-5, 1e-4)) -> str | None:
    """The short reproducer, or None where a plain function cannot show the bug (a
    backend of the other framework, torch.export's module form)."""
    framework = case.framework
    candidate = verdict.backend
    if backend_framework(candidate) != framework or candidate == "torch.export":
        return None
    check = verdict.check
    if check not in ("forward", "dynamic") and framework != "torch":
        return None  # TensorFlow's backward runs under a tape inside the compiled function: see repro.py
    graph = case.graph
    leaves, leaf_lines, big = [], [], False
    for n in graph.leaves():
        t = graph.node(n).types[0]
        array = make_value(t, case.values[n])
        leaves.append(value_name(graph, (n, 0)))
        big |= array.size > LITERAL_ELEMENTS and bool(getattr(case.values[n], "mode", ""))
        leaf_lines.append(_leaf_line(leaves[-1], array, t.dtype, framework, case.values[n]))
    item = failing_item(case, verdict.status, check, verdict.output, verdict.message) if check != "forward" else None
    resized = _shape_set_lines(case, specs, item[0]) if item and item[0].startswith("shape set") else []
    big |= any(b for _, b, _ in resized)
    drawn = any(graph.node(n).types[0].numel > LITERAL_ELEMENTS for n in graph.leaves()) or any(d for *_, d in resized)
    numpy = drawn or framework == "tensorflow" or (check == "backward" and case.plan.backward)
    lines = ["import numpy as np"] if numpy else []
    lines += ["import torch" if framework == "torch" else "import tensorflow as tf", *backend_source(candidate)[0],
              *ONE_THREAD[framework], ""]
    if big:
        lines += [VALUE_SOURCE.strip("\n"), ""]
    helpers = helpers_source(graph, framework, specs)
    if helpers:
        lines += [helpers, ""]
    harness = harness_source(case, (candidate,)).strip("\n")
    if harness:
        lines += [harness, ""]
    lines += [*leaf_lines, "", f"def f({', '.join(leaves)}):"]
    for n in graph.op_nodes():
        node = graph.node(n)
        args = [value_name(graph, v) for v in graph.inputs_of(n)]
        expr = specs[node.op].code(framework, args, node.attrs)  # type: ignore[index]
        targets = ", ".join(value_name(graph, (n, i)) for i in range(len(node.types)))
        lines.append(f"    {targets} = {expr}")
    outs = [value_name(graph, v) for v in graph.outputs]
    lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    lines.append("")
    call = ", ".join(leaves)
    compiled = with_options(_compiled(candidate, leaves), candidate, case.plan.options,
                            case.plan.harness if framework == "torch" else "")
    if check != "forward":
        return "\n".join(lines + _plan_lines(case, specs, verdict, item, leaves, compiled,
                                              [line for line, *_ in resized], tolerance))
    if framework == "torch":
        lines.append("torch.set_grad_enabled(False)")
    if verdict.status in ("crash", "abort", "timeout"):
        lines.append(f"{compiled}({call})  # {_what(verdict)}")
        return "\n".join(lines)
    fresh = _fresh(call, case, specs)  # a model that writes its inputs gets copies each call
    lines += [f"expected = f({fresh})", f"actual = {compiled}({fresh})"]
    i = verdict.output if verdict.output is not None and verdict.output < len(outs) else 0
    lines += _assertion(verdict, framework, "actual", "expected", i, tolerance)
    return "\n".join(lines)


def _what(verdict: Verdict) -> str:
    return {"crash": f"raises {verdict.message}", "abort": f"dies ({verdict.message})",
            "timeout": "does not finish"}.get(verdict.status, verdict.message)


def _assertion(verdict: Verdict, framework: str, actual: str, expected: str, i: int,
               tolerance: tuple[float, float], what: str = "") -> list[str]:
    """The one assertion that fails: ``actual[i]`` against ``expected[i]``."""
    if verdict.message and " where the reference has " in verdict.message:
        kind = "shape" if ": shape " in verdict.message else "dtype"
        return [f"assert {actual}[{i}].{kind} == {expected}[{i}].{kind}  # {verdict.message}"]
    atol, rtol = tolerance
    if framework == "torch":
        check = f"torch.testing.assert_close({actual}[{i}], {expected}[{i}], atol={atol!r}, rtol={rtol!r})"
    else:
        check = (f"np.testing.assert_allclose({actual}[{i}].numpy(), {expected}[{i}].numpy(), "
                 f"atol={atol!r}, rtol={rtol!r})")
    figures = f"max abs error {verdict.max_abs:.3g}" if verdict.max_abs is not None else verdict.message
    return [f"{check}  # {what + ': ' if what else ''}fails: {figures}"]


def _shape_set_lines(case: Case, specs: Mapping[str, OpSpec], label: str) -> list[tuple[str, bool, bool]]:
    """The leaves that the failing shape set changes, rebound at its shapes: (line, needs
    make_value, drawn from numpy) each."""
    from rules.shape_sets import retype

    k = int(label.split()[-1])
    if not 1 <= k <= len(case.plan.shape_sets):
        return []
    derived = retype(case.graph, specs, case.plan.shape_sets[k - 1])
    if derived is None:
        return []
    out = []
    for n in case.graph.leaves("input"):
        t = derived.node(n).types[0]
        if t == case.graph.node(n).types[0]:
            continue
        spec = case.values[n]
        array = make_value(t, spec)
        line = _leaf_line(value_name(case.graph, (n, 0)), array, t.dtype, case.framework, spec)
        big = array.size > LITERAL_ELEMENTS
        out.append((f"{line}  # {label}: {tuple(t.shape)}", big and bool(getattr(spec, "mode", "")), big))
    return out


def _dynamic(compiled: str, case: Case) -> str:
    """The candidate's call compiled for symbolic shapes, as the plan compiles it."""
    if compiled.startswith("torch.compile("):
        return compiled[:-1] + ", dynamic=True)"
    if compiled.startswith("tf.function("):
        graph, dims = case.graph, set(case.plan.dynamic_dims)
        specs = []
        for n in graph.leaves():
            t = graph.node(n).types[0]
            shape = [None if (n, d) in dims else s for d, s in enumerate(t.shape)]
            specs.append(f"tf.TensorSpec({shape!r}, tf.{t.dtype})")
        return compiled[:-1] + f", input_signature=[{', '.join(specs)}])"
    return compiled


def _fresh(call: str, case: Case, specs: Mapping[str, OpSpec]) -> str:
    """The call's arguments, as copies where the model writes an input in place: else the
    first call (eager's) would change what the second one reads."""
    from oracles.judge import mutated_inputs

    if case.framework != "torch" or not mutated_inputs(case.graph, specs):
        return call
    return f"*[t.clone() for t in ({call},)]"


def _plan_lines(case: Case, specs: Mapping[str, OpSpec], verdict: Verdict, item: tuple[str, str, int] | None,
                leaves: list[str], compiled: str, resized: list[str], tolerance: tuple[float, float]) -> list[str]:
    """The calls and the assertion of a bug only the plan's ``verdict.check`` sees, made
    as the oracle made them: compiled once in the plan's mode, then called."""
    from oracles.judge import mutated_inputs
    from oracles.layouts import layout_source

    plan, graph, framework = case.plan, case.graph, case.framework
    call = ", ".join(leaves)
    label, what, i = item or ("forward", "output", verdict.output or 0)
    grad = plan.backward and framework == "torch"
    lines = [] if grad or framework != "torch" else ["torch.set_grad_enabled(False)"]
    lines.append(f"compiled = {_dynamic(compiled, case)}  # one compile for symbolic shapes" if plan.dynamic
                 else f"compiled = {compiled}")
    gradients = grad and verdict.check == "backward" and (what == "gradient" or verdict.status != "mismatch")
    if grad:  # autograd on, as the plan compiles: float weights (and, for the backward, inputs) require grad
        mutated = set(mutated_inputs(graph, specs)) if plan.mutation else set()
        wrt = [value_name(graph, (n, 0)) for p, n in enumerate(graph.leaves("input"))
               if is_float(graph.node(n).types[0].dtype) and p not in mutated] if verdict.check == "backward" else []
        wrt += [value_name(graph, (n, 0)) for n in graph.leaves("const") if is_float(graph.node(n).types[0].dtype)]
        why = "gradients are taken of them" if verdict.check == "backward" else "autograd on, as dlfuzz compiled it"
        if wrt:
            lines += [f"wrt = [{', '.join(wrt)}]  # {why}", "for t in wrt:", "    t.requires_grad_()"]
    if gradients:
        lines += ["", "",
                  f"def vjp(fn):  # the gradients of wrt, with the cotangents dlfuzz drew (seed {plan.backward_seed})",
                  f"    outs = [o for o in fn({_fresh(call, case, specs)}) if o.requires_grad]",
                  f"    rng = np.random.default_rng({plan.backward_seed!r})",
                  "    cots = [torch.from_numpy(rng.uniform(-1.0, 1.0, size=tuple(o.shape))).to(o.dtype)",
                  "            for o in outs]",
                  "    return torch.autograd.grad(outs, wrt, cots, allow_unused=True)", "", ""]
    if label == "layout":
        lines.append(f"compiled({call})  # the first call: contiguous inputs")
        for name in sorted(set(plan.layouts.values())):
            lines += ["", "", f"def {name}(x):  # the same values, {name} in memory",
                      f"    return {layout_source(name)}", "", ""]
        lines += [f"{value_name(graph, (n, 0))} = {name}({value_name(graph, (n, 0))})"
                  for n, name in sorted(plan.layouts.items()) if n in graph.nx]
    elif label.startswith("shape set"):
        lines += [f"compiled({call})  # at the case's shapes", *resized]
    if gradients:
        if verdict.status != "mismatch":
            return [*lines, f"vjp(compiled)  # {_what(verdict)}"]
        lines += ["expected = vjp(f)", "actual = vjp(compiled)"]
        return lines + _assertion(verdict, framework, "actual", "expected", i, tolerance, f"gradient {i}")
    if verdict.status != "mismatch":
        return [*lines, f"compiled({call})  # {_what(verdict)}"]
    if what == "input":
        leaf = graph.leaves("input")[i]
        args = f"({call},)" if len(leaves) == 1 else f"({call})"
        lines += [f"expected = [t.clone() for t in {args}]", "f(*expected)",
                  f"actual = [t.clone() for t in {args}]", "compiled(*actual)"]
        return lines + _assertion(verdict, framework, "actual", "expected", graph.leaves().index(leaf), tolerance,
                                  f"{value_name(graph, (leaf, 0))} after the call")
    fresh = _fresh(call, case, specs)
    lines += [f"expected = f({fresh})", f"actual = compiled({fresh})"]
    return lines + _assertion(verdict, framework, "actual", "expected", i, tolerance)
