"""Materialization of a whole Graph as framework source code.

One text serves execution and reproduction: the executor ``exec``s exactly the module
source that program.py and repro.py contain, so what a report shows is what ran.

The model is a ``torch.nn.Module`` (weights as buffers) or a ``tf.Module`` (weights as
constants) whose forward takes the graph's ``input`` leaves in node order and returns a
tuple of the graph's outputs. Names: input leaf ``n`` is ``x{n}``, weight ``c{n}``, op
output ``(n, i)`` is ``v{n}`` (or ``v{n}_{i}`` for multi-output ops).
"""

from __future__ import annotations

from typing import Mapping

from corpus.graph import Graph, Value
from corpus.values import VALUE_SOURCE
from rules.spec import OpSpec
from rules.specs.inplace import spent_values

# Per framework: imports and the conversions between numpy and the framework's tensors.
RUNTIME = {
    "torch": '''import numpy as np
import torch


def to_tensor(array, dtype):
    return torch.from_numpy(np.array(array)).to(getattr(torch, dtype))


def to_numpy(t):
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()
''',
    "tensorflow": '''import numpy as np
import tensorflow as tf


def to_tensor(array, dtype):
    return tf.cast(tf.constant(array), getattr(tf, dtype))


def to_numpy(t):
    if t.dtype == tf.bfloat16:
        t = tf.cast(t, tf.float32)
    return t.numpy()
''',
}


def value_name(graph: Graph, v: Value) -> str:
    node = graph.node(v[0])
    if node.kind == "input":
        return f"x{v[0]}"
    if node.kind == "const":
        return f"c{v[0]}"
    return f"v{v[0]}" if len(node.types) == 1 else f"v{v[0]}_{v[1]}"


def helpers_source(graph: Graph, framework: str, specs: Mapping[str, OpSpec]) -> str:
    seen: dict[str, str] = {}
    for n in graph.op_nodes():
        for name, src in specs[graph.node(n).op].helpers(framework).items():  # type: ignore[index]
            seen.setdefault(name, src.strip("\n"))
    return "\n\n\n".join(seen[k] for k in sorted(seen))


def forward_body(graph: Graph, framework: str, specs: Mapping[str, OpSpec], indent: str = "        ") -> list[str]:
    lines = [f"{indent}{value_name(graph, (n, 0))} = self.{value_name(graph, (n, 0))}" for n in graph.leaves("const")]
    # An output that a later op writes in place (a probe making every value an output)
    # is returned as computed: a copy taken before the write (rules.specs.inplace).
    snaps = {v: f"{value_name(graph, v)}_before" for v in graph.outputs if v in spent} \
        if (spent := spent_values(graph, specs)) else {}
    lines += [f"{indent}{snaps[(n, 0)]} = x{n}.clone()" for n in graph.leaves("input") if (n, 0) in snaps]
    for n in graph.op_nodes():
        node = graph.node(n)
        spec = specs[node.op]  # type: ignore[index]
        args = [value_name(graph, v) for v in graph.inputs_of(n)]
        expr = spec.code(framework, args, node.attrs)
        if len(node.types) == 1:
            lines.append(f"{indent}{value_name(graph, (n, 0))} = {expr}")
        else:
            targets = ", ".join(value_name(graph, (n, i)) for i in range(len(node.types)))
            lines.append(f"{indent}{targets} = {expr}")
        lines += [f"{indent}{snaps[(n, i)]} = {value_name(graph, (n, i))}.clone()"
                  for i in range(len(node.types)) if (n, i) in snaps]
    outs = ", ".join(snaps.get(v, value_name(graph, v)) for v in graph.outputs)
    lines.append(f"{indent}return ({outs}{',' if len(graph.outputs) == 1 else ''})")
    return lines


def model_class_source(graph: Graph, framework: str, specs: Mapping[str, OpSpec]) -> str:
    params = ", ".join(["self"] + [f"x{n}" for n in graph.leaves("input")])
    body = "\n".join(forward_body(graph, framework, specs))
    if framework == "torch":
        return f'''class Model(torch.nn.Module):
    def __init__(self, consts):
        super().__init__()
        for name, value in consts.items():
            if value.requires_grad:  # the gradients check: float weights are parameters
                setattr(self, name, torch.nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def forward({params}):
{body}
'''
    return f'''class Model(tf.Module):
    def __init__(self, consts):
        super().__init__()
        for name, value in consts.items():
            setattr(self, name, value)

    def __call__({params}):
{body}
'''


def module_source(graph: Graph, framework: str, specs: Mapping[str, OpSpec]) -> str:
    """Imports, tensor conversions, op helpers, ``make_value`` and the Model class."""
    if framework not in RUNTIME:
        raise ValueError(f"unknown framework {framework!r}")
    parts = [RUNTIME[framework].rstrip("\n"), VALUE_SOURCE.strip("\n")]
    helpers = helpers_source(graph, framework, specs)
    if helpers:
        parts.append(helpers)
    parts.append(model_class_source(graph, framework, specs).rstrip("\n"))
    return "\n\n\n".join(parts) + "\n"


def leaf_recipes(graph: Graph, values: Mapping[int, object]) -> tuple[list[str], list[str]]:
    """Source lines building the ``consts`` dict and the ``inputs`` list from value recipes."""
    consts, inputs = [], []
    for n in graph.leaves():
        t = graph.node(n).types[0]
        spec = values[n]
        # the mode only when set: plain recipes print as they did before modes existed
        mode = getattr(spec, "mode", "")
        extra = f", {mode!r}" if mode else ""
        call = f"to_tensor(make_value({list(t.shape)!r}, {t.dtype!r}, {spec.seed!r}, {spec.low!r}, {spec.high!r}{extra}), {t.dtype!r})"  # type: ignore[attr-defined]
        if graph.node(n).kind == "const":
            consts.append(f"    {value_name(graph, (n, 0))!r}: {call},")
        else:
            inputs.append(f"    {call},")
    return consts, inputs


PROGRAM_MAIN = {
    "torch": '''def main():
    torch.manual_seed(0)
    model = Model(CONSTS())
    with torch.no_grad():
        outputs = model(*INPUTS())
    for i, out in enumerate(outputs):
        checksum = float(out.to(torch.float64).sum())
        print(f"output {i}: shape={tuple(out.shape)} dtype={str(out.dtype).replace('torch.', '')} checksum={checksum:.6g}")
''',
    "tensorflow": '''def main():
    model = Model(CONSTS())
    outputs = model(*INPUTS())
    for i, out in enumerate(outputs):
        checksum = float(tf.reduce_sum(tf.cast(out, tf.float64)))
        print(f"output {i}: shape={tuple(out.shape)} dtype={out.dtype.name} checksum={checksum:.6g}")
''',
}


def leaves_source(graph: Graph, values: Mapping[int, object]) -> str:
    consts, inputs = leaf_recipes(graph, values)
    return "\n".join(["def CONSTS():", "    return {", *consts, "    }", "", "", "def INPUTS():", "    return [", *inputs, "    ]"]) + "\n"


def program_source(graph: Graph, framework: str, values: Mapping[int, object], specs: Mapping[str, OpSpec], header: str = "") -> str:
    """A standalone program: builds the model, makes its inputs, runs it, prints output
    shapes and checksums. It imports only numpy and the framework."""
    doc = f'"""{header.strip()}\n\nRun with: python program.py\n"""\n\n' if header else ""
    return (doc + module_source(graph, framework, specs) + "\n\n" + leaves_source(graph, values) + "\n\n"
            + PROGRAM_MAIN[framework] + '\n\nif __name__ == "__main__":\n    main()\n')
