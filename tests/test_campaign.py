"""Campaign bookkeeping: what a failed batch turns into."""

from __future__ import annotations

from fuzzer.campaign import _as_job, split_failed_batch
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
    _, job = _as_job(cases, indices)
    third = job.owner.index(2)  # the first output of member 2
    nxt = split_failed_batch(job, result(Verdict("torch.compile", "mismatch", "run", output=third)))
    assert [(j.kind, j.indices) for _, j in nxt] == [("single", [102]), ("batch", [100, 101, 103, 104])]


def test_a_crash_names_no_member_so_each_is_rechecked_alone():
    cases, indices = members(3)
    _, job = _as_job(cases, indices)
    nxt = split_failed_batch(job, result(Verdict("torch.compile", "crash", "compile", message="E")))
    assert [(j.kind, j.indices) for _, j in nxt] == [("single", [100]), ("single", [101]), ("single", [102])]


def test_mismatches_in_two_members_leave_a_single_rest():
    cases, indices = members(3)
    _, job = _as_job(cases, indices)
    a, b = job.owner.index(0), job.owner.index(2)
    nxt = split_failed_batch(job, result(Verdict("torch.compile", "mismatch", "run", output=a),
                                         Verdict("torch.jit", "mismatch", "run", output=b)))
    assert [(j.kind, j.indices) for _, j in nxt] == [("single", [100]), ("single", [102]), ("single", [101])]
