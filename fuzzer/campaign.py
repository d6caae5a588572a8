"""The campaign loop (DESIGN §2, §7): generate, check in the sandbox, record, repeat.

Everything a campaign finds is on disk the moment it is found: each new bug's folder is
written at once (``reports.bugs``), and ``campaign.json`` (the counts and the index of
the next case) is rewritten atomically after every case. A campaign killed at any point
resumes from ``campaign.json`` with the same ``--out``: counts continue, no case index
is checked twice, nothing found is lost.

Generation and value search run in this process (eager runs of our own generated
models), a few models ahead in a background thread (``fuzzer.prefetch``); every backend
under test runs in the sandbox's worker processes, on this machine or (``--cluster
ray``) in Ray actors over a cluster's nodes (``fuzzer.cluster``). Generation stays here
in either case: case ``i`` comes from its own stream seeded by ``(seed, i)``, so a seed
means the same cases whatever the number of workers, actors or nodes.

After the loop, each new bug is reduced in place (``reports.reduce``, ``--reduce-time``
seconds each; see ``_reduce_bugs``); known bugs (``--ignore``) are only counted.
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

from corpus.case import Case, write_atomic
from corpus.plan import CHECK_KINDS
from fuzzer.args import SAMPLE_BATCHES
from fuzzer.batches import BatchFigures, Job, as_job, declined, follow, job_purpose, passed, sample_passing, \
    split_failed_batch
from fuzzer.generate import GenConfig, Generator, common_dtype_specs
from fuzzer.guidance import model_maker
from fuzzer.generation_guard import CRASHED, guarded, recover
from fuzzer.prefetch import Prefetcher
from oracles.backends import frameworks_of, takes_options
from oracles.harness import applies as harness_applies
from reports.bugs import BugStore, signature_of
from reports.known import KnownIssues
from reports.localize import localize_from_probe, needs_probe, probe_case
from reports.pinning import Pinning, needs_pin
from rules.registry import operator_specs
from rules.specs import SPECS

STATE_VERSION = 1


class CampaignError(Exception):
    """A campaign that cannot start (bad --out, mismatched resume); one line for the user."""


class CampaignStopped(CampaignError):
    """A campaign that cannot test (workers die at start-up, the reference rejects most
    cases): stopped early with one line for the user; ``campaign.json`` says why."""


# A campaign judges its own health on its first cases: fewer than half of them valid
# means it tests next to nothing (a broken worker, a reference that rejects the
# generated models), and it stops rather than report a clean run. A shorter campaign
# is judged at its end, once it has at least MIN_JUDGED_CASES.
EARLY_CASES = 50
MIN_JUDGED_CASES = 8
MIN_VALID_SHARE = 0.5


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise ValueError(f"expected a duration like 90s, 10m or 2h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def campaign_framework(backends: list[str]) -> tuple[str, bool]:
    """(the framework cases are generated for, whether ops must exist in both)."""
    fws = {"tensorflow" if b.startswith("tf.") else "torch" for b in backends}
    if len(fws) == 1:
        return fws.pop(), False
    return "torch", True


@dataclass
class CampaignState:
    backends: list[str]
    seed: int
    max_nodes: int
    next_index: int = 0
    cases: int = 0  # models generated
    valid: int = 0  # models the reference ran cleanly
    bugs: int = 0  # distinct bugs
    sightings: int = 0  # failing verdicts, duplicates included
    bugs_by_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    ops: dict[str, int] = field(default_factory=dict)  # operator -> valid cases using it
    timeline: list[list[float]] = field(default_factory=list)  # [seconds, cases, distinct bugs]
    ignored: int = 0  # sightings of known bugs (--ignore), not recorded
    reduce_seconds: float = 0.0  # of ``seconds``, spent reducing new bugs after the loop
    skipped: dict[str, int] = field(default_factory=dict)  # cases not judged, by reason
    excused: dict[str, int] = field(default_factory=dict)  # output elements not judged, by reason
    batches: BatchFigures = field(default_factory=BatchFigures)  # what batching hid (fuzzer.batches)
    stopped: str = ""  # why the campaign stopped early ("" when it ran its budget)
    parked: int = 0  # failures naming no operator, waiting for reduction to pin them (reports.pinning)
    values_modes: dict[str, int] = field(default_factory=dict)  # valid cases by value mode (fuzzer.values)
    # per check kind (corpus.plan): "cases: KIND" (valid cases whose plan has it), "bugs:
    # KIND" (distinct bugs it found), "calls: KIND", "compiles", "declined: WHY",
    # "dynamic: unexpected recompile" (oracles.verdict.CheckResult.checks); "compiles by
    # job: PURPOSE" (every job's compiles, failed ones and ATen localization included)
    checks: dict[str, int] = field(default_factory=dict, kw_only=True)
    # dlfuzz merge: each merged campaign's figures and timeline (reports.merge); kept on resume
    merged_from: list[dict] = field(default_factory=list, kw_only=True)
    # --coverage: the compilers' line and branch coverage and its timeline (fuzzer.coverage_feedback)
    coverage: dict = field(default_factory=dict, kw_only=True)
    # where the checks ran (this run's): {"kind": "local", "workers": W} or RaySandbox.describe()
    cluster: dict = field(default_factory=dict, kw_only=True)
    # models whose generation killed the campaign's process: skipped on resume (fuzzer.generation_guard)
    crashed_generation: list[int] = field(default_factory=list, kw_only=True)
    # for the campaign screen (fuzzer.screen), not saved: the last new bug in one line, live workers
    last_bug: str = field(default="", kw_only=True)
    workers_alive: int = field(default=0, kw_only=True)

    @property
    def valid_share(self) -> float:
        return self.valid / self.cases if self.cases else 1.0

    def skip(self, reason: str, n: int = 1) -> None:
        add_counts(self.skipped, {reason: n})

    @property
    def cases_per_minute(self) -> float:
        """The rate of checking, not of reducing: reduction time is left out."""
        minutes = (self.seconds - self.reduce_seconds) / 60
        return self.cases / minutes if minutes > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "version": STATE_VERSION, "backends": self.backends, "seed": self.seed, "max_nodes": self.max_nodes,
            "next_index": self.next_index, "cases": self.cases, "valid": self.valid, "bugs": self.bugs,
            "sightings": self.sightings, "bugs_by_kind": self.bugs_by_kind, "seconds": round(self.seconds, 2),
            "cases_per_minute": round(self.cases_per_minute, 2),
            "distinct_ops": len(self.ops), "ops": dict(sorted(self.ops.items())), "timeline": self.timeline,
            "ignored": self.ignored, "reduce_seconds": round(self.reduce_seconds, 2),
            "valid_share": round(self.valid_share, 4), "skipped": dict(sorted(self.skipped.items())),
            "excused": dict(sorted(self.excused.items())), "batches": self.batches.to_json(), "stopped": self.stopped,
            "parked": self.parked, "values_modes": dict(sorted(self.values_modes.items())),
            "checks": dict(sorted(self.checks.items())),
            **({"merged_from": self.merged_from} if self.merged_from else {}),
            **({"coverage": self.coverage} if self.coverage else {}),
            **({"cluster": self.cluster} if self.cluster else {}),
            **({"crashed_generation": self.crashed_generation} if self.crashed_generation else {}),
        }

    @classmethod
    def load(cls, path: Path) -> "CampaignState":
        try:
            d = json.loads(path.read_text())
            state = cls(list(d["backends"]), int(d["seed"]), int(d["max_nodes"]), int(d["next_index"]), int(d["cases"]),
                       int(d["valid"]), int(d["bugs"]), int(d.get("sightings", 0)), dict(d["bugs_by_kind"]),
                       float(d["seconds"]), dict(d.get("ops", {})), list(d.get("timeline", [])), int(d.get("ignored", 0)),
                       float(d.get("reduce_seconds", 0.0)), {str(k): int(v) for k, v in d.get("skipped", {}).items()},
                       {str(k): int(v) for k, v in d.get("excused", {}).items()},
                       BatchFigures.from_json(d.get("batches") or {}), str(d.get("stopped", "")),
                       int(d.get("parked", 0)), {str(k): int(v) for k, v in d.get("values_modes", {}).items()})
            state.merged_from = [dict(e) for e in d.get("merged_from") or []]
            state.checks = {str(k): int(v) for k, v in (d.get("checks") or {}).items()}
            state.coverage = dict(d.get("coverage") or {})
            state.cluster = dict(d.get("cluster") or {})
            state.crashed_generation = [int(i) for i in d.get("crashed_generation") or []]
            return state
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CampaignError(f"{path} is not a readable dlfuzz campaign state ({type(e).__name__}: {e}); "
                                f"move it away or choose another --out") from None


@dataclass
class CampaignConfig:
    backends: list[str]
    out: Path
    time_s: float
    seed: int = 0
    workers: int = 1
    max_nodes: int = 10
    timeout_s: float = 60.0
    max_cases: int | None = None  # stop after this many cases (tests, benchmarks)
    batch: int = 1  # cases merged into one compiled model (see corpus/batch.py)
    reduce_s: float = 60.0  # reduction budget per new bug (0: no reduction), see _reduce_bugs
    ignore: KnownIssues | None = None  # known bugs: counted in ``ignored``, no folder
    ops: tuple[str, ...] = ("spec", "inferred", "concrete")  # operator kinds the generator draws from (rules.registry.OP_KINDS)
    sample_batches: float = SAMPLE_BATCHES  # share of passing batches re-checked member by member (fuzzer.batches)
    checks: tuple[str, ...] = CHECK_KINDS  # what a case's plan may check (corpus.plan, fuzzer.plan)
    coverage: tuple[str, ...] = ()  # source folders whose coverage the workers measure (empty: none)
    guide: bool = True  # with coverage: steer generation by it (fuzzer.guidance)
    cluster: str = "local"  # where workers run: local, ray, ray:ADDRESS (fuzzer.args.parse_cluster, fuzzer.cluster)


def plan_counts(result) -> dict[str, int]:
    """What a checked case (or batch) adds to ``CampaignState.checks``: its calls,
    compiles and declined calls (cases and bugs per kind are counted per member)."""
    return {k: v for k, v in result.checks.items() if not k.startswith(("case: ", "bugs: "))}


def default_batch(backends: list[str]) -> int:
    """Batch where a compiler's per-model cost dominates: Inductor (g++) and XLA."""
    expensive = any(b == "torch.compile" or b == "torch.compile:inductor" or b == "tf.xla" for b in backends[1:])
    return 8 if expensive else 1


def _open_state(cfg: CampaignConfig) -> CampaignState:
    path = cfg.out / "campaign.json"
    if not path.exists():
        return CampaignState(list(cfg.backends), cfg.seed, cfg.max_nodes)
    state = CampaignState.load(path)
    if state.backends != list(cfg.backends) or state.seed != cfg.seed or state.max_nodes != cfg.max_nodes:
        raise CampaignError(
            f"{cfg.out} holds a campaign with backends {','.join(state.backends)}, seed {state.seed}, max-nodes "
            f"{state.max_nodes}; resume it with the same options or choose another --out")
    return state


def run_campaign(cfg: CampaignConfig, progress: Callable[[CampaignState], None] | None = None) -> CampaignState:
    """Generate and check cases until the time budget (or ``max_cases``) is spent.

    Work flows through one queue into the sandbox's workers: fresh batches of generated
    cases; the members of a batch that did not pass cleanly, re-checked one by one; and
    localization probes for mismatches. Only single-case verdicts become bugs.
    """
    from oracles.compare import tolerance

    framework, both = campaign_framework(cfg.backends)
    state = _open_state(cfg)
    state.stopped = ""  # a resumed campaign gets another chance
    health_judged = state.cases >= EARLY_CASES
    examples: dict[str, str] = {}  # skip reason -> the last message with it, for the stop line
    specs = operator_specs(framework, cfg.ops)
    if both:  # torch vs tensorflow: operators of both, at the dtypes both accept
        specs = common_dtype_specs(specs, ("torch", "tensorflow"))
    spec_map = {**SPECS, **{s.id: s for s in specs}}  # inferred specs join the registry for this campaign
    generator = Generator(framework, specs, GenConfig(max_nodes=cfg.max_nodes, graph_mode_trials=any(
        b.split(":")[0] in ("tf.function", "tf.xla") for b in cfg.backends), mutation="mutation" in cfg.checks))
    feedback, guide = _coverage(cfg, state, spec_map)
    store = BugStore(cfg.out, spec_map, cfg.backends[0], cfg.timeout_s)
    pinning = Pinning(store.root)
    state_path = cfg.out / "campaign.json"
    start = time.monotonic()
    base_seconds = state.seconds
    generated = 0
    pending: collections.deque[tuple[Case, Job]] = collections.deque()
    jobs: dict[int, Job] = {}

    def save() -> None:
        state.seconds = base_seconds + (time.monotonic() - start)
        if not state.timeline or state.seconds - state.timeline[-1][0] >= 10:
            state.timeline.append([round(state.seconds, 1), state.cases, state.bugs])
        write_atomic(state_path, json.dumps(state.to_json(), indent=1))

    def budget_left() -> bool:
        return time.monotonic() - start < cfg.time_s and (cfg.max_cases is None or generated < cfg.max_cases)

    def next_batch() -> tuple[Case, Job] | None:
        nonlocal generated
        members, indices = [], []
        while len(members) < cfg.batch and budget_left():
            index, model = prefetch.take()
            state.next_index = index + 1
            generated += 1
            if model.valid:
                members.append(model.case)
                indices.append(index)
            elif index in state.crashed_generation:
                state.cases += 1
                state.skip(CRASHED)
                examples[CRASHED] = model.search.error or CRASHED
            else:
                state.cases += 1  # generated, but no clean values: never sent
                state.skip("value search failed")
                examples["value search failed"] = model.search.error or "NaN/Inf in every draw"
            if model.ends_batch and members:  # guidance cut the batch here (fuzzer.guidance)
                break
        if not members:
            return None
        return as_job(members, indices)

    def work() -> Iterator[Case]:
        while True:
            item = pending.popleft() if pending else (next_batch() if budget_left() else None)
            if item is None:
                return
            case, job = item
            jobs[id(case)] = job
            yield case

    def clean(job: Job) -> None:
        for case in job.members:
            state.cases += 1
            state.valid += 1
            add_counts(state.values_modes, {case.provenance.get("values_mode", "plain"): 1})
            add_counts(state.checks, {f"cases: {kind}": 1 for kind in case.plan.kinds()})
            for op in set(case.graph.op_ids()):
                state.ops[op] = state.ops.get(op, 0) + 1

    def record(case: Case, index: int, verdict, culprit: str | None, verdicts) -> None:
        sig = signature_of(case, verdict, culprit)
        if cfg.ignore is not None and cfg.ignore.matches(sig, verdict.message):
            state.ignored += 1
            return
        extra = None
        if needs_pin(sig):  # operators come from reduction (reports.pinning)
            decision = pinning.decide(case, sig)
            if decision.action == "park":
                pinning.park(decision.folder, case, verdict, index, list(verdicts))
                state.parked += 1
                return
            sig, extra = decision.signature, {"base_signature": sig.digest}
        _, new = store.record(case, verdict, tolerance(verdict.dtype or "float32"), index, culprit,
                              verdicts=verdicts, signature=sig, extra=extra)
        state.sightings += 1
        if new:
            state.bugs += 1
            state.bugs_by_kind[verdict.status] = state.bugs_by_kind.get(verdict.status, 0) + 1
            add_counts(state.checks, {f"bugs: {verdict.check}": 1})
            ops = f" · {', '.join(sig.operators)}" if sig.operators else ""
            state.last_bug = f"case {index}{ops} · {(verdict.summary().splitlines() or [''])[0]}"

    def settle() -> bool:
        """After reductions: merge twins, then decide parked failures until one becomes a
        new bug, which must be reduced before the next can be decided. True if it stopped
        there (call again after reducing)."""
        for kind in pinning.merge_twins():
            state.bugs -= 1
            state.bugs_by_kind[kind] -= 1
        for path, case, verdict, index, verdicts in list(pinning.parked()):
            bugs = state.bugs
            path.unlink()
            state.parked -= 1
            record(case, index, verdict, None, verdicts)
            if state.bugs > bugs:
                return True
        return False

    save()
    # NaN and infinities are no test where their handling is a documented setting: across
    # frameworks, and under XLA on CPU (fast min/max, on by default, drops NaN)
    special = not both and "tf.xla" not in cfg.backends
    frameworks = frameworks_of(cfg.backends)
    recover(cfg.out, state.crashed_generation)  # a predecessor killed while generating: skip that model
    prefetch = Prefetcher(guarded(model_maker(generator, spec_map, cfg.seed, guide, special_values=special,
                                      checks=cfg.checks, frameworks=frameworks, batch=cfg.batch,
                                      # Inductor options (fuzzer.plan.draw_options) where Inductor is
                                      # under test and the plan may check more than the forward
                                      options=any(takes_options(b) for b in cfg.backends[1:])
                                      and bool(set(cfg.checks) - {"forward"}),
                                      harness=any(harness_applies(b) for b in cfg.backends[1:])
                                      and bool(set(cfg.checks) - {"forward"})),
                                  cfg.out, state.crashed_generation),
                          state.next_index,
                          # guided: one batch per worker ahead (of the size guidance cuts), so that
                          # the models of the third batch already hear the first batch's coverage
                          # (generation is ~0.3 s a model, a batch's compile seconds to tens of
                          # seconds: the workers seldom wait on it)
                          depth=(lambda: guide.ahead(cfg.batch) * cfg.workers) if guide is not None
                          else cfg.batch * (cfg.workers + 1))
    with prefetch, _sandbox(cfg, timeout_s=cfg.timeout_s * max(1, cfg.batch // 2), workers=cfg.workers,
                            specs=spec_map if set(cfg.ops) - {"spec"} else None, log_dir=cfg.out / "logs",
                            worker_env=feedback.worker_env() if feedback else None) as sandbox:
        for case, result in _stop_on_dead_workers(sandbox.check_many(work()), state, save):
            job = jobs.pop(id(case))
            add_counts(state.checks, {f"compiles by job: {job_purpose(job)}": sum(
                result.checks.get(k, 0) for k in ("compiles", "compiles: aten localization",
                                                          "compiles: graph localization"))})
            if feedback is not None:
                feedback.on_job(job.members, sandbox.new_arcs.pop(id(case), None),
                                getattr(sandbox, "job_seconds", {}).pop(id(case), None), job.kind,
                                base_seconds + time.monotonic() - start)
                feedback.tick(base_seconds + time.monotonic() - start, sandbox.worker_pids())
            if job.kind == "batch":
                if passed(result) and (sampled := sample_passing(job, cfg.seed, cfg.sample_batches)):
                    state.batches.sampled += 1  # re-checked member by member; counted as they come
                    pending.extend(sampled)
                elif passed(result):
                    clean(job)
                    add_counts(state.excused, result.excused)
                    add_counts(state.checks, plan_counts(result))
                    follow(state.batches, job, 0, False)
                else:
                    state.batches.failed += job.lineage is None
                    split = split_failed_batch(job, result)
                    follow(state.batches, job, len(split), False)
                    pending.extend(split)
            elif job.kind == "single":
                member, index = job.members[0], job.indices[0]
                judged = [v for v in result.verdicts[1:] if not v.unsupported]
                if not result.valid or (declined(result) and not judged):
                    # not judged alone: it explains a batch that failed or was declined
                    reason = result.skip_reason or _declined_reason(result)
                    state.cases += 1
                    state.skip(reason)
                    examples[reason] = result.invalid_reason or result.summary()
                    follow(state.batches, job, 0, True)
                else:
                    clean(job)
                    add_counts(state.excused, result.excused)
                    add_counts(state.checks, plan_counts(result))
                    if declined(result):  # judged by the other candidates; one declined
                        state.skip(_declined_reason(result))
                    follow(state.batches, job, 0, bool(result.bugs) or declined(result))
                    for verdict in result.bugs:
                        if needs_probe(member, verdict):  # mismatches; crashes that name no operator
                            pending.appendleft((probe_case(member), Job("probe", [member], [index], verdict, result)))
                        else:
                            record(member, index, verdict, None, result.verdicts)
            else:  # probe: pin the failure on the operator where it starts, and its ATen operator
                record(job.members[0], job.indices[0], job.verdict,
                       localize_from_probe(job.members[0], job.verdict, case, result), job.result.verdicts)
            state.cluster = _cluster_record(cfg, sandbox)
            save()
            if progress is not None:
                state.workers_alive = len(sandbox.worker_pids())
                progress(state)
            if not health_judged and state.cases >= EARLY_CASES:
                health_judged = True
                _judge_health(state, examples, cfg, save)
        if not health_judged and state.cases >= MIN_JUDGED_CASES:
            _judge_health(state, examples, cfg, save)
        prefetch.close()  # reduction below runs models of its own
        if cfg.reduce_s > 0:
            reduce_start = time.monotonic()
            for _ in range(state.parked + 1):  # each round decides at least one parked failure
                _reduce_bugs(store, sandbox, cfg, progress is not None)
                if not settle():
                    break
            state.reduce_seconds += time.monotonic() - reduce_start
    if feedback is not None:  # the workers have stopped: their data is complete
        feedback.finish(base_seconds + time.monotonic() - start)
    state.timeline.append([round(base_seconds + time.monotonic() - start, 1), state.cases, state.bugs])
    save()
    return state


def _sandbox(cfg: CampaignConfig, **kw):
    """The campaign's sandbox: a local worker pool, or Ray actors (``--cluster ray``)."""
    from fuzzer.args import parse_cluster

    kind, address = parse_cluster(cfg.cluster)
    if kind == "local":
        from oracles.sandbox import Sandbox

        return Sandbox(cfg.backends, **kw)
    from fuzzer.cluster import RaySandbox, RayUnavailable

    try:
        return RaySandbox(cfg.backends, address=address, **kw)
    except RayUnavailable as e:
        raise CampaignError(str(e)) from None


def _cluster_record(cfg: CampaignConfig, sandbox) -> dict:
    """campaign.json's ``cluster``: where this run's checks ran."""
    describe = getattr(sandbox, "describe", None)
    return describe() if describe is not None else {"kind": "local", "workers": cfg.workers}


def _coverage(cfg: CampaignConfig, state: CampaignState, spec_map):
    """(coverage feedback, guide) for ``--coverage``; (None, None) without it."""
    if not cfg.coverage:
        return None, None
    from fuzzer.coverage_feedback import CoverageFeedback, CoverageSourcesChanged
    from fuzzer.guidance import Guide

    guide = Guide(cfg.seed, spec_map) if cfg.guide else None
    try:
        return CoverageFeedback(cfg.out, cfg.coverage, state.coverage, spec_map, guide), guide
    except CoverageSourcesChanged as e:
        raise CampaignError(str(e)) from None


def add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for k, n in counts.items():
        into[k] = into.get(k, 0) + n


def _declined_reason(result) -> str:
    """The skip reason of a case a backend declined (XLA has no kernel; a graph-mode
    contract that tf.function breaks alike)."""
    v = next(v for v in result.verdicts if v.unsupported)
    return f"declined by {v.backend}" + (f" ({v.declined})" if v.declined else "")


def _stop_on_dead_workers(results: Iterator, state: CampaignState, save: Callable[[], None]) -> Iterator:
    """The sandbox's results; workers that cannot start stop the campaign (recorded)."""
    from oracles.sandbox import WorkerStartError

    try:
        yield from results
    except WorkerStartError as e:
        state.stopped = str(e)
        save()
        raise CampaignStopped(f"campaign stopped: {e}") from None


def _judge_health(state: CampaignState, examples: dict[str, str], cfg: CampaignConfig,
                  save: Callable[[], None]) -> None:
    """Stop a campaign whose first cases are mostly invalid: it would test nothing."""
    if state.valid_share >= MIN_VALID_SHARE:
        return
    top = max(state.skipped, key=lambda r: state.skipped[r], default="")
    why = f"; most often {top} ({state.skipped[top]}x), e.g. {examples.get(top, '?')}" if top else ""
    state.stopped = (f"only {state.valid} of the first {state.cases} cases were valid "
                     f"(at least {MIN_VALID_SHARE:.0%} needed){why}")
    save()
    raise CampaignStopped(f"campaign stopped: {state.stopped}; worker logs are in {cfg.out / 'logs'}, "
                          f"the skip counts in {cfg.out / 'campaign.json'}")


def _reduce_bugs(store: BugStore, sandbox, cfg: CampaignConfig, verbose: bool) -> None:
    """Reduce every bug folder not reduced yet: this run's new bugs, and those of an
    earlier run that was interrupted before its reductions.

    Reduction runs after the generation loop, on the campaign's own sandbox (warm workers,
    one case at a time through ``sandbox.check``), each bug within ``cfg.reduce_s`` seconds:
    the loop's ``check_many`` must be finished before the sandbox takes single checks, and
    a campaign stopped before this point loses nothing (its bugs are reduced on resume, or
    by ``dlfuzz reduce``). A campaign's wall time is thus ``--time`` plus at most
    ``--reduce-time`` per new bug.
    """
    from reports.reduce import reduce_bug_folder

    sandbox.timeout_s = cfg.timeout_s  # single cases: the batch allowance is not needed
    for name, bug in sorted(store.known().items()):
        if "reduce_seconds" in bug:
            continue
        folder = store.root / name
        try:
            red = reduce_bug_folder(folder, sandbox.check, store.specs, time_s=cfg.reduce_s, timeout_s=cfg.timeout_s)
        except Exception as e:  # noqa: BLE001 - the bug stays recorded, unreduced; dlfuzz reduce can retry
            print(f"\ncannot reduce {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        if verbose and red is not None:
            print(f"\nreduced {name}: {red.operators_before} -> {red.operators_after} operators in {red.seconds:.0f} s",
                  end="", file=sys.stderr, flush=True)


def print_progress(state: CampaignState, stream: TextIO | None = None) -> None:
    """The progress line, rewritten in place on ``stream`` (default: stderr)."""
    print(f"\rcases {state.cases}  valid {state.valid} ({state.valid_share:.0%})  bugs {state.bugs}  "
          f"{state.cases_per_minute:.1f} cases/min  ",
          end="", file=stream or sys.stderr, flush=True)
