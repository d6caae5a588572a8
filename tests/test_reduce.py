"""Reduction: valid candidates only, the same bug kept, the exact minimal result on planted
bugs, and reduction inside a campaign and by ``dlfuzz reduce``."""

import json
import random

import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles.check import check_case
from oracles.verdict import CheckResult, Verdict
from reports.localize import culprit_op
from reports.passes import PASSES, Context
from reports.reduce import reduce_case, size
from reports.validate import Invalid, check_graph, is_valid, retype
from rules.solve import instantiate
from rules.specs import SPECS, specs_for

PLANTED = "torch.compile:tests.planted_backends:"


def generated(framework, n, seed, max_nodes=8):
    from fuzzer.generate import GenConfig, Generator
    from fuzzer.models import make_model

    gen = Generator(framework, specs_for(framework), GenConfig(max_nodes=max_nodes))
    return [m.case for m in (make_model(gen, SPECS, seed, i) for i in range(n)) if m.valid]

F32 = TensorType((2, 3), "float32")


def planted_check(name):
    backends = ["torch.eager", PLANTED + name]
    return lambda case: check_case(case, backends, SPECS)


def graph_case(build, values=None):
    g = Graph()
    build(g)
    leaves = g.leaves()
    return Case(g, "torch", values or {n: ValueSpec(10 + n, -1.0, 1.0) for n in leaves})


def types(case):
    g = case.graph
    return [(g.node(n).op or g.node(n).kind, str(g.node(n).types[0])) for n in g.nodes()]


# ---- validity ------------------------------------------------------------------------------

def test_generated_graphs_validate_and_a_wrong_type_does_not():
    for case in generated("torch", 6, 11, max_nodes=8):
        check_graph(case.graph, "torch", SPECS)
    g = Graph()
    x, y = g.add_leaf(F32), g.add_leaf(TensorType((4, 3), "float32"))
    g.outputs = g.add_op("core.Add", {}, [x, y], [F32])  # (2,3) + (4,3) does not broadcast
    with pytest.raises(Invalid, match="requirement"):
        check_graph(g, "torch", SPECS)
    g = Graph()
    x = g.add_leaf(F32)
    g.outputs = g.add_op("core.Exp", {}, [x], [TensorType((2, 3), "float64")])  # recorded type is wrong
    with pytest.raises(Invalid, match="recorded types"):
        check_graph(g, "torch", SPECS)


def test_every_candidate_of_every_pass_is_a_valid_case():
    cases = generated("torch", 8, 5, max_nodes=8)
    assert cases
    for case in cases:
        ctx = Context(SPECS, "crash", None, ())
        for name, make in PASSES:
            for cand in make(case, ctx):
                assert is_valid(cand, SPECS), name
                assert size(cand) < size(case) or name in ("attrs",), name


def test_shrinking_a_shape_resolves_the_attributes_that_depend_on_it():
    spec = SPECS["core.Reshape"]
    inst = None
    for seed in range(50):
        inst = instantiate(spec, "torch", random.Random(seed), inputs=[TensorType((4, 6), "float32")])
        if inst is not None and inst.attrs["out_rank"] >= 2:
            break
    assert inst is not None
    g = Graph()
    x = g.add_leaf(inst.in_types[0])
    g.outputs = g.add_op("core.Reshape", inst.attrs, [x], inst.out_types)
    shrunk = retype(g, "torch", SPECS, {0: TensorType((2, 3), "float32")})
    assert shrunk is not None
    check_graph(shrunk, "torch", SPECS)
    assert shrunk.node(1).types[0].numel == 6
    assert retype(g, "torch", SPECS, {0: TensorType((2, 3), "float32")}, resolve=False) is None


# ---- the reducer on a fake oracle (no framework) ----------------------------------------------

def fake_crash_on(op, message="RuntimeError: planted failure in exp"):
    calls = []

    def check(case):
        calls.append(case)
        bad = op in case.graph.op_ids()
        cand = Verdict("fake", "crash", "compile", message) if bad else Verdict("fake", "ok")
        return CheckResult(True, "", (Verdict("torch.eager", "ok"), cand))

    return check, calls


def test_reduces_to_the_one_operator_and_simplifies_dtypes_and_shapes():
    t = TensorType((4, 6), "float64")

    def build(g):
        x, y = g.add_leaf(t), g.add_leaf(t)
        a = g.add_op("core.Mul", {}, [x, y], [t])[0]
        b = g.add_op("core.Exp", {}, [a], [t])[0]
        c = g.add_op("core.Tanh", {}, [b], [t])[0]
        d = g.add_op("core.Add", {}, [c, y], [t])[0]
        g.outputs = [d, a]

    case = graph_case(build)
    check, calls = fake_crash_on("core.Exp")
    verdict = check(case).verdicts[1]
    red = reduce_case(case, verdict, check, SPECS)
    assert red.case.graph.op_ids() == ["core.Exp"]
    assert types(red.case) == [("input", "float32[1, 1]"), ("core.Exp", "float32[1, 1]")]
    assert (red.operators_before, red.operators_after, red.nodes_before, red.nodes_after) == (4, 1, 6, 2)
    assert red.checks == len(calls) - 1 and not red.out_of_budget  # the first call found the bug
    assert red.verdict.message == verdict.message


def test_budgets_stop_the_reduction_and_keep_the_best_case():
    case = generated("torch", 3, 7, max_nodes=8)[0]
    check, calls = fake_crash_on(case.graph.op_ids()[0])
    verdict = check(case).verdicts[1]
    red = reduce_case(case, verdict, check, SPECS, max_checks=2)
    assert red.out_of_budget and red.checks == 2 == len(calls) - 1
    assert is_valid(red.case, SPECS)
    red = reduce_case(case, verdict, check, SPECS, time_s=0)
    assert red.out_of_budget and red.checks == 0 and red.case is case


def test_a_different_symptom_is_not_the_same_bug():
    def build(g):
        x = g.add_leaf(F32)
        a = g.add_op("core.Exp", {}, [x], [F32])[0]
        g.outputs = g.add_op("core.Sin", {}, [a], [F32])

    case = graph_case(build)

    def check(c):  # Sin alone crashes differently, Exp alone not at all: both must stay
        ops = c.graph.op_ids()
        msg = {2: "RuntimeError: exp then sin", 1: "ValueError: something else" if "core.Sin" in ops else ""}[len(ops)]
        cand = Verdict("fake", "crash", "compile", msg) if msg else Verdict("fake", "ok")
        return CheckResult(True, "", (Verdict("torch.eager", "ok"), cand))

    red = reduce_case(case, check(case).verdicts[1], check, SPECS)
    assert sorted(red.case.graph.op_ids()) == ["core.Exp", "core.Sin"]


def test_a_smaller_case_the_backend_declines_does_not_show_the_bug():
    """Seed 33's tf.xla false alarm: a NaN gradient XLA alone gave in the whole model, and
    tf.function shared too once reduced to reduce_std of one element: the declined verdict
    (a graph-mode contract) kept the reduction going, and the folder held no bug."""
    def build(g):
        x = g.add_leaf(F32)
        a = g.add_op("core.Exp", {}, [x], [F32])[0]
        g.outputs = g.add_op("core.Sin", {}, [a], [F32])

    case = graph_case(build)

    def check(c):  # the failure alone is shared by the reference graph mode: declined
        cand = Verdict("fake", "crash", "compile", "RuntimeError: planted", unsupported=len(c.graph.op_ids()) < 2,
                       declined="graph-mode contract")
        return CheckResult(True, "", (Verdict("torch.eager", "ok"), cand))

    red = reduce_case(case, check(case).verdicts[1], check, SPECS)
    assert sorted(red.case.graph.op_ids()) == ["core.Exp", "core.Sin"] and not red.verdict.unsupported


# ---- planted bugs, real backends ----------------------------------------------------------

def test_wrong_add_reduces_to_exactly_one_add():
    def build(g):
        x, y = g.add_leaf(F32), g.add_leaf(F32)
        a = g.add_op("core.Sin", {}, [x], [F32])[0]
        b = g.add_op("core.Add", {}, [a, y], [F32])[0]
        c = g.add_op("core.Mul", {}, [b, y], [F32])[0]
        d = g.add_op("core.Tanh", {}, [c], [F32])[0]
        g.outputs = [d, a]

    case = graph_case(build)
    check = planted_check("wrong_add")
    [verdict] = check(case).bugs
    assert verdict.status == "mismatch"
    culprit = culprit_op(case, verdict, check)
    assert culprit == "core.Add"
    red = reduce_case(case, verdict, check, SPECS, culprit=culprit)
    assert red.case.graph.op_ids() == ["core.Add"]
    # the planted fault needs more than one element: the shapes stop at two
    assert sorted(types(red.case)) == [("core.Add", "float32[2, 1]"), ("input", "float32[2, 1]"), ("input", "float32[2, 1]")]
    assert red.culprit == "core.Add" and red.verdict.status == "mismatch"


def test_raises_on_exp_reduces_to_exp_alone_in_a_generated_model():
    check = planted_check("raises_on_exp")
    case = next(c for c in generated("torch", 40, 2) if "core.Exp" in c.graph.op_ids())
    [verdict] = check(case).bugs
    red = reduce_case(case, verdict, check, SPECS)
    assert red.case.graph.op_ids() == ["core.Exp"]
    assert len(red.case.graph) == 2 and red.case.graph.node(red.case.graph.outputs[0][0]).op == "core.Exp"
    assert red.case.graph.type_of(red.case.graph.outputs[0]).numel == 1
    assert red.operators_before >= 3


def test_an_abort_in_the_sandbox_reduces_to_sin_alone():
    from oracles.sandbox import Sandbox

    def build(g):
        x, y = g.add_leaf(F32), g.add_leaf(F32)
        b = g.add_op("core.Sin", {}, [x], [F32])[0]
        g.outputs = g.add_op("core.Mul", {}, [b, y], [F32])

    case = graph_case(build)
    with Sandbox(["torch.eager", PLANTED + "aborts_on_sin"], timeout_s=60) as sandbox:
        [verdict] = sandbox.check(case).bugs
        assert verdict.status == "abort"
        red = reduce_case(case, verdict, sandbox.check, SPECS)
    assert types(red.case) == [("input", "float32[1, 1]"), ("core.Sin", "float32[1, 1]")]


@pytest.mark.slow
def test_a_hang_reduces_to_tanh_alone():
    from oracles.sandbox import Sandbox

    def build(g):
        x, y = g.add_leaf(F32), g.add_leaf(F32)
        a = g.add_op("core.Mul", {}, [x, y], [F32])[0]
        g.outputs = g.add_op("core.Tanh", {}, [a], [F32])

    case = graph_case(build)
    with Sandbox(["torch.eager", PLANTED + "hangs_on_tanh"], timeout_s=8) as sandbox:
        [verdict] = sandbox.check(case).bugs
        red = reduce_case(case, verdict, sandbox.check, SPECS, time_s=120)
    assert types(red.case) == [("input", "float32[1, 1]"), ("core.Tanh", "float32[1, 1]")]


# ---- in a campaign, and dlfuzz reduce ---------------------------------------------------------

WRONG_ADD = ["torch.eager", PLANTED + "wrong_add"]


def campaign(tmp_path, **kw):
    from fuzzer.campaign import CampaignConfig, run_campaign

    # seed 4 with at most 6 operators: model 7 is the first with a visible wrong add
    # (forward checks: the models a seed gives without in-place operators)
    kw.setdefault("checks", ("forward",))
    cfg = CampaignConfig(WRONG_ADD, tmp_path, time_s=600, seed=4, max_nodes=6, max_cases=8, timeout_s=60,
                         ops=("spec",), **kw)
    return run_campaign(cfg)


def test_a_campaign_reports_the_planted_bug_once_reduced_to_one_add(tmp_path):
    state = campaign(tmp_path)
    assert state.bugs == 1 and state.bugs_by_kind == {"mismatch": 1}
    [folder] = (tmp_path / "bugs").iterdir()
    bug = json.loads((folder / "bug.json").read_text())
    assert bug["operators_before"] == bug["operator_nodes"] >= 2
    assert bug["operators_after"] == 1 and bug["operators_reduced"] == ["core.Add"]
    assert bug["nodes_after"] == 3 and bug["reduce_seconds"] > 0
    assert Case.load(folder / "case.json").graph.op_ids() == ["core.Add"]
    assert Case.load(folder / "case.orig.json").graph.op_ids() != ["core.Add"]
    report = (folder / "report.md").read_text()
    assert report.startswith(f"# {PLANTED}wrong_add returns wrong results")
    assert "`torch.add`" in report.splitlines()[0]
    assert "torch.add(" in (folder / "repro.py").read_text()


def test_dlfuzz_reduce_rewrites_a_bug_folder_in_place(tmp_path, capsys):
    from fuzzer.cli import main

    state = campaign(tmp_path, reduce_s=0)
    assert state.bugs == 1
    [folder] = (tmp_path / "bugs").iterdir()
    before = json.loads((folder / "bug.json").read_text())
    assert "reduce_seconds" not in before
    assert main(["reduce", str(folder), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["operators_after"] == 1 and figures["operators"] == ["core.Add"]
    after = json.loads((folder / "bug.json").read_text())
    for key in ("operators_before", "operators_after", "nodes_before", "nodes_after", "reduce_seconds"):
        assert key in after
    assert after["operators_before"] == before["operator_nodes"] and after["count"] == before["count"]
    assert Case.load(folder / "case.json").graph.op_ids() == ["core.Add"]
    assert "torch.add(" in (folder / "program.py").read_text()


def test_ignored_bugs_are_counted_not_written(tmp_path):
    from reports.known import KnownIssues

    state = campaign(tmp_path, ignore=KnownIssues.parse("# known\nwrong_add  # the planted one\n"))
    assert state.bugs == 0 and state.ignored >= 1
    assert list((tmp_path / "bugs").iterdir()) == []
    assert json.loads((tmp_path / "campaign.json").read_text())["ignored"] == state.ignored
