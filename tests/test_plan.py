"""Check plans: their form in case.json, the --checks option, and how they are drawn."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from corpus.case import Case, CaseFormatError
from corpus.plan import CHECK_KINDS, CheckPlan, parse_checks
from fuzzer.api import model_source
from fuzzer.models import make_model


def test_a_plan_survives_case_json_and_a_plain_case_has_none():
    src = model_source("torch", 6, ("spec",))
    plain = make_model(src.generator, src.specs, 3, 0).case
    assert "plan" not in plain.to_json()  # forward-only cases read as they did before plans
    planned = None
    for i in range(20):
        case = make_model(src.generator, src.specs, 3, i, checks=CHECK_KINDS).case
        if case.plan.dynamic and case.plan.backward:
            planned = case
            break
    assert planned is not None, "no case of 20 drew a dynamic and backward plan"
    again = Case.from_json(json.loads(planned.dumps()))
    assert again.plan == planned.plan
    assert again.plan.kinds()[0] == "forward" and {"dynamic", "backward"} <= set(again.plan.kinds())


def test_the_same_seed_draws_the_same_plan_and_the_same_graph_whatever_the_checks():
    src = model_source("torch", 6, ("spec",))
    a = [make_model(src.generator, src.specs, 9, i, checks=CHECK_KINDS).case for i in range(6)]
    b = [make_model(src.generator, src.specs, 9, i, checks=CHECK_KINDS).case for i in range(6)]
    assert [c.plan for c in a] == [c.plan for c in b]
    forward = [make_model(src.generator, src.specs, 9, i).case for i in range(6)]
    assert [c.graph.to_json() for c in a] == [c.graph.to_json() for c in forward]


def test_a_plan_uses_only_the_checks_asked_for():
    src = model_source("torch", 6, ("spec",))
    for i in range(10):
        plan = make_model(src.generator, src.specs, 4, i, checks=("forward", "layout")).case.plan
        assert set(plan.kinds()) <= {"forward", "layout", "mutation"}
        assert not plan.dynamic and not plan.backward


def test_dropping_a_check_and_restricting_to_leaves():
    plan = CheckPlan([(0, 1), (3, 0)], [{0: (2, 5), 3: (4,)}], 11, {0: "transposed", 3: "offset"}, True)
    assert plan.without("backward").kinds() == ["forward", "dynamic", "layout", "mutation"]
    assert plan.without("dynamic").shape_sets == []
    kept = plan.restricted_to({3})
    assert kept.dynamic_dims == [(3, 0)] and kept.shape_sets == [{3: (4,)}] and kept.layouts == {3: "offset"}
    with pytest.raises(ValueError):
        plan.without("forward")


def test_parse_checks_and_a_malformed_plan():
    assert parse_checks("all") == CHECK_KINDS
    assert parse_checks("backward") == ("forward", "backward")  # forward outputs are always checked
    with pytest.raises(ValueError, match="unknown check 'strides'"):
        parse_checks("forward,strides")
    src = model_source("torch", 4, ("spec",))
    data = make_model(src.generator, src.specs, 1, 0).case.to_json()
    data["plan"] = {"gradients": True}
    with pytest.raises(CaseFormatError, match="unknown check 'gradients'"):
        Case.from_json(data)


def test_an_unknown_check_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fuzzer", "fuzz", "--backends", "torch.eager,torch.compile:aot_eager",
                          "--out", str(tmp_path / "o"), "--checks", "forward,strides"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown check 'strides'" in out.stderr and len(out.stderr.strip().splitlines()) <= 2


def test_the_hypothesis_strategy_draws_plans_of_the_checks_asked_for():
    from hypothesis import HealthCheck, find, settings

    from fuzzer.strategies import models

    quick = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    case = find(models(max_nodes=4, checks="forward,backward,layout"), lambda c: c.plan.backward,
                settings=quick)
    assert case.plan.backward and not case.plan.dynamic and not case.plan.mutation


def test_the_cases_of_one_batch_share_which_checks_they_have():
    """A batch is compiled once: for symbolic shapes or with a backward if any member's
    plan asks; members of a group draw those decisions from one stream, so a batch's
    compile mode is what its members asked for, not the union of eight coin flips."""
    import random

    from corpus.values import has_special
    from fuzzer.plan import SHARE, has_gradient_path

    src = model_source("torch", 6, ("spec",))
    seen = set()
    for group in range(4):
        coins = random.Random(f"2/group{group}/checks")
        dynamic, backward = coins.random() < SHARE["dynamic"], coins.random() < SHARE["backward"]
        seen.add((dynamic, backward))
        for i in range(8):
            case = make_model(src.generator, src.specs, 2, 8 * group + i, checks=CHECK_KINDS, group=group).case
            assert not case.plan.dynamic or dynamic  # (a dynamic plan also needs another shape set)
            if has_gradient_path(case) and not has_special(case.values.values()):
                assert case.plan.backward == backward
    assert len(seen) > 1  # groups differ
