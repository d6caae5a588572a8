"""The generation prefetcher: same items in the same order as making them in line,
our own faults re-raised in the caller, and a prompt stop."""

import threading
import time

import pytest

from fuzzer.prefetch import Prefetcher


def test_items_come_in_index_order_from_the_start_index():
    with Prefetcher(lambda i: i * i, start=5, depth=3) as p:
        assert [p.take() for _ in range(6)] == [(i, i * i) for i in range(5, 11)]


def test_runs_ahead_by_at_most_depth_items():
    made = []
    with Prefetcher(lambda i: made.append(i) or i, start=0, depth=2) as p:
        assert p.take() == (0, 0)
        time.sleep(0.3)
        assert len(made) <= 1 + 2 + 1  # taken, queued, one in hand waiting for room


def test_an_exception_in_make_is_raised_by_take_after_the_items_before_it():
    def make(i):
        if i == 2:
            raise ValueError("generator fault at 2")
        return i

    p = Prefetcher(make, start=0, depth=4)
    assert p.take() == (0, 0)
    assert p.take() == (1, 1)
    with pytest.raises(ValueError, match="generator fault at 2"):
        p.take()


def test_close_stops_the_thread_even_when_the_queue_is_full():
    p = Prefetcher(lambda i: i, start=0, depth=1)
    time.sleep(0.1)
    p.close(timeout_s=5)
    assert not any(t.name == "dlfuzz-prefetch" and t.is_alive() for t in threading.enumerate())


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(lambda i: i, start=0, depth=0)


def test_a_depth_function_is_asked_before_each_item():
    made, depth = [], [1]

    def settled(n: int) -> list[int]:  # what was made once the thread has had time to make n
        deadline = time.monotonic() + 10
        while len(made) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # and no more
        return list(made)

    with Prefetcher(lambda i: made.append(i) or i, start=0, depth=lambda: depth[0]) as p:
        assert settled(1) == [0]  # one ahead
        depth[0] = 3
        assert settled(3) == [0, 1, 2]
        assert [p.take() for _ in range(3)] == [(0, 0), (1, 1), (2, 2)]
