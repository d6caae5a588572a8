"""Batches hide nothing: a declined member is split off, a failure no member shows alone
is counted as batch-only, and a sample of passing batches is re-checked member by member."""

from __future__ import annotations

from fuzzer.batches import BatchFigures, Job, as_job, follow, job_purpose, passed, sample_passing, split_failed_batch
from oracles.verdict import CheckResult, Verdict
from tests.test_campaign import members, result

CRASH = Verdict("torch.compile", "crash", "compile", message="E")
DECLINED = Verdict("tf.xla", "crash", "compile", message="Detected unsupported operations", unsupported=True)


def run(job, outcome, figures: BatchFigures) -> list:
    """One step of the campaign's bookkeeping for ``job``: ``outcome(job)`` is its result."""
    res = outcome(job)
    if job.kind == "batch" and passed(res):
        follow(figures, job, 0, False)
        return []
    if job.kind == "batch":
        figures.failed += job.lineage is None
        nxt = split_failed_batch(job, res)
        follow(figures, job, len(nxt), False)
        return [j for _, j in nxt]
    follow(figures, job, 0, bool(res.bugs) or not passed(res))
    return []


def drain(job, outcome) -> BatchFigures:
    figures, queue = BatchFigures(), [job]
    while queue:
        queue += run(queue.pop(0), outcome, figures)
    return figures


def test_a_declined_member_does_not_make_its_batch_pass_and_ends_alone():
    cases, indices = members(4)
    _, job = as_job(cases, indices)
    declined = result(DECLINED)
    assert not passed(declined) and declined.bugs == []  # no bug, but nothing was tested either
    singles = []

    def outcome(j):
        if j.kind == "single":
            singles.append(j.indices[0])
        return declined if 102 in j.indices else result()

    figures = drain(job, outcome)
    assert singles == [102, 103]  # the declined member ends alone; the other half went on as a batch
    assert figures.failed == 1 and figures.batch_only == 0


def test_a_failure_no_member_shows_alone_is_counted_as_batch_only():
    cases, indices = members(5)
    _, job = as_job(cases, indices)
    figures = drain(job, lambda j: result(CRASH) if j.kind == "batch" and len(j.members) == 5 else result())
    assert figures.failed == 1 and figures.batch_only == 1


def test_a_failure_a_member_shows_alone_is_not_batch_only():
    cases, indices = members(5)
    _, job = as_job(cases, indices)
    figures = drain(job, lambda j: result(CRASH) if 103 in j.indices else result())
    assert figures.failed == 1 and figures.batch_only == 0


def test_a_seeded_share_of_passing_batches_is_rechecked_member_by_member():
    picked = []
    for first in range(0, 800, 8):
        cases, _ = members(2)
        _, job = as_job(cases, [first, first + 1])
        if sample_passing(job, seed=3, rate=0.1):
            picked.append(first)
    assert 3 <= len(picked) <= 20  # about one in ten
    again = [f for f in range(0, 800, 8) if sample_passing(as_job(members(2)[0], [f, f + 1])[1], 3, 0.1)]
    assert again == picked  # the same batches, whatever the order results arrive in

    cases, indices = members(3)
    _, job = as_job(cases, indices)
    singles = sample_passing(job, seed=3, rate=1.0)
    assert [j.indices for _, j in singles] == [[i] for i in indices]
    figures = BatchFigures()
    for _, single in singles:  # one member fails alone although its batch passed
        follow(figures, single, 0, single.indices[0] == indices[1])
    assert figures.alone_only == 1 and figures.batch_only == 0


def test_each_job_names_what_its_compiles_were_for():
    cases, indices = members(4)
    _, fresh = as_job(cases, indices)
    assert job_purpose(fresh) == "check"
    split = split_failed_batch(fresh, result(CRASH))
    assert {job_purpose(j) for _, j in split} == {"split"}
    _, passing = as_job(cases, indices)
    assert {job_purpose(j) for _, j in sample_passing(passing, seed=3, rate=1.0)} == {"sample"}
    assert job_purpose(Job("probe", cases[:1], indices[:1])) == "probe"


def test_batch_figures_survive_campaign_json():
    f = BatchFigures(failed=3, batch_only=1, sampled=2, alone_only=1)
    assert BatchFigures.from_json(f.to_json()) == f
    assert CheckResult.from_json(CheckResult(True, "", (), {"near discontinuity": 3}).to_json()).excused == \
        {"near discontinuity": 3}


def test_a_campaign_counts_a_failure_only_batches_show_and_reports_no_bug(tmp_path):
    from fuzzer.campaign import CampaignConfig, run_campaign

    cfg = CampaignConfig(["torch.eager", "torch.compile:tests.planted_backends:crashes_on_big_graphs"], tmp_path,
                         time_s=600, seed=5, max_nodes=8, max_cases=16, batch=8, reduce_s=0, ops=("spec",))
    state = run_campaign(cfg)
    assert state.bugs == 0 and not list((tmp_path / "bugs").glob("*/bug.json"))
    assert state.batches.failed >= 1 and state.batches.batch_only == state.batches.failed
    assert state.valid == state.cases == 16  # every member was judged alone and passed
