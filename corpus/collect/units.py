"""Running a source as a list of resumable units (an OpInfo op, a docstring).

For each unit: skip it if the store's ``progress`` table says it is done, timed out, or
was started twice already (it crashed its process twice); otherwise mark it started, run
it under the tracer, and write its records and its ``done`` mark in small transactions.
A killed run therefore resumes at the unit it was in, and the unit's records that were
already written are ignored as duplicates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from corpus.store import CorpusStore, RecordWriter
from corpus.trace import TraceRecord

MAX_ATTEMPTS = 2


@dataclass
class UnitStats:
    units: int = 0
    done: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    unit_errors: int = 0
    records_seen: int = 0
    records_new: int = 0
    stopped: str = "complete"
    failed: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["failed"] = self.failed[:20]
        return d


def run_units(store: CorpusStore, framework: str, source: str, units: Iterable[tuple[str, Callable[[Callable], None]]],
              make_tracer: Callable[[Callable[[TraceRecord], None]], object], deadline: float | None,
              watchdog=None, log: Callable[[str], None] | None = None) -> UnitStats:
    """``units``: (key, body); ``body(traced)`` runs the unit, calling ``traced(fn)`` for what is to be traced.

    ``traced(fn)`` runs ``fn()`` under the tracer and swallows its exceptions (they are
    recorded by the tracer); it returns False once the deadline has passed.
    """
    stats = UnitStats()
    progress = store.progress(framework, source)
    writer = RecordWriter(store, batch=500, interval=2.0)
    tracer = make_tracer(writer)

    def traced(fn: Callable[[], object]) -> bool:
        if deadline is not None and time.time() > deadline:
            return False
        try:
            with tracer:
                fn()
        except Exception:
            pass
        return True

    for key, body in units:
        stats.units += 1
        state, attempts = progress.get(key, ("new", 0))
        if state == "done":
            stats.skipped_done += 1
            continue
        if state == "timeout" or attempts >= MAX_ATTEMPTS:
            stats.skipped_failed += 1
            stats.failed.append(key)
            continue
        if deadline is not None and time.time() > deadline:
            stats.stopped = "time"
            break
        store.mark(framework, source, key, "started")
        with (watchdog.unit(key) if watchdog is not None else _null()):
            try:
                body(traced)
            except Exception as e:  # a broken unit (e.g. a sample generator that raises) is skipped
                stats.unit_errors += 1
                if log:
                    log(f"{key}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        if deadline is not None and time.time() > deadline:
            writer.flush(progress=[(framework, source, key, "paused")])  # incomplete: a resume redoes it
            stats.stopped = "time"
            break
        writer.flush(progress=[(framework, source, key, "done")])
        stats.done += 1
    writer.flush()
    stats.records_seen = writer.seen
    stats.records_new = writer.added
    return stats


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
