"""``collect()``: run one source for one framework into a corpus file, within a time limit.

The in-process sources (``opinfo``, ``doctest``) run in a supervised child (``child.py``):
when it dies (a crash in native code, a hang stopped by its watchdog) it is restarted and
skips, through the progress table, what is done and what failed; ``mutate`` and
``probe`` (TensorFlow's public functions called from their signatures) run here with
their worker pool; ``script:COMMAND`` runs COMMAND in a traced child. Every source
stops cleanly at the deadline and keeps what it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable

from corpus.collect import FRAMEWORKS
from corpus.store import CorpusStore

MAX_RESTARTS = 100


class CollectError(ValueError):
    """A collection that cannot start; one line for the user."""


def _counts(store: CorpusStore, framework: str) -> tuple[int, int]:
    return store.count(framework), store.count(framework, ok=True)


def _child_env() -> dict:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _supervise(config: dict, deadline: float | None, log: Callable[[str], None]) -> dict:
    """Run child.py until it completes, restarting it when it dies."""
    fd, summary_path = tempfile.mkstemp(prefix="dlfuzz-collect-", suffix=".json")
    os.close(fd)
    config = dict(config, summary=summary_path, deadline=deadline)
    totals: dict = {"restarts": 0, "exit_codes": []}
    try:
        while True:
            with open(summary_path, "w"):
                pass
            proc = subprocess.Popen([sys.executable, "-m", "corpus.collect.child", json.dumps(config)],
                                    env=_child_env(), stdout=subprocess.DEVNULL,
                                    stderr=None if config.get("verbose") else subprocess.DEVNULL)
            try:
                timeout = None if deadline is None else max(1.0, deadline - time.time() + 30)
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
                totals["stopped"] = "time"
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            try:
                with open(summary_path) as f:
                    text = f.read()
                part = json.loads(text) if text.strip() else None
            except (OSError, json.JSONDecodeError):
                part = None
            if part is not None:
                for k, v in part.items():
                    if isinstance(v, int) and not isinstance(v, bool) and k not in ("units", "skipped_done", "skipped_failed"):
                        totals[k] = totals.get(k, 0) + v
                    else:
                        totals[k] = v
            if code == 0 and part is not None:
                return totals
            totals["restarts"] += 1
            totals["exit_codes"].append(code)
            if totals["exit_codes"][-2:] == [1, 1]:
                raise CollectError(f"the {config['source']} collection failed twice with a Python error; "
                                   "run again with --verbose to see it")
            log(f"collection child exited with code {code}; restarting (progress is kept)")
            if deadline is not None and time.time() > deadline:
                totals["stopped"] = "time"
                return totals
            if totals["restarts"] > MAX_RESTARTS:
                totals["stopped"] = "too many restarts"
                return totals
    finally:
        try:
            os.unlink(summary_path)
        except OSError:
            pass


def collect(framework: str, source: str, db: str, time_limit: float | None = None, only: list[str] | None = None,
            samples: int = 12, workers: int = 1, op_time: float = 30.0, call_timeout: float = 10.0,
            unit_timeout: float = 120.0, modules: bool = True, verbose: bool = False,
            log: Callable[[str], None] | None = None) -> dict:
    """Collect records; returns a summary (new records, valid/invalid, seconds, source figures)."""
    log = log or (lambda msg: print(msg, file=sys.stderr) if verbose else None)
    if framework not in FRAMEWORKS:
        raise CollectError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
    start = time.time()
    deadline = None if time_limit is None else start + time_limit
    store = CorpusStore(db)
    n0, v0 = _counts(store, framework)
    try:
        if source in ("opinfo", "doctest"):
            if source == "opinfo" and framework != "torch":
                raise CollectError("the opinfo source is PyTorch's OpInfo database: use it with --framework torch")
            config = {"framework": framework, "source": source, "db": os.path.abspath(db), "only": only,
                      "samples": samples, "unit_timeout": unit_timeout, "modules": modules, "verbose": verbose}
            figures = _supervise(config, deadline, log)
        elif source == "mutate":
            from corpus.collect import mutate

            figures = mutate.run(store, framework, deadline, workers=workers, op_time=op_time, call_timeout=call_timeout,
                                 only=set(only) if only else None, log=log if verbose else None).to_json()
        elif source == "probe":
            if framework != "tensorflow":
                raise CollectError("the probe source calls TensorFlow's public functions: use it with "
                                   "--framework tensorflow")
            from corpus.collect import probe

            figures = probe.run(store, framework, deadline, workers=workers, call_timeout=call_timeout,
                                only=set(only) if only else None, log=log if verbose else None).to_json()
        elif source.startswith("script:"):
            from corpus.collect import script

            try:
                figures = script.run(framework, source[len("script:"):], db, deadline)
            except script.ScriptCommandError as e:
                raise CollectError(str(e)) from None
        else:
            raise CollectError(f"unknown source {source!r}; expected opinfo, doctest, mutate, probe or script:COMMAND")
        n1, v1 = _counts(store, framework)
    finally:
        store.close()
    seconds = time.time() - start
    return {
        "framework": framework, "source": source, "seconds": round(seconds, 2),
        "new_records": n1 - n0, "new_valid": v1 - v0, "new_invalid": (n1 - n0) - (v1 - v0),
        "records_per_second": round((n1 - n0) / seconds, 1) if seconds > 0 else 0.0,
        "stopped": figures.get("stopped", "complete"), "total_records": n1, "details": figures,
    }
