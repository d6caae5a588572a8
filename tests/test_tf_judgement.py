"""Judged like a maintainer would (issue 14, points 5 and 6).

* a tf.xla failure that tf.function without XLA shares is a graph-mode contract: declined
  with that reason, never a bug; one XLA alone shows still is;
* trial runs in graph mode keep graph-mode contract violations out of generated models;
* outputs not unique by definition (singular vectors) are compared through what is unique;
* value preconditions (sorted sequences) are met where the call is written;
* a compile-time rejection by fake-tensor/meta checks (XLA: shape inference) of a call
  eager runs is its own kind, ``eager-validation``, listed apart in the summary.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles import backends
from oracles.check import GRAPH_MODE_CONTRACT, check_case
from oracles.compare import Output, compare_outputs, output_kinds, tolerance
from oracles.verdict import Verdict
from reports.signature import sign
from reports.summary import write_summary
from rules.semantics import DERIVED, REASON_DERIVED, REASON_SUBSPACE, judge_nonunique, nonunique_outputs
from rules.spec import OpSpec
from rules.trial import trial_run


class Call(OpSpec):
    """A planted operator: one call written out per framework (``{0}``: first input)."""

    def __init__(self, op_id: str, code: dict[str, str], n_inputs: int = 1, api: str = "") -> None:
        self.id, self.templates, self.n_inputs = op_id, code, n_inputs
        self.frameworks = tuple(code)
        self.api = api or op_id.split("#")[0]

    def rank_options(self):
        return [(2,) * self.n_inputs]

    def dtype_options(self, framework):
        return [("float32",) * self.n_inputs]

    def code(self, framework, args, attrs):
        return self.templates[framework].format(*args)


def one_op_case(spec: Call, framework: str, in_types, out_types) -> Case:
    g = Graph()
    leaves = [g.add_leaf(TensorType(shape, "float32")) for shape in in_types]
    g.outputs = g.add_op(spec.id, {}, leaves, [TensorType(s, "float32") for s in out_types])
    return Case(g, framework, {v[0]: ValueSpec(7 + i, -1.0, 1.0) for i, v in enumerate(leaves)})


# ---- tf.xla against tf.function ------------------------------------------------------------

ADD_N = Call("test.AddNOverTensor", {"tensorflow": "tf.math.add_n({0})"})  # eager iterates; graph mode cannot
ABS = Call("test.Abs", {"tensorflow": "tf.abs({0})"})


def plant_xla(monkeypatch, wrap):
    """Replace tf.xla by real XLA whose compiled function goes through ``wrap``."""
    real = backends._tf_function(True)

    def make(option):
        prepare = real(option)
        return lambda ns, stage, mode: wrap(prepare(ns, stage, mode))

    monkeypatch.setitem(backends.FAMILIES, "tf.xla", backends.Family(
        "tf.xla", "tensorflow", False, "", make, unsupported=backends.XLA_UNSUPPORTED))


def eager_judgement(graph: Graph, values, specs):
    """What the oracle judges a tf.xla candidate of ``graph`` by: (eager's namespace, its
    outputs, the float64 evidence, the discontinuity probe, the output kinds)."""
    from oracles.check import run_backend
    from oracles.compare import precision_caps
    from oracles.probe import DiscontinuityProbe
    from oracles.recompute import Evidence
    from rules.execute import load_module, setup_framework

    setup_framework("tensorflow")
    ns = load_module(graph, "tensorflow", values, specs)
    _, ref = run_backend(backends.resolve("tf.eager"), ns)
    caps = precision_caps(["tensorflow"])
    evidence = Evidence(graph, "tensorflow", values, specs, ns, caps, ["tensorflow"])
    probe = DiscontinuityProbe(graph, "tensorflow", values, specs, caps, evidence, ["tensorflow"])
    return ns, ref, evidence, probe, output_kinds(graph, specs, ["tensorflow"])


@pytest.mark.tensorflow
def test_a_failure_tf_function_shares_is_a_declined_graph_mode_contract_not_a_bug():
    case = one_op_case(ADD_N, "tensorflow", [(3, 4)], [(4,)])
    result = check_case(case, ["tf.eager", "tf.xla"], {ADD_N.id: ADD_N})
    xla = result.verdict("tf.xla")
    assert result.valid and xla.status == "crash"
    assert xla.unsupported and xla.declined == GRAPH_MODE_CONTRACT
    assert result.bugs == []
    from fuzzer.campaign import _declined_reason  # what campaign.json's skipped counts it under

    assert GRAPH_MODE_CONTRACT in _declined_reason(result)


@pytest.mark.tensorflow
def test_a_failure_only_xla_shows_is_still_a_bug_and_tf_function_runs_once(monkeypatch):
    calls = []
    real_function = backends.FAMILIES["tf.function"]

    def counting(option):
        prepare = real_function.make(option)
        return lambda ns, stage, mode: (calls.append(1), prepare(ns, stage, mode))[1]

    monkeypatch.setitem(backends.FAMILIES, "tf.function", backends.Family(
        "tf.function", "tensorflow", False, "", counting))
    plant_xla(monkeypatch, lambda fn: (lambda *xs: tuple(o + 1.0 for o in fn(*xs))))
    case = one_op_case(ABS, "tensorflow", [(3, 4)], [(3, 4)])
    result = check_case(case, ["tf.eager", "tf.xla", "tf.function"], {ABS.id: ABS})
    assert [v.backend for v in result.bugs] == ["tf.xla"] and result.bugs[0].status == "mismatch"
    assert not result.verdict("tf.xla").declined and result.verdict("tf.function").ok
    assert len(calls) == 1  # the confirming run is tf.function's own verdict, not a second run

    def crash(fn):
        raise RuntimeError("planted: XLA cannot compile this")

    plant_xla(monkeypatch, crash)
    result = check_case(case, ["tf.eager", "tf.xla"], {ABS.id: ABS})
    assert [(v.backend, v.status) for v in result.bugs] == [("tf.xla", "crash")]


@pytest.mark.tensorflow
def test_trial_runs_in_graph_mode_reject_graph_mode_contract_violations():
    ins, outs = [TensorType((3, 4), "float32")], [TensorType((4,), "float32")]
    assert trial_run(ADD_N, "tensorflow", ins, {}, outs, seed=1)  # eager accepts it
    assert not trial_run(ADD_N, "tensorflow", ins, {}, outs, seed=1, graph_mode=True)
    assert trial_run(ABS, "tensorflow", ins, {}, [TensorType((3, 4), "float32")], seed=1, graph_mode=True)


def test_the_generator_asks_for_graph_mode_trials_only_when_told():
    from fuzzer.generate import GenConfig

    assert GenConfig().graph_mode_trials is False and GenConfig(graph_mode_trials=True).graph_mode_trials


# ---- outputs not unique by definition --------------------------------------------------------

SVD = Call("tf.linalg.svd#test", {"tensorflow": "tf.linalg.svd({0})"})  # (s, u, v)
NEG = Call("test.Neg", {"tensorflow": "-{0}"})


def svd_graph(consumed: bool = False):
    g = Graph()
    x = g.add_leaf(TensorType((4, 3), "float32"))
    s, u, v = g.add_op(SVD.id, {}, [x], [TensorType((3,), "float32"), TensorType((4, 3), "float32"),
                                         TensorType((3, 3), "float32")])
    g.outputs = [s, u, v]
    if consumed:
        g.outputs = [s, g.add_op(NEG.id, {}, [u], [TensorType((4, 3), "float32")])[0], v]
    return g, {SVD.id: SVD, NEG.id: NEG}


def outs(*arrays):
    return [Output("float32", a.shape, a.astype(np.float32)) for a in arrays]


def judged(graph, specs, ref, cand):
    marks = nonunique_outputs(graph, specs)
    aligned, excused = judge_nonunique(ref, cand, marks, tolerance)
    return compare_outputs(ref, aligned, output_kinds(graph, specs)), excused


def svd_of(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return s, u, vh.T


def test_singular_vectors_with_flipped_signs_agree_but_a_wrong_singular_value_does_not():
    graph, specs = svd_graph()
    s, u, v = svd_of(np.random.default_rng(0).normal(size=(4, 3)))
    flip = np.array([-1.0, 1.0, -1.0])
    assert compare_outputs(outs(s, u, v), outs(s, u * flip, v * flip), output_kinds(graph, specs)) is not None
    diff, excused = judged(graph, specs, outs(s, u, v), outs(s, u * flip, v * flip))
    assert diff is None and excused == {}  # aligned and compared, not excused
    diff, _ = judged(graph, specs, outs(s, u, v), outs(s * np.array([1.0, 1.05, 1.0]), u * flip, v * flip))
    assert diff is not None and diff.output == 0
    wrong = u * flip
    wrong[:, 1] = u[:, 2]  # a vector of another singular value: a real error, whatever its sign
    diff, _ = judged(graph, specs, outs(s, u, v), outs(s, wrong, v))
    assert diff is not None and diff.output == 1


def test_vectors_of_a_repeated_singular_value_may_rotate_and_derived_values_are_counted():
    graph, specs = svd_graph()
    q = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 3)))[0]
    s, u, v = np.array([2.0, 2.0, 1.0]), q, np.eye(3)
    c, t = np.cos(0.7), np.sin(0.7)
    rot = np.array([[c, -t, 0], [t, c, 0], [0, 0, 1.0]])  # inside the subspace of the repeated value
    diff, excused = judged(graph, specs, outs(s, u, v), outs(s, u @ rot, v @ rot))
    assert diff is None and excused[REASON_SUBSPACE] > 0
    s = np.array([3.0, 2.0, 1.0])  # distinct values: the same rotation is an error
    diff, excused = judged(graph, specs, outs(s, u, v), outs(s, u @ rot, v @ rot))
    assert diff is not None and diff.output == 1 and REASON_SUBSPACE not in excused
    graph, specs = svd_graph(consumed=True)
    assert nonunique_outputs(graph, specs)[1].how == DERIVED
    s, u, v = svd_of(np.random.default_rng(2).normal(size=(4, 3)))
    diff, excused = judged(graph, specs, outs(s, -u, v), outs(s, u, v))
    assert diff is None and excused[REASON_DERIVED] == u.size


def test_the_completion_columns_of_a_full_matrix_svd_may_be_any_orthonormal_basis_of_their_span():
    """``svd(full_matrices=True)`` of a 6x3 matrix: U's last 3 columns are any orthonormal
    completion (seen on XLA, seed 26), even when the graph returns U alone; a completion
    that leaves the span, or a first column changed, is still reported."""
    g = Graph()
    x = g.add_leaf(TensorType((6, 3), "float32"))
    s, u, v = g.add_op(SVD.id, {"full_matrices": True}, [x],
                       [TensorType((3,), "float32"), TensorType((6, 6), "float32"), TensorType((3, 3), "float32")])
    g.outputs = [u]
    specs = {SVD.id: SVD}
    assert nonunique_outputs(g, specs)[0].determined == 3
    u = np.linalg.svd(np.random.default_rng(3).normal(size=(6, 3)), full_matrices=True)[0]
    c, t = np.cos(0.9), np.sin(0.9)
    rot = np.eye(6)
    rot[3:5, 3:5] = [[c, -t], [t, c]]
    rot[5, 5] = -1.0
    diff, excused = judged(g, specs, outs(u), outs(u @ rot))
    assert diff is None and excused == {REASON_SUBSPACE: 2 * 6}  # two rotated, one sign-flipped
    leaves = u.copy()
    leaves[:, 5] = u[:, 0]  # not in the completion's span
    diff, _ = judged(g, specs, outs(u), outs(leaves))
    assert diff is not None and diff.output == 0
    twice = u.copy()
    twice[:, 3] = u[:, 4]  # in the span, but no longer orthogonal to column 4
    diff, _ = judged(g, specs, outs(u), outs(twice))
    assert diff is not None and diff.output == 0
    first = u @ rot
    first[:, 0] = first[:, 0] * 0.9
    diff, _ = judged(g, specs, outs(u), outs(first))
    assert diff is not None and diff.output == 0


@pytest.mark.tensorflow
def test_xla_singular_vectors_with_other_signs_are_no_bug_but_wrong_singular_values_are(monkeypatch):
    graph, specs = svd_graph()
    case = Case(graph, "tensorflow", {0: ValueSpec(3, -1.0, 1.0)})
    plant_xla(monkeypatch, lambda fn: (lambda *xs: (lambda o: (o[0], -o[1], -o[2]))(fn(*xs))))
    assert check_case(case, ["tf.eager", "tf.xla"], specs).bugs == []
    plant_xla(monkeypatch, lambda fn: (lambda *xs: (lambda o: (o[0] * 1.05, -o[1], -o[2]))(fn(*xs))))
    bugs = check_case(case, ["tf.eager", "tf.xla"], specs).bugs
    assert [(v.backend, v.status, v.output) for v in bugs] == [("tf.xla", "mismatch", 0)]


# ---- value preconditions ------------------------------------------------------------------------

def _run_sorted_call(framework: str, api: str):
    """A shipped rule of ``api`` with tensor inputs, instantiated and run: (template, the
    input arrays, the output)."""
    from rules.execute import run_eager
    from rules.inferred import inferred_specs
    from rules.solve import Bounds, instantiate

    spec = next(s for s in inferred_specs(framework) if s.api == api and s.n_inputs == 2)
    inst = instantiate(spec, framework, random.Random(0), Bounds(), dtypes=spec.dtype_options(framework)[0])
    assert inst is not None
    g = Graph()
    leaves = [g.add_leaf(t) for t in inst.in_types]
    g.outputs = g.add_op(spec.id, inst.attrs, leaves, inst.out_types)
    values = {v[0]: ValueSpec(11 + i, -3.0, 3.0) for i, v in enumerate(leaves)}
    probe = g.copy()
    probe.outputs = leaves + list(g.outputs)
    arrays = run_eager(probe, framework, values, {spec.id: spec})
    return spec.rule["template"], arrays[:2], arrays[2]


def test_bucketize_gets_sorted_boundaries():
    tpl, (x, boundaries), out = _run_sorted_call("torch", "torch.bucketize")
    assert not np.all(np.diff(boundaries) >= 0)  # the drawn boundaries are not sorted ...
    side = "right" if tpl["kwargs"].get("right") else "left"
    expected = np.searchsorted(np.sort(boundaries), x.ravel(), side=side).reshape(x.shape)
    assert np.array_equal(out, expected)  # ... and the call sorts them


@pytest.mark.tensorflow
def test_searchsorted_gets_a_sorted_sequence():
    tpl, (seq, values), out = _run_sorted_call("tensorflow", "tf.searchsorted")
    side = tpl["kwargs"].get("side", "left")
    rows_seq, rows_val = np.sort(seq.reshape(-1, seq.shape[-1]), axis=-1), values.reshape(-1, values.shape[-1])
    expected = np.stack([np.searchsorted(a, b, side=side) for a, b in zip(rows_seq, rows_val)]).reshape(out.shape)
    assert np.array_equal(out, expected)


# ---- eager-validation ---------------------------------------------------------------------------

GRID = Call("torch.grid_sampler_2d#test", {"torch": "torch.grid_sampler_2d({0}, {1}, 5, 0, False)"}, n_inputs=2)


def test_a_fake_tensor_rejection_of_a_call_eager_runs_is_an_eager_validation_gap():
    case = one_op_case(GRID, "torch", [(1, 1, 3, 3), (1, 2, 2, 2)], [(1, 1, 2, 2)])
    result = check_case(case, ["torch.eager", "torch.compile:aot_eager"], {GRID.id: GRID})
    [bug] = result.bugs
    assert (bug.status, bug.stage) == ("eager-validation", "compile")
    assert "grid_sampler_2d" in bug.message  # the rejected call, not only Dynamo's wrapper line
    assert sign(bug.status, bug.backend, bug.stage, bug.message, case.graph.op_ids()).symptom  # signed like a crash
    assert result.verdict("torch.compile:aot_eager") == bug


def test_a_fake_tensor_rejection_at_a_recompile_is_the_same_eager_validation_gap():
    """torch.cov's fake-tensor rejection under dynamic shapes came once at the first
    compile and once at a recompile for another shape set, during the run stage (seed 22:
    two folders, a crash and an eager-validation). Both are eager-validation; a plain
    run-stage error stays a crash, and so does a TensorFlow one at run."""
    from oracles.backends import resolve
    from oracles.calls import Failed
    from oracles.check import _failure_verdict

    fake = RuntimeError("RuntimeError when making fake tensor call: cov: RuntimeError: Cannot call numel() on "
                        "tensor with symbolic sizes/strides")
    compiled = resolve("torch.compile")
    assert _failure_verdict(compiled, Failed("run", fake), "dynamic").status == "eager-validation"
    assert _failure_verdict(compiled, Failed("compile", fake), "dynamic").status == "eager-validation"
    assert _failure_verdict(compiled, Failed("run", RuntimeError("index 7 is out of bounds")), "forward").status \
        == "crash"
    assert _failure_verdict(resolve("tf.xla"), Failed("run", ValueError("Failed getting HLO text: 'Need k >= 0, got "
                                                                         "-2")), "forward").status == "crash"


def test_the_summary_lists_eager_validation_gaps_apart_with_internal_apis_marked(tmp_path):
    bug = Verdict("torch.compile", "eager-validation", "compile", "TorchRuntimeError: RuntimeError when making fake "
                  "tensor call: native_group_norm: RuntimeError: shape is invalid")
    (tmp_path / "bugs" / "a").mkdir(parents=True)
    (tmp_path / "bugs" / "b").mkdir(parents=True)
    (tmp_path / "campaign.json").write_text(json.dumps({"backends": ["torch.eager", "torch.compile"], "cases": 2,
                                                       "valid": 2, "bugs": 2, "seconds": 1}))
    (tmp_path / "bugs" / "a" / "bug.json").write_text(json.dumps(
        {"kind": "eager-validation", "operators": ["torch.native_group_norm#1a2b"], "verdict": bug.to_json()}))
    (tmp_path / "bugs" / "b" / "bug.json").write_text(json.dumps({"kind": "crash", "operators": ["torch.add#3c4d"]}))
    md = write_summary(tmp_path)[0].read_text()
    bugs, gaps = md.split("## Eager validation gaps (1)")
    assert "## Bugs (1)" in bugs and "torch.add#3c4d" in bugs and "native_group_norm" not in bugs
    assert "torch.native_group_norm#1a2b (internal)" in gaps and "torch.add" not in gaps.split("##")[0]


def test_what_a_10_minute_xla_campaign_showed_is_no_longer_reported():
    """Triaged false alarms of ``tf.eager,tf.xla``: XLA's documented limits are declined,
    shifts by the bit width or more (undefined in C) are kept out, approximate top-k is
    never generated (each backend may pick other elements)."""
    from oracles.backends import resolve
    from rules.inferred import usable
    from rules.semantics import meet_preconditions

    xla = resolve("tf.xla")
    for message in ["ValueError: Failed getting HLO text: 'Input 0 to node `BroadcastArgs` with op BroadcastArgs "
                    "must be a compile-time constant.", "ValueError: Failed getting HLO text: 'Current "
                    "implementation does not yet support pivoting."]:
        assert xla.is_unsupported(message)
    assert not xla.is_unsupported("ValueError: Failed getting HLO text: '-2 is out of range [0 .. 4)")
    assert xla.is_unsupported("InvalidArgumentError: XLA compilation requires a fixed tensor list size. Set the max "
                              "number of elements.")  # documented: expm's gradient builds an unbounded TensorList
    assert xla.is_unsupported("ValueError: Failed getting HLO text: 'Dynamic dimension propagation on DynamicSlice "
                              "where a partial dimension is selected %fftshift.39 = s32[12,<=12,1]")  # Unimplemented
    template = {"args": [{"$tensor": 0}, {"$tensor": 1}]}
    assert meet_preconditions("tf.bitwise.left_shift", template, "tensorflow", ["x", "y"]) == \
        ["x", "tf.bitwise.bitwise_and(y, 7)"]
    # the incomplete gamma function is defined for a > 0 (eager gave 0 for igamma(-1.2, 0),
    # XLA NaN: a 10-minute campaign's false alarm)
    assert meet_preconditions("tf.math.igamma", template, "tensorflow", ["a", "x"]) == ["(tf.math.abs(a) + 0.5)", "x"]
    for api in ("tf.math.approx_max_k", "tf.approx_top_k"):
        assert usable({"api": api}, "tensorflow", 0.0) == "nondeterministic, in-place or private API"


@pytest.mark.tensorflow
def test_colour_conversions_get_images_in_their_unit_range():
    """adjust_hue of RGB values outside [0, 1] is undefined (an XLA campaign's false alarm:
    1.8 apart): float images are clipped into the range in the call, integer ones kept."""
    import tensorflow as tf

    from rules.semantics import meet_preconditions

    [call] = meet_preconditions("tf.image.adjust_hue", {"args": [{"$tensor": 0}]}, "tensorflow", ["x"])
    floats = tf.constant([[[1.7, -0.3, 0.5]]])
    assert float(tf.reduce_max(eval(call, {"tf": tf, "x": floats}))) == 1.0
    ints = tf.constant([[[200, 3, 7]]], dtype=tf.uint8)
    assert eval(call, {"tf": tf, "x": ints}).dtype == tf.uint8


def test_one_unit_of_image_rounding_stays_excused_through_ops_that_only_move_values():
    """adjust_saturation of an int64 image rounds through floats; XLA's one-unit
    differences reached the output through tf.stack and were reported (a 10-minute XLA
    campaign's false alarm). Moving values keeps the one-unit allowance; arithmetic on
    them does not."""
    from rules.specs import SPECS

    adjust = Call("tf.image.adjust_saturation#t", {"tensorflow": "tf.image.adjust_saturation({0}, 0.5)"})
    specs = dict(SPECS, **{adjust.id: adjust})
    g = Graph()
    x = g.add_leaf(TensorType((2, 3, 3), "int64"))
    [img] = g.add_op(adjust.id, {}, [x], [TensorType((2, 3, 3), "int64")])
    [stacked] = g.add_op("core.Stack2", {"dim": 0}, [x, img], [TensorType((2, 2, 3, 3), "int64")])
    [summed] = g.add_op("core.Add", {}, [img, img], [TensorType((2, 3, 3), "int64")])
    g.outputs = [img, stacked, summed]
    kinds = output_kinds(g, specs, ("tensorflow",))
    assert [k.rounds_to_int for k in kinds] == [True, True, False]


@pytest.mark.tensorflow
def test_an_op_whose_learned_dtypes_lack_float64_still_gets_a_float64_reference():
    """cos(l2_loss(x)): XLA sums 1,088 squares in another order, and cos of ~700 carries
    that rounding (5.6e-5 apart; a 10-minute XLA campaign's false alarm). l2_loss's rule
    had seen no float64 sample, so there was no float64 reference to measure the noise by;
    the reference now runs any op that accepts float64 when called."""
    from oracles.recompute import float64_outputs
    from rules.specs import SPECS

    l2 = Call("tf.nn.l2_loss#t", {"tensorflow": "tf.nn.l2_loss({0})"})
    cos = Call("tf.math.cos#t", {"tensorflow": "tf.math.cos({0})"})
    specs = dict(SPECS, **{l2.id: l2, cos.id: cos})
    g = Graph()
    x = g.add_leaf(TensorType((64, 1, 17), "float32"))
    [loss] = g.add_op(l2.id, {}, [x], [TensorType((), "float32")])
    g.outputs = g.add_op(cos.id, {}, [loss], [TensorType((), "float32")])
    case = Case(g, "tensorflow", {x[0]: ValueSpec(7924, -2.0, 2.0)})
    assert float64_outputs(g, "tensorflow", case.values, specs) is not None
    result = check_case(case, ["tf.eager", "tf.xla"], specs)
    assert result.valid and result.bugs == [], result.summary()


@pytest.mark.tensorflow
def test_a_comparison_of_integers_an_image_op_rounded_is_probed_one_unit_either_way():
    """adjust_saturation of an int32 image, then not_equal: XLA's one-unit rounding flips
    one comparison (a 10-minute XLA campaign's false alarm). The probe moves the rounded
    integers by one unit and excuses what depends on a flip, counted; nothing else."""
    from oracles.compare import NEAR_DISCONTINUITY, is_discontinuous
    from rules.specs import SPECS

    adjust = Call("tf.image.adjust_saturation#t", {"tensorflow": "tf.image.adjust_saturation({0}, 0.5)"})
    ne = Call("tf.math.not_equal#t", {"tensorflow": "tf.math.not_equal({0}, {1})"}, n_inputs=2)
    specs = dict(SPECS, **{adjust.id: adjust, ne.id: ne})
    g = Graph()
    shape = (2, 4, 8, 3)
    x7, x11 = g.add_leaf(TensorType(shape, "int32")), g.add_leaf(TensorType(shape, "int32"))
    [img] = g.add_op(adjust.id, {}, [x7], [TensorType(shape, "int32")])
    g.outputs = g.add_op(ne.id, {}, [img, x11], [TensorType(shape, "bool")])
    assert is_discontinuous(g, g.outputs[0][0], specs) and not is_discontinuous(g, img[0], specs)
    case = Case(g, "tensorflow", {x7[0]: ValueSpec(1763100618, 0, 2), x11[0]: ValueSpec(7930, 0, 2)})
    result = check_case(case, ["tf.eager", "tf.xla"], specs)
    assert result.valid and result.bugs == [], result.summary()
    assert result.excused.get(NEAR_DISCONTINUITY, 0) >= 1


def test_a_float_cast_past_an_integer_limit_may_swap_the_limits_and_nothing_else():
    """adjust_brightness saturates an int64 image at float(max) = 2**63, past int64's max:
    eager gives max, XLA min (two 10-minute XLA campaign reports). Only that swap is
    excused, only for dtypes whose max float32 cannot hold, and counted."""
    from oracles.compare import INT_LIMIT_CAST, OutputKind, compare_output

    kind = OutputKind(False, frozenset(), "", rounds_to_int=True)
    for dtype in ("int32", "int64"):
        info = np.iinfo(dtype)
        ref = Output(dtype, (3,), np.array([info.max, info.min, 5], dtype=dtype))
        excused = {}
        swapped = np.array([info.min, info.max, 5], dtype=dtype)
        assert compare_output(0, ref, Output(dtype, (3,), swapped), kind, lambda: None, lambda n: False, False,
                              excused) is None
        assert excused == {INT_LIMIT_CAST: 2}
        wrong = np.array([0, info.max, 5], dtype=dtype)
        assert compare_output(0, ref, Output(dtype, (3,), wrong), kind, lambda: None, lambda n: False) is not None
    small = Output("int8", (1,), np.array([127], dtype="int8"))
    assert compare_output(0, small, Output("int8", (1,), np.array([-128], dtype="int8")), kind, lambda: None,
                          lambda n: False) is not None


@pytest.mark.tensorflow
def test_a_float64_image_adjusted_through_float32_carries_float32_error():
    """tf.image.adjust_contrast converts a float64 image to float32 and back (XLA 1.8e-7
    apart after a float64 linear layer: a 10-minute campaign's false alarm). Its inferred
    op is capped by its API; a 1% error is still reported."""
    from oracles.compare import precision_caps, value_precision
    from rules.specs import SPECS

    contrast = Call("tf.image.adjust_contrast#t", {"tensorflow": "tf.image.adjust_contrast({0}, 0.5)"})
    specs = dict(SPECS, **{contrast.id: contrast})
    g = Graph()
    x = g.add_leaf(TensorType((5, 4, 9, 3), "float64"))
    g.outputs = g.add_op(contrast.id, {}, [x], [TensorType((5, 4, 9, 3), "float64")])
    caps = precision_caps(("tensorflow",))
    assert value_precision(g, g.outputs[0][0], caps) == "float32"
    assert value_precision(g, g.outputs[0][0], precision_caps(("torch",))) == "float64"
    case = Case(g, "tensorflow", {x[0]: ValueSpec(473598737, -2.0, 2.0)})
    [kind] = output_kinds(g, specs, ("tensorflow",))
    ref = Output("float64", (5, 4, 9, 3), np.linspace(-3, 3, 540).reshape(5, 4, 9, 3))
    rounded = Output("float64", ref.shape, ref.array.astype(np.float32).astype(np.float64))
    far = Output("float64", ref.shape, ref.array * (1 + 1e-2))
    assert compare_outputs([ref], [rounded], [kind]) is None
    assert compare_outputs([ref], [far], [kind]) is not None
    assert check_case(case, ["tf.eager", "tf.xla"], specs).bugs == []


@pytest.mark.tensorflow
def test_a_matrix_inverse_may_carry_its_condition_times_the_roundoff_and_no_more():
    """XLA inverts a float16 matrix in float16, eager in float32: 9.5e-4 from float64 where
    eager is 1.8e-4, on a matrix of condition 7 (a 10-minute campaign's false alarm). A
    backward-stable inverse may be off by its condition number times the roundoff; a 5%
    error is still reported."""
    from rules.specs import SPECS

    inv = Call("tf.linalg.inv#t", {"tensorflow": "tf.linalg.inv({0})"})
    specs = dict(SPECS, **{inv.id: inv})
    g = Graph()
    x = g.add_leaf(TensorType((6, 6), "float16"))
    g.outputs = g.add_op(inv.id, {}, [x], [TensorType((6, 6), "float16")])
    case = Case(g, "tensorflow", {x[0]: ValueSpec(1506944095, -2.0, 2.0)})
    assert check_case(case, ["tf.eager", "tf.xla"], specs).bugs == []
    _, ref, evidence, probe, kinds = eager_judgement(g, case.values, specs)
    far = [Output(o.dtype, o.shape, (o.array.astype(np.float64) * 1.05).astype(np.float16)) for o in ref]
    assert compare_outputs(ref, far, kinds, evidence.outputs, probe.near) is not None


@pytest.mark.tensorflow
def test_the_backward_leaves_out_outputs_that_are_not_unique_and_counts_them():
    """A loss on singular vectors is ill-defined (either sign is an svd): XLA's gradient of
    one through tf.linalg.svd differed from eager's in 9 of 27 elements (a 10-minute
    campaign's false alarm). Only the singular values get a cotangent; the two vector
    outputs are counted as declined."""
    from corpus.plan import CheckPlan

    graph, specs = svd_graph()
    case = Case(graph, "tensorflow", {graph.leaves()[0]: ValueSpec(5, -2.0, 2.0)}, plan=CheckPlan(backward_seed=969675769))
    result = check_case(case, ["tf.eager", "tf.xla"], specs)
    assert result.valid and result.bugs == [], result.summary()
    assert result.checks.get("declined: backward of non-unique outputs") == 2
    assert result.checks.get("case: backward") == 1, result.checks  # the singular values still judged


@pytest.mark.tensorflow
def test_a_half_precision_loss_formula_may_round_each_step_relative_to_its_terms():
    """float16 weighted_cross_entropy_with_logits: eager rounds each step of the formula in
    float16, XLA fuses them, one ulp apart after an internal cancellation (a 10-minute
    campaign's false alarm): the noise allowed is the roundoff of the steps' terms, not of
    the cancelled loss. 5% of the loss is still reported."""
    from oracles.rounding import op_rounding
    from rules.specs import SPECS

    loss = Call("tf.nn.weighted_cross_entropy_with_logits#t",
                {"tensorflow": "tf.nn.weighted_cross_entropy_with_logits({0}, {1}, 3.0)"}, n_inputs=2)
    loss.api = "tf.nn.weighted_cross_entropy_with_logits"
    assert op_rounding(loss) == "composite"
    for api in ("tf.nn.batch_norm_with_global_normalization", "tf.image.adjust_hue"):  # seed 27's false alarms:
        other = Call(api + "#t", {"tensorflow": api + "({0})"})  # 1.4 float16 ulps; bfloat16 4.8e-7 for 0
        other.api = api
        assert op_rounding(other) == "composite"
    specs = dict(SPECS, **{loss.id: loss})
    g = Graph()
    z, x = g.add_leaf(TensorType((512,), "float16")), g.add_leaf(TensorType((512,), "float16"))
    g.outputs = g.add_op(loss.id, {}, [z, x], [TensorType((512,), "float16")])
    case = Case(g, "tensorflow", {z[0]: ValueSpec(5, -2.0, 2.0), x[0]: ValueSpec(6, -4.0, 4.0)})
    ns, ref, evidence, probe, kinds = eager_judgement(g, case.values, specs)
    h = np.float16
    zv, xv = (np.asarray(a.numpy()).astype(np.float64) for a in ns["INPUTS"]())
    terms = np.abs((1 - zv) * xv) + np.abs(1 + 2 * zv) * (np.log1p(np.exp(-np.abs(xv))) + np.maximum(-xv, 0))
    eager = ref[0].array
    cancelled = terms > 16 * np.abs(eager.astype(np.float64))  # the loss far below its terms
    assert cancelled.any()
    spread = evidence.outputs()[0].spread  # the noise the comparison allows, measured
    assert np.all(spread[cancelled] >= 2.0**-11 * terms[cancelled])  # a step's rounding of its terms
    far = Output("float16", (512,), (ref[0].array.astype(np.float64) * 1.05).astype(h))
    assert compare_outputs(ref, [far], kinds, evidence.outputs, probe.near) is not None


@pytest.mark.tensorflow
def test_a_floormod_by_a_tiny_divisor_excuses_the_elements_near_a_jump_and_no_others():
    """floormod(x, prod(w)) with the product 4e-5: the quotients are ~1e4, so the few
    ulps by which XLA's product differs move the elements whose quotient sits near an
    integer by a whole period (seed 27's false alarm). The probe moves each input by its
    measured noise (not by float32's 1e-4 relative tolerance, which wraps every element),
    so it finds those few; a jump elsewhere is still reported."""
    from oracles.compare import NEAR_DISCONTINUITY
    from rules.specs import SPECS

    prod = Call("tf.math.reduce_prod#t", {"tensorflow": "tf.math.reduce_prod({0})"})
    mod = Call("tf.math.floormod#t", {"tensorflow": "tf.math.floormod({0}, {1})"}, n_inputs=2)
    prod.api, mod.api = "tf.math.reduce_prod", "tf.math.floormod"
    specs = dict(SPECS, **{prod.id: prod, mod.id: mod})
    g = Graph()
    x, w = g.add_leaf(TensorType((45,), "float32")), g.add_leaf(TensorType((17,), "float32"))
    [y] = g.add_op(prod.id, {}, [w], [TensorType((), "float32")])
    [r] = g.add_op(mod.id, {}, [x, y], [TensorType((45,), "float32")])
    g.outputs = [r]
    case = Case(g, "tensorflow", {x[0]: ValueSpec(8, -2.0, 2.0), w[0]: ValueSpec(1008, -1.2, 1.2)})
    _, [ref], evidence, probe, kinds = eager_judgement(g, case.values, specs)
    near = probe.near({r[0]}, 0)[NEAR_DISCONTINUITY]
    assert 0 < near.sum() <= 6  # the few near a jump, not all 45
    period = float(np.asarray(probe._values()[y]))
    assert abs(period) > 2e-5  # a jump is more than float32's absolute tolerance
    jumped = Output("float32", (45,), np.where(near, ref.array + np.float32(period), ref.array))
    assert compare_outputs([ref], [jumped], kinds, evidence.outputs, probe.near) is None
    elsewhere = ref.array.copy()
    elsewhere[int(np.argmin(near))] += np.float32(period)
    diff = compare_outputs([ref], [Output("float32", (45,), elsewhere)], kinds, evidence.outputs, probe.near)
    assert diff is not None and diff.output == 0


@pytest.mark.tensorflow
def test_a_half_precision_linear_layer_of_one_feature_is_no_reduction_and_keeps_its_terms_noise():
    """TensorFlow's float16 linear layer with one input feature, x * w + b, cancels where
    x * w is near -b: XLA was 1.4 ulps from eager there (seed 27's false alarm). It sums
    two terms, so the cap that keeps a 5% error in a half-precision reduction visible does
    not cut its noise down to a share of the cancelled result."""
    from oracles.compare import precision_caps
    from oracles.recompute import Evidence
    from rules.execute import load_module, run_module, setup_framework
    from rules.specs import SPECS

    g = Graph()
    x = g.add_leaf(TensorType((64, 1), "float16"))
    w, b = g.add_leaf(TensorType((1, 1), "float16"), "const"), g.add_leaf(TensorType((1,), "float16"), "const")
    g.outputs = g.add_op("core.Linear", {"out_features": 1}, [x, w, b], [TensorType((64, 1), "float16")])
    values = {x[0]: ValueSpec(3, -2.0, 2.0), w[0]: ValueSpec(4, -1.5, -1.4), b[0]: ValueSpec(5, 1.0, 1.1)}
    setup_framework("tensorflow")
    ns = load_module(g, "tensorflow", values, SPECS)
    evidence = Evidence(g, "tensorflow", values, SPECS, ns, precision_caps(["tensorflow"]), ["tensorflow"])
    out = evidence.outputs()[0]
    xs = np.asarray(ns["INPUTS"]()[0].numpy(), dtype=np.float64)
    wv, bv = (np.asarray(t.numpy(), dtype=np.float64) for t in ns["CONSTS"]().values())
    terms = np.abs(xs * wv[0, 0]) + abs(bv[0])
    cancelled = terms > 8 * np.abs(out.values)
    assert cancelled.any()
    assert np.all(out.spread[cancelled] >= 2.0**-11 * terms[cancelled])
    assert np.all(out.spread[~cancelled] <= 0.1 * np.abs(out.values[~cancelled]))  # 5% of an uncancelled value stays visible


@pytest.mark.tensorflow
def test_xla_rejecting_an_argument_eager_accepts_is_an_eager_validation_gap_not_an_xla_crash():
    """avg_pool2d with a stride of -2 on the channel axis: eager TensorFlow runs it, XLA's
    shape inference rejects it (seed 27): eager's validation is missing. Its own kind;
    an XLA compile error of another sort stays a crash."""
    from oracles.verdict import is_argument_rejection
    from reports.render import symptom

    pool = Call("tf.nn.avg_pool2d#t", {"tensorflow": "tf.nn.avg_pool2d({0}, 1, [1, 1, 1, -2], 'VALID')"})
    case = one_op_case(pool, "tensorflow", [(4, 9, 4, 3)], [(4, 9, 4, 3)])
    [bug] = check_case(case, ["tf.eager", "tf.xla"], {pool.id: pool}).bugs
    assert (bug.status, bug.stage) == ("eager-validation", "compile") and "must be positive" in bug.message
    assert "shape inference (XLA)" in symptom(bug)
    assert is_argument_rejection("ValueError: Failed getting HLO text: '-2 is out of range [0 .. 4)")
    assert is_argument_rejection("ValueError: Failed getting HLO text: 'Need k >= 0, got -2")  # in_top_k, seed 28
    assert not is_argument_rejection("ValueError: Failed getting HLO text: 'during context [Unknown]: Seen floating "
                                     "point types of different precisions in %LRN.23")


@pytest.mark.tensorflow
def test_a_tall_matrix_factorization_carries_its_condition_times_the_roundoff(monkeypatch):
    """float16 QR of seven 2x1 matrices: XLA's Q was 2 ulps from eager's (seed 28's false
    alarm), where only square matrices got the condition-times-roundoff allowance. A
    tall matrix gets its 2-norm condition; 5% is still reported."""
    qr = Call("tf.linalg.qr#t", {"tensorflow": "tf.linalg.qr({0})[0]"})
    qr.api = "tf.linalg.qr"
    g = Graph()
    x = g.add_leaf(TensorType((1, 7, 2, 1), "float16"))
    g.outputs = g.add_op(qr.id, {}, [x], [TensorType((1, 7, 2, 1), "float16")])
    case = Case(g, "tensorflow", {x[0]: ValueSpec(7925, -2.0, 2.0)})  # the campaign's values
    assert check_case(case, ["tf.eager", "tf.xla"], {qr.id: qr}).bugs == []
    plant_xla(monkeypatch, lambda fn: (lambda *xs: [o * 1.05 for o in fn(*xs)]))
    [bug] = check_case(case, ["tf.eager", "tf.xla"], {qr.id: qr}).bugs
    assert (bug.backend, bug.status) == ("tf.xla", "mismatch")


@pytest.mark.tensorflow
def test_least_squares_through_the_normal_equations_carry_the_condition_squared(monkeypatch):
    """tf.linalg.lstsq (fast=True, the default, solves the normal equations) of a random
    31x31 matrix against three right-hand sides, its batch broadcast: XLA 1.4e-3 from
    eager (seed 29's false alarm). The allowance is cond(A)^2 times the roundoff, batch
    dimensions broadcast; on a well-conditioned matrix a 5% error is still reported."""
    from oracles.rounding import op_rounding

    lstsq = Call("tf.linalg.lstsq#t", {"tensorflow": "tf.linalg.lstsq({0}, {1})"}, n_inputs=2)
    lstsq.api = "tf.linalg.lstsq"
    assert op_rounding(lstsq) == "solve-squared"
    dominant = Call("test.Dominant", {"tensorflow": "(8.0 * tf.eye(31) + {0})"})
    specs = {lstsq.id: lstsq, dominant.id: dominant}

    def case(well_conditioned: bool) -> Case:
        g = Graph()
        a, b = g.add_leaf(TensorType((1, 1, 31, 31), "float32")), g.add_leaf(TensorType((3, 31, 31), "float32"))
        if well_conditioned:
            a = g.add_op(dominant.id, {}, [a], [TensorType((1, 1, 31, 31), "float32")])[0]
        g.outputs = g.add_op(lstsq.id, {}, [a, b], [TensorType((1, 3, 31, 31), "float32")])
        return Case(g, "tensorflow", {0: ValueSpec(7933, -2.0, 2.0), 1: ValueSpec(162177143, -2.0, 2.0)})

    assert check_case(case(False), ["tf.eager", "tf.xla"], specs).bugs == []
    plant_xla(monkeypatch, lambda fn: (lambda *xs: [o * 1.05 for o in fn(*xs)]))
    [bug] = check_case(case(True), ["tf.eager", "tf.xla"], specs).bugs
    assert (bug.backend, bug.status) == ("tf.xla", "mismatch")


@pytest.mark.tensorflow
def test_floats_computed_from_an_image_op_s_rounded_integers_may_move_with_one_unit(monkeypatch):
    """per_image_standardization of a hue-adjusted int64 image: a backend's one unit of
    rounding inside adjust_hue moves every standardized float (seed 29: all 264 by up to
    1.09). The floats are excused where one unit moves them, and counted (the integer op
    alone still gets no more than one unit: rounded_int_nodes holds it alone)."""
    from oracles.compare import rounded_int_nodes

    hue = Call("tf.image.adjust_hue#t", {"tensorflow": "tf.image.adjust_hue({0}, 0.5)"})
    std = Call("tf.image.per_image_standardization#t", {"tensorflow": "tf.image.per_image_standardization({0})"})
    hue.api, std.api = "tf.image.adjust_hue", "tf.image.per_image_standardization"
    specs = {hue.id: hue, std.id: std}
    g = Graph()
    x = g.add_leaf(TensorType((8, 11, 3), "int64"))
    [h] = g.add_op(hue.id, {}, [x], [TensorType((8, 11, 3), "int64")])
    g.outputs = g.add_op(std.id, {}, [h], [TensorType((8, 11, 3), "float32")])
    assert rounded_int_nodes(g, specs) == {h[0]}  # the float result is no rounded integer
    case = Case(g, "tensorflow", {x[0]: ValueSpec(167941440, 0, 2)})
    plant_xla(monkeypatch, lambda fn: (lambda *xs: (lambda o: [o[0] + 0.5 * tf_like_one_unit(o[0])])(fn(*xs))))
    result = check_case(case, ["tf.eager", "tf.xla"], specs)
    assert result.bugs == [] and sum(result.excused.values()) > 0


def tf_like_one_unit(t):
    """0 except one element: what one unit of rounding in the image does after standardization."""
    import tensorflow as tf

    flat = tf.reshape(tf.zeros_like(t), [-1])
    return tf.reshape(tf.tensor_scatter_nd_update(flat, [[5]], [1.0]), tf.shape(t))


@pytest.mark.tensorflow
def test_a_limit_cast_seen_through_a_product_is_probed_in_integer_arithmetic():
    """adjust_brightness(int64 [1], 1) casts 2^63 back to int64, undefined in C++: eager
    gave int64's min, XLA its max, and a one-element reduce_prod carried it (seed 30's
    false alarm). The probe moves integers in their own arithmetic, where one unit past
    the min is the max (float64 lost the unit there): the element is excused as near
    that jump, and counted."""
    bright = Call("tf.image.adjust_brightness#t", {"tensorflow": "tf.image.adjust_brightness({0}, 1)"})
    prod = Call("tf.math.reduce_prod#t", {"tensorflow": "tf.math.reduce_prod({0}, 0, keepdims=True)"})
    bright.api, prod.api = "tf.image.adjust_brightness", "tf.math.reduce_prod"
    specs = {bright.id: bright, prod.id: prod}
    g = Graph()
    x = g.add_leaf(TensorType((1,), "int64"))
    [b] = g.add_op(bright.id, {}, [x], [TensorType((1,), "int64")])
    g.outputs = g.add_op(prod.id, {}, [b], [TensorType((1,), "int64")])
    case = Case(g, "tensorflow", {x[0]: ValueSpec(5, 1, 1)})
    from oracles.compare import NEAR_DISCONTINUITY
    from oracles.probe import _moved

    assert _moved(np.array([np.iinfo(np.int64).min]), -1.0)[0] == np.iinfo(np.int64).max
    result = check_case(case, ["tf.eager", "tf.xla"], specs)
    assert result.bugs == [] and result.excused.get(NEAR_DISCONTINUITY, 0) >= 1


@pytest.mark.tensorflow
def test_an_op_that_rejects_float64_still_leaves_the_rest_of_the_graph_measured():
    """normalize_moments' float32 shift made the float64 model fail, so a whole output
    (a variance over counts near 0, 0.22 apart on XLA: seed 30's false alarm) had no
    float64 evidence and was judged by bare tolerances. Op by op, that op runs in its own
    dtypes and the rest is measured."""
    from oracles.compare import precision_caps
    from oracles.recompute import Evidence, float64_outputs
    from rules.execute import load_module, setup_framework

    stubborn = Call("test.Float32Inside", {"tensorflow": "({0} * tf.constant(2.0, tf.float32))"})
    small = Call("test.Reciprocal", {"tensorflow": "(1.0 / ({0} - 1.9))"})
    specs = {stubborn.id: stubborn, small.id: small}
    g = Graph()
    x = g.add_leaf(TensorType((64,), "float32"))
    [y] = g.add_op(stubborn.id, {}, [x], [TensorType((64,), "float32")])
    g.outputs = g.add_op(small.id, {}, [y], [TensorType((64,), "float32")])
    values = {x[0]: ValueSpec(3, -1.0, 1.0)}
    setup_framework("tensorflow")
    ns = load_module(g, "tensorflow", values, specs)
    assert float64_outputs(g, "tensorflow", values, specs, ns) is None  # the whole model rejects float64
    [out] = Evidence(g, "tensorflow", values, specs, ns, precision_caps(["tensorflow"]), ["tensorflow"]).outputs()
    assert out.values.shape == (64,) and np.all(np.isfinite(out.values)) and out.spread.max() > 0


@pytest.mark.tensorflow
def test_integers_made_from_floats_that_wrap_in_eager_get_no_values():
    """count_nonzero of 65 floats, then pow(n, n): 65^65 wraps in int64 whatever the
    leaves (all floats), eager's wrapped value and XLA's differed (seed 33's false alarm).
    The op alone on its widened inputs shows the wrap, so no values are found; a pow that
    fits keeps its values."""
    from fuzzer.values import search_values

    count = Call("tf.math.count_nonzero#t", {"tensorflow": "tf.math.count_nonzero({0})"})
    power = Call("tf.math.pow#t", {"tensorflow": "tf.math.pow({0}, {0})"})
    count.api, power.api = "tf.math.count_nonzero", "tf.math.pow"
    specs = {count.id: count, power.id: power}

    def model(n: int) -> Graph:
        g = Graph()
        x = g.add_leaf(TensorType((n,), "float32"))
        [c] = g.add_op(count.id, {}, [x], [TensorType((), "int64")])
        g.outputs = g.add_op(power.id, {}, [c], [TensorType((), "int64")])
        return g

    wraps = search_values(model(65), "tensorflow", specs, random.Random(0))
    assert not wraps.ok and wraps.error == "integer overflow in eager on every value drawn"
    fits = search_values(model(6), "tensorflow", specs, random.Random(0))  # 6^6 at most
    assert fits.ok


@pytest.mark.tensorflow
def test_a_cross_product_rounds_relative_to_its_products(monkeypatch):
    """float16 tf.linalg.cross(x, asin(y)): a component that cancels (a1*b2 - a2*b1 near 0)
    was one float16 ulp of its products off on XLA (seed 33's false alarm). The allowance is
    the roundoff of the largest product; a 5% error is still reported."""
    from oracles.rounding import op_rounding

    cross = Call("tf.linalg.cross#t", {"tensorflow": "tf.linalg.cross({0}, {1})"}, n_inputs=2)
    asin = Call("tf.math.asin#t", {"tensorflow": "tf.math.asin({0})"})
    cross.api, asin.api = "tf.linalg.cross", "tf.math.asin"
    assert op_rounding(cross) == "products"
    specs = {cross.id: cross, asin.id: asin}
    t = TensorType((4, 8, 9, 3), "float16")
    g = Graph()
    x, y = g.add_leaf(t), g.add_leaf(t)
    [a] = g.add_op(asin.id, {}, [y], [t])
    g.outputs = g.add_op(cross.id, {}, [x, a], [t])
    case = Case(g, "tensorflow", {x[0]: ValueSpec(1236498160, -2.0, 2.0), y[0]: ValueSpec(1644219422, -0.9, 0.9)})
    assert check_case(case, ["tf.eager", "tf.xla"], specs).bugs == []
    plant_xla(monkeypatch, lambda fn: (lambda *xs: [o * 1.05 for o in fn(*xs)]))
    [bug] = check_case(case, ["tf.eager", "tf.xla"], specs).bugs
    assert (bug.backend, bug.status) == ("tf.xla", "mismatch")


def total_variation_case(values: ValueSpec, dtype: str = "bfloat16") -> tuple[Case, dict]:
    from corpus.plan import CheckPlan

    sigmoid = Call("tf.math.sigmoid#t", {"tensorflow": "tf.math.sigmoid({0})"})
    tv = Call("tf.image.total_variation#t", {"tensorflow": "tf.image.total_variation({0})"})
    sigmoid.api, tv.api = "tf.math.sigmoid", "tf.image.total_variation"
    g = Graph()
    x = g.add_leaf(TensorType((6, 3, 5, 4), dtype))
    [s] = g.add_op(sigmoid.id, {}, [x], [TensorType((6, 3, 5, 4), dtype)])
    g.outputs = g.add_op(tv.id, {}, [s], [TensorType((6,), dtype)])
    return Case(g, "tensorflow", {x[0]: values}, plan=CheckPlan(backward_seed=1494137775)), {sigmoid.id: sigmoid, tv.id: tv}


@pytest.mark.tensorflow
def test_a_gradient_through_a_kink_near_its_values_is_excused_and_counted(monkeypatch):
    """bfloat16 total_variation(sigmoid(x)): XLA's sigmoid one ulp from eager's made two
    neighbours tie, and sign(0) = 0 took their term out of one gradient element (seed 33's
    false alarm). The kink probe sees a value within its noise of total_variation's kink:
    the gradients are excused and counted; a 5% error on values far from any kink is
    still reported."""
    from corpus.plan import CheckPlan
    from oracles.compare import NEAR_KINK

    case, specs = total_variation_case(ValueSpec(1250609051, -2.0, 2.0))
    result = check_case(case, ["tf.eager", "tf.xla"], specs)
    assert result.bugs == [] and result.excused.get(NEAR_KINK, 0) >= 1

    def wrong_gradients(fn):
        vjp = fn.vjp
        fn.vjp = lambda xs, cots: [g * 1.05 for g in vjp(xs, cots)]
        return fn

    plant_xla(monkeypatch, wrong_gradients)
    steps = Call("test.Steps", {"tensorflow": "tf.cast(tf.reshape(tf.range(360), [6, 3, 5, 4]), {0}.dtype) * {0}"})
    specs[steps.id] = steps
    g = Graph()
    x = g.add_leaf(TensorType((6, 3, 5, 4), "float32"))  # all ones: neighbours 1 apart, far from the kink
    [apart] = g.add_op(steps.id, {}, [x], [TensorType((6, 3, 5, 4), "float32")])
    g.outputs = g.add_op("tf.image.total_variation#t", {}, [apart], [TensorType((6,), "float32")])
    far = Case(g, "tensorflow", {x[0]: ValueSpec(5, 1.0, 1.0)}, plan=CheckPlan(backward_seed=7))
    [bug] = check_case(far, ["tf.eager", "tf.xla"], specs).bugs
    assert (bug.backend, bug.status, bug.check) == ("tf.xla", "mismatch", "backward")
