"""Inference over a whole corpus: partial operators in parallel, then precision, then the store.

1. The partial operators of a framework are listed from the corpus (SQLite).
2. Positional parameter names are looked up once (this imports the framework).
3. A ``multiprocessing`` pool of ``workers`` processes takes one partial operator at a
   time, biggest first: it reads that operator's records itself, groups them into
   templates, infers each template's rule under the operator's deadline (``time_per_op``
   seconds for all its templates; a hard alarm backs the cooperative deadline up),
   draws calls from each rule (at most ``sample_seconds`` per rule), and mutates the
   valid records of templates with too few of them (augmentation).
4. Those calls run in the corpus's sandbox workers; the partial operators with a rule
   that was not always right, or with augmented templates, are inferred again with the
   results as extra records (round 2).
5. Fresh calls of every rule run in the sandbox: each rule gets its precision.
6. The rules are written as one JSON document (``rules.store``); the summary's figures
   are ``rules.store.stats.figures`` of those rules.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from corpus.trace import TraceRecord


@dataclass
class InferOptions:
    workers: int = 1
    time_per_op: float = 20.0
    precision_samples: int = 12
    call_timeout: float = 10.0
    only: frozenset[str] | None = None  # restrict to these APIs
    every: int = 1  # every k-th partial operator only (benchmarks on a sample)
    min_valid: int = 2
    seed: int = 0
    sample_seconds: float = 20.0  # per rule, for drawing its precision calls with z3
    augment: int = 30  # mutated calls per template with too few valid records (0: none)


def list_partial_ops(db: str, framework: str, only: frozenset[str] | None = None) -> list[tuple[str, str, int, int]]:
    """(api, signature, records, valid records), the most records first."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT api, signature, COUNT(*), SUM(ok) FROM records WHERE framework = ? "
                            "GROUP BY api, signature", (framework,)).fetchall()
    finally:
        conn.close()
    ops = [(a, s, int(n), int(v or 0)) for a, s, n, v in rows if only is None or a in only]
    return sorted(ops, key=lambda o: (-o[2], o[0], o[1]))


# ---- the worker side ---------------------------------------------------------------------------

_W: dict[str, Any] = {}


class _HardTimeout(BaseException):
    """Raised by the alarm; not an Exception, so that no ``except Exception`` on the way
    (the solver's callers catch those) swallows it."""


def _alarm(signum, frame):  # pragma: no cover - only on runaway operators
    raise _HardTimeout()


def _init(db: str, framework: str, params: dict, options: InferOptions) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _W.update(db=db, framework=framework, params=params, options=options,
              conn=sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False))
    signal.signal(signal.SIGALRM, _alarm)


def bounded_sample(rule: dict, framework: str, n: int, seed: int, seconds: float) -> tuple[list[dict], bool]:
    """The calls ``engine.iter_sample_calls`` draws for ``rule`` within ``seconds``, and
    whether it ran out of time. z3 can take without end on some rules (a nonlinear
    constraint over a wide attribute range), so in an inference worker (its alarm handler
    installed) the limit is hard: an alarm interrupts the solver, the partial operator's
    own alarm paused meanwhile. Elsewhere the limit is checked between calls."""
    from rules.infer.engine import iter_sample_calls

    calls: list[dict] = []
    start = time.monotonic()
    hard = signal.getsignal(signal.SIGALRM) is _alarm
    outer = signal.setitimer(signal.ITIMER_REAL, seconds)[0] if hard else 0.0
    timed_out = False
    try:
        for call in iter_sample_calls(rule, framework, n, seed):
            calls.append(call)
            if time.monotonic() - start > seconds:
                timed_out = True
                break
    except _HardTimeout:
        timed_out = True
    finally:
        if hard:
            signal.setitimer(signal.ITIMER_REAL, outer)  # 0 cancels
    return calls, timed_out


MAX_AUGMENT_NUMEL = 1 << 16


def augment_calls(t, n: int, seed: int) -> list[dict]:
    """Up to ``n`` mutations of a template's valid records (``corpus.collect.mutate``: the
    collection's own mutations), for a template the collection left with too few valid
    records (it mutates a few seed records per partial operator, and a partial operator
    can have many templates: flags, strings, list lengths). They run in the sandbox; what
    passes and what raises become the template's records in the next round."""
    import random

    from corpus.collect.mutate import apply, mutations, symbols

    rng = random.Random(f"{seed}/{t.key}")
    streams = [(o.record, mutations(symbols(o.record.args, o.record.kwargs), rng, limit=200)) for o in t.valid[:4]]
    calls: list[dict] = []
    seen: set[str] = set()
    while streams and len(calls) < n:
        for rec, stream in list(streams):
            changes = next(stream, None)
            if changes is None:
                streams.remove((rec, stream))
                continue
            args, kwargs = apply(rec.args, rec.kwargs, changes)
            key = json.dumps([args, kwargs], sort_keys=True)
            if key in seen or not _small(args) or not _small(kwargs):
                continue
            seen.add(key)
            calls.append({"args": args, "kwargs": kwargs, "expect": None})
            if len(calls) >= n:
                break
    return calls


def _small(node) -> bool:
    """Every tensor marker of a call has at most MAX_AUGMENT_NUMEL elements, no negative dim."""
    if isinstance(node, list):
        return all(_small(v) for v in node)
    if isinstance(node, dict):
        if "shape" in node and "dtype" in node and isinstance(node["shape"], list):
            n = 1
            for d in node["shape"]:
                if not isinstance(d, int) or d < 0:
                    return False
                n *= d
            return n <= MAX_AUGMENT_NUMEL
        return all(_small(v) for v in node.values())
    return True


def infer_partial_op(api: str, signature: str, records: list[TraceRecord], params, framework: str,
                     options: InferOptions, sample_seed: int | None = None) -> dict:
    """Rules for one partial operator: {"api", "signature", "rules", "reasons", "templates", ...}."""
    from rules.infer.engine import infer_template
    from rules.infer.group import templates
    from rules.inferred import rule_id

    start = time.monotonic()
    cpu = time.process_time()
    deadline = start + options.time_per_op
    out: dict[str, Any] = {"api": api, "signature": signature, "rules": [], "reasons": Counter(), "templates": 0,
                           "heldout": [0, 0], "calls": [], "augment": []}
    for t in templates(records, params):
        out["templates"] += 1
        if not t.valid:
            out["reasons"]["no valid records"] += 1
            continue
        if time.monotonic() > deadline:
            out["reasons"]["time limit"] += 1
            continue
        outcome = infer_template(t, deadline, options.min_valid)
        if outcome.reason == f"fewer than {options.min_valid} valid records" and sample_seed is not None \
                and options.augment and t.symbols:
            out["augment"] += augment_calls(t, options.augment, sample_seed)
        out["reasons"][outcome.reason if not outcome.reason.startswith("held-out valid record breaks")
                       else "held-out valid record breaks a constraint"] += 1
        if outcome.rule is None:
            continue
        rule = outcome.rule
        rule["id"] = rule_id(api, rule["key"])
        out["heldout"][0] += outcome.heldout_right
        out["heldout"][1] += outcome.heldout_total
        out["rules"].append(rule)
    if sample_seed is not None and options.precision_samples:
        for rule in out["rules"]:  # calls for precision, after every rule is found
            calls, _ = bounded_sample(rule, framework, options.precision_samples, sample_seed, options.sample_seconds)
            out["calls"].append((rule["key"], calls))
    out["seconds"] = round(time.monotonic() - start, 3)
    out["cpu"] = round(time.process_time() - cpu, 3)
    return out


def _records(api: str, signature: str) -> list[TraceRecord]:
    rows = _W["conn"].execute("SELECT data FROM records WHERE framework = ? AND api = ? AND signature = ? ORDER BY id",
                              (_W["framework"], api, signature)).fetchall()
    return [TraceRecord.from_json(json.loads(d)) for (d,) in rows]


def _failed(api: str, signature: str, why: str, seconds: float, error: str | None = None) -> dict:
    out = {"api": api, "signature": signature, "rules": [], "reasons": Counter({why: 1}), "templates": 0,
           "heldout": [0, 0], "calls": [], "augment": [], "seconds": seconds, "cpu": seconds}
    if error:
        out["error"] = error
    return out


def _run(item: tuple) -> dict:
    """One partial operator: (api, signature, extra records as JSON, seed for precision calls)."""
    api, signature, extra, seed = item
    opts: InferOptions = _W["options"]
    records = _records(api, signature) + [TraceRecord.from_json(r) for r in extra]
    signal.setitimer(signal.ITIMER_REAL, opts.time_per_op * 2 + 15)
    try:
        return infer_partial_op(api, signature, records, _W["params"].get(api), _W["framework"], opts, seed)
    except _HardTimeout:
        return _failed(api, signature, "hard time limit", opts.time_per_op * 2 + 15)
    except Exception as e:  # noqa: BLE001 - one operator's failure must not stop the run
        return _failed(api, signature, f"error: {type(e).__name__}", 0.0, f"{type(e).__name__}: {e}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _sample(item: tuple) -> tuple[str, str, list[dict], bool]:
    """Fresh precision calls for one rule: (api, rule key, calls, ran out of time)."""
    rule, seed = item
    opts: InferOptions = _W["options"]
    try:
        calls, timed_out = bounded_sample(rule, _W["framework"], opts.precision_samples, seed, opts.sample_seconds)
    except Exception:  # noqa: BLE001 - a rule the solver cannot handle gets no precision
        calls, timed_out = [], False
    return rule["api"], rule["key"], calls, timed_out


# ---- the parent side ---------------------------------------------------------------------------

def assign_ids(rules: list[dict]) -> None:
    """``api#hash4`` ids; lengthen the hash where two rules of one API collide."""
    from rules.inferred import rule_id

    digits = 4
    pending = rules
    while pending:
        ids = Counter(rule_id(r["api"], r["key"], digits) for r in pending)
        nxt = []
        for r in pending:
            rid = rule_id(r["api"], r["key"], digits)
            if ids[rid] > 1 and digits < 40:
                nxt.append(r)
            else:
                r["id"] = rid
        pending, digits = nxt, digits + 2


class _Run:
    """The parent's state over the rounds."""

    def __init__(self, framework: str, db: str, options: InferOptions, progress: Callable[[str], None] | None) -> None:
        self.framework, self.db, self.options, self.progress = framework, db, options, progress
        self.start = time.monotonic()

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(f"{msg}, {time.monotonic() - self.start:.0f} s")

    def infer(self, pool, items: list[tuple], label: str) -> list[dict]:
        results = []
        for k, res in enumerate(pool.imap_unordered(_run, items, chunksize=1), 1):
            results.append(res)
            if k % 25 == 0 or k == len(items):
                self.say(f"{label}: {k}/{len(items)} partial operators, {sum(len(r['rules']) for r in results)} rules")
        return results

    def sample(self, pool, rules: list[dict], seed: int) -> tuple[list[dict], set[tuple]]:
        """Fresh calls of every rule, drawn in the pool: (measure's input, rules out of time)."""
        fresh, late = [], set()
        for k, (api, key, calls, timed_out) in enumerate(
                pool.imap_unordered(_sample, [(r, seed) for r in rules], chunksize=4), 1):
            fresh.append({"api": api, "calls": [(key, calls)]})
            if timed_out:
                late.add((api, key))
            if k % 250 == 0 or k == len(rules):
                self.say(f"sampling: {k}/{len(rules)} rules")
        return fresh, late

    def measure(self, results: list[dict], label: str, more: list[tuple] = ()) -> dict[tuple, list]:
        """(api, rule key) -> [(call, right, raw result)] for every sampled call that ran;
        ``more``: other (key, api, call) jobs to run in the same sandbox pass."""
        from rules.infer.precision import measure

        jobs = [((res["api"], key), res["api"], call) for res in results for key, calls in res["calls"] for call in calls]
        jobs += list(more)
        if not jobs:
            return {}
        return measure(self.framework, jobs, self.options.workers, self.options.call_timeout,
                       progress=lambda done: self.say(f"{label}: {done}/{len(jobs)} calls"))


def _refinement_records(api: str, framework: str, outcomes: list) -> list[dict]:
    """The precision calls of a rule that was not always right, as records: what the real
    API did with inputs the rule chose (active learning)."""
    out = []
    for call, _right, res in outcomes:
        ok = res.status == "ok"
        rec = TraceRecord.make(api, framework, call["args"], call["kwargs"], res.outputs if ok else None, ok,
                               None if ok else res.error, "mutation", res.status == "crash")
        out.append(rec.to_json())
    return out


def infer_corpus(framework: str, db: str, out: str | None, options: InferOptions = InferOptions(),
                 progress: Callable[[str], None] | None = None) -> dict:
    """Infer every partial operator of ``framework`` in ``db``; write the store to ``out``.

    Round 1 infers every partial operator and runs sampled calls of each rule. The
    partial operators with a rule that was not always right are inferred again, with
    those calls as extra records (round 2). Finally every rule's precision is measured
    on fresh calls (another seed), so the reported precision never saw the calls that
    shaped the rule."""
    from rules.infer.names import positional_params
    from rules.infer.precision import precision_of
    from rules.store import SCHEMA, installed_version, save
    from rules.store.stats import figures

    run = _Run(framework, db, options, progress)
    ops = list_partial_ops(db, framework, options.only)[:: max(1, options.every)]
    # The framework is imported in a short-lived child, so that the pool forks from a
    # process without a framework's threads.
    with multiprocessing.get_context("spawn").Pool(1) as names_pool:
        params = names_pool.apply(positional_params, (framework, sorted({a for a, _, _, _ in ops})))
    todo = [(a, s) for a, s, _, v in ops if v > 0]
    ctx = multiprocessing.get_context("fork")

    def pool():
        # No sandbox runs while an inference pool lives: the pool forks replacement workers
        # from a thread (maxtasksperchild), and a fork that lands while the sandbox starts
        # a worker process inherits the pipe that start waits on, which then never closes.
        return ctx.Pool(options.workers, initializer=_init, initargs=(db, framework, params, options),
                        maxtasksperchild=200)

    with pool() as p:
        results = run.infer(p, [(a, s, [], options.seed) for a, s in todo], "inferring")
    first_seconds = time.monotonic() - run.start
    # Round 2: the sampled calls of rules that were not always right (refinement) and the
    # mutations of templates with too few valid records (augmentation) run in the
    # sandbox, and their partial operators are inferred again with those records.
    augment_jobs = [(("augment", k), res["api"], call) for k, res in enumerate(results) for call in res["augment"]]
    outcomes = run.measure(results, "checking", augment_jobs)
    again = []
    refined_ops = augmented_ops = 0
    for k, res in enumerate(results):
        extra = []
        for key, _calls in res["calls"]:
            got = outcomes.get((res["api"], key), [])
            if got and not all(right for _, right, _ in got):
                extra += _refinement_records(res["api"], framework, got)
        refined_ops += bool(extra)
        more = _refinement_records(res["api"], framework, outcomes.get(("augment", k), []))
        augmented_ops += bool(more)
        if extra or more:
            again.append((res["api"], res["signature"], extra + more, None))
    with pool() as p:
        redone = {(r["api"], r["signature"]): r for r in run.infer(p, again, "round 2")} if again else {}
        for i, res in enumerate(results):
            if (res["api"], res["signature"]) in redone:
                new = redone[(res["api"], res["signature"])]
                new["cpu"] = new.get("cpu", 0) + res.get("cpu", 0)
                results[i] = new
        infer_seconds = time.monotonic() - run.start
        rules = [r for res in results for r in res["rules"]]
        assign_ids(rules)
        fresh, late = run.sample(p, rules, options.seed + 1) if options.precision_samples else ([], set())
    flags = run.measure(fresh, "precision") if fresh else {}
    for r in rules:
        got = flags.get((r["api"], r["key"]))
        if (r["api"], r["key"]) in late:
            # z3 could not draw the calls in time: the generator would stall on this rule too
            r["evidence"]["sampling_timeout"] = True
            got = None
        r["precision"] = precision_of([right for _, right, _ in got] if got else None)
        r["precision_samples"] = len(got or [])
        del r["key"]
    rules.sort(key=lambda r: (r["api"], r["id"]))
    version = installed_version(framework) or "unknown"
    doc = {"schema": SCHEMA, "framework": framework, "framework_version": version,
           "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "rules": rules}
    if out:
        save(doc, out)
    reasons: Counter = Counter()
    for res in results:
        reasons.update(res["reasons"])
    slow = sorted(results, key=lambda r: -r.get("seconds", 0))[:8]
    return {
        "partial_ops": len(ops),
        **figures(rules, framework),
        "seconds": round(time.monotonic() - run.start, 1),
        "round1_seconds": round(first_seconds, 1),
        "infer_seconds": round(infer_seconds, 1),
        "worker_cpu_seconds": round(sum(res.get("cpu", 0) for res in results), 1),
        "refined_partial_ops": refined_ops,
        "augmented_partial_ops": augmented_ops,
        "augment_calls": len(augment_jobs),
        "sampling_timeouts": len(late),
        "templates": sum(res["templates"] for res in results),
        "reasons": dict(reasons.most_common(12)),
        "slowest": [f"{r['api']}({r['signature'][:40]}): {r.get('seconds', 0):.1f} s" for r in slow],
        "errors": [res["error"] for res in results if "error" in res][:5],
    }
