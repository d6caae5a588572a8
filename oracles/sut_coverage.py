"""Coverage of the system under test, measured inside each sandbox worker (DESIGN §8).

The compilers under test are Python as much as C++ (Dynamo, AOT autograd, Inductor;
TensorFlow's tracing). With ``dlfuzz fuzz --coverage`` every sandbox worker runs
coverage.py (``branch=True``) over the compiler's own package folders, started before
the worker imports any framework, so that import-time lines count as they do in a plain
``coverage run``. Each worker writes its own data file, ``OUT/coverage/worker-<pid>.cov``
(coverage.py's SQLite format), flushed after every case: the file on disk is never more
than one case behind, and a worker killed by a hang or an abort loses only the case in
flight. The parent combines the files (``reports.coverage_totals``).

Per case, the worker reports how many arcs the case added: the data file's arc count
after the flush, minus before. A worker starts from the campaign's combined data
(``OUT/coverage/campaign.cov``, when there is one), so a restarted worker does not count
the arcs of its own imports and first compile as new again.

Source folders are paths, never dotted names: coverage.py takes a name that is not an
existing folder for a package to import, which would import torch before measuring it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

ENV = "DLFUZZ_COVERAGE"  # the worker's coverage settings, JSON: {"sources": [...], "dir": ..., "base": ...}
COMBINED = "campaign.cov"  # the campaign's combined data, in OUT/coverage
WORKER_PREFIX = "worker-"


def package_dir(package: str, *sub: str) -> str | None:
    """The folder of ``package`` (a top-level package) joined with ``sub``, if it exists.
    Finds the package without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in locations:
        path = os.path.join(root, *sub)
        if os.path.isdir(path):
            return path
    return None


def default_sources(backends: Sequence[str]) -> list[str]:
    """The compiler packages of the backends under test (eager references add none):
    ``torch.compile`` (Inductor): torch/_inductor and torch/_dynamo; another
    ``torch.compile:NAME``: torch/_dynamo, and torch/_functorch for the ``aot_*``
    backends; ``torch.jit``: torch/jit; ``torch.export``: torch/export and torch/_dynamo;
    ``tf.function``: tensorflow/python/eager/polymorphic_function; ``tf.xla``: that,
    tensorflow/compiler and tensorflow/python/compiler. Folders that do not exist in the
    installed versions are left out."""
    wanted: list[tuple[str, ...]] = []
    for name in backends:
        family, _, option = name.strip().partition(":")
        if family == "torch.compile":
            if option in ("", "inductor"):
                wanted += [("torch", "_inductor"), ("torch", "_dynamo")]
            else:
                wanted += [("torch", "_dynamo")] + ([("torch", "_functorch")] if option.startswith("aot") else [])
        elif family == "torch.jit":
            wanted.append(("torch", "jit"))
        elif family == "torch.export":
            wanted += [("torch", "export"), ("torch", "_dynamo")]
        elif family == "tf.function":
            wanted.append(("tensorflow", "python", "eager", "polymorphic_function"))
        elif family == "tf.xla":
            wanted += [("tensorflow", "python", "eager", "polymorphic_function"), ("tensorflow", "compiler"),
                       ("tensorflow", "python", "compiler")]
    out: list[str] = []
    for pkg, *sub in wanted:
        path = package_dir(pkg, *sub)
        if path is not None and path not in out:
            out.append(path)
    return out


def missing_sources(dirs: Iterable[str]) -> list[str]:
    return [d for d in dirs if not os.path.isdir(d)]


def worker_env(sources: Sequence[str], data_dir: Path) -> dict[str, str]:
    """The environment variable that makes a sandbox worker measure coverage."""
    base = Path(data_dir) / COMBINED
    return {ENV: json.dumps({"sources": [os.path.abspath(s) for s in sources], "dir": str(Path(data_dir).resolve()),
                             "base": str(base.resolve())})}


def arc_count(path: str | os.PathLike[str]) -> int:
    """Arcs in a coverage data file (0 before the first flush)."""
    try:
        con = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return 0
    try:
        return int(con.execute("select count(*) from arc").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        con.close()


class WorkerMeter:
    """coverage.py in one sandbox worker: ``start`` before the frameworks are imported,
    ``ready`` once they are (absorbs the import arcs and the campaign's combined data),
    ``after_case`` after each case (flushes; returns the arcs the case added), ``close``
    at exit."""

    def __init__(self, sources: Sequence[str], data_dir: str, base: str | None = None) -> None:
        import coverage

        self.path = os.path.join(data_dir, f"{WORKER_PREFIX}{os.getpid()}.cov")
        self.base = base
        os.makedirs(data_dir, exist_ok=True)
        for stale in (self.path,):  # a reused pid: its old data is in the combined file by now
            if os.path.exists(stale):
                os.unlink(stale)
        self.cov = coverage.Coverage(branch=True, source=list(sources), data_file=self.path, config_file=False,
                                     auto_data=False)
        self.arcs = 0
        self.flush_seconds = 0.0
        self.cases = 0

    @classmethod
    def from_env(cls) -> "WorkerMeter | None":
        text = os.environ.get(ENV)
        if not text:
            return None
        cfg = json.loads(text)
        meter = cls(cfg["sources"], cfg["dir"], cfg.get("base"))
        meter.cov.start()
        return meter

    def _flush(self) -> None:
        # coverage.py's public flush (get_data) also walks every source folder for files
        # never run, ~30 ms a call; the collector's own flush writes the same arcs.
        collector = getattr(self.cov, "_collector", None)
        flush = getattr(collector, "flush_data", None)
        if callable(flush):
            flush()
        else:  # pragma: no cover - another coverage.py version
            self.cov.get_data()

    def ready(self) -> None:
        self.cov.get_data()  # the import arcs, and the data file exists from here on
        if self.base and os.path.exists(self.base):
            from coverage import CoverageData

            try:
                base = CoverageData(basename=self.base)
                base.read()
                self.cov.get_data().update(base)
            except Exception:  # noqa: BLE001 - a damaged combined file: novelty is worker-local then
                pass
        self.arcs = arc_count(self.path)

    def after_case(self) -> int | None:
        """The arcs the case just run added; None if the flush failed (the data file was
        busy past SQLite's timeout: the arcs stay collected and go with the next flush)."""
        start = time.monotonic()
        self.cases += 1
        try:
            self._flush()
        except Exception:  # noqa: BLE001 - coverage.py's DataError, sqlite3's errors
            return None
        finally:
            self.flush_seconds += time.monotonic() - start
        arcs = arc_count(self.path)
        new, self.arcs = arcs - self.arcs, arcs
        return max(new, 0)

    def close(self) -> None:
        try:
            self.cov.stop()
            self.cov.save()
        except Exception:  # noqa: BLE001 - exiting; the last flushed case is on disk
            pass
        print(f"dlfuzz coverage: {self.cases} cases flushed in {self.flush_seconds:.2f} s, {self.arcs} arcs",
              file=sys.stderr, flush=True)
