"""The ``probe`` source (TensorFlow): the public functions called with calls built from their signatures.

The other TensorFlow sources see only what docstring examples call, a few hundred APIs,
many of them only over Python literals. This source enumerates the public functions of
the namespaces below (named as the tracer names them, so that ``tf.add`` is recorded as
``tf.math.add``), reads each one's parameters with ``inspect.signature``, and runs calls
``synth.py`` builds from them: random tensors of several plans, ranks and dtypes for the
tensor parameters, table values for the attributes. Two phases:

1. ``first_calls`` for every function (mostly invalid: that is data too);
2. ``variants`` of the calls that ran (fresh dimensions, dtypes, attribute values),
   which gives each template several valid records and their invalid neighbours.

The calls run like the ``mutate`` source's, in the sandbox pool (``pool.py``): each in a
worker process with a time limit, a call that raises is an invalid record, a call that
kills its worker an invalid record with ``flagged=True`` (a crash of TensorFlow is a
finding, and the collection goes on with a fresh worker); a timeout is dropped. Records
carry ``source="probe"`` and become seeds of the ``mutate`` source.

Random, stateful, I/O, string, assertion and other functions whose results a
differential fuzzer cannot use are not probed (``DENY``). A function is marked done in
the progress table once its last call is answered, so a resumed run skips it. Each
function's choices come from its own ``random.Random`` seeded with ``seed`` and its name,
so that restricting the run with ``--ops`` changes no call.
"""

from __future__ import annotations

import inspect
import random
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from corpus.collect import synth
from corpus.store import CorpusStore, RecordWriter

SOURCE = "probe"
NAMESPACES = ("tf", "tf.math", "tf.nn", "tf.linalg", "tf.signal", "tf.image", "tf.bitwise")
DENY = re.compile(
    r"random|fractional|dropout|shuffle|sample|[Vv]ariable|assign|uniform|stateless|multinomial|unique|print|timestamp|"
    r"(^|\.)(no_op|identity_n|guarantee_const|stop_gradient|as_dtype|as_string|fingerprint|type_spec_from_value|"
    r"check_pinned|broadcast_static_shape|nondifferentiable_batch_function|variable_creator_scope|"
    r"required_space_to_batch_paddings|global_norm|clip_by_global_norm|histogram_fixed_width|"
    r"compute_average_loss|scale_regularization_loss|ragged_\w+)$|"
    r"decode|encode|jpeg|png|_gif|bmp|webp|jxl|string|summary|assert|ctc_|nce_loss|sampled|"
    r"embedding_lookup|accidental_hits|non_max_suppression|bounding_box|\.io\.|saturate_cast")


def targets(only: set[str] | None = None) -> Iterator[synth.Target]:
    """The probed functions, in the tracer's order; ``only``: full names or last components."""
    from corpus.collect import tensorflow as tfc

    tfc.setup()
    seen: set[str] = set()
    for name, _ns, _attr, fn in tfc.public_functions():
        if name in seen or name.rsplit(".", 1)[0] not in NAMESPACES or DENY.search(name):
            continue
        seen.add(name)
        if only and name not in only and name.rsplit(".", 1)[-1] not in only:
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        t = synth.target(name, sig)
        if t is not None:
            yield t


@dataclass
class _ApiState:
    target: synth.Target
    rng: random.Random
    valid: list
    outstanding: int = 0
    phase: int = 1
    finished: bool = False  # phase 2's calls are all drawn


@dataclass
class ProbeStats:
    apis: int = 0
    skipped_done: int = 0
    apis_done: int = 0
    apis_valid: int = 0  # functions with at least one call that ran
    calls: int = 0
    valid: int = 0
    invalid: int = 0
    flagged: int = 0
    timeouts: int = 0
    unusable: int = 0
    new_records: int = 0
    stopped: str = "complete"

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _task(c: synth.Candidate, st: _ApiState):
    from corpus.collect.pool import task_for

    args, kwargs = c.call()
    st.outstanding += 1
    return task_for(c.target.api, args, kwargs, meta=(st, c))


def run(store: CorpusStore, framework: str, deadline: float | None, workers: int = 1, call_timeout: float = 10.0,
        only: set[str] | None = None, seed: int = 0, log: Callable[[str], None] | None = None) -> ProbeStats:
    from corpus.collect.pool import Task, WorkerPool, result_record

    if framework != "tensorflow":
        raise ValueError("the probe source reads TensorFlow's public functions: use it with --framework tensorflow")
    stats = ProbeStats()
    progress = store.progress(framework, SOURCE)
    states: list[_ApiState] = []
    for t in targets(only):
        stats.apis += 1
        if progress.get(t.api, ("new", 0))[0] == "done":
            stats.skipped_done += 1
        else:
            states.append(_ApiState(t, random.Random(f"{seed}:{t.api}"), []))
    writer = RecordWriter(store, batch=500, interval=2.0)
    done: list[tuple[str, str, str, str]] = []

    def phase1() -> Iterator[Task]:
        for st in states:
            for c in synth.first_calls(st.target, st.rng):
                yield _task(c, st)

    def phase2() -> Iterator[Task]:
        for st in states:
            st.phase = 2
            if st.valid:
                stats.apis_valid += 1
                for c in synth.variants(st.valid, st.rng):
                    yield _task(c, st)
            st.finished = True
            if st.outstanding == 0:
                done.append((framework, SOURCE, st.target.api, "done"))

    with WorkerPool(framework, workers, call_timeout) as pool:
        for phase in (phase1, phase2) if states else ():
            for task, res in pool.run(phase(), deadline):
                st, c = task.meta
                st.outstanding -= 1
                stats.calls += 1
                if res.status == "timeout":
                    stats.timeouts += 1
                elif res.status == "unusable":
                    stats.unusable += 1
                elif (rec := result_record(task, res, framework, SOURCE)) is not None:
                    ok, flagged = rec.ok, res.status == "crash"
                    writer(rec)
                    stats.valid += ok
                    stats.invalid += not ok
                    stats.flagged += flagged
                    if ok and st.phase == 1:
                        st.valid.append(c)
                    if flagged and log:
                        log(f"{task.api}: {res.error}")
                if st.finished and st.outstanding == 0:
                    done.append((framework, SOURCE, st.target.api, "done"))
                if done:
                    writer.flush(progress=done)
                    stats.apis_done += len(done)
                    done.clear()
            if deadline is not None and any(not st.finished for st in states) and _past(deadline):
                stats.stopped = "time"
                break
    stats.apis_done += len(done)
    writer.flush(progress=done)
    stats.new_records = writer.added
    return stats


def _past(deadline: float) -> bool:
    import time

    return time.time() > deadline
