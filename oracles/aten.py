"""ATen-level localization (DESIGN §6, "one report per root cause"): which ATen operator
inside a failing PyTorch operator is wrong.

The compilers under test do not see ``torch.nn.functional.layer_norm`` or ``Tensor.add``:
Dynamo and AOT autograd lower them to ATen operators (``aten.add.Tensor``), after the
backend's own decompositions, and the compiler works on those. One faulty ATen operator is
thus reached through many Python APIs; signing a bug by the API gives one folder per API.
This module names the ATen operator, so that ``reports.signature`` can sign by it.

It runs inside the sandbox worker, on a *probe* case (``reports.localize.probe_case``
marks it), right after the candidate failed:

1. the failing code is lowered to an ATen graph with ``make_fx`` and the decomposition
   table the backend uses (Inductor's ``select_decomp_table``; an ``aot_autograd``
   backend's own ``decompositions``; none otherwise). For a mismatch that is the one
   operator where the candidate first diverged, called on its real input tensors (the
   probe's eager values); for a crash, the whole model;
2. ``torch.fx.Interpreter`` runs the ATen graph eagerly, which gives every node's real
   inputs;
3. parts of the ATen graph are compiled alone, with the same backend, and compared with
   eager (``oracles.compare.tolerance``, exact for integers and bools) or, for a crash,
   checked for the same message, by the search of ``oracles.part_search`` (shared with
   TensorFlow's graph level, ``oracles.tf_graph``): the failing node's operator (or the
   smallest window's operators) is the answer. A fault that needs fusion and shows in no
   part is no ATen operator's: the answer is empty, and the API-level culprit stays the
   signature.

Every step is bounded (``MAX_COMPILES`` compiles; Inductor costs about a second each) and
nothing of ours escapes: any failure of the localization itself gives an empty answer
with the reason, which goes to the worker's log.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from corpus.case import Case
from corpus.graph import Graph
from oracles.backends import Backend, StageTracker
from oracles.compare import tolerance
from oracles.part_search import MAX_COMPILES, Localization, OutOfBudget, same_message
from oracles.part_search import search as search_parts
from oracles.verdict import Verdict, exception_message
from rules.codegen import module_source
from rules.spec import OpSpec

MARK = "localize"  # Case.provenance key: ``"aten"`` asks check_case for this localization
HINT = "aten_hint"  # Case.provenance key: ATen ops found before (reduction): tried first
# Dynamo backends that apply Inductor's decompositions (the debugging ones built inside a
# function, where the table cannot be read off an aot_autograd object)
INDUCTOR_TABLE = ("", "inductor", "aot_eager_decomp_partition", "aot_eager_decomp_partition_with_mode",
                  "aot_eager_decomp_partition_crossref")


def wants_aten(case: Case) -> bool:
    return case.provenance.get(MARK) == "aten" and case.framework == "torch"


AtenLocalization = Localization  # the ATen level's answer


def localize_verdict(case: Case, verdict: Verdict, backend: Backend, ns: dict[str, Any],
                     specs: Mapping[str, OpSpec], max_compiles: int = MAX_COMPILES,
                     counts: dict[str, int] | None = None) -> Verdict:
    """``verdict`` with ``aten_ops`` filled in where the localization names them (check_case's
    hook). Never raises: a localization that fails leaves the verdict as it was. Its
    compiles are added to ``counts["compiles: aten localization"]`` (what localizing costs
    a campaign, next to its checking compiles)."""
    try:
        found = localize(case, verdict, backend, ns, specs, max_compiles=max_compiles)
    except Exception as e:  # noqa: BLE001 - ours, not the backend's: never a verdict
        found = AtenLocalization((), f"internal error: {exception_message(e)}")
    if counts is not None and found.compiles:
        counts["compiles: aten localization"] = counts.get("compiles: aten localization", 0) + found.compiles
    print(f"dlfuzz aten localization of {verdict.backend} {verdict.status}: "
          f"{', '.join(found.ops) or 'none'} ({found.why}; {found.compiles} compiles)", file=sys.stderr)
    return replace(verdict, aten_ops=found.ops) if found.ops else verdict


def localize(case: Case, verdict: Verdict, backend: Backend, ns: dict[str, Any], specs: Mapping[str, OpSpec], *,
             max_compiles: int = MAX_COMPILES) -> AtenLocalization:
    """Localize a ``mismatch`` (on the operator producing output ``verdict.output`` of
    ``case``, whose outputs must include that operator's inputs: a probe case) or a
    ``crash`` (on the whole model of the namespace ``ns``) to ATen operators."""
    import torch

    with torch.no_grad():
        if verdict.status == "mismatch":
            if verdict.output is None or not 0 <= verdict.output < len(case.graph.outputs):
                return AtenLocalization((), "the mismatch names no output")
            node = case.graph.outputs[verdict.output][0]
            fn, args = one_operator(case.graph, node, eager_values(case.graph, ns), specs)
        elif verdict.status == "crash":
            model = ns["Model"](ns["CONSTS"]())
            model.eval()
            fn, args = (lambda *xs: model(*xs)), list(ns["INPUTS"]())
        else:
            return AtenLocalization((), f"a {verdict.status} is not localized at the ATen level")
        gm, env = aten_graph(fn, args, decompositions(backend.name))
        hint = tuple(case.provenance.get(HINT) or ())
        return search(gm, env, backend, verdict.message if verdict.status == "crash" else None, hint, max_compiles)


# ---- the ATen graph ------------------------------------------------------------------------

def decompositions(backend_name: str) -> dict:
    """The decomposition table the backend applies before it compiles: Inductor's, an
    ``aot_autograd`` backend's own, else none (Dynamo hands other backends torch-level
    graphs; ``make_fx`` still applies the CompositeImplicitAutograd decompositions that
    AOT autograd applies too)."""
    family, _, option = backend_name.partition(":")
    if family != "torch.compile":
        return {}
    if option in INDUCTOR_TABLE:
        from torch._inductor.decomposition import select_decomp_table

        return dict(select_decomp_table())
    from oracles.backends import _compiler

    table = getattr(_compiler(option), "kwargs", {}).get("decompositions")
    if callable(table):
        table = table()
    return dict(table or {})


def eager_values(graph: Graph, ns: dict[str, Any]) -> dict[tuple[int, int], Any]:
    """Every value of the graph as eager computes it: leaves, and the graph's outputs
    (a probe case's outputs are every operator's)."""
    model = ns["Model"](ns["CONSTS"]())
    if hasattr(model, "eval"):  # a torch module (a tf.Module has no training mode)
        model.eval()
    outs = model(*ns["INPUTS"]())
    values: dict[tuple[int, int], Any] = dict(zip(graph.outputs, outs))
    for n, x in zip(graph.leaves("input"), ns["INPUTS"]()):  # fresh: the model may mutate its inputs
        values[(n, 0)] = x
    for n in graph.leaves("const"):
        values[(n, 0)] = getattr(model, f"c{n}")
    return values


def one_operator(graph: Graph, node: int, values: Mapping[tuple[int, int], Any],
                 specs: Mapping[str, OpSpec], framework: str = "torch") -> tuple[Callable[..., Any], list[Any]]:
    """Operator ``node`` alone, as the same generated code calls it, and its real inputs."""
    sub = Graph()
    inputs = graph.inputs_of(node)
    missing = [v for v in inputs if v not in values]
    if missing:
        raise ValueError(f"inputs {missing} of node {node} have no eager value (not a probe case?)")
    leaves = [sub.add_leaf(graph.type_of(v)) for v in inputs]
    n = graph.node(node)
    sub.outputs = sub.add_op(n.op, n.attrs, leaves, n.types)  # type: ignore[arg-type]
    space: dict[str, Any] = {"__name__": "dlfuzz_aten_operator"}
    exec(compile(module_source(sub, framework, specs), "<dlfuzz aten operator>", "exec"), space)
    model = space["Model"]({})
    return (lambda *xs: model(*xs)), [values[v] for v in inputs]


def aten_graph(fn: Callable[..., Any], args: Sequence[Any], table: Mapping) -> tuple[Any, dict]:
    """(the ATen graph of ``fn`` on ``args``, every node's eager value)."""
    import torch.fx
    from torch.fx.experimental.proxy_tensor import make_fx

    gm = make_fx(fn, decomposition_table=dict(table))(*_clones(args))
    interpreter = torch.fx.Interpreter(gm, garbage_collect_values=False)
    interpreter.run(*_clones(args))
    return gm, dict(interpreter.env)


def _clones(xs: Sequence[Any]) -> list[Any]:
    import torch

    return [x.clone() if isinstance(x, torch.Tensor) else x for x in xs]


def op_name(node: Any) -> str:
    target = node.target
    return str(target) if hasattr(target, "_schema") else getattr(target, "__name__", str(target))


# ---- compiling parts of it -----------------------------------------------------------------

def _compute_nodes(gm: Any) -> list[Any]:
    """The ATen calls, in order; ``getitem`` of a multi-output call follows its call."""
    import operator

    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target is not operator.getitem]


def _part(nodes: Sequence[Any]) -> list[Any]:
    import operator

    out = []
    for n in nodes:
        out.append(n)
        out.extend(u for u in n.users if u.op == "call_function" and u.target is operator.getitem)
    return out


def submodule(nodes: Sequence[Any], env: Mapping[Any, Any]) -> tuple[Any, list[Any], list[Any]]:
    """(a GraphModule of ``nodes`` alone, its inputs, the nodes it outputs): every value
    made outside the part is an input with its eager value, every tensor it makes an output."""
    import torch
    import torch.fx

    inside = set(nodes)
    graph = torch.fx.Graph()
    mapping: dict[Any, Any] = {}
    inputs: list[Any] = []
    for n in nodes:
        for a in n.all_input_nodes:
            if a not in inside and a not in mapping:
                mapping[a] = graph.placeholder(f"in{len(inputs)}")
                inputs.append(env[a])
    for n in nodes:
        mapping[n] = graph.node_copy(n, lambda a: mapping[a])
    outs = [n for n in nodes if isinstance(env.get(n), torch.Tensor)]
    graph.output(tuple(mapping[n] for n in outs))
    return torch.fx.GraphModule(torch.nn.Module(), graph), inputs, outs


def _differs(expected: Any, actual: Any) -> bool:
    import torch

    if not isinstance(actual, torch.Tensor):
        return True
    if expected.shape != actual.shape or expected.dtype != actual.dtype:
        return True
    if expected.dtype.is_floating_point or expected.is_complex():
        atol, rtol = tolerance(str(expected.dtype).removeprefix("torch."))
        e, a = expected.detach().to(torch.complex128 if expected.is_complex() else torch.float64), \
            actual.detach().to(torch.complex128 if expected.is_complex() else torch.float64)
        return not torch.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    return not torch.equal(expected, actual)


class _Trials:
    """Compiles parts of the ATen graph with the backend, within a budget."""

    def __init__(self, env: Mapping[Any, Any], backend: Backend, message: str | None, budget: int) -> None:
        self.env, self.backend, self.message, self.budget = env, backend, message, budget
        self.compiles = 0

    def first_failure(self, nodes: Sequence[Any]) -> int | None:
        """For a mismatch, the position in ``nodes`` of the first value that differs; for
        a crash, 0 when the part raises the message. None when it passes."""
        if self.compiles >= self.budget:
            raise OutOfBudget
        part = _part(nodes)
        module, inputs, outs = submodule(part, self.env)
        expected = module(*_clones(inputs))
        ns = {"Model": lambda consts: module, "CONSTS": dict, "INPUTS": lambda: _clones(inputs)}
        self.compiles += 1
        try:
            actual = self.backend.prepare(ns, StageTracker())(*_clones(inputs))
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the backend's failure is the evidence
            if self.message is not None:
                return 0 if same_message(exception_message(e), self.message) else None
            return 0  # raising where eager runs is failing too
        if self.message is not None:
            return None
        if not isinstance(actual, (tuple, list)):
            actual = (actual,)
        if len(actual) != len(outs):
            return 0
        for n, e, a in zip(outs, expected, actual):
            if _differs(e, a):
                owner = n.args[0] if n not in nodes else n  # a getitem: its call
                return list(nodes).index(owner)
        return None

    def fails(self, nodes: Sequence[Any]) -> bool:
        return self.first_failure(nodes) is not None


def search(gm: Any, env: Mapping[Any, Any], backend: Backend, message: str | None, hint: Sequence[str] = (),
           max_compiles: int = MAX_COMPILES) -> AtenLocalization:
    """The ATen operator(s) whose compiled code fails alone (``oracles.part_search``).
    ``message``: a crash's message (None for a mismatch)."""
    return search_parts(_compute_nodes(gm), _Trials(env, backend, message, max_compiles), op_name,
                        message is not None, hint, "ATen")
