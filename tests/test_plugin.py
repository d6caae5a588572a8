"""The pytest plugin, the Hypothesis strategy and the API, tested the way a backend
author uses them: test files run by pytest's own ``pytester``."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
WRONG_ADD = "torch.compile:tests.planted_backends:wrong_add"
HEADER = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"  # tests.planted_backends, from pytester's folder


@pytest.fixture
def run(pytester, monkeypatch):
    """pytest in a child process (an inline run would unload the frameworks it imported,
    which cannot be loaded twice), with the repository importable for the planted backends."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return lambda *args: pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_plugin_loads_lazily_and_is_disabled_by_no_dlfuzz(pytester):
    shown = pytester.runpytest("--help")
    assert "--dlfuzz-replay" in shown.stdout.str()
    assert "--dlfuzz-replay" not in pytester.runpytest("-p", "no:dlfuzz", "--help").stdout.str()
    # loading it imports neither dlfuzz's packages nor Hypothesis nor a framework
    probe = "import sys, fuzzer.pytest_plugin; print(sorted(m for m in ('torch', 'tensorflow', 'hypothesis', " \
            "'corpus', 'rules', 'z3', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_draw_random_shrinks_towards_first_options():
    """Each primitive's simplest draw is the first option: what makes shrinking simplify."""
    from hypothesis import find, strategies as st

    from fuzzer.strategies import DrawRandom

    @st.composite
    def calls(draw):
        rng = DrawRandom(draw)
        x = list(range(5))
        rng.shuffle(x)
        return (rng.choice("abc"), rng.choices("xyz", weights=[1, 5, 5])[0], rng.randint(3, 9), x,
                rng.sample(range(6), 3), rng.randrange(2, 12, 2), rng.keep_growing())

    assert find(calls(), lambda _: True) == ("a", "x", 3, [0, 1, 2, 3, 4], [0, 1, 2], 2, False)


def test_strategy_finds_planted_bug_and_shrinks_it_to_one_addition(pytester, run):
    pytester.makepyfile(HEADER + f"""
from hypothesis import HealthCheck, given, seed, settings
from fuzzer.pytest_plugin import assert_backends_agree
from fuzzer.strategies import models

@seed(1)
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(models(max_nodes=5))
def test_wrong_add(case):
    assert_backends_agree(case, ["torch.eager", {WRONG_ADD!r}])
""")
    result = run()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # the shrunk model: one addition, the only operator the planted bug needs
    assert "backends disagree on a 1-operator torch model (core.Add;" in out
    assert "mismatch" in out and "reproducer:" in out and "torch.compile(f, backend=" in out
    repro = Path(out.split("full reproducer: python ")[1].split()[0])
    assert repro.is_file() and "wrong_add" in repro.read_text()


def test_strategy_against_a_correct_backend_passes(pytester, run):
    pytester.makepyfile(HEADER + """
from hypothesis import HealthCheck, given, settings
from fuzzer.pytest_plugin import assert_backends_agree
from fuzzer.strategies import models

@settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(models(max_nodes=4))
def test_aot_eager(case):
    assert_backends_agree(case, ["torch.eager", "torch.compile:aot_eager"])
""")
    run().assert_outcomes(passed=1)


def test_marker_and_option_fuzz_a_named_backend(pytester, run):
    pytester.makepyfile(HEADER + f"""
import pytest

@pytest.mark.dlfuzz(backends=[{WRONG_ADD!r}], examples=300, seed=1)
def test_planted():
    pass

@pytest.mark.dlfuzz(backends=["torch.compile:aot_eager"], examples=5)
def test_correct():
    pass
""")
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    assert "core.Add" in result.stdout.str()
    by_option = run("-m", "not dlfuzz", "--dlfuzz-backend",
                                   "torch.compile:aot_eager", "--dlfuzz-examples", "5")
    by_option.assert_outcomes(passed=1)


@pytest.fixture(scope="module")
def saved_bugs(tmp_path_factory):
    """Two bug folders of wrong_add, recorded as a campaign records them."""
    from fuzzer import api
    from oracles.compare import tolerance
    from reports.bugs import BugStore
    from reports.localize import localize
    from rules.specs import SPECS

    out = tmp_path_factory.mktemp("campaign")
    store = BugStore(out, SPECS, "torch.eager")
    index = 0
    while len(store.known()) < 2:
        index += 1
        try:
            case = api.generate("torch", seed=0, index=index, max_nodes=3, ops=("spec",))
        except api.InvalidModel:
            continue
        if "core.Add" not in case.graph.op_ids():
            continue
        result = api.check(case, ["torch.eager", WRONG_ADD], isolate=False)
        for v in result.bugs:  # pinned as a campaign pins them: per operator and dtype
            culprit = localize(case, v, lambda c: api.check(c, ["torch.eager", WRONG_ADD], isolate=False))
            store.record(case, v, tolerance(v.dtype or "float32"), index, culprit, verdicts=result.verdicts)
    return store.root


def test_replay_reports_each_saved_bug_and_known_ones_as_xfail(pytester, run, saved_bugs):
    folders = sorted(p.parent.name for p in saved_bugs.glob("*/bug.json"))
    result = run("--dlfuzz-replay", str(saved_bugs))  # in a sandbox
    result.assert_outcomes(failed=len(folders))
    assert "still fails" in result.stdout.str()
    known = pytester.makefile(".txt", known=f"# fixed upstream soon\n{folders[0]}\n")
    result = run("--dlfuzz-replay", str(saved_bugs), "--dlfuzz-in-process",
                                "--dlfuzz-known", str(known))
    result.assert_outcomes(failed=len(folders) - 1, xfailed=1)


def test_replay_of_a_fixed_bug_passes(pytester, run, saved_bugs, tmp_path):
    """The same bug folders, replayed against a backend without the bug, pass."""
    import json
    import shutil

    fixed = tmp_path / "bugs"
    shutil.copytree(saved_bugs, fixed)
    for bug_json in fixed.glob("*/bug.json"):
        bug = json.loads(bug_json.read_text())
        bug["backends"] = ["torch.eager", "torch.compile:aot_eager"]
        bug["verdict"]["backend"] = "torch.compile:aot_eager"
        bug_json.write_text(json.dumps(bug))
    result = run("--dlfuzz-replay", str(fixed), "--dlfuzz-in-process")
    result.assert_outcomes(passed=len(list(fixed.glob("*/bug.json"))))


def test_api_round_trip(tmp_path):
    """generate -> save -> load gives the same case; the seeded path is deterministic."""
    from fuzzer import api

    case = api.generate("torch", seed=4, max_nodes=3, ops=("spec",))
    assert api.generate("torch", seed=4, max_nodes=3, ops=("spec",)).dumps() == case.dumps()
    folder = api.save(case, tmp_path / "m")
    assert (folder / "program.py").is_file()
    assert api.load(folder).dumps() == case.dumps()
    assert api.check(case, ["torch.eager", "torch.compile:aot_eager"], isolate=False).valid
