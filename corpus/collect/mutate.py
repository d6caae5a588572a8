"""The ``mutate`` source: NeuRI's augmentation of valid records (DESIGN §4).

A record's *integer symbols* are its tensor dimensions (``shape`` symbols) and its other
integer arguments (``attr`` symbols), except keyword arguments named like dimensions
(``dim``, ``axis``, ...), which stay concrete. A mutation changes some symbols:

- one symbol +1, +2 or +3;
- an ``attr`` symbol set to 0 and to -2;
- every symbol +2;
- two equal symbols made unequal (one of them +1);
- two different symbols swapped;
- two symbols both +1 or both +2.

The categories are interleaved (round-robin, each shuffled with a fixed seed), so that a
small time budget still tries a bit of each. Mutated calls run in the sandbox pool with
random tensors of the mutated shapes: a run that passes is a new valid record, one that
raises is an invalid record, one that kills its worker is an invalid record with
``flagged=True``; a timeout is dropped (it says nothing about validity).

The effort is bounded per partial operator (api + signature): a time budget (the
remaining time shared among the remaining partial operators, at most ``op_time``), and at
most ``max_valid`` new valid records. A partial operator is marked done in the progress
table once its mutations are all answered, so a resumed run goes on with the next ones.
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from corpus.store import CorpusStore, RecordWriter
from corpus.trace import TraceRecord, call_signature, has_opaque, is_tensor_marker

DIM_NAMES = frozenset({"dim", "dims", "axis", "axes", "dim0", "dim1", "dim2", "start_dim", "end_dim", "source",
                       "destination", "keepdim", "keepdims", "batch_dims"})
MAX_NUMEL = 1 << 20
MAX_SEEDS = 4  # seed records per partial operator


@dataclass(frozen=True)
class Symbol:
    path: tuple  # into {"args": [...], "kwargs": {...}}
    kind: str  # "shape" | "attr"
    value: int


def symbols(args: list, kwargs: dict) -> list[Symbol]:
    found: list[Symbol] = []

    def walk(value: Any, path: tuple, concrete: bool) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int):
            if not concrete:
                found.append(Symbol(path, "attr", value))
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, path + (i,), concrete)
            return
        if is_tensor_marker(value):
            for i, d in enumerate(value["shape"]):
                if isinstance(d, int):
                    found.append(Symbol(path + ("shape", i), "shape", d))
            return
        if isinstance(value, dict) and value.get("type") == "dict":
            for k, v in value["value"].items():
                walk(v, path + ("value", k), concrete or k in DIM_NAMES)

    for i, a in enumerate(args):
        walk(a, ("args", i), False)
    for k, v in kwargs.items():
        walk(v, ("kwargs", k), k in DIM_NAMES)
    return found


def _set(call: dict, path: tuple, value: int) -> None:
    obj = call
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def apply(args: list, kwargs: dict, changes: list[tuple[tuple, int]]) -> tuple[list, dict]:
    call = copy.deepcopy({"args": args, "kwargs": kwargs})
    for path, value in changes:
        _set(call, path, value)
    return call["args"], call["kwargs"]


def mutations(syms: list[Symbol], rng: random.Random, limit: int = 4000) -> Iterator[list[tuple[tuple, int]]]:
    """Lists of (path, new value), the categories interleaved; each change list at most once."""
    n = len(syms)
    singles = [[(s.path, s.value + d)] for s in syms for d in (1, 2, 3)]
    specials = [[(s.path, v)] for s in syms if s.kind == "attr" for v in (0, -2) if v != s.value]
    everything = [[(s.path, s.value + 2) for s in syms]] if n > 1 else []
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if len(pairs) > limit:
        pairs = rng.sample(pairs, limit)
    unequal = [[(syms[j].path, syms[j].value + 1)] for i, j in pairs if syms[i].value == syms[j].value] + \
              [[(syms[i].path, syms[i].value + 1)] for i, j in pairs if syms[i].value == syms[j].value]
    swapped = [[(syms[i].path, syms[j].value), (syms[j].path, syms[i].value)] for i, j in pairs
               if syms[i].value != syms[j].value]
    both = [[(syms[i].path, syms[i].value + d), (syms[j].path, syms[j].value + d)] for i, j in pairs for d in (1, 2)]
    categories = [singles, specials, everything, unequal, swapped, both]
    for c in categories:
        rng.shuffle(c)
    seen: set[str] = set()
    iters = [iter(c) for c in categories]
    while iters:
        for it in list(iters):
            try:
                changes = next(it)
            except StopIteration:
                iters.remove(it)
                continue
            key = json.dumps(sorted((list(map(str, p)), v) for p, v in changes))
            if key in seen:
                continue
            seen.add(key)
            yield changes


def _numel_ok(args: list, kwargs: dict) -> bool:
    def tensors(v):
        if is_tensor_marker(v):
            yield v
        elif isinstance(v, list):
            for x in v:
                yield from tensors(x)
        elif isinstance(v, dict) and v.get("type") == "dict":
            for x in v["value"].values():
                yield from tensors(x)

    for t in list(tensors(args)) + list(tensors(kwargs)):
        n = 1
        for d in t["shape"]:
            if d < 0:
                return False
            n *= d
        if n > MAX_NUMEL:
            return False
    return True


@dataclass
class OpState:
    key: str  # "api(signature)"
    api: str
    seeds: list[TraceRecord]
    valid: int = 0
    invalid: int = 0
    outstanding: int = 0
    generated: int = 0
    finished: bool = False  # no more tasks will be drawn for it
    unusable: bool = False


@dataclass
class MutateStats:
    partial_ops: int = 0
    partial_ops_done: int = 0
    skipped_done: int = 0
    unusable_ops: int = 0
    calls: int = 0
    valid: int = 0
    invalid: int = 0
    flagged: int = 0
    timeouts: int = 0
    new_records: int = 0
    worker_restarts: int = 0
    stopped: str = "complete"
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def seed_groups(store: CorpusStore, framework: str, only: set[str] | None = None) -> dict[str, OpState]:
    """Valid, rebuildable, non-mutation records grouped by partial operator."""
    groups: dict[str, OpState] = {}
    for rec in store.records(framework=framework, ok=True, exclude_source="mutation"):
        if only and rec.api not in only and rec.api.rsplit(".", 1)[-1] not in only:
            continue
        if has_opaque(rec.args) or has_opaque(rec.kwargs) or not symbols(rec.args, rec.kwargs):
            continue
        key = f"{rec.api}({call_signature(rec.args, rec.kwargs)})"
        st = groups.get(key)
        if st is None:
            st = groups[key] = OpState(key, rec.api, [])
        if len(st.seeds) < MAX_SEEDS:
            st.seeds.append(rec)
    return groups


def run(store: CorpusStore, framework: str, deadline: float | None, workers: int = 1, op_time: float = 30.0,
        max_valid: int = 100, call_timeout: float = 10.0, only: set[str] | None = None, seed: int = 0,
        log: Callable[[str], None] | None = None) -> MutateStats:
    from corpus.collect.pool import Task, WorkerPool, call_digest, result_record, task_for

    stats = MutateStats()
    groups = seed_groups(store, framework, only)
    progress = store.progress(framework, "mutation")
    order = sorted(groups)
    stats.partial_ops = len(order)
    todo = []
    for key in order:
        if progress.get(key, ("new", 0))[0] == "done":
            stats.skipped_done += 1
        else:
            todo.append(groups[key])
    writer = RecordWriter(store, batch=300, interval=2.0)
    pending_done: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()

    def tasks() -> Iterator[Task]:
        for index, st in enumerate(todo):
            now = time.time()
            if deadline is not None and now > deadline:
                stats.stopped = "time"
                return
            remaining_ops = len(todo) - index
            budget = op_time if deadline is None else min(op_time, max(0.05, (deadline - now) / remaining_ops))
            op_deadline = now + budget
            rng = random.Random(f"{seed}:{st.key}")
            streams = [(r, mutations(symbols(r.args, r.kwargs), rng)) for r in st.seeds]
            turn = 0
            while streams and not st.unusable and st.valid < max_valid and time.time() < op_deadline:
                turn = (turn + 1) % len(streams)
                base, stream = streams[turn]
                try:
                    changes = next(stream)
                except StopIteration:
                    streams.pop(turn)
                    continue
                args, kwargs = apply(base.args, base.kwargs, changes)
                if not _numel_ok(args, kwargs):
                    continue
                h = call_digest(st.api, args, kwargs)
                if h in seen:
                    continue
                seen.add(h)
                st.outstanding += 1
                st.generated += 1
                yield task_for(st.api, args, kwargs, meta=st, digest=h)
            st.finished = True
            _maybe_done(st)

    def _maybe_done(st: OpState) -> None:
        if st.finished and st.outstanding == 0:
            pending_done.append((framework, "mutation", st.key, "done"))
            stats.partial_ops_done += 1
            if st.unusable:
                stats.unusable_ops += 1

    with WorkerPool(framework, workers, call_timeout) as pool:
        for task, res in pool.run(tasks(), deadline):
            st: OpState = task.meta
            st.outstanding -= 1
            stats.calls += 1
            if res.status == "unusable":
                st.unusable = True
            elif res.status == "timeout":
                stats.timeouts += 1
            elif (rec := result_record(task, res, framework, "mutation")) is not None:
                ok, flagged = rec.ok, res.status == "crash"
                writer(rec)
                if ok:
                    st.valid += 1
                    stats.valid += 1
                else:
                    st.invalid += 1
                    stats.invalid += 1
                    stats.flagged += flagged
                    if flagged and log:
                        log(f"{task.api}: {res.error}")
            if st.finished:
                _maybe_done(st)
            if pending_done:
                writer.flush(progress=pending_done)
                pending_done.clear()
        stats.worker_restarts = pool.started - pool.size
    if deadline is not None and time.time() > deadline and stats.stopped != "time":
        stats.stopped = "time" if any(not st.finished for st in todo) else stats.stopped
    writer.flush(progress=pending_done)
    stats.new_records = writer.added
    return stats
