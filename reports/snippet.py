"""The ten-second reproducer at the top of report.md.

``repro.py`` is the full harness (a child process for aborts and hangs, the oracle's
tolerances, exit codes); a maintainer reading an issue wants less: the imports, the
inputs as literals, the model as a plain function, the compiled call and one assertion.
Small inputs are written out (``torch.tensor([...])`` / ``tf.constant([...])``); larger
ones are drawn from a seeded numpy generator, one line each. A one-operator bug fits in
well under 25 lines.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from corpus.case import Case
from corpus.tensor_type import is_float
from corpus.values import VALUE_SOURCE, make_value
from oracles.verdict import Verdict
from reports.repro import backend_framework, backend_source
from rules.codegen import helpers_source, value_name
from rules.spec import OpSpec

LITERAL_ELEMENTS = 24  # at most this many elements are written out; more are drawn


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
    graph = case.graph
    leaves, leaf_lines, big = [], [], False
    for n in graph.leaves():
        t = graph.node(n).types[0]
        array = make_value(t, case.values[n])
        leaves.append(value_name(graph, (n, 0)))
        big |= array.size > LITERAL_ELEMENTS and bool(getattr(case.values[n], "mode", ""))
        leaf_lines.append(_leaf_line(leaves[-1], array, t.dtype, framework, case.values[n]))
    drawn = any(graph.node(n).types[0].numel > LITERAL_ELEMENTS for n in graph.leaves())
    lines = ["import numpy as np"] if drawn or framework == "tensorflow" else []
    lines += ["import torch" if framework == "torch" else "import tensorflow as tf", *backend_source(candidate)[0], ""]
    if big:
        lines += [VALUE_SOURCE.strip("\n"), ""]
    helpers = helpers_source(graph, framework, specs)
    if helpers:
        lines += [helpers, ""]
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
    compiled = _compiled(candidate, leaves)
    if framework == "torch":
        lines.append("torch.set_grad_enabled(False)")
    if verdict.status in ("crash", "abort", "timeout"):
        what = {"crash": f"raises {verdict.message}", "abort": f"dies ({verdict.message})",
                "timeout": "does not finish"}[verdict.status]
        lines.append(f"{compiled}({call})  # {what}")
        return "\n".join(lines)
    lines += [f"expected = f({call})", f"actual = {compiled}({call})"]
    i = verdict.output if verdict.output is not None and verdict.output < len(outs) else 0
    if verdict.message and " where the reference has " in verdict.message:
        what = "shape" if ": shape " in verdict.message else "dtype"
        lines.append(f"assert actual[{i}].{what} == expected[{i}].{what}  # {verdict.message}")
        return "\n".join(lines)
    atol, rtol = tolerance
    to_np = "" if framework == "torch" else ".numpy()"
    if framework == "torch":
        check = f"torch.testing.assert_close(actual[{i}], expected[{i}], atol={atol!r}, rtol={rtol!r})"
    else:
        check = f"np.testing.assert_allclose(actual[{i}]{to_np}, expected[{i}]{to_np}, atol={atol!r}, rtol={rtol!r})"
    figures = f"max abs error {verdict.max_abs:.3g}" if verdict.max_abs is not None else verdict.message
    lines.append(f"{check}  # fails: {figures}")
    return "\n".join(lines)
