"""ATen-level localization: one faulty ATen operator reached through several Python APIs
is one bug with several sightings, named at both levels; the localizer's own behaviour
on single operators (alone, a window, a fusion-only fault, a crash, its budget)."""

import json

import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles.check import check_case
from oracles.compare import tolerance
from reports.bugs import BugStore
from reports.localize import Culprit, localize, needs_probe
from reports.signature import sign
from rules.specs import SPECS

PLANTED = "torch.compile:tests.planted_backends:"
BROADCAST_ADD = PLANTED + "wrong_broadcast_add"


def T(*shape, dtype="float32"):
    return TensorType(tuple(shape), dtype)


def graph_case(build, low=-1.0, high=1.0):
    g = Graph()
    build(g)
    return Case(g, "torch", {n: ValueSpec(10 + n, low, high) for n in g.leaves()})


def check(backend):
    return lambda case: check_case(case, ["torch.eager", backend], SPECS)


# Three APIs whose ATen graphs (under Inductor's decompositions, which the planted backend
# uses) add two tensors of different shapes: torch.add itself, layer_norm's bias, group_norm's.

def via_add(g):
    x, y = g.add_leaf(T(3, 4)), g.add_leaf(T(4))
    a = g.add_op("core.Sin", {}, [x], [T(3, 4)])[0]
    g.outputs = g.add_op("core.Add", {}, [a, y], [T(3, 4)])


def via_layer_norm(g):
    x, w, b = g.add_leaf(T(3, 5)), g.add_leaf(T(5)), g.add_leaf(T(5), "const")
    a = g.add_op("core.Tanh", {}, [x], [T(3, 5)])[0]
    g.outputs = g.add_op("core.LayerNorm", {}, [a, w, b], [T(3, 5)])


def via_add_half(g):
    x, y = g.add_leaf(T(2, 3, dtype="float16")), g.add_leaf(T(3, dtype="float16"))
    g.outputs = g.add_op("core.Add", {}, [x, y], [T(2, 3, dtype="float16")])


def the_mismatch(case, backend=BROADCAST_ADD):
    [verdict] = check(backend)(case).bugs
    assert verdict.status == "mismatch" and verdict.aten_ops == ()  # a plain check does not localize
    return verdict


# ---- the localizer on single operators -------------------------------------------------------

@pytest.mark.parametrize("build, api", [(via_add, "core.Add"), (via_layer_norm, "core.LayerNorm")])
def test_the_wrong_aten_op_is_named_inside_the_api_that_reaches_it(build, api):
    case = graph_case(build)
    found = localize(case, the_mismatch(case), check(BROADCAST_ADD))
    assert found == Culprit(api, ("aten.add.Tensor",), "float32")


def test_a_fault_across_two_api_operators_stays_at_the_api_level():
    def build(g):
        x, y = g.add_leaf(T(2, 3)), g.add_leaf(T(2, 3))
        a = g.add_op("core.Mul", {}, [x, y], [T(2, 3)])[0]  # mul and exp in one API op: softplus-like
        g.outputs = g.add_op("core.Exp", {}, [a], [T(2, 3)])

    case = graph_case(build)
    backend = PLANTED + "wrong_mul_exp"
    found = localize(case, the_mismatch(case, backend), check(backend))
    # exp alone is right (its input arrives computed); only exp of a mul it compiles is wrong:
    # the API-level probe already splits them, so no ATen op of Exp alone fails
    assert found.api == "core.Exp" and found.aten == ()


def test_a_window_names_every_aten_op_it_needs():
    import torch

    from oracles.aten import aten_graph, search
    from oracles.backends import resolve

    def softplus_ish(x, y):
        return torch.exp(x * y) + 1.0

    xs = [torch.rand(2, 3), torch.rand(2, 3)]
    gm, env = aten_graph(softplus_ish, xs, {})
    found = search(gm, env, resolve(PLANTED + "wrong_mul_exp"), None)
    assert found.ops == ("aten.exp.default", "aten.mul.Tensor") and found.compiles <= 8


def test_a_fusion_only_fault_names_no_aten_op():
    import torch

    from oracles.aten import aten_graph, search
    from oracles.backends import resolve

    gm, env = aten_graph(lambda x, y: torch.exp(x * y), [torch.rand(2, 3), torch.rand(2, 3)], {})
    found = search(gm, env, resolve(PLANTED + "wrong_fused_mul_exp"), None)
    assert found.ops == () and "fusion" in found.why


def test_a_crash_whose_message_names_no_op_is_pinned_on_the_aten_op_that_raises():
    def build(g):
        x, y = g.add_leaf(T(3, 4)), g.add_leaf(T(3, 4))
        a = g.add_op("core.Mul", {}, [x, y], [T(3, 4)])[0]
        b = g.add_op("core.Exp", {}, [a], [T(3, 4)])[0]
        g.outputs = g.add_op("core.Sin", {}, [b], [T(3, 4)])

    case = graph_case(build)
    backend = PLANTED + "raises_quietly_on_exp"
    [verdict] = check(backend)(case).bugs
    assert verdict.status == "crash" and needs_probe(case, verdict)
    found = localize(case, verdict, check(backend))
    assert found == Culprit(None, ("aten.exp.default",))
    sig = sign("crash", backend, verdict.stage, verdict.message, case.graph.op_ids(), aten_ops=found.aten)
    assert sig.operators == ("aten.exp.default",)
    # a message that names the operator keeps signing by it, and needs no probe
    [named] = check(PLANTED + "raises_on_exp")(case).bugs
    assert not needs_probe(case, named)


def test_the_budget_bounds_the_search_and_nothing_escapes():
    import torch

    from oracles.aten import aten_graph, localize_verdict, search
    from oracles.backends import resolve
    from oracles.verdict import Verdict

    backend = resolve(BROADCAST_ADD)
    gm, env = aten_graph(lambda x, y: torch.sin(x) + y, [torch.rand(2, 3), torch.rand(3)], {})
    assert search(gm, env, backend, None, max_compiles=1).ops == ()  # the whole graph, then out of budget
    assert search(gm, env, backend, None, max_compiles=2).ops == ("aten.add.Tensor",)
    # a verdict the localizer cannot work on (no such output) comes back unchanged
    case = graph_case(via_add)
    verdict = Verdict(BROADCAST_ADD, "mismatch", "run", "x", output=7, dtype="float32")
    assert localize_verdict(case, verdict, backend, {}, SPECS) == verdict


def test_the_decompositions_are_the_backends_own():
    import torch

    from oracles.aten import decompositions

    layer_norm = torch.ops.aten.native_layer_norm.default
    assert layer_norm in decompositions("torch.compile")  # Inductor's table
    assert layer_norm in decompositions(BROADCAST_ADD)  # an aot_autograd backend's own
    assert decompositions(PLANTED + "wrong_add") == {} and decompositions("torch.jit") == {}


# ---- one bug, several sightings ---------------------------------------------------------------

def record_through_probe(store, case, index, backend=BROADCAST_ADD):
    result = check(backend)(case)
    [verdict] = result.bugs
    found = localize(case, verdict, check(backend))
    return store.record(case, verdict, tolerance(verdict.dtype), index, found, verdicts=result.verdicts)


def test_one_aten_fault_behind_several_apis_is_one_bug_with_every_api_named(tmp_path):
    store = BugStore(tmp_path, SPECS, "torch.eager")
    cases = [graph_case(via_add), graph_case(via_layer_norm), graph_case(via_add)]
    signatures = [record_through_probe(store, c, i) for i, c in enumerate(cases)]
    assert [new for _, new in signatures] == [True, False, False]
    [folder] = (tmp_path / "bugs").iterdir()
    bug = json.loads((folder / "bug.json").read_text())
    assert bug["count"] == 3 and bug["culprit"] == "core.Add" and bug["aten_ops"] == ["aten.add.Tensor"]
    assert bug["apis"] == ["core.Add", "core.LayerNorm"]
    assert bug["signature_parts"]["operators"] == ["aten.add.Tensor"]
    report = (folder / "report.md").read_text()
    assert "## Where it goes wrong" in report and "`aten.add.Tensor`" in report
    assert "`torch.add` (`core.Add`)" in report and "`core.LayerNorm`" in report


def test_the_same_aten_fault_in_half_precision_is_another_bug(tmp_path):
    store = BugStore(tmp_path, SPECS, "torch.eager")
    record_through_probe(store, graph_case(via_add), 0)
    _, new = record_through_probe(store, graph_case(via_add_half), 1)
    assert new and len(list((tmp_path / "bugs").iterdir())) == 2


def test_reduction_keeps_the_aten_signature(tmp_path):
    from reports.reduce import reduce_bug_folder

    store = BugStore(tmp_path, SPECS, "torch.eager")
    sig, _ = record_through_probe(store, graph_case(via_layer_norm), 0)
    [folder] = (tmp_path / "bugs").iterdir()
    red = reduce_bug_folder(folder, check(BROADCAST_ADD), SPECS, time_s=60)
    assert red.signature.digest == sig.digest and red.localized.aten == ("aten.add.Tensor",)
    assert red.case.graph.op_ids() == ["core.LayerNorm"]
    bug = json.loads((folder / "bug.json").read_text())
    assert bug["localized"]["aten"] == ["aten.add.Tensor"] and bug["apis"] == ["core.LayerNorm"]


@pytest.mark.slow
def test_a_campaign_files_the_broadcast_add_fault_once(tmp_path):
    from fuzzer.campaign import CampaignConfig, run_campaign

    cfg = CampaignConfig(["torch.eager", BROADCAST_ADD], tmp_path, time_s=600, seed=4, max_nodes=6, max_cases=30,
                         timeout_s=60, ops=("spec",), reduce_s=0)
    state = run_campaign(cfg)
    bugs = [json.loads(p.read_text()) for p in (tmp_path / "bugs").glob("*/bug.json")]
    # every folder is the one ATen fault, one per dtype class (half, float, int kernels)
    assert bugs and all(b["aten_ops"] == ["aten.add.Tensor"] for b in bugs)
    classes = [b["signature_parts"]["symptom"] for b in bugs]
    assert len(classes) == len(set(classes)) and state.sightings > len(bugs)
    # seed 4 meets it through layer_norm, batch_norm and group_norm: one folder, each API named
    assert max(len(b["apis"]) for b in bugs) >= 2
