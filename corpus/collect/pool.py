"""A pool of reusable sandbox workers (``worker.py``) with a per-call timeout.

``WorkerPool.run(tasks)`` keeps every worker busy with tasks drawn lazily from an
iterator and yields ``(task, result)`` as results arrive. A worker that dies mid-call
(a segfault, an abort) yields a ``crash`` result for that call and is replaced; a call
that runs past the timeout yields ``timeout`` and its worker is killed and replaced. A
dead worker never stops the pool: at worst its call is the one reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

STARTUP_TIMEOUT = 300.0


@dataclass
class Task:
    api: str
    args: list
    kwargs: dict
    seed: int = 0
    meta: Any = None  # the caller's


@dataclass
class Result:
    status: str  # ok | error | unusable | crash | timeout
    error: str | None = None
    outputs: Any = None
    seconds: float = 0.0


def call_digest(api: str, args: list, kwargs: dict) -> str:
    """A call's fingerprint: the sources' dedup key; its first 32 bits seed the call."""
    return hashlib.sha1(json.dumps([api, args, kwargs], sort_keys=True).encode()).hexdigest()


def task_for(api: str, args: list, kwargs: dict, meta: Any = None, digest: str | None = None) -> Task:
    digest = digest or call_digest(api, args, kwargs)
    return Task(api, args, kwargs, seed=int(digest[:8], 16), meta=meta)


def result_record(task: Task, res: Result, framework: str, source: str):
    """The TraceRecord of an answered call (``ok``, ``error``, or ``crash``, which is
    flagged); None for a timeout or an unusable call, which say nothing about the API."""
    from corpus.trace import TraceRecord

    if res.status not in ("ok", "error", "crash"):
        return None
    ok = res.status == "ok"
    return TraceRecord.make(task.api, framework, task.args, task.kwargs, res.outputs if ok else None, ok,
                            None if ok else res.error, source, res.status == "crash")


@dataclass
class _Worker:
    proc: subprocess.Popen
    buf: bytes = b""
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    task: Task | None = None
    task_id: int = 0
    since: float = 0.0


def _signal_name(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    def __init__(self, framework: str, size: int = 1, timeout: float = 10.0, env: dict | None = None) -> None:
        self.framework = framework
        self.size = max(1, size)
        self.timeout = timeout
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("OMP_NUM_THREADS", "1")
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (root, self.env.get("PYTHONPATH")) if p)
        self.workers: list[_Worker] = []
        self.next_id = 0
        self.crashes = 0
        self.timeouts = 0
        self.started = 0

    # -- workers ----------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        stderr = None if os.environ.get("DLFUZZ_WORKER_STDERR") else subprocess.DEVNULL
        proc = subprocess.Popen([sys.executable, "-m", "corpus.collect.worker", self.framework],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=self.env)
        self.started += 1
        return _Worker(proc)

    def _kill(self, w: _Worker) -> int | None:
        try:
            w.proc.kill()
        except OSError:
            pass
        for f in (w.proc.stdin, w.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            return w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        for w in self.workers:
            try:
                w.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 2
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill(w)
        self.workers = []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, w: _Worker, task: Task) -> bool:
        self.next_id += 1
        w.task, w.task_id, w.since = task, self.next_id, time.monotonic()
        line = json.dumps({"id": w.task_id, "api": task.api, "args": task.args, "kwargs": task.kwargs,
                           "seed": task.seed}) + "\n"
        try:
            w.proc.stdin.write(line.encode())
            w.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    # -- the loop ---------------------------------------------------------------------

    def run(self, tasks: Iterable[Task], deadline: float | None = None) -> Iterator[tuple[Task, Result]]:
        """Yield (task, result) for each task; stops drawing tasks at ``deadline`` (time.time())."""
        it = iter(tasks)
        exhausted = False
        while len(self.workers) < self.size:
            self.workers.append(self._spawn())
        while True:
            # hand out work
            if not exhausted:
                for w in self.workers:
                    if w.ready and w.task is None:
                        if deadline is not None and time.time() > deadline:
                            exhausted = True
                            break
                        try:
                            task = next(it)
                        except StopIteration:
                            exhausted = True
                            break
                        if not self._send(w, task):
                            yield from self._replace(w, "crash")
            busy = [w for w in self.workers if w.task is not None or not w.ready]
            if exhausted and not any(w.task is not None for w in self.workers):
                return
            # wait for output
            fds = {w.proc.stdout.fileno(): w for w in busy}
            timeout = 0.5
            now = time.monotonic()
            for w in busy:
                if w.task is not None:
                    timeout = min(timeout, max(0.0, w.since + self.timeout - now))
            readable = select.select(list(fds), [], [], timeout)[0] if fds else []
            for fd in readable:
                w = fds[fd]
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    yield from self._replace(w, "crash")
                    continue
                w.buf += chunk
                while b"\n" in w.buf:
                    line, w.buf = w.buf.split(b"\n", 1)
                    yield from self._handle(w, line)
            now = time.monotonic()
            for w in list(self.workers):
                if w.task is not None and now - w.since > self.timeout:
                    yield from self._replace(w, "timeout")
                elif not w.ready and now - w.started > STARTUP_TIMEOUT:
                    raise RuntimeError(f"a {self.framework} worker did not start in {STARTUP_TIMEOUT:.0f} s")

    def _handle(self, w: _Worker, line: bytes) -> Iterator[tuple[Task, Result]]:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return
        if msg.get("ready"):
            w.ready = True
            return
        if w.task is None or msg.get("id") != w.task_id:
            return
        task, w.task = w.task, None
        yield task, Result(msg.get("status", "error"), msg.get("error"), msg.get("outputs"), time.monotonic() - w.since)

    def _replace(self, w: _Worker, why: str) -> Iterator[tuple[Task, Result]]:
        task, since = w.task, w.since
        code = self._kill(w)
        self.workers[self.workers.index(w)] = self._spawn()
        if not w.ready and why == "crash":
            raise RuntimeError(f"a {self.framework} worker died while starting ({_signal_name(code)}); "
                               f"run with DLFUZZ_WORKER_STDERR=1 to see why")
        if task is None:
            return
        if why == "crash":
            self.crashes += 1
            yield task, Result("crash", f"WorkerCrash: the call killed its process ({_signal_name(code)})",
                               None, time.monotonic() - since)
        else:
            self.timeouts += 1
            yield task, Result("timeout", f"Timeout: the call ran past {self.timeout:g} s", None, time.monotonic() - since)
