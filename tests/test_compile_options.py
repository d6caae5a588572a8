"""Compiler options in check plans (issue 17): Inductor settings a case is compiled under,
drawn from its seed, saved in case.json, shown in report.md, honoured by the oracle, by
replay, by repro.py and by reduction.

The planted fault is Inductor's own: ``cpp.inject_relu_bug_TESTING_ONLY = "accuracy"``
makes its C++ ``relu`` compute ``x + 1``, a fault only a case compiled under that option
can show.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.batch import merge_cases
from corpus.case import Case
from corpus.plan import CheckPlan, PlanFormatError
from oracles.verdict import Verdict
from rules.specs import SPECS
from tests.test_plan_checks import chain

ROOT = Path(__file__).resolve().parent.parent
RELU_BUG = {"cpp.inject_relu_bug_TESTING_ONLY": "accuracy"}


def relu_case(options: dict) -> Case:
    return chain(["core.Add", "core.Relu"], CheckPlan(options=dict(options)))


# ---- drawing -----------------------------------------------------------------------------------

def test_options_are_drawn_from_the_seed_and_name_real_inductor_settings():
    import torch._inductor.config as config

    from fuzzer.plan import HEAVY, HEAVY_CYCLE, OPTIONS, draw_options

    draws = [draw_options(random.Random(f"5/group{g}/options"), 3 + g) for g in range(60)]
    assert draws == [draw_options(random.Random(f"5/group{g}/options"), 3 + g) for g in range(60)]
    # the costly options take turns: each once in any six batches in a row
    for start in range(0, 54, 5):
        window = draws[start:start + len(HEAVY_CYCLE)]
        assert sorted(name for d in window for name in d if name in HEAVY) == sorted(HEAVY)
    assert {name for d in draws for name in d} == set(HEAVY) | {name for name, _, _ in OPTIONS}
    known = config.get_config_copy()
    for name, value, share in OPTIONS + tuple((k, v, 0.5) for k, v in HEAVY.items()):
        assert name in known, name
        assert type(value) is type(known[name]) or known[name] is None, name
        assert 0 < share < 1
    assert set(HEAVY_CYCLE) - {""} == set(HEAVY)
    unslotted = [draw_options(random.Random(f"5/{i}/options")) for i in range(100)]
    assert unslotted == [draw_options(random.Random(f"5/{i}/options")) for i in range(100)]
    assert {name for d in unslotted for name in d if name in HEAVY} == set(HEAVY)
    json.dumps(draws)  # they travel in case.json


def test_a_model_draws_its_options_from_its_seed_and_a_batch_shares_them():
    from fuzzer.api import model_source
    from fuzzer.models import make_model

    src = model_source("torch", 4, ("spec",), None, ("torch.eager", "torch.compile"), ("all",))

    def plans(seed, options=True):
        return [make_model(src.generator, src.specs, seed, i, checks=src.checks, group=i // 4, options=options)
                .case.plan for i in range(8)]

    a, b = plans(3), plans(3)
    assert [p.to_json() for p in a] == [p.to_json() for p in b]
    assert [p.options for p in a[:4]] == [a[0].options] * 4 and [p.options for p in a[4:]] == [a[4].options] * 4
    # the options have their own stream: the checks drawn are those drawn without them
    plain = plans(3, options=False)
    assert [p.kinds() for p in plain] == [p.kinds() for p in a] and not any(p.options for p in plain)


def test_a_batch_is_compiled_under_the_options_every_member_has():
    members = [relu_case({"freezing": True, "cpp.simdlen": 0}), relu_case({"freezing": True, "cpp.simdlen": 0}),
               relu_case({"freezing": True})]
    assert merge_cases(members[:2]).case.plan.options == {"freezing": True, "cpp.simdlen": 0}
    assert merge_cases(members).case.plan.options == {"freezing": True}
    assert merge_cases([members[0], relu_case({})]).case.plan.options == {}


# ---- case.json, report.md, reduction -----------------------------------------------------------

def test_options_round_trip_through_case_json_and_show_in_the_summary(tmp_path):
    options = {"cpp_wrapper": True, "post_grad_fusion_options": {"batch_aten_add": {}}, "cpp.simdlen": 0}
    case = relu_case(options)
    case.save(tmp_path / "case.json")
    again = Case.load(tmp_path / "case.json")
    assert again.plan.options == options and again.plan.to_json() == case.plan.to_json()
    assert again.plan.kinds() == ["forward"]  # options are no check of their own
    assert "compiled with options cpp.simdlen=0, cpp_wrapper=True" in again.plan.summary()
    assert CheckPlan.from_json({"backward": {"cotangent_seed": 1}}).options == {}
    with pytest.raises(PlanFormatError):
        CheckPlan.from_json({"options": ["cpp_wrapper"]})
    # reduction keeps them where the plan is cut down, and offers the plan without them
    assert case.plan.restricted_to({0}).options == options
    assert CheckPlan(backward_seed=1, options=options).without("backward").options == options


def test_the_plan_pass_offers_the_case_without_its_options():
    from reports.passes import plan_pass, plan_size

    case = relu_case({"cpp_wrapper": True, "freezing": True})
    ctx = type("Ctx", (), {"check": "forward"})()  # plan_pass reads only the check
    offered = [c.plan.options for c in plan_pass(case, ctx)]
    assert offered == [{}, {"freezing": True}, {"cpp_wrapper": True}]
    assert plan_size(case.plan) == plan_size(CheckPlan()) + 2


def test_the_reproducers_and_the_report_compile_with_the_options():
    from reports.bugs import signature_of
    from reports.render import render_report
    from reports.repro import repro_source
    from reports.snippet import snippet

    case = relu_case(RELU_BUG)
    line = "torch.compile(model, options={'cpp.inject_relu_bug_TESTING_ONLY': 'accuracy'})"
    assert line in repro_source(case, SPECS, "torch.eager", "torch.compile", "mismatch", output=0)
    assert line.replace("model", "f") in snippet(case, SPECS, "torch.eager",
                                                 Verdict("torch.compile", "mismatch", "run", "output 0", output=0))
    assert "torch.compile(model, backend='aot_eager')" in repro_source(  # other backends take none
        case, SPECS, "torch.eager", "torch.compile:aot_eager", "mismatch", output=0)
    dynamic = CheckPlan(dynamic_dims=[(0, 0), (1, 0)], shape_sets=[{0: (5, 4), 1: (5, 4)}], options=RELU_BUG)
    source = repro_source(chain(["core.Add", "core.Relu"], dynamic), SPECS, "torch.eager", "torch.compile",
                          "mismatch", output=0, check="dynamic", message="shape set 1: output 0 (float32): x")
    assert "options={'cpp.inject_relu_bug_TESTING_ONLY': 'accuracy'}, dynamic=True)" in source
    bad = Verdict("torch.compile", "mismatch", "run", "output 0 (float32): 12 of 12 elements beyond tolerance", 0,
                  1.0, 1.0, "float32")
    text = render_report(case, bad, signature_of(case, bad), "torch.eager", "", specs=SPECS, versions_info={})
    assert "Checked: forward; compiled with options cpp.inject_relu_bug_TESTING_ONLY='accuracy'" in text
    assert line.replace("model", "f") in text


# ---- the oracle, replay and repro.py honour them ------------------------------------------------

def test_a_fault_only_an_option_shows_is_found_under_it_after_a_round_trip_and_not_without(tmp_path):
    from oracles.check import check_case

    case = relu_case(RELU_BUG)
    case.save(tmp_path / "case.json")
    result = check_case(Case.load(tmp_path / "case.json"), ["torch.eager", "torch.compile"], SPECS)  # as replay
    assert result.valid and [(v.status, v.check) for v in result.bugs] == [("mismatch", "forward")]
    assert "beyond tolerance" in result.bugs[0].message
    plain = check_case(relu_case({}), ["torch.eager", "torch.compile"], SPECS)
    assert plain.valid and not plain.bugs
    # other backends ignore the options
    other = check_case(case, ["torch.eager", "torch.compile:aot_eager"], SPECS)
    assert other.valid and not other.bugs


@pytest.mark.slow
def test_the_repro_of_a_fault_under_an_option_fails_with_it_and_passes_without(tmp_path):
    from reports.repro import repro_source

    codes = {}
    for name, options in (("with", RELU_BUG), ("without", {})):
        path = tmp_path / f"{name}.py"
        path.write_text(repro_source(relu_case(options), SPECS, "torch.eager", "torch.compile", "mismatch", output=0))
        codes[name] = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True,
                                     timeout=600)
    assert codes["with"].returncode == 1, codes["with"].stdout + codes["with"].stderr
    assert "BUG PRESENT" in codes["with"].stdout
    assert codes["without"].returncode == 0, codes["without"].stdout + codes["without"].stderr


# ---- harnesses ---------------------------------------------------------------------------------

def test_the_harnesses_named_in_plans_are_the_ones_defined_and_take_turns():
    from corpus.plan import HARNESSES
    from fuzzer.plan import HARNESS_CYCLE, cycle_slot, draw_harness
    from oracles.harness import SOURCES

    assert set(SOURCES) == set(HARNESSES)
    slot = cycle_slot(5, 0)
    assert slot == cycle_slot(5, 0) and cycle_slot(5, 3) == slot + 3 and cycle_slot(5, None) is None
    turns = [draw_harness(random.Random(0), slot=slot + g) for g in range(len(HARNESS_CYCLE))]
    assert sorted(turns) == sorted(HARNESS_CYCLE)
    assert "checkpoint" not in {draw_harness(random.Random(0), True, slot + g) for g in range(len(HARNESS_CYCLE))}
    assert {draw_harness(random.Random(i)) for i in range(200)} == {"", *HARNESSES}
    case = relu_case({})
    case.plan.harness = "graph_break"
    assert Case.from_json(case.to_json()).plan.harness == "graph_break"
    assert "called through the graph_break harness" in case.plan.summary()
    with pytest.raises(PlanFormatError):
        CheckPlan.from_json({"harness": "nope"})


@pytest.mark.parametrize("harness", ["graph_break", "python", "modules", "checkpoint", "objects", "containers",
                                     "globals"])
def test_a_harness_returns_the_models_outputs_and_keeps_a_fault_visible(harness):
    from dataclasses import replace

    from oracles.check import check_case

    ok = replace(relu_case({}).plan, harness=harness)
    case = chain(["core.Add", "core.Relu"], ok)
    result = check_case(case, ["torch.eager", "torch.compile:aot_eager"], SPECS)
    assert result.valid and not result.bugs, result.bugs
    if harness == "checkpoint":  # the planted backend does not look into a higher-order op's subgraph
        bad, backend = chain(["core.Add", "core.Relu"], replace(ok, options=RELU_BUG)), "torch.compile"
    else:  # a user's own backend gets no harness: the planted one, registered by name, does
        bad, backend = chain(["core.Add", "core.Exp"], ok), "torch.compile:" + registered_wrong_add()
    found = check_case(bad, ["torch.eager", backend], SPECS)
    assert [(v.status, v.check) for v in found.bugs] == [("mismatch", "forward")]


def registered_wrong_add() -> str:
    """tests.planted_backends.wrong_add as a registered Dynamo backend, in this process."""
    import torch._dynamo

    from tests.planted_backends import wrong_add

    name = "dlfuzz_test_wrong_add"
    if name not in torch._dynamo.list_backends(exclude_tags=()):
        torch._dynamo.register_backend(wrong_add, name)
    return name


def test_a_users_own_backend_gets_the_model_alone():
    from oracles.harness import applies

    assert applies("torch.compile") and applies("torch.compile:aot_eager") and applies("torch.compile:inductor")
    assert not applies("torch.compile:tests.planted_backends:wrong_add") and not applies("torch.jit")


def test_the_reproducer_calls_the_model_through_the_harness(tmp_path):
    from reports.repro import repro_source
    from reports.snippet import snippet

    case = relu_case(RELU_BUG)
    case.plan.harness = "modules"
    source = repro_source(case, SPECS, "torch.eager", "torch.compile", "mismatch", output=0)
    assert "fn = torch.compile(harness(model), options=" in source and "def harness(model):" in source
    short = snippet(case, SPECS, "torch.eager", Verdict("torch.compile", "mismatch", "run", "output 0", output=0))
    assert "torch.compile(harness(f), options=" in short and "def harness(model):" in short
    compile(source, "repro.py", "exec")
    compile(short, "snippet.py", "exec")
    assert "harness(" not in repro_source(case, SPECS, "torch.eager", "torch.jit", "mismatch", output=0)


def test_generate_and_the_hypothesis_strategy_draw_settings_and_harnesses_as_campaigns_do():
    """``api.generate`` and ``strategies.models`` for an Inductor backend with checks past the
    forward give plans Inductor settings and a harness (a backend author's suite meets them
    as a campaign would); with the forward only, or aot_eager, no settings."""
    from hypothesis import HealthCheck, given, settings

    from corpus.plan import HARNESSES
    from fuzzer import api
    from fuzzer.strategies import models

    inductor = ("torch.eager", "torch.compile")
    cases = [api.generate("torch", seed=2, index=i, max_nodes=3, ops=("spec",), backends=inductor, checks="all")
             for i in range(6)]
    assert any(c.plan.options for c in cases) and any(c.plan.harness for c in cases)
    assert all(c.plan.harness in ("", *HARNESSES) for c in cases)
    plain = api.generate("torch", seed=2, index=0, max_nodes=3, ops=("spec",), backends=inductor)
    assert not plain.plan.options and not plain.plan.harness
    aot = api.generate("torch", seed=2, index=0, max_nodes=3, ops=("spec",),
                       backends=("torch.eager", "torch.compile:aot_eager"), checks="all")
    assert not aot.plan.options
    seen = []

    @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(models("torch", max_nodes=2, backends=inductor, checks="all"))
    def collect(case):
        seen.append((bool(case.plan.options), case.plan.harness))

    collect()
    assert any(opts for opts, _ in seen) and any(h for _, h in seen)
