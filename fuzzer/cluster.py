"""Campaigns on a Ray cluster (DESIGN §9): ``dlfuzz fuzz --cluster ray[:ADDRESS]``.

:class:`RaySandbox` has the interface the campaign uses of :class:`oracles.sandbox.Sandbox`
(``check``, ``check_many``, ``worker_pids``, ``new_arcs``, ``restarts``, ``timeout_s``,
``close``, a context manager), so ``fuzzer.campaign`` picks one or the other and nothing
else changes. Design:

- **Actors host sandboxes.** Each of the ``workers`` Ray actors (one CPU each, placed with
  the ``SPREAD`` strategy over the cluster's nodes) holds a one-worker local ``Sandbox``.
  A backend that segfaults, aborts or hangs kills only that sandbox's child process on
  its node and becomes a verdict exactly as on one machine; worker environment (one
  thread, quiet frameworks, coverage meter) is the sandbox's own. The driver keeps one
  call in flight per actor (``ray.wait``) and yields results as they arrive.
- **An actor that dies is replaced.** Killed (``ray.kill``, SIGKILL, its node lost) or
  silent past a generous deadline, its actor is replaced and the case it held goes to
  another actor once; a case lost twice comes back as an invalid result ("Ray actor lost
  twice ..."), counted as skipped, as a lost sandbox worker's case is. Actors that die
  before returning anything, three in a row, stop the campaign with a
  ``WorkerStartError`` (a node without dlfuzz or its frameworks), as sandbox workers do.
- **Generation stays on the driver.** The campaign draws case ``i`` from its own stream
  seeded by ``(seed, i)`` (``fuzzer.models``), in the driver, and only checking is
  distributed: the seed space is partitioned by case index, so one seed gives the same
  cases whatever the number of nodes or actors (only the order in which results arrive
  differs), and resume (``next_index``) works as on one machine.
- **The driver owns the campaign folder.** Results (verdicts, the arcs a case added)
  stream back to the driver, which deduplicates bugs by signature, reduces them and writes
  ``campaign.json`` and ``bugs/`` as a local campaign does. Reduction after the loop runs
  through the same actors (``check``).

``ray`` alone starts a private local Ray instance with one CPU per worker (stopped at
the end); ``ray:HOST:PORT`` (or ``ray:auto``) joins a running cluster, whose nodes need
the same dlfuzz install (the driver's DLFUZZ_* variables and ``sys.path`` entries that
exist on a node are passed to its actors). Ray is an optional extra (``pip install -e
'.[ray]'``), imported only here and only when a cluster is used.
"""

from __future__ import annotations

import collections
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from corpus.case import Case
from oracles.backends import validate_backends
from oracles.sandbox import MAX_CASES_PER_WORKER, MAX_START_FAILURES, STARTUP_TIMEOUT_S, Sandbox, WorkerStartError
from oracles.verdict import CheckResult
from rules.spec import OpSpec

INSTALL_HINT = "pip install -e '.[ray]'"
LOST_TWICE = "Ray actor lost twice while checking the case"


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached: one line for the user."""


def import_ray():
    """The ``ray`` module, or :class:`RayUnavailable` saying what to install."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable(f"--cluster ray needs the Ray package, which is not installed ({e}); "
                             f"install the extra with {INSTALL_HINT}") from None
    return ray


# ---- the actor: a one-worker sandbox on some node ---------------------------------------

class _Host:
    """What each Ray actor runs (wrapped by ``ray.remote`` at run time)."""

    def __init__(self, backends: list[str], specs: Mapping[str, OpSpec] | None, timeout_s: float,
                 startup_timeout_s: float, max_cases_per_worker: int, log_dir: str, env: dict[str, str],
                 path: list[str]) -> None:
        for p in reversed(path):  # the driver's paths that exist here (a user's backend modules)
            if p and p not in sys.path and os.path.isdir(p):
                sys.path.insert(0, p)
        try:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
        except OSError:  # another node's path: logs stay on this node
            log_dir = tempfile.mkdtemp(prefix="dlfuzz-ray-")
        self.sandbox = Sandbox(backends, timeout_s=timeout_s, workers=1, specs=specs,
                               startup_timeout_s=startup_timeout_s, max_cases_per_worker=max_cases_per_worker,
                               log_dir=log_dir, worker_env=env)

    def check(self, case_data: dict, timeout_s: float) -> tuple[dict, int | None, list[int], str]:
        """(result, arcs the case added or None, the sandbox worker's pids, this node's IP)."""
        import socket

        self.sandbox.timeout_s = timeout_s
        case = Case.from_json(case_data)
        result = self.sandbox.check(case)
        arcs = self.sandbox.new_arcs.pop(id(case), None)
        return result.to_json(), arcs, sorted(self.sandbox.worker_pids()), socket.gethostname()

    def close(self) -> None:
        self.sandbox.close()


# ---- the driver side ----------------------------------------------------------------------

@dataclass
class _Call:
    case: Case
    attempts: int = 0
    slot: int = -1
    deadline: float = 0.0


class RaySandbox:
    """Check cases on ``backends`` (the first is the reference) in ``workers`` Ray actors."""

    def __init__(self, backends: Sequence[str], timeout_s: float = 60.0, workers: int = 1, *,
                 address: str | None = None, specs: Mapping[str, OpSpec] | None = None,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S, max_cases_per_worker: int = MAX_CASES_PER_WORKER,
                 log_dir: Path | str | None = None, worker_env: Mapping[str, str] | None = None) -> None:
        validate_backends(list(backends))
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.ray = ray = import_ray()
        self.backends = [b.strip() for b in backends]
        self.timeout_s = float(timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self.address = address
        self.restarts = 0  # actors replaced (killed, died, overdue)
        self.start_failures = 0  # actors in a row that died before returning anything
        self.new_arcs: dict[int, int] = {}
        self.nodes: set[str] = set()  # hosts that returned results
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="dlfuzz-workers-"))
        self._owns_ray = False
        if not ray.is_initialized():
            try:
                if address is None:
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                             configure_logging=False, namespace="dlfuzz")
                else:
                    ray.init(address=address, log_to_driver=False, configure_logging=False, namespace="dlfuzz")
            except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError ... one line
                where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
                raise RayUnavailable(f"cannot {where} ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                                     f"check the address (ray status on the head node) or use --cluster local") from None
            self._owns_ray = True
        env = {k: v for k, v in os.environ.items() if k.startswith("DLFUZZ_")}
        env.update(worker_env or {})
        self._actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Host)
        self._actor_args = (self.backends, ray.put(dict(specs)) if specs is not None else None, self.timeout_s,
                            self.startup_timeout_s, max_cases_per_worker, env, list(sys.path))
        self._token = secrets.token_hex(3)
        self._made = 0
        self._actors: list[Any] = [None] * workers
        self._served: list[int] = [0] * workers  # results from each slot's current actor
        self._pids: list[list[int]] = [[] for _ in range(workers)]
        self._inflight: dict[Any, _Call] = {}  # ObjectRef -> call

    # -- public API -------------------------------------------------------------------------
    def check(self, case: Case) -> CheckResult:
        for _, result in self.check_many([case]):
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def check_many(self, cases: Iterable[Case]) -> Iterator[tuple[Case, CheckResult]]:
        """Check every case, yielding ``(case, result)`` in completion order; cases are
        drawn from ``cases`` only when an actor is free. Stopping early kills the actors
        with a case in flight (they are replaced on the next call)."""
        ray = self.ray
        source = iter(cases)
        exhausted = False
        retry: collections.deque[_Call] = collections.deque()
        try:
            while True:
                busy = {c.slot for c in self._inflight.values()}
                for slot in range(len(self._actors)):
                    if slot in busy:
                        continue
                    call = retry.popleft() if retry else None
                    if call is None and not exhausted:
                        case = next(source, None)
                        if case is None:
                            exhausted = True
                        else:
                            call = _Call(case)
                    if call is None:
                        break
                    self._submit(slot, call)
                if not self._inflight:
                    return
                now = time.monotonic()
                wait = max(0.0, min(c.deadline for c in self._inflight.values()) - now)
                ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=wait)
                for ref in ready:
                    call = self._inflight.pop(ref)
                    try:
                        data, arcs, pids, node = ray.get(ref)
                    except ray.exceptions.RayActorError as e:
                        lost = self._lost(call, f"{type(e).__name__}: {_first_line(e)}", retry)
                        if lost is not None:
                            yield lost
                        continue
                    except ray.exceptions.RayTaskError as e:
                        if isinstance(getattr(e, "cause", None), WorkerStartError):
                            raise WorkerStartError(str(e.cause)) from None
                        raise
                    self._served[call.slot] += 1
                    self.start_failures = 0
                    self._pids[call.slot] = pids
                    self.nodes.add(node)
                    if arcs is not None:
                        self.new_arcs[id(call.case)] = arcs
                    yield call.case, CheckResult.from_json(data)
                now = time.monotonic()
                for ref, call in list(self._inflight.items()):
                    if now >= call.deadline:  # the actor itself is stuck: its sandbox would have answered
                        del self._inflight[ref]
                        ray.kill(self._actors[call.slot])
                        lost = self._lost(call, "no answer from the Ray actor by its deadline", retry)
                        if lost is not None:
                            yield lost
        finally:
            for ref, call in list(self._inflight.items()):  # abandoned mid-case
                self._kill(call.slot)
            self._inflight.clear()

    def kill_actor(self, slot: int | None = None) -> bool:
        """Kill one actor (``slot``, or the first with a case in flight) as a lost node
        would: for tests and drills. False if there was none to kill."""
        if slot is None:
            slot = next((c.slot for c in self._inflight.values()), None)
        if slot is None or self._actors[slot] is None:
            return False
        self.ray.kill(self._actors[slot], no_restart=True)
        return True

    def worker_pids(self) -> set[int]:
        """The sandbox workers' process ids, as their actors last reported them (on a
        cluster, each on its own node)."""
        return {p for slot, pids in enumerate(self._pids) if self._actors[slot] is not None for p in pids}

    def close(self) -> None:
        ray = self.ray
        closing = [a.close.remote() for a in self._actors if a is not None]
        try:
            ray.wait(closing, num_returns=len(closing), timeout=15)
        except Exception:  # noqa: BLE001 - dead actors
            pass
        for slot in range(len(self._actors)):
            self._kill(slot)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> "RaySandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> dict:
        """What campaign.json records of the cluster."""
        return {"kind": "ray", "address": self.address or "local", "actors": len(self._actors),
                "nodes": len(self.nodes), "actor_restarts": self.restarts}

    # -- internals ----------------------------------------------------------------------------
    def _actor(self, slot: int):
        if self._actors[slot] is None:
            self._made += 1
            backends, specs, timeout_s, startup, per_worker, env, path = self._actor_args
            log_dir = str(self.log_dir / f"ray-{slot}")
            self._actors[slot] = self._actor_class.options(
                name=f"dlfuzz-{self._token}-{slot}-{self._made}", scheduling_strategy="SPREAD",
            ).remote(backends, specs, timeout_s, startup, per_worker, log_dir, env, path)
            self._served[slot] = 0
            self._pids[slot] = []
        return self._actors[slot]

    def _submit(self, slot: int, call: _Call) -> None:
        call.slot = slot
        call.attempts += 1
        # the actor's sandbox answers within a worker start and a timeout per backend
        # (each lost step goes to a fresh worker); past that the actor itself is stuck
        call.deadline = time.monotonic() + len(self.backends) * (self.startup_timeout_s + self.timeout_s) + 60
        ref = self._actor(slot).check.remote(call.case.to_json(), self.timeout_s)
        self._inflight[ref] = call

    def _kill(self, slot: int) -> None:
        actor = self._actors[slot]
        self._actors[slot] = None
        self._pids[slot] = []
        if actor is not None:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def _lost(self, call: _Call, message: str, retry: collections.deque) -> tuple[Case, CheckResult] | None:
        """The actor holding ``call`` died: replace it; the case goes to another actor
        once, and comes back invalid the second time."""
        served = self._served[call.slot]
        self._kill(call.slot)
        self.restarts += 1
        if served == 0:
            self.start_failures += 1
            if self.start_failures >= MAX_START_FAILURES:
                raise WorkerStartError(f"Ray actors for {','.join(self.backends)} died before returning a result "
                                       f"{self.start_failures} times in a row ({message}); their sandbox logs are "
                                       f"under {self.log_dir}/ray-* on their nodes, Ray's under /tmp/ray/session_latest/logs")
        if call.attempts < 2:
            retry.append(call)
            return None
        return call.case, CheckResult(False, f"{LOST_TWICE} ({message})")


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""
