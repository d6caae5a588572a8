"""Run checks in child processes with a per-case timeout (DESIGN §6).

A backend that segfaults, calls ``abort()`` or hangs must not take the campaign with it.
A :class:`Sandbox` keeps a pool of persistent worker processes (``python -m
oracles.sandbox``: no state forked from the parent, messages pickled over two pipes),
each with its frameworks imported once, single-threaded. For each case the worker reports its progress (``backend X, stage
compile``) to the parent before every step and streams verdicts as they are known. When
the worker dies by a signal the parent turns the step in flight into an ``abort``
verdict; when the case runs past ``timeout_s`` the parent kills the worker and makes it a
``timeout`` verdict. Backends not yet run go to a fresh worker (with the reference re-run
there, to compare against), so one crash hides no other verdict. The caller never sees a
dead worker: it is replaced on the next case.

    with Sandbox(["torch.eager", "torch.compile"], timeout_s=60, workers=2) as sandbox:
        result = sandbox.check(case)
        for case, result in sandbox.check_many(generate_cases()):
            ...
"""

from __future__ import annotations

import collections
import multiprocessing.connection
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from corpus.case import Case
from oracles.backends import resolve, validate_backends
from oracles.verdict import CheckResult, Verdict, exception_message
from rules.spec import OpSpec

Connection = multiprocessing.connection.Connection

STARTUP_TIMEOUT_S = 300.0  # importing the frameworks on a busy machine
MAX_CASES_PER_WORKER = 500  # then a fresh worker: compilers' caches and leaks stay bounded
# Workers that die before they are ready, this many times in a row with none ready in
# between, mean the sandbox cannot test at all (a broken install, an unpicklable spec):
# the caller gets a WorkerStartError instead of a stream of invalid cases.
MAX_START_FAILURES = 3


class WorkerStartError(RuntimeError):
    """Sandbox workers die before they are ready: nothing can be checked. The message is
    one line: what died, the last line the worker wrote (its traceback's last line), and
    the log file that holds the whole of it."""


def last_line(path: "os.PathLike[str] | str | None") -> str:
    """The last non-blank line of a worker's log (a traceback's ``Error: message``)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


# ---- the worker (child process) --------------------------------------------------------

def _quiet_frameworks(frameworks: Sequence[str]) -> None:
    import logging

    if "torch" in frameworks:
        import torch._logging

        torch._logging.set_logs(dynamo=logging.ERROR, aot=logging.ERROR, inductor=logging.ERROR)
        try:
            import torch._inductor.config as inductor_config

            inductor_config.compile_threads = 1  # workers are the parallelism; no compile pools
        except ImportError:  # pragma: no cover
            pass
    if "tensorflow" in frameworks:
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)


def _worker_main(conn_in: Any, conn_out: Any, meter: Any = None) -> None:
    """The worker loop: set up once, then check cases until told to stop or orphaned.
    ``meter``: coverage of the backends (``oracles.sut_coverage``), started before this."""
    _, backends, specs, path = conn_in.recv()
    sys.path[:] = path  # the parent's: its packages and a user's backend modules import alike
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from oracles.check import check_case
    from rules.execute import setup_framework

    if specs is None:
        from rules.specs import SPECS as specs  # noqa: N811
    frameworks = list(dict.fromkeys(resolve(b).framework for b in backends))
    for fw in frameworks:
        setup_framework(fw)
    _quiet_frameworks(frameworks)
    if meter is not None:
        meter.ready()
    conn_out.send(("ready",))
    while True:
        try:
            msg = conn_in.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if msg[0] == "stop":
            return
        _, job, case_data, skip = msg
        conn_out.send(("begin", job))
        try:
            case = Case.from_json(case_data)
            result = check_case(case, backends, specs, skip=skip,
                                progress=lambda b, s: conn_out.send(("stage", job, b, s)),
                                on_verdict=lambda v: conn_out.send(("verdict", job, v.to_json())))
        except Exception as e:  # noqa: BLE001 - a failure of dlfuzz itself, reported as such
            conn_out.send(("error", job, exception_message(e)))
            continue
        if meter is not None:  # the arcs this case added, before its result
            conn_out.send(("coverage", job, meter.after_case()))
        conn_out.send(("done", job, result.to_json()))


# ---- the parent side -------------------------------------------------------------------

@dataclass
class _Job:
    id: int
    case: Case
    skip: tuple[str, ...] = ()
    prior: list[Verdict] = field(default_factory=list)  # verdicts from earlier workers
    received: list[Verdict] = field(default_factory=list)
    backend: str = ""  # the step in flight
    stage: str = ""
    deadline: float | None = None
    sent_at: float = 0.0
    begun_at: float = 0.0  # when the worker began it (after its start-up, for a fresh worker)
    new_arcs: int | None = None  # coverage the case added (workers measuring coverage only)


class _Worker:
    """A child ``python -m oracles.sandbox``, talking over two pipes of its own (stdout
    stays free for whatever backends print). A subprocess rather than multiprocessing's
    spawn, which would re-import the caller's ``__main__`` in every worker."""

    def __init__(self, backends: list[str], specs: Mapping[str, OpSpec] | None, log: Path | None = None,
                 env_extra: Mapping[str, str] | None = None) -> None:
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            env.setdefault(var, "1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env.update(env_extra or {})
        # What the worker and the models under test print (warnings, C++ aborts,
        # tracebacks) goes to its log, never to the user's terminal.
        self.log = log
        sink = open(log, "ab") if log is not None else None
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "oracles.sandbox", str(down_r), str(up_w)],
                                         pass_fds=(down_r, up_w), stdin=subprocess.DEVNULL, env=env,
                                         stdout=sink, stderr=sink)
        finally:
            os.close(down_r)
            os.close(up_w)
            if sink is not None:
                sink.close()
        self.tx = Connection(down_w, readable=False)
        self.conn = Connection(up_r, writable=False)
        self.tx.send(("init", backends, specs, list(sys.path)))
        self.ready = False
        self.cases = 0
        self.job: _Job | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, job: _Job) -> None:
        self.job = job
        self.cases += 1
        job.sent_at = time.monotonic()
        job.received, job.backend, job.stage, job.deadline, job.begun_at = [], "", "", None, 0.0
        try:
            self.tx.send(("check", job.id, job.case.to_json(), list(job.skip)))
        except OSError:
            pass  # a dead worker: its pipe reads EOF next, and the job is handled as lost

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state)
            pass
        self.tx.close()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.tx.send(("stop",))
            self.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"worker exited with code {code}"


class Sandbox:
    """Check cases on ``backends`` (the first is the reference) in worker processes."""

    def __init__(self, backends: Sequence[str], timeout_s: float = 60.0, workers: int = 1, *,
                 specs: Mapping[str, OpSpec] | None = None, startup_timeout_s: float = STARTUP_TIMEOUT_S,
                 max_cases_per_worker: int = MAX_CASES_PER_WORKER, log_dir: Path | str | None = None,
                 worker_env: Mapping[str, str] | None = None) -> None:
        validate_backends(list(backends))  # BackendError before any worker starts
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.backends = [b.strip() for b in backends]
        self.timeout_s = float(timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self.max_cases_per_worker = max_cases_per_worker
        self._specs = specs
        self._slots: list[_Worker | None] = [None] * workers
        self._next_id = 0
        self._retry: collections.deque[_Job] = collections.deque()
        self.restarts = 0  # workers replaced after an abort, a timeout or a failed start
        self.start_failures = 0  # workers in a row that died before they were ready
        self._worker_env = dict(worker_env or {})  # e.g. oracles.sut_coverage.worker_env
        self.new_arcs: dict[int, int] = {}  # id(case) -> arcs it added, while measuring coverage (the caller pops)
        self.job_seconds: dict[int, float] = {}  # id(case) -> its worker's time on it, while measuring (the caller pops)
        # Workers' output goes to log_dir/worker-<slot>.log (a fresh temporary folder if
        # none is given), so that a failed start can say what went wrong and where.
        # A temporary folder is removed on close, unless a worker failed to start (its
        # error names the log to read).
        self._own_log_dir = log_dir is None
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="dlfuzz-workers-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)

    # -- public API ---------------------------------------------------------------------
    def check(self, case: Case) -> CheckResult:
        for _, result in self.check_many([case]):
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def check_many(self, cases: Iterable[Case]) -> Iterator[tuple[Case, CheckResult]]:
        """Check every case, yielding ``(case, result)`` in completion order. Cases are
        drawn from ``cases`` only when a worker is free, so a generator may produce them
        lazily; stopping the iteration early kills the cases in flight."""
        source = iter(cases)
        exhausted = False
        try:
            while True:
                for i, w in enumerate(self._slots):
                    if w is not None and w.job is not None:
                        continue
                    job = self._retry.popleft() if self._retry else None
                    if job is None and not exhausted:
                        case = next(source, None)
                        if case is None:
                            exhausted = True
                        else:
                            job = self._new_job(case)
                    if job is None:
                        break
                    self._worker(i).send(job)
                if not any(w is not None and w.job is not None for w in self._slots):
                    return
                for job, result in self._pump():
                    if job.new_arcs is not None:
                        self.new_arcs[id(job.case)] = job.new_arcs
                        self.job_seconds[id(job.case)] = time.monotonic() - (job.begun_at or job.sent_at)
                    yield job.case, result
        finally:
            for i, w in enumerate(self._slots):
                if w is not None and w.job is not None:  # abandoned mid-case
                    w.kill()
                    self._slots[i] = None
            self._retry.clear()

    def worker_pids(self) -> set[int]:
        return {w.proc.pid for w in self._slots if w is not None and w.alive()}

    def close(self) -> None:
        for i, w in enumerate(self._slots):
            if w is not None:
                w.stop()
                self._slots[i] = None
        if self._own_log_dir and not self.start_failures:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            for w in self._slots:
                if w is not None:
                    w.kill()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- internals ------------------------------------------------------------------------
    def _new_job(self, case: Case) -> _Job:
        self._next_id += 1
        return _Job(self._next_id, case)

    def _worker(self, i: int) -> _Worker:
        w = self._slots[i]
        if w is not None and (not w.alive() or w.cases >= self.max_cases_per_worker):
            w.stop()
            w = None
        if w is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)  # (a sandbox used again after close)
            w = _Worker(self.backends, self._specs, self.log_dir / f"worker-{i}.log", self._worker_env)
            self._slots[i] = w
        return w

    def _pump(self) -> list[tuple[_Job, CheckResult]]:
        """Wait for messages or a deadline; return the jobs that finished."""
        busy = [w for w in self._slots if w is not None and w.job is not None]
        now = time.monotonic()
        deadlines = [self._deadline(w) for w in busy]
        wait = max(0.0, min(deadlines) - now) if deadlines else None
        ready = multiprocessing.connection.wait([w.conn for w in busy], timeout=wait)
        done: list[tuple[_Job, CheckResult]] = []
        for w in busy:
            if w.conn in ready:
                try:
                    while w.job is not None and w.conn.poll():
                        finished = self._handle(w, w.conn.recv())
                        if finished is not None:
                            done.append(finished)
                except (EOFError, OSError):
                    finished = self._lost(w, "abort", w.death())
                    if finished is not None:
                        done.append(finished)
                    continue
            if w.job is not None and time.monotonic() >= self._deadline(w):
                started = w.job.deadline is not None
                w.kill()
                what = (f"no result after {self.timeout_s:g}s" if started
                        else f"worker did not start within {self.startup_timeout_s:g}s")
                finished = self._lost(w, "timeout", what)
                if finished is not None:
                    done.append(finished)
        return done

    def _deadline(self, w: _Worker) -> float:
        job = w.job
        assert job is not None
        return job.deadline if job.deadline is not None else job.sent_at + self.startup_timeout_s

    def _handle(self, w: _Worker, msg: tuple) -> tuple[_Job, CheckResult] | None:
        job = w.job
        assert job is not None
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            self.start_failures = 0
        elif kind == "begin":
            job.begun_at = time.monotonic()
            job.deadline = job.begun_at + self.timeout_s
        elif kind == "stage":
            job.backend, job.stage = msg[2], msg[3]
        elif kind == "verdict":
            job.received.append(Verdict.from_json(msg[2]))
        elif kind == "coverage":
            job.new_arcs = msg[2]
        elif kind == "error":
            w.job = None
            return job, CheckResult(False, f"internal error while checking: {msg[2]}", tuple(job.prior))
        elif kind == "done":
            w.job = None
            return job, self._merge(job, CheckResult.from_json(msg[2]))
        return None

    def _merge(self, job: _Job, result: CheckResult) -> CheckResult:
        if not job.prior:
            return result
        # a continuation: the reference ran cleanly before; keep its first verdict
        new = [v for v in result.verdicts if v.backend != self.backends[0]]
        return CheckResult(True, "", self._ordered(job.prior + new), result.excused)

    def _ordered(self, verdicts: list[Verdict]) -> tuple[Verdict, ...]:
        rank = {b: i for i, b in enumerate(self.backends)}
        return tuple(sorted(verdicts, key=lambda v: rank.get(v.backend, len(rank))))

    def _lost(self, w: _Worker, status: str, message: str) -> tuple[_Job, CheckResult] | None:
        """The worker died or was killed mid-case: a verdict for the step in flight, and
        the backends not yet run go to a fresh worker."""
        job = w.job
        assert job is not None
        w.job = None
        w.kill()
        self.restarts += 1
        if not w.ready:
            self.start_failures += 1
            if self.start_failures >= MAX_START_FAILURES:
                detail = last_line(w.log)
                raise WorkerStartError(
                    f"sandbox workers for {','.join(self.backends)} died at start-up {self.start_failures} times "
                    f"in a row ({message}){f': {detail}' if detail else ''}; the full log is {w.log}")
        if job.deadline is None or not job.backend:
            return job, CheckResult(False, f"sandbox worker failed before the case started ({message})", tuple(job.prior))
        check, _, stage = job.stage.rpartition("/")  # "dynamic/run": the plan's check, then the stage
        lost = Verdict(job.backend, status, stage or "compile", message,
                       seconds=time.monotonic() - (job.deadline - self.timeout_s), check=check or "forward")
        reference = self.backends[0]
        if job.backend == reference and not job.prior:
            what = "aborted" if status == "abort" else "timed out"
            return job, CheckResult(False, f"reference {reference} {what} at {lost.stage}: {message}", (lost,))
        judged = job.prior + [v for v in job.received if not (job.prior and v.backend == reference)] + [lost]
        done = {v.backend for v in judged} | set(job.skip)
        remaining = [b for b in self.backends[1:] if b not in done]
        if remaining:
            skip = tuple(b for b in self.backends[1:] if b not in remaining)
            self._retry.append(_Job(job.id, job.case, skip, judged))
            return None
        return job, CheckResult(True, "", self._ordered(judged))


if __name__ == "__main__":
    from oracles.sut_coverage import WorkerMeter

    _meter = WorkerMeter.from_env()  # started before any framework is imported
    try:
        _worker_main(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False), _meter)
    finally:
        if _meter is not None:
            _meter.close()
