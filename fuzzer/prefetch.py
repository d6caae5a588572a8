"""Generate models ahead of the sandbox, in a background thread.

A campaign's parent process generates every model and searches its values (eager runs
of small tensors: ~0.2-0.3 s a model), while its workers compile and run cases in
other processes. Done in line, generation and checking take turns: with one worker and
batches of 8, the worker idles ~2 s of every ~18 while the parent draws the next batch.
A thread that keeps a few models ready overlaps the two. The parent's main thread
spends its time blocked on the workers' pipes (no GIL held), so the thread gets a core
of its own on a 2-core machine.

Models are made strictly in index order by one thread, so a seed gives the same models
whether or not they were prefetched. Models still queued when the campaign stops were
never counted: ``campaign.json``'s ``next_index`` only moves past models the campaign
has taken, so a resumed campaign regenerates them (generation is a pure function of
seed and index).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

_ROOM_POLL_S = 0.02  # how often a thread that is far enough ahead looks for room


class Prefetcher(Generic[T]):
    """``make(index)`` for index = start, start+1, ... in a thread, ``depth`` ahead.

    ``take()`` returns ``(index, item)`` in index order and re-raises, in the caller's
    thread, an exception that ``make`` raised (a fault of dlfuzz, never hidden).
    ``depth`` may be a function, asked before each item: coverage guidance keeps the
    thread one (small) batch ahead, so that the next models already hear the last
    batch's coverage (``fuzzer.guidance.Guide.ahead``).
    """

    def __init__(self, make: Callable[[int], T], start: int, depth: int | Callable[[], int]) -> None:
        self._depth = depth if callable(depth) else (lambda: depth)
        if self._depth() < 1:
            raise ValueError("depth must be at least 1")
        self._make = make
        self._next = start
        self._queue: queue.Queue[tuple[int, T | None, BaseException | None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dlfuzz-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._queue.qsize() >= max(1, self._depth()):  # far enough ahead: wait for a take
                self._stop.wait(_ROOM_POLL_S)
                continue
            index = self._next
            try:
                item: T | None = self._make(index)
                error: BaseException | None = None
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises
                item, error = None, e
            self._next += 1
            self._queue.put((index, item, error))
            if error is not None:
                return

    def take(self) -> tuple[int, T]:
        index, item, error = self._queue.get()
        if error is not None:
            self.close()
            raise error
        return index, item  # type: ignore[return-value]

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop generating; items still queued are dropped (never counted)."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
