"""Combining the sandbox workers' coverage data into line and branch figures (DESIGN §8).

Workers write coverage.py data files into ``OUT/coverage`` (``oracles.sut_coverage``).
:class:`CoverageTotals` keeps the union of their arcs in memory, folds in each file
again when asked (``combine``), and computes the figures coverage.py's own report
would give over the source folders: every ``.py`` file under them counts, also those
never imported (0%).

What makes this cheap enough to run every half minute: the static part of coverage.py's
analysis (each file's statements, possible arcs, exit counts: parsing ~470 files of
torch/_inductor and torch/_dynamo takes ~15 s) is computed once per installed file and
cached on disk (``$DLFUZZ_CACHE_DIR``, default ``~/.cache/dlfuzz/coverage-static``), keyed by
the file's size and modification time and coverage.py's version; the per-file figures
are recomputed only for files whose executed arcs changed. The figures themselves come
from coverage.py's ``Analysis``, so they agree with ``coverage report``.

``write`` saves the union as one coverage.py data file (``OUT/coverage/campaign.cov``):
``coverage report --data-file OUT/coverage/campaign.cov`` reads it, and a resumed
campaign starts from it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

Arc = tuple[int, int]
_STATIC_VERSION = 1


def cache_dir() -> Path:
    env = os.environ.get("DLFUZZ_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlfuzz"
    return base / "coverage-static"


def source_files(dirs: Iterable[str]) -> list[str]:
    """Every ``.py`` file under ``dirs`` (absolute, real paths as coverage.py records them), sorted."""
    out: set[str] = set()
    for d in dirs:
        for root, subdirs, files in os.walk(os.path.realpath(d)):
            subdirs[:] = sorted(s for s in subdirs if s != "__pycache__")
            out.update(os.path.join(root, f) for f in files if f.endswith(".py"))
    return sorted(out)


@dataclass
class StaticFile:
    """What coverage.py's analysis needs of a source file, without its text: a
    FileReporter stand-in for ``coverage.results.analysis_from_file_reporter``."""

    statements: set[int]
    excluded: set[int]
    multiline: dict[int, int]
    with_fixers: dict[Arc, Arc | None]
    possible_arcs: set[Arc]
    exits: dict[int, int]
    no_branch: set[int]

    @property
    def n_branches(self) -> int:
        return sum(n for n in self.exits.values() if n > 1)

    # -- the FileReporter methods the analysis calls ------------------------------------
    def lines(self) -> set[int]:
        return self.statements

    def excluded_lines(self) -> set[int]:
        return self.excluded

    def _first(self, line: int) -> int:
        return -self.multiline.get(-line, -line) if line < 0 else self.multiline.get(line, line)

    def translate_lines(self, lines: Iterable[int]) -> set[int]:
        return {self._first(n) for n in lines}

    def translate_arcs(self, arcs: Iterable[Arc]) -> set[Arc]:
        fixed = set()
        for arc in arcs:
            arc = self.with_fixers.get(arc, arc)
            if arc is not None:
                fixed.add((self._first(arc[0]), self._first(arc[1])))
        return fixed

    def arcs(self) -> set[Arc]:
        return self.possible_arcs

    def exit_counts(self) -> dict[int, int]:
        return self.exits

    def no_branch_lines(self) -> set[int]:
        return self.no_branch


def _parse(path: str, cov) -> StaticFile:
    from coverage.python import PythonFileReporter

    fr = PythonFileReporter(path, cov)
    statements = set(fr.lines())
    possible = set(fr.arcs())
    exits = dict(fr.exit_counts())
    return StaticFile(statements, set(fr.excluded_lines()), dict(fr.multiline_map()),
                      dict(getattr(fr.parser, "_with_jump_fixers", {}) or {}), possible, exits,
                      set(fr.no_branch_lines()))


def _empty() -> StaticFile:
    return StaticFile(set(), set(), {}, {}, set(), {}, set())


def load_static(dirs: Sequence[str], progress_every: float | None = None) -> dict[str, StaticFile]:
    """Static analysis of every source file under ``dirs``, from the disk cache where it
    is current (one cache file per folder), parsed and cached where not."""
    import coverage

    out: dict[str, StaticFile] = {}
    cov = None
    for d in dirs:
        real = os.path.realpath(d)
        key = hashlib.sha1(f"{real}|{coverage.__version__}|{_STATIC_VERSION}".encode()).hexdigest()[:16]
        path = cache_dir() / f"{os.path.basename(real)}-{key}.pickle"
        try:
            cached: dict[str, tuple[tuple[int, int], StaticFile]] = pickle.loads(path.read_bytes())
        except Exception:  # noqa: BLE001 - no cache yet, or a damaged one: parse again
            cached = {}
        fresh: dict[str, tuple[tuple[int, int], StaticFile]] = {}
        changed = False
        for f in source_files([real]):
            try:
                st = os.stat(f)
            except OSError:
                continue
            stamp = (st.st_size, st.st_mtime_ns)
            hit = cached.get(f)
            if hit is not None and hit[0] == stamp:
                fresh[f] = hit
                continue
            if cov is None:
                cov = coverage.Coverage(branch=True, data_file=None, config_file=False)
                cov._init()  # the file reporters read their exclusion patterns from its config
            try:
                fresh[f] = (stamp, _parse(f, cov))
            except Exception:  # noqa: BLE001 - coverage.py cannot parse it either: it reports no lines
                fresh[f] = (stamp, _empty())
            changed = True
        if changed or set(fresh) != set(cached):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(pickle.dumps(fresh, protocol=pickle.HIGHEST_PROTOCOL))
                os.replace(tmp, path)
            except OSError:
                pass  # no cache: the next campaign parses again
        out.update({f: s for f, (_, s) in fresh.items()})
    return out


class _Data:
    """The part of CoverageData that the analysis reads, over an in-memory arc set."""

    def __init__(self, arcs: dict[str, set[Arc]]) -> None:
        self._arcs = arcs

    def has_arcs(self) -> bool:
        return True

    def arcs(self, filename: str) -> list[Arc] | None:
        a = self._arcs.get(filename)
        return list(a) if a is not None else None

    def lines(self, filename: str) -> list[int] | None:
        a = self._arcs.get(filename)
        return None if a is None else list({n for arc in a for n in arc if n > 0})


@dataclass
class Totals:
    lines: int
    lines_total: int
    branches: int
    branches_total: int

    @property
    def lines_pct(self) -> float:
        return 100.0 * self.lines / self.lines_total if self.lines_total else 0.0

    @property
    def branches_pct(self) -> float:
        return 100.0 * self.branches / self.branches_total if self.branches_total else 0.0

    def to_json(self) -> dict:
        return {"lines_pct": round(self.lines_pct, 2), "branches_pct": round(self.branches_pct, 2),
                "lines": self.lines, "lines_total": self.lines_total, "branches": self.branches,
                "branches_total": self.branches_total}


class CoverageTotals:
    """The union of the arcs in a set of coverage data files, and its figures over
    ``sources``. Not thread-safe: one owner calls it."""

    def __init__(self, sources: Sequence[str]) -> None:
        self.sources = [os.path.realpath(s) for s in sources]
        self.arcs: dict[str, set[Arc]] = {}
        self._static: dict[str, StaticFile] | None = None
        self._per_file: dict[str, tuple[int, int, int]] = {}  # file -> (arcs seen, lines, branches)
        self.unreadable = 0  # data files that could not be read (a worker killed mid-write)

    @property
    def static(self) -> dict[str, StaticFile]:
        if self._static is None:
            self._static = load_static(self.sources)
        return self._static

    def add_file(self, path: str | os.PathLike[str]) -> bool:
        """Fold one coverage data file in; False if it cannot be read (left as it is)."""
        from coverage import CoverageData

        try:
            data = CoverageData(basename=os.fspath(path))
            data.read()
            for f in data.measured_files():
                arcs = data.arcs(f)
                if arcs:
                    self.arcs.setdefault(f, set()).update(arcs)
        except Exception:  # noqa: BLE001 - coverage.py's DataError, sqlite3's errors: skip this file now
            self.unreadable += 1
            return False
        return True

    def totals(self) -> Totals:
        from coverage.results import analysis_from_file_reporter

        static = self.static
        lines = branches = 0
        for f, arcs in self.arcs.items():
            s = static.get(f)
            if s is None:  # outside the sources (a path the folders do not hold)
                continue
            seen = self._per_file.get(f)
            if seen is None or seen[0] != len(arcs):
                a = analysis_from_file_reporter(_Data(self.arcs), 0, s, f)  # type: ignore[arg-type]
                n = a.numbers
                seen = (len(arcs), n.n_executed, n.n_executed_branches)
                self._per_file[f] = seen
            lines += seen[1]
            branches += seen[2]
        return Totals(lines, sum(len(s.statements) for s in static.values()), branches,
                      sum(s.n_branches for s in static.values()))

    def arc_count(self) -> int:
        return sum(len(a) for a in self.arcs.values())

    def write(self, path: Path) -> None:
        """Save the union as a coverage.py data file, atomically."""
        from coverage import CoverageData

        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        if tmp.exists():
            tmp.unlink()
        data = CoverageData(basename=str(tmp))
        data.add_arcs({f: sorted(a) for f, a in sorted(self.arcs.items())})
        data.touch_files(source_files(self.sources))  # never-run files count in `coverage report` too
        data.write()
        os.replace(tmp, path)

