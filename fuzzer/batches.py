"""Batches: several generated cases compiled as one model, and what happens when one fails.

Inductor and XLA cost about a second per compile whatever the model's size, so a campaign
merges a few cases into one model (``corpus.batch``) and compiles that once. A batch can
hide things two ways, and both are followed here rather than assumed away:

* a batch that fails (a crash, a wrong output, a member the reference rejects, a member
  a backend declines) is split until every failure sits on a single case, the only
  level at which a bug is reported. A failure that no member shows alone is a
  *batch-only* failure: counted, never silently dropped (``Lineage``);
* a batch that passes may still hold a member that fails alone (merging changed how the
  compiler fused or laid it out). A seeded sample of passing batches is re-checked member
  by member, and what it finds is counted (``sample_passing``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from corpus.batch import merge_cases
from corpus.case import Case


@dataclass
class Lineage:
    """One batch followed through its splits: how many of its jobs are still out, and
    whether any member showed a failure alone."""

    sampled: bool = False  # a passing batch re-checked member by member (not a failure)
    pending: int = 0
    found: bool = False


@dataclass
class Job:
    """What a case sent to the sandbox stands for."""

    kind: str  # "batch" (merged members), "single" (one member), "probe" (mismatch localization)
    members: list[Case]
    indices: list[int]
    verdict: object = None  # the mismatch a probe localizes
    result: object = None  # the member's own CheckResult (probe jobs), for the report
    owner: list[int] | None = None  # batch jobs: merged output index -> member position
    lineage: Lineage | None = None  # the failed (or sampled) batch this job descends from


def as_job(members: list[Case], indices: list[int], lineage: Lineage | None = None) -> tuple[Case, Job]:
    if len(members) == 1:
        return members[0], Job("single", members, indices, lineage=lineage)
    batch = merge_cases(members)
    return batch.case, Job("batch", members, indices, owner=batch.owner, lineage=lineage)


def declined(result) -> bool:
    """A backend declined the case (``unsupported``): it tested nothing."""
    return result.valid and any(v.unsupported for v in result.verdicts)


def passed(result) -> bool:
    """Every backend ran the case and agreed with the reference."""
    return result.valid and not result.bugs and not declined(result)


def split_failed_batch(job: Job, result) -> list[tuple[Case, Job]]:
    """What to check next after batch ``job`` failed (or was declined).

    Wrong results name their output, and an output names its member: only those members
    are re-checked alone, the others go on together as one smaller batch (one compile,
    not one each). An exception, a member the reference rejects or one a backend declines
    names no member, but it is cheap: the batch stops at the first failure, before most of
    the compile. Such a batch is bisected, two halves that are split again while they
    fail, so that one bad member among eight costs three clean compiles instead of seven;
    the declined member ends alone and the others go on without it. An abort or a timeout
    is not cheap (a worker restart, the whole timeout), so each member of such a batch is
    re-checked alone: one more abort or timeout, not one per bisection level. Either way
    a bug is only ever reported on a single case. The new jobs keep (or start) the
    batch's ``Lineage``; the caller passes them to ``follow``.
    """
    if job.lineage is None:
        job.lineage = Lineage(pending=1)
    lineage = job.lineage
    bugs = list(result.bugs)
    if result.valid and bugs and not declined(result) and job.owner is not None and \
            all(v.status == "mismatch" and v.output is not None and v.output < len(job.owner) for v in bugs):
        suspects = sorted({job.owner[v.output] for v in bugs})
        rest = [k for k in range(len(job.members)) if k not in suspects]
        out = [as_job([job.members[k]], [job.indices[k]], lineage) for k in suspects]
        if rest:
            out.append(as_job([job.members[k] for k in rest], [job.indices[k] for k in rest], lineage))
        return out
    costly = any(v.status in ("abort", "timeout") for v in result.verdicts)
    if not costly and len(job.members) > 2:
        half = (len(job.members) + 1) // 2
        return [as_job(job.members[:half], job.indices[:half], lineage),
                as_job(job.members[half:], job.indices[half:], lineage)]
    return [as_job([m], [i], lineage) for m, i in zip(job.members, job.indices)]


def sample_passing(job: Job, seed: int, rate: float) -> list[tuple[Case, Job]] | None:
    """For a seeded share ``rate`` of passing batches, each member alone (a sampled
    lineage); None for the others. The draw depends on the batch's first case index
    only, so it is the same whatever order results arrive in."""
    if rate <= 0 or job.kind != "batch" or job.lineage is not None:
        return None
    if random.Random(f"{seed}/{job.indices[0]}/sample-batch").random() >= rate:
        return None
    job.lineage = Lineage(sampled=True, pending=1)
    return [as_job([m], [i], job.lineage) for m, i in zip(job.members, job.indices)]


def job_purpose(job: Job) -> str:
    """What a sandbox job was for, to share out the campaign's compiles: checking new
    cases ("check"), splitting a failed batch ("split"), re-checking a sampled passing
    batch member by member ("sample"), localizing a failure ("probe")."""
    if job.kind == "probe":
        return "probe"
    if job.lineage is None:
        return "check"
    return "sample" if job.lineage.sampled else "split"


@dataclass
class BatchFigures:
    """What batching hid or nearly hid, for ``campaign.json``'s ``batches``."""

    failed: int = 0  # batches that failed (or were declined) and were split
    batch_only: int = 0  # of those, failures no member showed alone
    sampled: int = 0  # passing batches re-checked member by member
    alone_only: int = 0  # members of sampled passing batches that failed alone

    def to_json(self) -> dict:
        return {"failed": self.failed, "batch_only": self.batch_only, "sampled": self.sampled,
                "alone_only": self.alone_only}

    @classmethod
    def from_json(cls, d: dict) -> "BatchFigures":
        return cls(int(d.get("failed", 0)), int(d.get("batch_only", 0)), int(d.get("sampled", 0)),
                   int(d.get("alone_only", 0)))


def follow(figures: BatchFigures, job: Job, new_jobs: int, failed_alone: bool) -> None:
    """Account for a finished job of a lineage: it handed on ``new_jobs`` jobs, and its
    single member ``failed_alone`` (a bug, or declined) or not. When nothing of a failed
    batch is out any more and no member failed alone, the failure was batch-only."""
    lineage = job.lineage
    if lineage is None:
        return
    lineage.pending += new_jobs - 1
    if failed_alone:
        if lineage.sampled:
            figures.alone_only += 1
        lineage.found = True
    if lineage.pending <= 0 and not lineage.found and not lineage.sampled:
        figures.batch_only += 1
