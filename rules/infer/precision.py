"""Precision: run instances drawn from a rule through the real API (DESIGN §4).

Each rule's sampled calls (``engine.sample_calls``: z3 instances of the rule within the
generator's bounds) run in the corpus's sandbox workers (``corpus.collect.pool``: child
processes that rebuild a recorded call with random tensors, with a per-call timeout and
crash isolation). A call counts as right if it runs without error and its outputs have
the predicted shapes and dtypes. Precision is the fraction of right calls.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from rules.infer.group import parse_outputs


def check_output(outputs, expect: list) -> bool:
    got = parse_outputs(outputs)
    if got is None:
        return False
    return [[list(s), d] for s, d in got[1]] == [[list(s), d] for s, d in expect]


def measure(framework: str, jobs: Iterable[tuple[Any, str, dict]], workers: int = 1, call_timeout: float = 10.0,
            deadline: float | None = None, progress: Callable[[int], None] | None = None) -> dict[Any, list]:
    """``jobs``: (rule key, api, call); returns rule key -> [(call, right, result)] per call
    that ran (a call with ``"expect": None`` is right when it runs). Timeouts and calls the worker cannot rebuild say nothing about the rule and
    are dropped."""
    from corpus.collect.pool import Task, WorkerPool

    results: dict[Any, list] = {}
    tasks = (Task(api, call["args"], call["kwargs"], seed=k, meta=(key, call))
             for k, (key, api, call) in enumerate(jobs))
    done = 0
    with WorkerPool(framework, workers, call_timeout) as pool:
        for task, res in pool.run(tasks, deadline):
            key, call = task.meta
            done += 1
            if progress is not None and done % 500 == 0:
                progress(done)
            if res.status in ("timeout", "unusable"):
                continue
            right = res.status == "ok" and (call["expect"] is None or check_output(res.outputs, call["expect"]))
            results.setdefault(key, []).append((call, right, res))
    return results


def precision_of(flags: list[bool] | None) -> float | None:
    if not flags:
        return None
    return round(sum(flags) / len(flags), 4)
