"""Check plans find what a forward check cannot: one planted fault per check kind
(tests/planted_backends.py), each invisible to a forward, static, contiguous check.

The direct tests run ``check_case`` on a hand-built case with an explicit plan: the fault
is found by its check, and the same case without the plan passes. The campaigns (slow)
show that a plain ``dlfuzz fuzz`` finds each fault, and that ``--checks forward`` does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.plan import CheckPlan
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles.check import check_case
from rules.specs import SPECS
from tests.test_oracles import chain as oracle_chain

PLANTED = "torch.compile:tests.planted_backends:"
DYNAMIC = CheckPlan(dynamic_dims=[(0, 0), (1, 0)], shape_sets=[{0: (5, 4), 1: (5, 4)}])
BACKWARD = CheckPlan(backward_seed=3)
LAYOUT = CheckPlan(layouts={0: "transposed"})


def chain(ops, plan: CheckPlan = CheckPlan(), shape=(3, 4), dtype="float32") -> Case:
    """x, y -> op1 -> op2 ... (``tests.test_oracles.chain``) with a check plan."""
    case = oracle_chain(ops, shape, dtype)
    case.plan = plan
    return case


def written(view: bool, plan: CheckPlan = CheckPlan(mutation=True), op: str = "core.TanhInplace") -> Case:
    """x -> (x.t() when ``view``) -> op in place -> exp: input x is written, directly or
    through a transposed view of it."""
    g = Graph()
    t = TensorType((3, 3), "float32")
    x = g.add_leaf(t)
    v = g.add_op("core.Transpose", {"dim0": 0, "dim1": 1, "perm": [1, 0]}, [x], [t])[0] if view else x
    w = g.add_op(op, {}, [v], [t])[0]
    g.outputs = [g.add_op("core.Exp", {}, [w], [t])[0]]
    return Case(g, "torch", {0: ValueSpec(1, -1.0, 1.0)}, plan=plan)


def bug(case: Case, backend: str):
    result = check_case(case, ["torch.eager", PLANTED + backend], SPECS)
    assert result.valid, result.invalid_reason
    assert len(result.bugs) <= 1
    return result.bugs[0] if result.bugs else None, result.checks


# ---- one planted fault per check, found by check_case directly -----------------------------

@pytest.mark.parametrize("backend, plan, check, stage, says", [
    ("wrong_when_symbolic", DYNAMIC, "dynamic", "run", "beyond tolerance"),
    ("wrong_backward", BACKWARD, "backward", "backward", "gradient 0"),
    ("crashes_compiling_backward", BACKWARD, "backward", "backward", "planted: backward compile"),
    ("reads_strided_as_contiguous", LAYOUT, "layout", "run", "beyond tolerance"),
])
def test_each_planted_fault_is_found_by_its_check_and_only_with_it(backend, plan, check, stage, says):
    found, checks = bug(chain(["core.Add", "core.Exp"], plan), backend)
    assert (found.check, found.stage) == (check, stage), found
    assert says in found.message
    assert checks[f"bugs: {check}"] == 1 and checks[f"case: {check}"] == 1
    assert bug(chain(["core.Add", "core.Exp"]), backend) == (None, {"case: forward": 1, "calls: forward": 1,
                                                                     "compiles": 1})


@pytest.mark.parametrize("layout", ["transposed", "stepped", "expanded"])
def test_an_input_read_without_its_strides_is_found_by_the_layout_check(layout):
    # expanded changes the values: judged against eager on them, never the case's float64 evidence
    found, _ = bug(chain(["core.Add", "core.Exp"], CheckPlan(layouts={1: layout})), "reads_strided_as_contiguous")
    assert (found.check, found.stage) == ("layout", "run"), found
    plain = check_case(chain(["core.Add", "core.Exp"], CheckPlan(layouts={1: layout})),
                       ["torch.eager", "torch.compile:aot_eager"], SPECS)
    assert plain.valid and plain.bugs == []


@pytest.mark.parametrize("view", [False, True])
def test_a_dropped_input_mutation_is_found_by_the_mutation_check(view):
    found, checks = bug(written(view), "drops_input_mutation")
    assert (found.check, found.stage) == ("mutation", "run")
    assert found.message.startswith("input x0 after the call (float32)")
    assert checks["bugs: mutation"] == 1
    assert bug(written(view, CheckPlan()), "drops_input_mutation")[0] is None  # outputs are right


def test_a_fault_of_the_dynamic_compile_shows_on_every_call_and_is_still_the_dynamic_checks():
    # the case's own shapes run the symbolic graph too: the oracle recompiles static to tell
    both = CheckPlan(DYNAMIC.dynamic_dims, DYNAMIC.shape_sets, backward_seed=3)
    found, checks = bug(chain(["core.Add", "core.Exp"], both), "wrong_when_symbolic")
    assert (found.check, found.stage) == ("dynamic", "run")
    found, _ = bug(chain(["core.Add", "core.Exp"], both), "wrong_backward")
    assert (found.check, found.stage) == ("backward", "backward")


def test_a_forward_fault_under_a_dynamic_or_backward_plan_stays_the_forward_checks():
    for plan in (DYNAMIC, BACKWARD):
        found, checks = bug(chain(["core.Add", "core.Exp"], plan), "wrong_add")
        assert (found.check, found.stage) == ("forward", "run")
        assert checks["bugs: forward"] == 1


def test_an_input_written_through_a_view_is_judged_by_the_write_not_as_an_exact_copy():
    # Inductor's tanh differs from eager's by an ulp or so: within tolerance, not a bug
    result = check_case(written(True), ["torch.eager", "torch.compile"], SPECS)
    assert result.valid and result.bugs == [], result.bugs


# ---- campaigns ------------------------------------------------------------------------------

# seed 1: of the first 12 models, several have each check in their plan
FOUND = {"wrong_when_symbolic": ("dynamic", "run"), "wrong_backward": ("backward", "backward"),
         "crashes_compiling_backward": ("backward", "backward"), "reads_strided_as_contiguous": ("layout", "run"),
         "drops_input_mutation": ("mutation", "run")}


def campaign(out: Path, backend: str, checks: tuple[str, ...] | None) -> list[dict]:
    from fuzzer.campaign import CampaignConfig, run_campaign

    extra = {} if checks is None else {"checks": checks}
    cfg = CampaignConfig(["torch.eager", PLANTED + backend], out, time_s=300, seed=1, max_nodes=6, max_cases=12,
                         timeout_s=30, reduce_s=0, ops=("spec",), batch=1, **extra)
    run_campaign(cfg)
    return [json.loads(p.read_text()) for p in sorted((out / "bugs").glob("*/bug.json"))]


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(FOUND))
def test_a_campaign_finds_each_planted_fault_and_a_forward_only_campaign_does_not(tmp_path, backend):
    bugs = campaign(tmp_path / "all", backend, None)
    assert bugs, f"no bug found for {backend}"
    assert {(b["verdict"]["check"], b["verdict"]["stage"]) for b in bugs} == {FOUND[backend]}
    state = json.loads((tmp_path / "all" / "campaign.json").read_text())
    assert state["checks"][f"bugs: {FOUND[backend][0]}"] == len(bugs)
    assert state["checks"]["compiles by job: check"] >= state["checks"]["compiles"] > 0  # every job's compiles
    assert campaign(tmp_path / "forward", backend, ("forward",)) == []


class _SilentSilu:
    """``silu(x, inplace=True)`` without declaring the write (as an inferred API with an
    ``inplace`` argument, or one updating running statistics, does)."""

    id = "test.SilentSiluInplace"
    n_inputs = 1
    mutates = ()
    weight_inputs = ()
    unstable_outputs = ()
    discontinuous = False
    rounding = ""
    frameworks = ("torch",)
    api = "torch.nn.functional.silu"

    def dtype_options(self, framework):
        return [("float32",)]

    def code(self, framework, args, attrs):
        return f"torch.nn.functional.silu({args[0]}, inplace=True)"

    def helpers(self, framework):
        return {}


def test_an_input_an_op_writes_without_declaring_it_is_judged_by_that_op_and_a_dropped_write_still_found():
    specs = {**SPECS, _SilentSilu.id: _SilentSilu()}
    g = Graph()
    t = TensorType((4, 5), "float32")
    x = g.add_leaf(t)
    w = g.add_op(_SilentSilu.id, {}, [x], [t])[0]
    g.outputs = [g.add_op("core.Exp", {}, [w], [t])[0]]
    case = Case(g, "torch", {0: ValueSpec(1, -1.0, 1.0)}, plan=CheckPlan(mutation=True))
    # Inductor's silu may round differently from eager's: the written input is judged as
    # silu's result, not bit for bit as an untouched input
    result = check_case(case, ["torch.eager", "torch.compile"], specs)
    assert result.valid and result.bugs == [], result.bugs
    assert result.checks["mutation: input written by an op that does not declare it"] == 1
    dropped = check_case(case, ["torch.eager", PLANTED + "drops_input_mutation"], specs)
    assert [(v.check, v.status) for v in dropped.bugs] == [("mutation", "mismatch")]


def test_a_fused_multiply_add_allowance_still_reports_a_two_percent_error():
    """addcmul_'s allowance covers a compiler rounding its product before the sum (eps of
    the dtype times the terms), not a wrong result."""
    g = Graph()
    t = TensorType((4, 4), "float16")
    x, a, b = g.add_leaf(t), g.add_leaf(t), g.add_leaf(t)
    g.outputs = g.add_op("core.AddcmulInplace", {"value": 1.0}, [x, a, b], [t])  # judged as addcmul's result
    case = Case(g, "torch", {0: ValueSpec(1, -1.0, 1.0), 1: ValueSpec(2, -1.0, 1.0), 2: ValueSpec(3, -1.0, 1.0)},
                plan=CheckPlan(mutation=True))
    assert check_case(case, ["torch.eager", "torch.compile:aot_eager"], SPECS).bugs == []
    found, _ = bug(case, "off_by_two_percent")
    assert found is not None and found.status == "mismatch"


def test_an_infinite_gradient_eager_gives_too_is_agreement_and_a_flipped_one_is_not():
    """acos at exactly 1 (a bfloat16 value rounded up to it): its gradient is -inf in eager
    and in aot_eager alike, and was reported as "NaN/Inf where the reference is finite"
    (aot_eager seed 7's false alarm). A backward that flips the infinity is still wrong."""
    g = Graph()
    t = TensorType((3, 4), "bfloat16")
    x = g.add_leaf(t)
    g.outputs = g.add_op("core.Acos", {}, [x], [t])
    case = Case(g, "torch", {0: ValueSpec(1, 1.0, 1.0)}, plan=BACKWARD)
    result = check_case(case, ["torch.eager", "torch.compile:aot_eager"], SPECS)
    assert result.valid and result.bugs == []
    found, _ = bug(case, "flips_infinite_gradients")
    assert found is not None and found.check == "backward" and "infinities of another sign" in found.message
