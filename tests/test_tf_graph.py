"""TensorFlow graph-level localization (issue 14, point 1's analogue for XLA): a fault of
one graph op reached through different Python APIs is named by that op, so it signs as one
bug; a crash whose message names no operator gets the graph op it needs.

The faults are planted in a compiler that rewrites the traced GraphDef before it runs it
(``Exp`` computed as ``Expm1``; a graph with ``Sin`` refused with a message naming nothing),
as an XLA lowering bug would.
"""

from __future__ import annotations

import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles.backends import Backend
from oracles.verdict import Verdict
from reports.localize import probe_case
from reports.signature import sign
from rules.execute import load_module

tf = pytest.importorskip("tensorflow")

from tests.test_tf_judgement import Call  # noqa: E402  (after the skip: it imports TF-free code only)

QUIET = "planted compiler failure: internal error"
QUIET_MESSAGE = f"RuntimeError: {QUIET}"  # as the oracle records it


def rewriting_backend(name: str, rewrite) -> Backend:
    """A TensorFlow compiler that traces the model, lets ``rewrite`` change (or refuse) its
    GraphDef, and runs the result in graph mode."""
    from oracles.tf_graph import _stand_in

    def prepare(ns, stage, mode):
        model = ns["Model"](ns["CONSTS"]())
        inputs = list(ns["INPUTS"]())
        concrete = tf.function(model.__call__, autograph=False).get_concrete_function(*inputs)
        graph_def = concrete.graph.as_graph_def()
        rewrite(graph_def)
        placeholders = [t.name for t in concrete.inputs]
        for node in graph_def.node:
            if node.op == "Placeholder":
                dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
                node.attr.clear()
                _stand_in(node, node.name, dtype)
        captured = list(concrete.captured_inputs)
        fetches = [t.name for t in concrete.outputs]

        def run(*xs):
            return tuple(tf.graph_util.import_graph_def(graph_def, input_map=dict(zip(placeholders, list(xs) + captured)),
                                                        return_elements=fetches, name="planted"))

        stage.compiles += 1
        return tf.function(run, autograph=False)

    return Backend(name, "tensorflow", False, prepare)


def exp_as_expm1(graph_def) -> None:
    for node in graph_def.node:
        if node.op == "Exp":
            node.op = "Expm1"
    for function in graph_def.library.function:
        for node in function.node_def:
            if node.op == "Exp":
                node.op = "Expm1"


def refuses_sin(graph_def) -> None:
    if any(node.op == "Sin" for node in graph_def.node):
        raise RuntimeError(QUIET)


WRONG_EXP = rewriting_backend("tf.xla", exp_as_expm1)
QUIET_ON_SIN = rewriting_backend("tf.xla", refuses_sin)

EXP = Call("demo.exp", {"tensorflow": "tf.math.exp({0})"})
LOGSUMEXP = Call("demo.logsumexp", {"tensorflow": "tf.math.reduce_logsumexp({0}, axis=1, keepdims=True)"})
SOFTPLUS_ISH = Call("demo.log1p_exp", {"tensorflow": "tf.math.log1p(tf.math.exp({0}) * 2.0)"})
SQUARE = Call("demo.square", {"tensorflow": "tf.math.square({0})"})
SIN = Call("demo.sin", {"tensorflow": "tf.math.sin({0})"})
SPECS = {s.id: s for s in (EXP, LOGSUMEXP, SOFTPLUS_ISH, SQUARE, SIN)}


def chain(*ops: Call, width: int = 4) -> Case:
    """An input through ``ops`` one after the other (each keeps the shape but logsumexp)."""
    g = Graph()
    v = g.add_leaf(TensorType((3, width), "float32"))
    for op in ops:
        shape = (3, 1) if op is LOGSUMEXP else (3, width)
        v = g.add_op(op.id, {}, [v], [TensorType(shape, "float32")])[0]
    g.outputs = [v]
    return Case(g, "tensorflow", {0: ValueSpec(7, -1.0, 1.0)})


def mismatch_on(probe: Case, backend: Backend) -> Verdict:
    """The probe's first output that the backend gets wrong, as the oracle reports it."""
    import numpy as np

    ns = load_module(probe.graph, "tensorflow", probe.values, SPECS)
    expected = ns["Model"](ns["CONSTS"]())(*ns["INPUTS"]())
    actual = backend.prepare(ns)(*ns["INPUTS"]())
    for i, (e, a) in enumerate(zip(expected, actual)):
        if not np.allclose(e.numpy(), a.numpy(), rtol=1e-5, atol=1e-6):
            return Verdict(backend.name, "mismatch", "run", "planted", output=i, dtype="float32")
    raise AssertionError("the planted fault did not show")


def localized(case: Case, backend: Backend, verdict: Verdict | None = None,
              compiles: bool = True) -> tuple[Verdict, Verdict]:
    from oracles.tf_graph import localize_verdict

    probe = probe_case(case)
    verdict = verdict or mismatch_on(probe, backend)
    ns = load_module(probe.graph, "tensorflow", probe.values, SPECS)
    counts: dict[str, int] = {}
    found = localize_verdict(probe, verdict, backend, ns, SPECS, counts=counts)
    assert (0 < counts.get("compiles: graph localization", 0) <= 16) == compiles
    return verdict, found


def test_an_op_miscompiled_behind_two_apis_is_named_by_the_graph_op_and_signs_once():
    signatures = set()
    for case in (chain(SQUARE, EXP), chain(SQUARE, LOGSUMEXP)):
        verdict, found = localized(case, WRONG_EXP)
        assert found.aten_ops == ("tf.raw_ops.Exp",)
        signatures.add(sign("mismatch", "tf.xla", "run", verdict.message, case.graph.op_ids(),
                            culprit_op=case.graph.node(case.graph.outputs[0][0]).op, aten_ops=found.aten_ops,
                            dtype="float32"))
    assert len(signatures) == 1 and next(iter(signatures)).operators == ("tf.raw_ops.Exp",)


def test_the_op_is_found_inside_an_api_that_lowers_to_several_ops():
    """log1p(exp(x) * 2): Exp is wrong, Mul and Log1p after it are right on their inputs."""
    _, found = localized(chain(SOFTPLUS_ISH), WRONG_EXP)
    assert found.aten_ops == ("tf.raw_ops.Exp",)


def test_a_crash_whose_message_names_no_op_gets_the_graph_op_that_raises():
    case = chain(SQUARE, SIN, SQUARE)
    verdict = Verdict("tf.xla", "crash", "compile", QUIET_MESSAGE)
    _, found = localized(case, QUIET_ON_SIN, verdict)
    assert found.aten_ops == ("tf.raw_ops.Sin",)
    sig = sign("crash", "tf.xla", "compile", QUIET_MESSAGE, case.graph.op_ids(), aten_ops=found.aten_ops)
    assert sig.operators == ("tf.raw_ops.Sin",)


def test_a_correct_compiler_names_nothing_and_nothing_escapes():
    """A verdict the compiler does not reproduce, or one the localizer cannot work on,
    comes back unchanged."""
    from oracles.backends import resolve

    case = chain(SQUARE, EXP)
    verdict = Verdict("tf.xla", "mismatch", "run", "planted", output=1, dtype="float32")
    _, found = localized(case, resolve("tf.xla"), verdict)
    assert found == verdict
    _, found = localized(case, WRONG_EXP, Verdict("tf.xla", "mismatch", "run", "x", output=9, dtype="float32"),
                         compiles=False)
    assert found.aten_ops == ()


@pytest.fixture
def planted_xla(monkeypatch):
    """``check_case`` with ``tf.xla`` resolved to a planted compiler (tf.function stays real,
    so the failure is XLA's alone, as the oracle requires)."""
    import oracles.check as check_module

    real = check_module.resolve

    def plant(backend: Backend):
        monkeypatch.setattr(check_module, "resolve", lambda name: backend if name == "tf.xla" else real(name))
        return lambda case: check_module.check_case(case, ["tf.eager", "tf.xla"], SPECS)

    return plant


def test_the_oracles_probe_names_both_levels_of_a_tensorflow_mismatch(planted_xla):
    from reports.localize import Culprit, localize, needs_probe

    check = planted_xla(WRONG_EXP)
    case = chain(SQUARE, LOGSUMEXP, SQUARE)
    [verdict] = check(case).bugs
    assert verdict.status == "mismatch" and needs_probe(case, verdict)
    assert localize(case, verdict, check) == Culprit("demo.logsumexp", ("tf.raw_ops.Exp",), "float32")


def test_the_oracles_probe_pins_a_tensorflow_crash_that_names_nothing(planted_xla):
    from reports.localize import Culprit, localize, needs_probe

    check = planted_xla(QUIET_ON_SIN)
    case = chain(SQUARE, SIN, EXP)
    [verdict] = check(case).bugs
    assert verdict.status == "crash" and needs_probe(case, verdict)
    assert localize(case, verdict, check) == Culprit(None, ("tf.raw_ops.Sin",))


def test_one_xla_fault_behind_two_apis_is_one_bug_folder_naming_the_graph_op(planted_xla, tmp_path):
    import json

    from oracles.compare import tolerance
    from reports.bugs import BugStore
    from reports.localize import localize

    check = planted_xla(WRONG_EXP)
    store = BugStore(tmp_path, SPECS, "tf.eager")
    news = []
    for i, case in enumerate([chain(SQUARE, EXP), chain(SQUARE, LOGSUMEXP)]):
        result = check(case)
        [verdict] = result.bugs
        _, new = store.record(case, verdict, tolerance(verdict.dtype), i, localize(case, verdict, check),
                              verdicts=result.verdicts)
        news.append(new)
    assert news == [True, False]
    [folder] = (tmp_path / "bugs").iterdir()
    bug = json.loads((folder / "bug.json").read_text())
    assert bug["count"] == 2 and bug["aten_ops"] == ["tf.raw_ops.Exp"]
    assert bug["apis"] == ["demo.exp", "demo.logsumexp"]
    report = (folder / "report.md").read_text()
    assert "The TensorFlow graph op that is wrong is `tf.raw_ops.Exp`" in report
    assert "differs from tf.function without XLA" in report


def refuses_sin_then_exp(graph_def) -> None:
    ops = {node.op for node in graph_def.node}
    if {"Sin", "Exp"} <= ops:
        raise RuntimeError(QUIET)


def test_a_crash_that_needs_ops_far_apart_is_pinned_on_the_window_between_them():
    """As a bounded dynamic shape made by ``Where`` breaks a ``NextAfter`` a dozen ops
    later (seed 34): the window grows by doubling, then shrinks back, within the budget."""
    case = chain(SIN, SQUARE, SQUARE, SQUARE, SQUARE, EXP)
    verdict = Verdict("tf.xla", "crash", "compile", QUIET_MESSAGE)
    _, found = localized(case, rewriting_backend("tf.xla", refuses_sin_then_exp), verdict)
    assert found.aten_ops == ("tf.raw_ops.Exp", "tf.raw_ops.Sin", "tf.raw_ops.Square")
