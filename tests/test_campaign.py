"""Campaigns: what a failed batch turns into; planted faults, kill -9 and resume, replay, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzzer.batches import as_job, split_failed_batch
from fuzzer.campaign import CampaignState
from fuzzer.generate import GenConfig, Generator
from fuzzer.models import make_case
from oracles.verdict import CheckResult, Verdict
from rules.specs import specs_for


def members(n: int):
    gen = Generator("torch", specs_for("torch"), GenConfig(max_nodes=3))
    return [make_case(gen, 1, i) for i in range(n)], list(range(100, 100 + n))


def result(*bugs: Verdict, valid: bool = True) -> CheckResult:
    ok = Verdict("torch.eager", "ok")
    return CheckResult(valid, verdicts=(ok, *bugs))


def test_a_wrong_output_sends_its_member_alone_and_the_rest_on_as_one_batch():
    cases, indices = members(5)
    _, job = as_job(cases, indices)
    third = job.owner.index(2)  # the first output of member 2
    nxt = split_failed_batch(job, result(Verdict("torch.compile", "mismatch", "run", output=third)))
    assert [(j.kind, j.indices) for _, j in nxt] == [("single", [102]), ("batch", [100, 101, 103, 104])]


def test_a_crash_names_no_member_so_the_batch_is_bisected_down_to_singles():
    cases, indices = members(5)
    _, job = as_job(cases, indices)
    crash = result(Verdict("torch.compile", "crash", "compile", message="E"))
    nxt = split_failed_batch(job, crash)
    assert [(j.kind, j.indices) for _, j in nxt] == [("batch", [100, 101, 102]), ("batch", [103, 104])]
    again = split_failed_batch(nxt[0][1], crash)
    assert [(j.kind, j.indices) for _, j in again] == [("batch", [100, 101]), ("single", [102])]
    assert [(j.kind, j.indices) for _, j in split_failed_batch(again[0][1], crash)] == \
        [("single", [100]), ("single", [101])]


def test_a_batch_the_reference_rejects_is_bisected_too():
    cases, indices = members(4)
    _, job = as_job(cases, indices)
    invalid = CheckResult(False, "reference torch.eager raised at run", (Verdict("torch.eager", "crash", "run"),))
    assert [(j.kind, j.indices) for _, j in split_failed_batch(job, invalid)] == \
        [("batch", [100, 101]), ("batch", [102, 103])]


@pytest.mark.parametrize("status", ["abort", "timeout"])
def test_an_abort_or_a_hang_sends_each_member_alone_rather_than_repeating_it_per_level(status):
    cases, indices = members(4)
    _, job = as_job(cases, indices)
    nxt = split_failed_batch(job, result(Verdict("torch.compile", status, "compile", message="E")))
    assert [(j.kind, j.indices) for _, j in nxt] == [("single", [i]) for i in indices]


def test_mismatches_in_two_members_leave_a_single_rest():
    cases, indices = members(3)
    _, job = as_job(cases, indices)
    a, b = job.owner.index(0), job.owner.index(2)
    nxt = split_failed_batch(job, result(Verdict("torch.compile", "mismatch", "run", output=a),
                                         Verdict("torch.jit", "mismatch", "run", output=b)))
    assert [(j.kind, j.indices) for _, j in nxt] == [("single", [100]), ("single", [102]), ("single", [101])]


def test_the_case_rate_leaves_out_the_time_spent_reducing_and_survives_a_reload(tmp_path):
    state = CampaignState(["torch.eager", "torch.compile"], 1, 10, cases=120, seconds=180.0, reduce_seconds=60.0)
    assert state.to_json()["cases_per_minute"] == 60.0
    (tmp_path / "campaign.json").write_text(json.dumps(state.to_json()))
    assert CampaignState.load(tmp_path / "campaign.json").reduce_seconds == 60.0


# ---- end to end: planted faults, kill -9 and resume, replay, repro.py ------------------------

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "torch.compile:tests.planted_backends:"
FAULTS = {PLANTED + "raises_on_exp": "crash", PLANTED + "aborts_on_sin": "abort", PLANTED + "hangs_on_tanh": "timeout"}


def bug_folders(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (out / "bugs").glob("*/bug.json")}


@pytest.mark.slow
def test_one_campaign_finds_a_crash_an_abort_and_a_hang_and_reports_each_once(tmp_path):
    from fuzzer.campaign import CampaignConfig, run_campaign

    backends = ["torch.eager", *FAULTS]
    # seed 37: of the first 16 models, two have exp, two sin and two tanh
    cfg = CampaignConfig(backends, tmp_path, time_s=600, seed=37, max_nodes=10, max_cases=16, timeout_s=5,
                         reduce_s=0, ops=("spec",), checks=("forward",))
    state = run_campaign(cfg)
    found = {(b["backends"][-1], b["kind"]) for b in bug_folders(tmp_path).values()}
    assert found == set(FAULTS.items())
    assert state.bugs == 3 and state.sightings > 3  # each fault seen in several cases, reported once
    assert state.bugs_by_kind == {"crash": 1, "abort": 1, "timeout": 1}


def fuzz_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fuzzer", "fuzz", "--backends", "torch.eager," + PLANTED + "wrong_add",
            "--seed", "4", "--max-nodes", "6", "--ops", "spec", "--reduce-time", "0", "--out", str(out), *extra]


def test_a_campaign_killed_with_sigkill_resumes_where_it_stopped_and_keeps_its_bugs(tmp_path):
    out = tmp_path / "c"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(fuzz_cmd(out, "--time", "10m"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # until the planted bug is on disk and a few more cases are done
            state = json.loads((out / "campaign.json").read_text()) if (out / "campaign.json").exists() else {}
            if state.get("bugs", 0) >= 1 and state.get("cases", 0) >= 12:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the campaign found nothing within 240 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the campaign and its sandbox workers, without warning
        proc.wait()
    before = json.loads((out / "campaign.json").read_text())
    bugs_before = bug_folders(out)
    assert before["bugs"] == len(bugs_before) >= 1
    for name in bugs_before:
        for f in ("case.json", "program.py", "repro.py", "report.md"):
            assert (out / "bugs" / name / f).stat().st_size > 0

    done = subprocess.run(fuzz_cmd(out, "--time", "10m", "--max-cases", "4", "--json"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after["cases"] >= before["cases"] + 4 and after["seconds"] > before["seconds"]
    assert after["bugs"] >= before["bugs"] and set(bug_folders(out)) >= set(bugs_before)
    state = json.loads((out / "campaign.json").read_text())
    assert state["next_index"] >= before["next_index"] + 4

    mismatched = subprocess.run(fuzz_cmd(out, "--time", "1m") + ["--seed", "5"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
    assert mismatched.returncode == 2 and "resume it with the same options" in mismatched.stderr
    assert len(mismatched.stderr.strip().splitlines()) == 1


def test_replay_and_repro_say_whether_a_bug_is_still_there(tmp_path):
    from tests.test_reduce import campaign

    campaign(tmp_path, reduce_s=0)
    [folder] = (tmp_path / "bugs").iterdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    replay = subprocess.run([sys.executable, "-m", "fuzzer", "replay", str(folder)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 1 and "STILL FAILS" in replay.stdout
    repro = subprocess.run([sys.executable, str(folder / "repro.py")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert repro.returncode == 1, repro.stdout + repro.stderr
