"""The dlfuzz pytest plugin (DESIGN §7), registered as ``dlfuzz`` through the ``pytest11``
entry point; ``-p no:dlfuzz`` disables it.

For a backend author's own test suite:

* ``assert_backends_agree(case, backends)`` (a function here and a fixture of that name):
  check one model on backends (the first is the reference); fail with every verdict, a
  short reproducer and the path of a full ``repro.py``;
* ``fuzz_backends(backends, examples=50)``, the ``@pytest.mark.dlfuzz(backends=[...],
  examples=50, time="60s")`` marker and the ``--dlfuzz-backend NAME --dlfuzz-examples N
  [--dlfuzz-time 60s]`` options: Hypothesis draws models (``fuzzer.strategies.models``),
  shrinks a failing one and keeps it in its example database for the next run;
* ``--dlfuzz-replay DIR`` (a campaign's ``bugs/``, or one bug folder): each saved bug is
  a test item that fails while the bug is present; ``--dlfuzz-known FILE`` (the format of
  ``dlfuzz fuzz --ignore``) marks the bugs it lists xfail.

Loading the plugin imports pytest and the standard library only: dlfuzz, Hypothesis and
the frameworks are imported when a test uses them, so an unused plugin costs nothing at
collection. No state lives at module level, so pytest-xdist workers each keep their own.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import pytest

DEFAULT_EXAMPLES = 50
EAGER = {"torch": "torch.eager", "tensorflow": "tf.eager"}


# ---- checking one case -------------------------------------------------------------------

def failure_message(case, result, backends: Sequence[str], bug=None) -> str:
    """Every verdict, the short reproducer of the first failing one, and where the full
    standalone repro.py (and case.json) were written."""
    from fuzzer.api import specs_for
    from oracles.compare import tolerance
    from reports.repro import repro_source
    from reports.snippet import snippet

    graph = case.graph
    leaves = ", ".join(f"{graph.node(n).types[0]}" for n in graph.leaves())
    lines = [f"backends disagree on a {len(graph.op_nodes())}-operator {case.framework} model "
             f"({', '.join(graph.op_ids())}; inputs {leaves}):"]
    lines += [f"  {v.summary()}" for v in result.verdicts]
    bug = bug or result.bugs[0]
    specs = specs_for(case)
    tol = tolerance(bug.dtype or "float32")
    short = snippet(case, specs, backends[0], bug, tol)
    if short:
        lines += ["", "reproducer:", short]
    folder = Path(tempfile.mkdtemp(prefix="dlfuzz-failure-"))
    case.save(folder / "case.json")
    (folder / "repro.py").write_text(repro_source(case, specs, backends[0], bug.backend, bug.status,
                                                  output=bug.output, atol=tol[0], rtol=tol[1],
                                                  title="dlfuzz failure from a pytest run", check=bug.check,
                                                  message=bug.message))
    lines += ["", f"full reproducer: python {folder / 'repro.py'}  (case: {folder / 'case.json'})"]
    return "\n".join(lines)


def assert_backends_agree(case, backends: Sequence[str], *, timeout_s: float = 60.0, isolate: bool = False):
    """Check ``case`` on ``backends`` (the first is the reference: ``torch.eager``; the
    others any dlfuzz backend name, ``torch.compile:pkg.mod:fn`` for your own compiler, or
    ``pkg.mod:fn``, read as ``torch.compile:pkg.mod:fn``); return the CheckResult, or fail
    with the verdicts and a reproducer. ``isolate``: run in a sandbox worker, so that a
    segfault or a hang is a verdict instead of the end of the test session."""
    from fuzzer import api

    names = [normalize_backend(b) for b in backends]
    result = api.check(case, names, timeout_s=timeout_s, isolate=isolate)
    if not result.valid:
        raise AssertionError(f"the reference {names[0]} rejects the case: {result.invalid_reason}")
    if result.bugs:
        raise AssertionError(failure_message(case, result, names))
    return result


def normalize_backend(name: str) -> str:
    """``mypkg.mybackend:compile`` (a module path and a function) is a torch.compile backend."""
    from oracles.backends import BackendError, resolve

    name = name.strip()
    try:
        resolve(name)
        return name
    except BackendError:
        if ":" in name and not name.startswith(("torch.", "tf.")):
            return f"torch.compile:{name}"
        raise


# ---- fuzzing a backend -------------------------------------------------------------------

def fuzz_backends(backends: Sequence[str], examples: int = DEFAULT_EXAMPLES, time_s: float | None = None, *,
                  max_nodes: int = 5, ops: Sequence[str] = ("spec",), dtypes: Sequence[str] | None = None,
                  seed: int | None = None, isolate: bool = False, timeout_s: float = 60.0) -> None:
    """Check Hypothesis-drawn models on ``backends`` (a single name is compared with its
    framework's eager mode) for ``examples`` models, or until ``time_s`` is spent; a
    failure is shrunk and raised with its reproducer. ``seed``: a fixed Hypothesis seed
    (None: Hypothesis's own, and its database replays earlier failures first)."""
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import seed as fixed_seed

    from fuzzer import api
    from fuzzer.strategies import models

    names = [normalize_backend(b) for b in backends]
    if len(names) == 1:
        names.insert(0, EAGER[api.framework_of(names)[0]])
    framework = api.framework_of(names)[0]
    strategy = models(framework, max_nodes=max_nodes, ops=tuple(ops), dtypes=dtypes, backends=tuple(names))
    deadline = None if time_s is None else time.monotonic() + time_s

    def body(case) -> None:
        result = api.check(case, names, timeout_s=timeout_s, isolate=isolate)
        assume(result.valid)
        if result.bugs:
            raise AssertionError(failure_message(case, result, names))

    # With a time budget, rounds of a few examples each until it is spent (Hypothesis has
    # no time budget of its own); a failure in any round is shrunk as usual.
    chunk = examples if deadline is None else min(examples, 10)
    done, rounds = 0, 0
    while done < examples and (deadline is None or time.monotonic() < deadline):
        test = settings(max_examples=chunk, deadline=None, suppress_health_check=list(HealthCheck))(given(strategy)(body))
        # one database key per backend list and settings, not one for every fuzz_backends call
        test.hypothesis.inner_test._hypothesis_internal_add_digest = \
            repr((names, max_nodes, tuple(ops), dtypes, rounds)).encode()
        if seed is not None:
            test = fixed_seed(seed + rounds)(test)
        test()
        done += chunk
        rounds += 1


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    from fuzzer.campaign import parse_duration

    return parse_duration(text)


# ---- hooks -------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlfuzz", "dlfuzz: fuzz deep-learning compilers")
    group.addoption("--dlfuzz-replay", action="append", default=[], metavar="DIR",
                    help="collect each bug folder under DIR (a campaign's bugs/) as a test that fails while the bug is present")
    group.addoption("--dlfuzz-known", metavar="FILE", default=None,
                    help="bugs listed in FILE (signatures or regular expressions, as for 'dlfuzz fuzz --ignore') are xfail")
    group.addoption("--dlfuzz-backend", action="append", default=[], metavar="NAME",
                    help="add a test that fuzzes backend NAME against its framework's eager mode")
    group.addoption("--dlfuzz-examples", type=int, default=DEFAULT_EXAMPLES, metavar="N",
                    help=f"models per --dlfuzz-backend test and dlfuzz marker (default {DEFAULT_EXAMPLES})")
    group.addoption("--dlfuzz-time", default=None, metavar="DURATION",
                    help="time budget per fuzzing test (90s, 10m), ending it early")
    group.addoption("--dlfuzz-isolate", action="store_true",
                    help="check fuzzed models in a sandbox worker (crashes and hangs become verdicts); slower to start")
    group.addoption("--dlfuzz-in-process", action="store_true",
                    help="replay bugs in this process instead of a sandbox worker (faster; a segfault ends the session)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dlfuzz(backends, examples=50, time=None, max_nodes=5, ops=('spec',), dtypes=None, "
                                       "seed=None): fuzz the backends with generated models before the test body runs")


@pytest.fixture(name="assert_backends_agree")
def _assert_backends_agree_fixture():
    """The ``assert_backends_agree`` helper, as a fixture."""
    return assert_backends_agree


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    marker = item.get_closest_marker("dlfuzz")
    if marker is None:
        return
    kw = dict(marker.kwargs)
    backends = kw.pop("backends", marker.args[0] if marker.args else None)
    if not backends:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.dlfuzz needs backends=[...]")
    cfg = item.config
    fuzz_backends(list(backends), kw.pop("examples", cfg.getoption("dlfuzz_examples")),
                  _duration(kw.pop("time", cfg.getoption("dlfuzz_time"))),
                  isolate=kw.pop("isolate", cfg.getoption("dlfuzz_isolate")), **kw)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Added first, so that -k, -m and --deselect apply to these items too."""
    for name in config.getoption("dlfuzz_backend"):
        items.append(FuzzItem.from_parent(session, name=f"dlfuzz-fuzz[{name}]", backend=name))
    roots = config.getoption("dlfuzz_replay")
    if not roots:
        return
    known = None
    if config.getoption("dlfuzz_known"):
        from reports.known import KnownIssues, KnownIssuesError

        try:
            known = KnownIssues.load(config.getoption("dlfuzz_known"))
        except KnownIssuesError as e:
            raise pytest.UsageError(str(e)) from None
    for root in roots:
        root = Path(root)
        folders = [root] if (root / "bug.json").is_file() else sorted(p.parent for p in root.glob("*/bug.json"))
        if not folders:
            raise pytest.UsageError(f"--dlfuzz-replay {root}: no bug folders (DIR/*/bug.json) there")
        for folder in folders:
            item = BugItem.from_parent(session, name=f"dlfuzz-replay[{folder.name}]", folder=folder)
            if known is not None:
                bug = item.bug
                hit = known.matches(SimpleNamespace(digest=bug.get("signature", ""), folder_name=folder.name),
                                    (bug.get("verdict") or {}).get("message", ""))
                if hit:
                    item.add_marker(pytest.mark.xfail(reason=f"known bug (--dlfuzz-known: {hit})", strict=False))
            items.append(item)


def pytest_unconfigure(config: pytest.Config) -> None:
    for sandbox in _sandboxes(config).values():
        sandbox.close()


_SANDBOXES = pytest.StashKey[dict]()


def _sandboxes(config: pytest.Config) -> dict:
    """This session's sandboxes by backend list (one worker each, started on first use)."""
    return config.stash.setdefault(_SANDBOXES, {})


class FuzzItem(pytest.Item):
    """``--dlfuzz-backend NAME``: fuzz one backend against its framework's eager mode."""

    def __init__(self, *, backend: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.backend = backend

    def runtest(self) -> None:
        cfg = self.config
        fuzz_backends([self.backend], cfg.getoption("dlfuzz_examples"), _duration(cfg.getoption("dlfuzz_time")),
                      isolate=cfg.getoption("dlfuzz_isolate"))

    def reportinfo(self):
        return "dlfuzz", None, self.name

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value) if excinfo.errisinstance(AssertionError) else super().repr_failure(excinfo, style)


class BugItem(pytest.Item):
    """One saved bug folder: fails while the bug is present (the same check as ``dlfuzz
    replay``: the bug's backend gives a verdict of the bug's kind again)."""

    def __init__(self, *, folder: Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.folder = folder
        try:
            self.bug = json.loads((folder / "bug.json").read_text())
        except (OSError, ValueError):
            self.bug = {}

    def runtest(self) -> None:
        from fuzzer import api

        bug, case = api.load_bug(self.folder)
        backends = list(bug["backends"])
        if self.config.getoption("dlfuzz_in_process"):
            result = api.check(case, backends, isolate=False)
        else:
            from rules.specs import SPECS

            specs = api.specs_for(case)
            key = (tuple(api.backend_names(backends)), specs is SPECS)
            sandboxes = _sandboxes(self.config)
            if key not in sandboxes:  # one worker per backend list, started once per session
                from oracles.sandbox import Sandbox

                sandboxes[key] = Sandbox(key[0], workers=1, specs=None if key[1] else specs)
            result = sandboxes[key].check(case)
        if not result.valid:
            raise AssertionError(f"{self.folder.name}: the reference {backends[0]} rejects the case now "
                                 f"({result.invalid_reason}); the bug cannot be checked")
        still = [v for v in result.bugs if v.backend == bug["verdict"]["backend"] and v.status == bug["verdict"]["status"]]
        if still:
            raise AssertionError(f"{self.folder.name}: still fails\n" + failure_message(case, result, backends, still[0]))

    def reportinfo(self):
        return self.folder, None, self.name

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value) if excinfo.errisinstance(AssertionError) else super().repr_failure(excinfo, style)
