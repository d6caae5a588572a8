"""TensorFlow graph-level localization: which op of the traced ``tf.function`` graph XLA
gets wrong (DESIGN §6, "one report per root cause"; the analogue of ``oracles.aten``).

XLA does not see ``tf.image.adjust_contrast`` or ``tf.math.unsorted_segment_min``: it
compiles the ops of the graph ``tf.function`` traces (``AdjustContrastv2``,
``UnsortedSegmentMin``, the ``Cast`` and ``Reshape`` ops an API adds around them). One
faulty XLA lowering is thus reached through several Python APIs, and a crash message of
the XLA bridge rarely names an operator of the model. This module names the graph op, as
``tf.raw_ops.<Op>`` (how a user calls it alone), so that ``reports.signature`` signs by it.

It runs inside the sandbox worker on a probe case (``reports.localize.probe_case``), for
``tf.xla`` verdicts that ``tf.function`` without XLA does not share (``oracles.check``):

1. the failing code (a mismatch: the one operator where XLA first diverged, on its real
   input values; a crash: the whole model) is traced by ``tf.function`` and its GraphDef
   read off the concrete function;
2. the graph runs in graph mode without XLA with every op's value an output, which gives
   every op's real inputs, and the reference values (the ones XLA must agree with: a
   failure graph mode shares is no XLA bug);
3. parts of the GraphDef are imported into a ``tf.function`` of their own
   (``tf.graph_util.import_graph_def``: values made outside the part are arguments, or
   copied when they are constants, so that what XLA must see as a compile-time constant
   stays one), compiled with the backend, and compared with the reference, by the search
   of ``oracles.part_search``. A part XLA declines (an argument it needs as a constant)
   does not fail.

Every step is bounded (``MAX_COMPILES``; XLA costs about 0.1 s a part) and nothing of ours
escapes: a localization that fails gives an empty answer with the reason, on the
worker's log.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from corpus.case import Case
from oracles.aten import HINT, eager_values, one_operator
from oracles.backends import Backend, StageTracker
from oracles.compare import tolerance
from oracles.part_search import Localization, OutOfBudget, same_message, search
from oracles.verdict import Verdict, exception_message
from rules.spec import OpSpec

PREFIX = "tf.raw_ops."  # a graph op's name in signatures and reports
COUNTER = "compiles: graph localization"
# XLA compiles a part in about 0.1 s (Inductor: a second), and a traced API has more ops
# than its ATen graph (boolean_mask alone is a dozen): a larger budget than the ATen one
MAX_COMPILES = 16
# not computations: the graph's arguments, constants and control edges
_NOT_COMPUTING = ("Placeholder", "Const", "NoOp")
_INPUT = "dlfuzz_in"  # the name of a part's argument stand-ins


def wants_graph_ops(case: Case, verdict: Verdict, backend: Backend) -> bool:
    """A probe's forward failure on ``tf.xla`` (the one TensorFlow compiler under test)."""
    from oracles.aten import MARK

    return case.provenance.get(MARK) == "aten" and case.framework == "tensorflow" and backend.name == "tf.xla" \
        and verdict.status in ("mismatch", "crash") and not verdict.unsupported and verdict.check == "forward"


def localize_verdict(case: Case, verdict: Verdict, backend: Backend, ns: dict[str, Any],
                     specs: Mapping[str, OpSpec], max_compiles: int = MAX_COMPILES,
                     counts: dict[str, int] | None = None) -> Verdict:
    """``verdict`` with ``aten_ops`` (the lowered level's culprit) set to the graph ops the
    localization names. Never raises; its compiles are added to ``counts[COUNTER]``."""
    try:
        found = localize(case, verdict, backend, ns, specs, max_compiles=max_compiles)
    except Exception as e:  # noqa: BLE001 - ours, not the backend's: never a verdict
        found = Localization((), f"internal error: {exception_message(e)}")
    if counts is not None and found.compiles:
        counts[COUNTER] = counts.get(COUNTER, 0) + found.compiles
    print(f"dlfuzz graph localization of {verdict.backend} {verdict.status}: "
          f"{', '.join(found.ops) or 'none'} ({found.why}; {found.compiles} compiles)", file=sys.stderr)
    return replace(verdict, aten_ops=found.ops) if found.ops else verdict


def localize(case: Case, verdict: Verdict, backend: Backend, ns: dict[str, Any], specs: Mapping[str, OpSpec], *,
             max_compiles: int = MAX_COMPILES) -> Localization:
    """Localize a ``mismatch`` (on the operator producing output ``verdict.output`` of the
    probe ``case``) or a ``crash`` (on the whole model of ``ns``) to graph ops."""
    if verdict.status == "mismatch":
        if verdict.output is None or not 0 <= verdict.output < len(case.graph.outputs):
            return Localization((), "the mismatch names no output")
        node = case.graph.outputs[verdict.output][0]
        fn, args = one_operator(case.graph, node, eager_values(case.graph, ns), specs, "tensorflow")
    elif verdict.status == "crash":
        model = ns["Model"](ns["CONSTS"]())
        fn, args = model.__call__, list(ns["INPUTS"]())
    else:
        return Localization((), f"a {verdict.status} is not localized at the graph level")
    graph = TracedGraph(fn, args)
    message = verdict.message if verdict.status == "crash" else None
    trials = _Trials(graph, backend, message, max_compiles)
    return search(graph.nodes, trials, graph_op_name, message is not None,
                  tuple(case.provenance.get(HINT) or ()), "TensorFlow")


def graph_op_name(node: Any) -> str:
    return PREFIX + node.op


class TracedGraph:
    """The GraphDef ``tf.function`` traces from ``fn`` on ``args``, its computing nodes in
    order, and every numeric value as graph mode (no XLA) computes it (``values``, by
    tensor name ``node:index``)."""

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any]) -> None:
        import tensorflow as tf

        concrete = tf.function(fn, autograph=False).get_concrete_function(*args)
        self.graph_def = concrete.graph.as_graph_def()
        self.by_name = {n.name: n for n in self.graph_def.node}
        self.nodes = [n for n in self.graph_def.node if n.op not in _NOT_COMPUTING]
        feeds = list(args) + list(concrete.captured_inputs)  # concrete.inputs: explicit, then captured
        self.values: dict[str, Any] = {t.name: v for t, v in zip(concrete.inputs, feeds)}
        with tf.Graph().as_default() as scratch:
            tf.graph_util.import_graph_def(self.graph_def, name="")
        self.outputs = {n.name: [t.name for t in scratch.get_operation_by_name(n.name).outputs if _numeric(t.dtype)]
                        for n in self.nodes}
        whole = self.part(self.nodes)
        self.values.update(zip(whole.outputs, tf.function(whole, autograph=False)(*whole.arguments)))

    def part(self, nodes: Sequence[Any]) -> "_Part":
        """``nodes`` alone as a callable: a value made outside the part is an argument (its
        value from ``values``), or a copy when a constant makes it; every numeric value the
        part makes is an output."""
        from tensorflow.core.framework import graph_pb2

        inside = {n.name for n in nodes}
        sub = graph_pb2.GraphDef()
        sub.versions.CopyFrom(self.graph_def.versions)
        sub.library.CopyFrom(self.graph_def.library)
        arguments: dict[str, str] = {}  # outside tensor -> the stand-in it is mapped onto
        copied: set[str] = set()
        for n in nodes:
            node = sub.node.add()
            node.CopyFrom(n)
            del node.input[:]
            for name in n.input:
                if name.startswith("^"):
                    continue  # a control edge: the part runs as a whole
                source, _, index = name.partition(":")
                if source in inside:
                    node.input.append(name)
                elif self.by_name[source].op == "Const":
                    if source not in copied:
                        copied.add(source)
                        sub.node.add().CopyFrom(self.by_name[source])
                    node.input.append(name)
                else:
                    tensor = f"{source}:{index or 0}"
                    if tensor not in arguments:
                        arguments[tensor] = f"{_INPUT}{len(arguments)}"
                        _stand_in(sub.node.add(), arguments[tensor], self.values[tensor].dtype)
                    node.input.append(arguments[tensor])
        outputs = [t for n in nodes for t in self.outputs[n.name]]
        return _Part(sub, [f"{a}:0" for a in arguments.values()], outputs,
                     [self.values[t] for t in arguments])


class _Part:
    """A part of the graph as a function of its arguments (imported afresh in each trace)."""

    def __init__(self, graph_def: Any, inputs: list[str], outputs: list[str], arguments: list[Any]) -> None:
        self.graph_def, self.inputs, self.outputs, self.arguments = graph_def, inputs, outputs, arguments

    def __call__(self, *xs: Any) -> tuple:
        import tensorflow as tf

        return tuple(tf.graph_util.import_graph_def(self.graph_def, input_map=dict(zip(self.inputs, xs)),
                                                    return_elements=self.outputs, name="part"))


def _stand_in(node: Any, name: str, dtype: Any) -> None:
    """A scalar constant named like an argument: ``input_map`` replaces every use of it, and
    unlike a Placeholder it is an op XLA compiles (an unused one is left in the graph)."""
    import numpy as np
    import tensorflow as tf

    node.name, node.op = name, "Const"
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.zeros((), dtype.as_numpy_dtype)))


_GRAPH_NAMES = re.compile(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]|__\w+|\bnode [\w/.:-]+|[\w.-]+/[\w/.:-]+|\[Op:\w+\]")


def _core(message: str) -> str:
    """A crash message without what tracing names differently in a part (its first line;
    node, function and scope names)."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return " ".join(_GRAPH_NAMES.sub("", first).split())


def _numeric(dtype: Any) -> bool:
    return dtype.is_floating or dtype.is_integer or dtype.is_bool or dtype.is_complex


def _differs(expected: Any, actual: Any) -> bool:
    import numpy as np

    if tuple(expected.shape) != tuple(getattr(actual, "shape", ())) or expected.dtype != getattr(actual, "dtype", None):
        return True
    e, a = np.asarray(expected.numpy()), np.asarray(actual.numpy())
    if expected.dtype.is_floating or expected.dtype.is_complex:
        atol, rtol = tolerance(expected.dtype.name)
        wide = np.complex128 if expected.dtype.is_complex else np.float64
        return not np.allclose(a.astype(wide), e.astype(wide), rtol=rtol, atol=atol, equal_nan=True)
    return not np.array_equal(e, a)


class _Trials:
    """Compiles parts of the graph with the backend, within a budget (``part_search.Trials``)."""

    def __init__(self, graph: TracedGraph, backend: Backend, message: str | None, budget: int) -> None:
        self.graph, self.backend, self.message, self.budget = graph, backend, message, budget
        self.compiles = 0

    def first_failure(self, nodes: Sequence[Any]) -> int | None:
        if self.compiles >= self.budget:
            raise OutOfBudget
        part = self.graph.part(nodes)
        ns = {"Model": lambda consts: part, "CONSTS": dict, "INPUTS": lambda: list(part.arguments)}
        self.compiles += 1
        try:
            actual = self.backend.prepare(ns, StageTracker())(*part.arguments)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the backend's failure is the evidence
            message = exception_message(e)
            if self.backend.is_unsupported(message):
                return None  # declined (an argument XLA needs as a constant): this part shows nothing
            if self.message is not None:
                return 0 if same_message(_core(message), _core(self.message)) else None
            return 0  # raising where graph mode runs is failing too
        if self.message is not None:
            return None
        if len(actual) != len(part.outputs):
            return 0
        owners = [n.name for n in nodes for _ in self.graph.outputs[n.name]]
        for owner, name, value in zip(owners, part.outputs, actual):
            if _differs(self.graph.values[name], value):
                return [n.name for n in nodes].index(owner)
        return None
