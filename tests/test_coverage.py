"""Coverage of the compilers under test (issue 17): measured in the workers, combined,
recorded over time, resumed, and steering generation."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest

from fuzzer.generate import GenConfig, Generator
from fuzzer.guidance import Bandit, Bias, Guide, model_maker, swap_operator
from fuzzer.models import make_model
from rules.specs import SPECS, specs_for


def _arms(api: str) -> dict:
    return {"kind": {"spec": 1.0}, "api": {api: 1.0}, "dtype": {"float32": 1.0}, "check": {"forward": 1.0}}


def _feed(bandit: Bandit) -> None:
    for i in range(20):
        bandit.update(_arms("a"), 3.0 if i % 2 == 0 else 0.0)  # a keeps adding arcs
        bandit.update(_arms("b"), 0.0)  # b never does
    bandit.update(_arms("c"), 0.5)  # c once, a little


def test_the_bandit_is_deterministic_and_shifts_weight_toward_a_choice_that_added_arcs():
    one, two = Bandit(), Bandit()
    _feed(one)
    _feed(two)
    assert one.weights("api") == two.weights("api")
    w = one.weights("api")
    assert w["a"] == pytest.approx(1 + one.boost) and 1 < w["c"] < w["a"] and "b" not in w  # b weighs 1

    class Spec:
        def __init__(self, api):
            self.api = self.id = api

    groups = [[Spec(api)] for api in ("a", "b", "c", "d")]
    bias = Bias(apis=w)
    rng = random.Random(5)
    drawn = [bias.api(rng, groups)[0].api for _ in range(2000)]
    assert drawn.count("a") > 2.5 * drawn.count("b")  # weight 5 against 1
    rng = random.Random(5)
    assert [bias.api(rng, groups)[0].api for _ in range(2000)] == drawn  # the same stream, the same draws


def test_api_weights_favour_an_api_never_drawn_as_much_as_the_best_one():
    bandit = Bandit()
    _feed(bandit)
    w = bandit.weights("api", novelty=True)
    assert w["a"] == pytest.approx(1.0)  # the best tried API weighs as an untried one ("d", absent: 1)
    assert w["b"] == pytest.approx(1 / (1 + bandit.boost)) and w["b"] < w["c"] < w["a"]

    class Spec:
        def __init__(self, api):
            self.api = self.id = api

    groups = [[Spec(api)] for api in ("a", "b", "c", "d")]
    rng = random.Random(5)
    drawn = [Bias(apis=w).api(rng, groups)[0].api for _ in range(2000)]
    assert drawn.count("d") > 2.5 * drawn.count("b")  # never drawn, against drawn 20 times for nothing
    assert Bandit().weights("api", novelty=True) == {}  # no feedback: drawn as unguided


def test_weights_follow_what_added_arcs_recently():
    bandit = Bandit(decay=0.9)
    for _ in range(10):
        bandit.update(_arms("old"), 5.0)
    for _ in range(40):
        bandit.update(_arms("old"), 0.0)
        bandit.update(_arms("new"), 2.0)
    w = bandit.weights("api")
    assert w["new"] > w["old"]


def _generator() -> Generator:
    return Generator("torch", specs_for("torch"), GenConfig(max_nodes=4))


def test_without_coverage_or_feedback_generation_is_unchanged():
    gen = _generator()
    plain = [make_model(gen, SPECS, 7, i, checks=("forward",)).case.to_json() for i in range(3)]
    # the campaign's maker without a guide (no --coverage; --guide alone changes nothing)
    unguided = model_maker(gen, SPECS, 7, None, checks=("forward",))
    assert [unguided(i).case.to_json() for i in range(3)] == plain
    # a guide that has heard nothing yet draws exactly as unguided generation
    fresh = model_maker(gen, SPECS, 7, Guide(7, SPECS), checks=("forward",))
    assert [fresh(i).case.to_json() for i in range(3)] == plain
    assert gen.draw.guide is None


def test_guided_generation_is_deterministic_for_a_seed_and_the_same_feedback():
    gen = _generator()
    seeds = [make_model(gen, SPECS, 3, i).case for i in range(4)]

    def guided() -> list[dict]:
        guide = Guide(3, SPECS, mutate_share=0.5)
        for i, case in enumerate(seeds):
            guide.feedback([case], 100 * (i % 2))
        make = model_maker(gen, SPECS, 3, guide, checks=("forward",))
        return [make(i).case.to_json() for i in range(10, 16)]

    first = guided()
    assert guided() == first
    assert any(c["provenance"].get("guide") for c in first)


def test_mutation_takes_fewer_models_while_its_cases_add_less_than_fresh_ones():
    guide = Guide(3, SPECS, mutate_share=0.4)
    plain = guide._make_weights()
    assert plain == pytest.approx([0.6, 0.2, 0.2])
    for _ in range(10):
        guide.bandit.update({"make": {"fresh": 1.0}}, 3.0)
        guide.bandit.update({"make": {"swap": 1.0}}, 0.0)
        guide.bandit.update({"make": {"focus": 1.0}}, 1.0)
    fresh, swap, focus = guide._make_weights()
    assert swap / fresh < focus / fresh < 0.2 / 0.6  # both below their plain share, the one that added nothing most


def test_an_operator_swap_keeps_every_type_and_changes_one_operator_instance():
    gen = _generator()
    for index in range(20):
        graph = make_model(gen, SPECS, 11, index).case.graph
        swapped = swap_operator(graph, gen, random.Random(index))
        if swapped is None:
            continue
        before, after = graph.to_json()["nodes"], swapped.to_json()["nodes"]
        assert [n["types"] for n in before] == [n["types"] for n in after]
        assert [n.get("inputs") for n in before] == [n.get("inputs") for n in after]
        changed = [(a.get("op"), a.get("attrs"), b.get("op"), b.get("attrs")) for a, b in zip(before, after) if a != b]
        assert len(changed) == 1
        return
    pytest.fail("no graph of 20 could be mutated")


def test_combined_figures_equal_coverage_reports_own(tmp_path, monkeypatch):
    import coverage

    from reports.coverage_totals import CoverageTotals

    monkeypatch.setenv("DLFUZZ_CACHE_DIR", str(tmp_path / "cache"))
    pkg = tmp_path / "src" / "covpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "m.py").write_text("def f(x):\n    if x > 0:\n        return 1\n    for i in range(x):\n        x += i\n"
                              "    with open(__file__) as fh:\n        pass\n    return (x +\n            2)\n")
    (pkg / "unused.py").write_text("def g():\n    return 3\n")
    files = []
    for n, arg in enumerate((1, -1)):
        data = tmp_path / f"w{n}.cov"
        cov = coverage.Coverage(branch=True, source=[str(pkg)], data_file=str(data), config_file=False)
        sys.path.insert(0, str(pkg.parent))
        try:
            cov.start()
            import covpkg.m

            covpkg.m.f(arg)
            cov.stop()
        finally:
            sys.path.remove(str(pkg.parent))
            sys.modules.pop("covpkg.m", None)
            sys.modules.pop("covpkg", None)
        cov.save()
        files.append(data)
    totals = CoverageTotals([str(pkg)])
    assert all(totals.add_file(f) for f in files)
    ours = totals.totals()
    combined = tmp_path / "campaign.cov"
    totals.write(combined)
    cov = coverage.Coverage(branch=True, source=[str(pkg)], data_file=str(combined), config_file=False)
    cov.load()
    cov.json_report(outfile=str(tmp_path / "r.json"))
    theirs = json.loads((tmp_path / "r.json").read_text())["totals"]
    assert (ours.lines, ours.lines_total, ours.branches, ours.branches_total) == \
        (theirs["covered_lines"], theirs["num_statements"], theirs["covered_branches"], theirs["num_branches"])
    assert 0 < ours.lines < ours.lines_total
    # the static analysis came from the cache the second time, with the same figures
    assert list((tmp_path / "cache").rglob("*.pickle"))
    again = CoverageTotals([str(pkg)])
    again.add_file(combined)
    assert again.totals() == ours


def test_a_missing_coverage_source_is_one_line_and_exit_2(tmp_path, capsys):
    from fuzzer.cli import main

    missing = tmp_path / "nowhere"
    code = main(["fuzz", "--backends", "torch.eager,torch.compile:aot_eager", "--coverage-source",
                 f"{tmp_path},{missing}", "--out", str(tmp_path / "out"), "--time", "5s"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(missing) in err
    assert not (tmp_path / "out").exists()


def _functorch() -> str:
    from oracles.sut_coverage import package_dir

    path = package_dir("torch", "_functorch")
    assert path is not None
    return path


@pytest.mark.slow
def test_a_coverage_campaign_records_figures_over_time_and_resume_keeps_them(tmp_path):
    from fuzzer.campaign import CampaignConfig, CampaignError, run_campaign
    from reports.summary import write_summary

    out = tmp_path / "out"

    def run(cases: int, sources=(_functorch(),)):
        cfg = CampaignConfig(["torch.eager", "torch.compile:aot_eager"], out, time_s=300, seed=4, max_nodes=4,
                             max_cases=cases, reduce_s=0, coverage=tuple(sources), batch=4)
        run_campaign(cfg)
        return json.loads((out / "campaign.json").read_text())

    first = run(6)
    cov = first["coverage"]
    assert cov["lines_pct"] > 0 and cov["branches_pct"] > 0 and cov["lines"] <= cov["lines_total"]
    assert cov["timeline"] and cov["timeline"][-1][1:] == [cov["lines_pct"], cov["branches_pct"]]
    assert cov["jobs"]["measured"] >= 3 and cov["jobs"]["adding"] >= 1 and cov["guided"]  # (six cases in pairs)
    assert any(k.startswith("op kind: ") for k in cov["new_arcs"]) and "check: forward" in cov["new_arcs"]
    assert sorted(p.name for p in (out / "coverage").iterdir()) == ["campaign.cov", "jobs.jsonl"]  # worker files folded in
    jobs = [json.loads(line) for line in (out / "coverage" / "jobs.jsonl").read_text().splitlines()]
    assert len(jobs) == cov["jobs"]["measured"] and all(j["seconds"] > 0 for j in jobs)
    # guided, every setting unheard: batches of two, not the campaign's four (fuzzer.guidance.batch_size)
    assert [j["cases"] for j in jobs if j["job"] == "batch"][:2] == [2, 2]

    second = run(10)
    again = second["coverage"]
    assert second["cases"] > first["cases"]
    assert again["timeline"][:len(cov["timeline"])] == cov["timeline"] and len(again["timeline"]) > len(cov["timeline"])
    assert again["lines"] >= cov["lines"] and again["branches"] >= cov["branches"]
    assert again["jobs"]["measured"] > cov["jobs"]["measured"]

    _, page, _ = write_summary(out)
    assert "Compiler coverage over time" in page.read_text() and "branch coverage" in page.read_text()

    with pytest.raises(CampaignError, match="same --coverage-source"):
        run(12, sources=(os.path.dirname(_functorch()) + "/_dynamo",))


def _case_with(harness: str, heavy: str, backward: bool):
    case = make_model(_generator(), SPECS, 4, 0).case
    case.plan.harness = harness
    case.plan.options = {heavy: True} if heavy else {}
    case.plan.backward_seed = 1 if backward else None
    return case


def test_an_arm_whose_jobs_take_longer_for_the_same_arcs_weighs_less():
    guide = Guide(9, SPECS)
    for _ in range(4):
        guide.feedback([_case_with("containers", "", False)], 500, seconds=3.0)
        guide.feedback([_case_with("python", "", False)], 500, seconds=30.0)
    w = guide.bandit.weights("harness")
    assert w["containers"] > 2 * w["python"]
    plain = Guide(9, SPECS)  # no time known (a cluster's jobs): per job, as before
    for _ in range(4):
        plain.feedback([_case_with("containers", "", False)], 500)
        plain.feedback([_case_with("python", "", False)], 500)
    w = plain.bandit.weights("harness")
    assert w["containers"] == pytest.approx(w["python"], rel=0.01)  # (only the decay orders them)


def test_a_batch_is_steered_to_every_harness_once_then_to_those_that_added_arcs():
    from fuzzer.guidance import HARNESS_ARMS

    guide = Guide(9, SPECS)
    first = [guide.steer(f"group{g}") for g in range(len(HARNESS_ARMS))]
    assert [s.harness or "none" for s in first] == list(HARNESS_ARMS)  # each once, the plain one last
    assert all(s.heavy is None for s in first)  # the costly settings keep their plain turns
    assert guide.steer("group0") is first[0]  # every member of a batch gets the batch's choices
    assert all(s.shares is None for s in first)  # no gain yet: the plain shares
    for _ in range(6):
        guide.feedback([_case_with("containers", "freezing", True)], 400)
        guide.feedback([_case_with("python", "", False)], 0)
    assert guide.steer("group99").heavy is None  # not every setting fed back yet
    for heavy in ("cpp_wrapper", "max_autotune"):
        guide.feedback([_case_with("python", heavy, False)], 0)
    later = [guide.steer(f"group{g}") for g in range(100, 300)]
    harnesses = [s.harness for s in later]
    assert harnesses.count("containers") > 3 * harnesses.count("python")
    assert [s.heavy for s in later].count("freezing") > 2 * [s.heavy for s in later].count("")
    shares = later[0].shares
    assert shares["backward"] == pytest.approx(0.9)
    assert shares["layout"] == shares["dynamic"] == pytest.approx(0.9)  # in no checked plan yet: a first look
    again = Guide(9, SPECS)  # the same feedback, the same choices
    [again.steer(f"group{g}") for g in range(len(HARNESS_ARMS))]
    for _ in range(6):
        again.feedback([_case_with("containers", "freezing", True)], 400)
        again.feedback([_case_with("python", "", False)], 0)
    again.steer("group99")
    for heavy in ("cpp_wrapper", "max_autotune"):
        again.feedback([_case_with("python", heavy, False)], 0)
    assert [again.steer(f"group{g}") for g in range(100, 300)] == later


def test_a_check_kind_that_added_nothing_gets_the_lowest_share_and_one_never_tried_the_highest():
    guide = Guide(9, SPECS)
    with_layout = _case_with("", "", False)
    with_layout.plan.layouts = {with_layout.graph.leaves("input")[0]: "transposed"}
    for _ in range(5):
        guide.feedback([_case_with("", "", True)], 3000, seconds=5.0)
        guide.feedback([with_layout], 0, seconds=5.0)
    shares = guide.steer("group0").shares
    assert shares["layout"] == pytest.approx(0.3)
    assert shares["backward"] == shares["dynamic"] == pytest.approx(0.9)


def test_a_check_kind_whose_jobs_add_as_much_but_take_longer_gets_less_than_its_plain_share():
    guide = Guide(9, SPECS)
    dynamic = _case_with("", "", False)
    dynamic.plan.dynamic_dims = [0]
    for _ in range(5):
        guide.feedback([dynamic], 800, seconds=30.0)  # a dynamic-shape compile: six plain ones
        guide.feedback([_case_with("", "", False)], 800, seconds=5.0)
    shares = guide.steer("group0").shares
    assert shares["dynamic"] == pytest.approx(0.3)
    even = Guide(9, SPECS)  # as fast and as rich as the rest: its plain share
    for _ in range(5):
        even.feedback([dynamic], 800, seconds=5.0)
        even.feedback([_case_with("", "", False)], 800, seconds=5.0)
    assert even.steer("group0").shares["dynamic"] == pytest.approx(0.5, abs=0.02)


def test_a_steer_decides_the_models_harness_setting_and_check_shares():
    from fuzzer.plan import Steer

    gen = _generator()
    steer = Steer(harness="modules", heavy="max_autotune", shares={"backward": 1.0, "dynamic": 0.0, "layout": 0.0})
    cases = [make_model(gen, SPECS, 5, i, checks=("forward", "dynamic", "backward", "layout"), group=0,
                        options=True, harness=True, steer=steer).case for i in range(4)]
    assert all(c.plan.harness == "modules" and c.plan.options.get("max_autotune") for c in cases)
    assert all(not c.plan.dynamic and not c.plan.layouts for c in cases)
    assert any(c.plan.backward for c in cases)


def test_batches_are_small_until_every_batch_level_arm_is_heard_then_take_the_campaigns_size():
    from fuzzer.guidance import BATCH_ARMS, BREADTH_ROUNDS, batch_arms

    checks = ("forward", "dynamic", "backward", "layout")
    arms = batch_arms(checks, harness=True, options=True)
    assert arms == BATCH_ARMS
    guide = Guide(4, SPECS)
    cut = [guide._next_group(8, arms)[1] for _ in range(6)]
    assert cut == [False, True] * 3  # batches of two while nothing is heard
    for cat, names in BATCH_ARMS.items():
        for arm in names:
            guide.bandit.update({cat: {arm: 1.0}}, 0.0)
    assert [guide._next_group(8, arms)[1] for _ in range(16)] == ([False] * 7 + [True]) * 2  # all heard
    # an arm no model can take (every graph writes in place: no checkpoint) ends the small
    # batches after a bounded number of them
    stuck = Guide(4, SPECS)
    stuck.bandit.update({"harness": {"objects": 1.0}}, 0.0)
    rounds = BREADTH_ROUNDS * sum(len(a) for a in arms.values())
    cut = [stuck._next_group(8, arms)[1] for _ in range(2 * rounds + 16)]
    assert cut[:2 * rounds] == [False, True] * rounds
    assert cut[2 * rounds:] == ([False] * 7 + [True]) * 2
    # a campaign where no batch-level arm applies (XLA: no harness, no Inductor setting,
    # no layouts; forward only) keeps its size from the start
    assert batch_arms(("forward",), frameworks=("tensorflow",)) == {}
    plain = Guide(4, SPECS)
    assert [plain._next_group(8, {})[1] for _ in range(8)] == [False] * 7 + [True]


def test_a_guided_campaign_maker_marks_where_its_batches_end():
    gen = _generator()
    make = model_maker(gen, SPECS, 4, Guide(4, SPECS), checks=("forward", "backward"), batch=8)
    assert [make(i).ends_batch for i in range(4)] == [False, True, False, True]
    # without a guide the campaign fills its batches as always
    assert model_maker(gen, SPECS, 4, None, checks=("forward",), batch=8)(0).ends_batch is None


def test_a_batch_whose_plan_checks_dynamic_shapes_or_layouts_stays_small(monkeypatch):
    import fuzzer.guidance as guidance
    from fuzzer.guidance import BATCH_ARMS
    from fuzzer.models import Model

    real = guidance.make_model
    dynamic_groups = {1}  # the second batch's plans check dynamic shapes

    def make_model(generator, specs, seed, index, *args, group=None, **kw):
        model = real(generator, specs, seed, index, *args, group=group, **kw)
        if group in dynamic_groups or index == 21:
            model.case.plan.dynamic_dims = [0]
        return model

    monkeypatch.setattr(guidance, "make_model", make_model)
    gen = _generator()
    guide = Guide(4, SPECS)
    for cat, names in BATCH_ARMS.items():  # every arm heard: full batches
        for arm in names:
            guide.bandit.update({cat: {arm: 1.0}}, 0.0)
    make = model_maker(gen, SPECS, 4, guide, checks=("forward",), batch=8)
    models: list[Model] = [make(i) for i in range(8 + 2 + 8 + 4)]
    assert [m.ends_batch for m in models] == [False] * 7 + [True] + [False, True] + [False] * 7 + [True] \
        + [False] * 3 + [True]  # (model 21, the fourth of its batch, checks dynamic shapes: the batch ends)
