"""dlfuzz merge: campaign folders of separate machines or nights become one (DESIGN §9).

Two real campaigns with a planted bug (seed 4 finds ``wrong_add``: one reduced, one not),
one of them given a second bug through the project's own writers; then the merge, its
figures, its bug folders, the report of the result, and the refusals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from corpus.case import Case, write_atomic
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from fuzzer.campaign import CampaignState
from fuzzer.cli import main
from oracles.verdict import Verdict
from reports.bugs import BugStore
from reports.merge import Source, merge_figures
from rules.specs import SPECS

WRONG_ADD = ["torch.eager", "torch.compile:tests.planted_backends:wrong_add"]
CRASH = Verdict(WRONG_ADD[1], "crash", "compile", "RuntimeError: planted: sin is not supported")


def chain(*ops: str) -> Case:
    t = TensorType((3,), "float32")
    g = Graph()
    v = g.add_leaf(t)
    for op in ops:
        v = g.add_op(op, {}, [v], [t])[0]
    g.outputs = [v]
    return Case(g, "torch", {0: ValueSpec(1, 0.1, 1.0)})


def bugs_of(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (root / "bugs").glob("*/bug.json")}


def state_of(root: Path) -> dict:
    return json.loads((root / "campaign.json").read_text())


def edit_state(root: Path, change) -> None:
    state = CampaignState.load(root / "campaign.json")
    change(state)
    write_atomic(root / "campaign.json", json.dumps(state.to_json(), indent=1))


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory) -> tuple[Path, Path]:
    """A: seed 4, 12 cases, its bug reduced; B: seed 4, 14 cases (A's and two more),
    unreduced, plus a crash only B saw (recorded by BugStore, counted in its
    campaign.json) and a few skip and excuse counts."""
    from fuzzer.campaign import CampaignConfig, run_campaign

    root = tmp_path_factory.mktemp("merge")
    a, b = root / "night1", root / "night2"
    run_campaign(CampaignConfig(WRONG_ADD, a, time_s=600, seed=4, max_nodes=6, max_cases=12, ops=("spec",),
                                reduce_s=30))
    run_campaign(CampaignConfig(WRONG_ADD, b, time_s=600, seed=4, max_nodes=6, max_cases=14, ops=("spec",),
                                reduce_s=0))
    # the same seed: the same wrong addition (it needs an addition of more than one element)
    assert len(bugs_of(a)) == 1 and set(bugs_of(a)) == set(bugs_of(b)), (list(bugs_of(a)), list(bugs_of(b)))
    BugStore(b, SPECS, WRONG_ADD[0]).record(chain("core.Exp", "core.Sin"), CRASH, (0, 0), 3, verdicts=[CRASH])

    def more(state: CampaignState) -> None:
        state.bugs += 1
        state.bugs_by_kind["crash"] = 1
        state.sightings += 1
        state.skip("reference raised", 2)
        state.excused["near-tie index"] = state.excused.get("near-tie index", 0) + 3
        state.batches.failed += 1

    edit_state(b, more)
    edit_state(a, lambda s: s.skip("reference raised", 1))
    return a, b


@pytest.fixture(scope="module")
def merged(campaigns, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "out"
    assert main(["merge", str(out), *map(str, campaigns)]) == 0
    return out


def test_counts_add_up_and_the_rest_is_recomputed(campaigns, merged):
    a, b = map(state_of, campaigns)
    m = state_of(merged)
    for key in ("cases", "valid", "sightings", "ignored", "parked"):
        assert m[key] == a[key] + b[key], key
    assert m["seconds"] == pytest.approx(a["seconds"] + b["seconds"], abs=0.02)
    for key in ("skipped", "excused", "values_modes", "ops", "batches"):
        want = {k: a[key].get(k, 0) + b[key].get(k, 0) for k in {**a[key], **b[key]}}
        assert m[key] == want, key
    assert m["skipped"]["reference raised"] == 3 and m["excused"]["near-tie index"] == 3
    if "checks" in a:  # per check kind: counts summed, distinct bugs recounted (the shared one once)
        assert {k: v for k, v in m["checks"].items() if not k.startswith("bugs: ")} == \
            {k: a["checks"].get(k, 0) + b["checks"].get(k, 0) for k in {**a["checks"], **b["checks"]}
             if not k.startswith("bugs: ")}
        assert m["checks"]["bugs: forward"] == 2
    assert m["bugs"] == 2 and m["bugs_by_kind"] == {"crash": 1, "mismatch": 1}
    assert m["distinct_ops"] == len(m["ops"]) and m["valid_share"] == round(m["valid"] / m["cases"], 4)
    assert m["backends"] == WRONG_ADD and m["seed"] == 4 and m["next_index"] == 14 and m["timeline"] == []
    # timelines kept apart, one per input
    assert [(e["label"], e["cases"], e["timeline"]) for e in m["merged_from"]] == \
        [(p.name, s["cases"], s["timeline"]) for p, s in zip(campaigns, (a, b))]
    # the campaign's own loader reads it, and keeps merged_from when a resume rewrites it
    state = CampaignState.load(merged / "campaign.json")
    assert state.cases == m["cases"] and state.to_json()["merged_from"] == m["merged_from"]
    assert not list(merged.parent.glob(".out.merge-*"))  # built beside OUT, renamed into place


def test_a_bug_seen_in_both_is_one_folder_with_summed_sightings_and_both_origins(campaigns, merged):
    a, b = campaigns
    [name] = bugs_of(a)
    bug, in_a, in_b = bugs_of(merged)[name], bugs_of(a)[name], bugs_of(b)[name]
    assert bug["count"] == in_a["count"] + in_b["count"]
    assert [(o["campaign"], o["folder"], o["count"]) for o in bug["origins"]] == \
        [(str(a.resolve()), name, in_a["count"]), (str(b.resolve()), name, in_b["count"])]
    # the smallest case is the representative: A's, reduced to one addition
    assert bug["origins"][0]["representative"] and bug["origins"][0]["reduced"]
    assert bug["operators_after"] == 1 and bug["origins"][0]["operator_nodes"] == 1
    folder = merged / "bugs" / name
    assert (folder / "case.json").read_text() == (a / "bugs" / name / "case.json").read_text()
    assert (folder / bug["origins"][1]["copy"] / "case.json").read_text() == (b / "bugs" / name / "case.json").read_text()
    assert f"dlfuzz replay {merged / 'bugs' / name}   #" in (folder / "report.md").read_text()


def test_a_bug_seen_in_one_stays_as_it_was(campaigns, merged):
    a, b = campaigns
    [name] = set(bugs_of(b)) - set(bugs_of(a))
    bug, before = bugs_of(merged)[name], bugs_of(b)[name]
    assert bug["count"] == 1 and bug["kind"] == "crash"
    assert [o["campaign"] for o in bug["origins"]] == [str(b.resolve())]
    assert {k: v for k, v in bug.items() if k != "origins"} == before
    assert not (merged / "bugs" / name / "origins").exists()


def test_report_renders_the_merged_campaign(campaigns, merged):
    assert main(["report", str(merged)]) == 0
    md = (merged / "summary.md").read_text()
    assert "## Bugs (2)" in md and "| cases | 26 (" in md
    assert "| merged from | night1 (seed 4, max nodes 6): 12 cases" in md and "night2 (seed 4, max nodes 6): 14 cases" in md
    assert "### night1" in md and "### night2" in md and "| seed, max nodes |" not in md  # one seed each, above
    html = (merged / "summary.html").read_text()
    assert "cases (night1)" in html and "cases (night2)" in html


def test_a_merged_folder_merges_again_flattened_and_never_counts_a_campaign_twice(campaigns, merged, tmp_path,
                                                                                     capsys):
    a, b = campaigns
    c = tmp_path / "night3"
    shutil.copytree(a, c)  # another run that found the same (a copy, in its own folder)
    out = tmp_path / "all"
    assert main(["merge", str(out), str(merged), str(c), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["campaigns"] == 3 and figures["bugs"] == 2 and figures["shared_bugs"] == 1
    m = state_of(out)
    assert m["cases"] == state_of(merged)["cases"] + state_of(c)["cases"]
    assert [e["label"] for e in m["merged_from"]] == ["night1", "night2", "night3"]
    [name] = bugs_of(a)
    bug = bugs_of(out)[name]
    assert bug["count"] == bugs_of(merged)[name]["count"] + bugs_of(c)[name]["count"]
    assert [Path(o["campaign"]).name for o in bug["origins"]] == ["night1", "night2", "night3"]
    for o in bug["origins"][1:]:  # each non-representative case is kept where its origin says
        assert (out / "bugs" / name / o["copy"] / "case.json").is_file()

    assert main(["merge", str(tmp_path / "again"), str(merged), str(a)]) == 2
    line = one_error_line(capsys)
    assert "both hold the campaign" in line and str(a.resolve()) in line and not (tmp_path / "again").exists()


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("dlfuzz merge: error: ")
    return lines[0]


@pytest.mark.parametrize("bad", ["missing", "no_state", "corrupt_state", "other_backends", "twice", "out_not_empty",
                                 "out_is_a_file"])
def test_each_bad_input_is_one_line_and_exit_2(campaigns, tmp_path, capsys, bad):
    a, b = campaigns
    out, dirs = tmp_path / "out", [str(a), str(b)]
    expect: list[str] = []
    if bad == "missing":
        dirs.append(str(tmp_path / "nowhere"))
        expect = [str(tmp_path / "nowhere"), "not a dlfuzz campaign folder"]
    elif bad == "no_state":
        (tmp_path / "plain").mkdir()
        dirs.append(str(tmp_path / "plain"))
        expect = ["not a dlfuzz campaign folder (no campaign.json)"]
    elif bad == "corrupt_state":
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "campaign.json").write_text('{"cases": ')
        dirs.append(str(tmp_path / "broken"))
        expect = ["broken is not a dlfuzz campaign folder", "not a readable campaign state"]
    elif bad == "other_backends":
        other = tmp_path / "jit"
        shutil.copytree(b, other)
        edit_state(other, lambda s: setattr(s, "backends", ["torch.eager", "torch.jit"]))
        dirs.append(str(other))
        expect = [f"{a} used backends {','.join(WRONG_ADD)} but {other} used torch.eager,torch.jit"]
    elif bad == "twice":
        dirs.append(str(a) + "/")
        expect = ["is given twice"]
    elif bad == "out_not_empty":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        expect = [f"{out} is a folder that is not empty"]
    else:
        out.write_text("")
        expect = [f"{out} is a file"]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["merge", str(out), *dirs]) == 2
    line = one_error_line(capsys)
    for part in expect:
        assert part in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no temporary folder left


def test_an_empty_out_folder_is_filled(campaigns, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["merge", str(out), str(campaigns[0])]) == 0
    assert state_of(out)["cases"] == state_of(campaigns[0])["cases"] and len(bugs_of(out)) == 1


# ---- failures pinned by reduction (reports.pinning), without a campaign run ----------------------

ABORT = Verdict(WRONG_ADD[1], "abort", "compile", "killed by signal SIGABRT")


def pinned_campaign(root: Path, ops: list[str], count: int) -> Path:
    """A campaign folder whose one bug is an abort its reduction pinned on ``ops``."""
    from reports.bugs import signature_of

    case = chain("core.Exp", *ops)
    sig = signature_of(case, ABORT)
    store = BugStore(root, SPECS, WRONG_ADD[0])
    store.record(case, ABORT, (0, 0), 0, signature=sig, extra={"base_signature": sig.digest})
    path = store.root / sig.folder_name / "bug.json"
    bug = json.loads(path.read_text())
    bug.update(reduce_seconds=1.0, operators_reduced=ops, count=count)
    path.write_text(json.dumps(bug))
    state = CampaignState(list(WRONG_ADD), 1, 5, 3, cases=3, valid=3, bugs=1, sightings=count,
                          bugs_by_kind={"abort": 1})
    write_atomic(root / "campaign.json", json.dumps(state.to_json()))
    return root


def test_pinned_failures_merge_by_their_pinned_operators_not_their_folder_name(tmp_path):
    sin1 = pinned_campaign(tmp_path / "sin1", ["core.Sin"], 2)
    sin2 = pinned_campaign(tmp_path / "sin2", ["core.Sin"], 3)
    cos = pinned_campaign(tmp_path / "cos", ["core.Cos"], 1)
    assert main(["merge", str(tmp_path / "out"), str(sin1), str(sin2), str(cos)]) == 0
    bugs = bugs_of(tmp_path / "out")
    by_ops = {tuple(b["operators_reduced"]): (name, b) for name, b in bugs.items()}
    assert set(by_ops) == {("core.Sin",), ("core.Cos",)}
    assert by_ops[("core.Sin",)][1]["count"] == 5 and by_ops[("core.Cos",)][1]["count"] == 1
    assert len({name for name, _ in by_ops.values()}) == 2  # the second member is signed with its operators
    assert state_of(tmp_path / "out")["bugs_by_kind"] == {"abort": 2}


def test_merge_figures_sums_counters_it_does_not_know():
    s1 = Source(Path("x"), {"backends": ["a"], "seed": 1, "max_nodes": 5, "next_index": 3, "cases": 3, "valid": 2,
                            "seconds": 60.0, "new_counter": 4, "new_by_reason": {"r": 1}, "note": "same"})
    s2 = Source(Path("y"), {"backends": ["a"], "seed": 2, "max_nodes": 5, "next_index": 9, "cases": 5, "valid": 5,
                            "seconds": 60.0, "new_by_reason": {"r": 2, "s": 1}, "note": "same", "flag": True})
    m = merge_figures([s1, s2])
    assert m["new_counter"] == 4 and m["new_by_reason"] == {"r": 3, "s": 1} and m["note"] == "same"
    assert m["flag"] is True and m["cases"] == 8 and m["valid_share"] == 0.875 and m["cases_per_minute"] == 4.0
    assert m["seed"] == 1 and m["next_index"] == 3  # the first input's seed, and its next case
