"""repro.py, report.md and reduction for bugs only a check plan shows (corpus.plan).

Each planted fault of tests/planted_backends.py is invisible to a forward check of
contiguous inputs of static shape; the oracle sees it through one check of the plan, and
the repro.py written for that verdict must show it too (exit 1), while the same repro
against a correct compiler (torch.compile:aot_eager) says the bug is gone (exit 0). The
reduction's plan pass keeps only the checks a bug needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.plan import CheckPlan
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles.verdict import Verdict
from rules.specs import SPECS

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "torch.compile:tests.planted_backends:"
HERE = "torch.compile:tests.test_repro_plan:"
CORRECT = "torch.compile:aot_eager"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def f32(*shape):
    return TensorType(shape, "float32")


def exp_mul_case(plan: CheckPlan, framework: str = "torch") -> Case:
    """exp(x0 * c1), x0 (5, 3) an input, c1 (1, 3) a weight: admits other sizes of x0's dim 0."""
    g = Graph()
    x = g.add_leaf(f32(5, 3))
    w = g.add_leaf(f32(1, 3), "const")
    m = g.add_op("core.Mul", {}, [x, w], [f32(5, 3)])
    g.outputs = g.add_op("core.Exp", {}, m, [f32(5, 3)])
    return Case(g, framework, {n: ValueSpec(10 + n, -1.0, 1.0) for n in g.leaves()}, plan=plan)


def inplace_case(plan: CheckPlan) -> Case:
    """x0 += exp(x1); return x0 * x1: the graph writes into its input x0."""
    g = Graph()
    x, y = g.add_leaf(f32(4, 3)), g.add_leaf(f32(4, 3))
    e = g.add_op("core.Exp", {}, [y], [f32(4, 3)])
    a = g.add_op("core.AddInplace", {}, [x, e[0]], [f32(4, 3)])
    g.outputs = g.add_op("core.Mul", {}, [a[0], y], [f32(4, 3)])
    return Case(g, "torch", {n: ValueSpec(10 + n, -1.0, 1.0) for n in g.leaves()}, plan=plan)


FULL = CheckPlan([(0, 0)], [{0: (7, 3)}, {0: (2, 3)}], 5, {0: "transposed"})


def wrong_after_resize(gm, example_inputs):
    """A planted fault only another shape set shows: right at the shapes of the first call,
    1 added to every float output at any other (a kernel specialized on the sizes it was
    first run with). A static compile recompiles for new shapes and stays right."""
    import torch

    first: list = []

    def run(*args):
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        first[:] = first or [shapes]
        outs = gm.forward(*args)
        if shapes == first[0]:
            return outs
        return type(outs)(o + 1 if isinstance(o, torch.Tensor) and o.is_floating_point() else o for o in outs)

    return run


def verdict_of(case: Case, backend: str) -> Verdict:
    from oracles.check import check_case

    result = check_case(case, ["torch.eager", backend], SPECS)
    assert result.valid, result.invalid_reason
    return result.verdict(backend)


def run_repros(tmp_path: Path, sources: dict[str, str]) -> dict[str, subprocess.CompletedProcess]:
    """Run each repro.py in its own process, all at once (cwd = the repository, so that the
    planted backends import)."""
    procs = {}
    for name, source in sources.items():
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        procs[name] = subprocess.Popen([sys.executable, str(path)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    done = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return done


# ---- repro.py ----------------------------------------------------------------------------------

def test_a_forward_bug_keeps_the_plain_reproducer():
    """The forward check (a plain compile fails too): the same text as a case without a plan."""
    from reports.repro import repro_source

    planned, plain = exp_mul_case(FULL), exp_mul_case(CheckPlan())
    args = (SPECS, "torch.eager", "torch.compile", "mismatch")
    assert repro_source(planned, *args, output=0, check="forward") == repro_source(plain, *args, output=0)
    dynamic = repro_source(planned, *args, output=0, check="dynamic", message="shape set 2: output 0 (float32): x")
    assert "torch.compile(model, dynamic=True)" in dynamic and "def INPUTS_2():" in dynamic
    assert "COMPARE = ('shape set 2', 'output', 0)" in dynamic and "seen by the dynamic check" in dynamic
    layout = repro_source(planned, *args, output=0, check="layout", message="output 0 (float32): x")
    assert "LAYOUTS = {0: lambda x: x.transpose(-1, -2).contiguous().transpose(-1, -2)}" in layout
    backward = repro_source(planned, *args, output=1, check="backward", message="gradient 1 (float32): x")
    assert "COMPARE = ('forward', 'gradient', 1)" in backward and "GRADIENT_NAMES = ['x0', 'c1']" in backward
    assert "COTANGENT_SEED = 5" in backward and "GRAD = True" in backward


CASES = {  # check -> (planted backend, case, what the repro prints)
    "dynamic": (PLANTED + "wrong_when_symbolic", lambda: exp_mul_case(CheckPlan([(0, 0)], [{0: (7, 3)}])),
                "output 0 of"),
    "backward": (PLANTED + "wrong_backward", lambda: exp_mul_case(FULL), "gradient 0 (of x0) of"),
    "backward-crash": (PLANTED + "crashes_compiling_backward", lambda: exp_mul_case(FULL), "raised RuntimeError"),
    "layout": (PLANTED + "reads_strided_as_contiguous", lambda: exp_mul_case(FULL), "on the inputs in other layouts"),
    "mutation": (PLANTED + "drops_input_mutation", lambda: inplace_case(CheckPlan(mutation=True)),
                 "input x0 after the call of"),
}


@pytest.mark.parametrize("kind", [
    "backward", "mutation",
    pytest.param("dynamic", marks=pytest.mark.slow), pytest.param("backward-crash", marks=pytest.mark.slow),
    pytest.param("layout", marks=pytest.mark.slow),
])
def test_the_repro_of_a_plan_bug_fails_while_the_fault_is_there_and_passes_without(tmp_path, kind):
    from reports.repro import repro_source

    backend, make, says = CASES[kind]
    case = make()
    v = verdict_of(case, backend)
    check = kind.split("-")[0]
    assert v.status in ("mismatch", "crash") and v.check == check, v
    sources = {name: repro_source(case, SPECS, "torch.eager", b, v.status, output=v.output, check=v.check,
                                  message=v.message)
               for name, b in (("planted", backend), ("correct", CORRECT))}
    done = run_repros(tmp_path, sources)
    planted, correct = done["planted"], done["correct"]
    assert planted.returncode == 1, planted.stdout + planted.stderr[-3000:]
    assert planted.stdout.startswith("BUG PRESENT: ") and says in planted.stdout
    assert f"({check} check" in planted.stdout, planted.stdout
    assert correct.returncode == 0 and f"bug gone: the {check} check passes" in correct.stdout, \
        correct.stdout + correct.stderr[-3000:]


@pytest.mark.slow
def test_a_fault_only_another_shape_set_shows_is_compared_at_that_shape_set(tmp_path):
    from reports.repro import repro_source
    from reports.snippet import snippet

    case = exp_mul_case(CheckPlan([(0, 0)], [{0: (1, 3)}, {0: (7, 3)}]))
    v = verdict_of(case, HERE + "wrong_after_resize")
    # shape set 1 (size 1) recompiles by design (Dynamo specializes 1), shape set 2 runs the dynamic program
    assert v.check == "dynamic" and v.message.startswith("shape set 2: output 0"), v
    source = repro_source(case, SPECS, "torch.eager", v.backend, v.status, output=v.output, check=v.check,
                          message=v.message)
    short = snippet(case, SPECS, "torch.eager", v)
    assert "dynamic=True" in short and "# shape set 2: (7, 3)" in short
    (tmp_path / "snippet.py").write_text(short)
    shown = subprocess.Popen([sys.executable, str(tmp_path / "snippet.py")], cwd=ROOT, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = run_repros(tmp_path, {"planted": source})["planted"]
    assert done.returncode == 1 and " at shape set 2 (dynamic check" in done.stdout, done.stdout + done.stderr[-3000:]
    _, err = shown.communicate(timeout=300)
    assert shown.returncode == 1 and "AssertionError" in err, err[-3000:]


@pytest.mark.slow
@pytest.mark.tensorflow
def test_a_tensorflow_repro_compiles_with_an_input_signature_and_takes_the_gradients_in_the_function(tmp_path):
    from reports.repro import repro_source

    case = exp_mul_case(CheckPlan([(0, 0)], [{0: (7, 3)}], 3), "tensorflow")
    sources = {
        "dynamic": repro_source(case, SPECS, "tf.eager", "tf.xla", "mismatch", output=0, check="dynamic",
                                message="shape set 1: output 0 (float32): x"),
        "backward": repro_source(case, SPECS, "tf.eager", "tf.function", "mismatch", output=1, check="backward",
                                 message="gradient 1 (float32): x"),
    }
    assert "input_signature=tensor_specs(tf, inputs)" in sources["dynamic"]
    assert "lambda f: tf.function(f, jit_compile=True)" in sources["dynamic"]
    # a fault planted in the repro itself: the candidate's gradients 1.5 times too large
    sources["planted"] = sources["backward"].replace(
        "return tf_calls(fn, model, globals(), tf.function, True)",
        "return tf_calls(fn, model, globals(), lambda f: (lambda xs, cs: [g * 1.5 for g in tf.function(f)(xs, cs)]), "
        "True)")
    assert sources["planted"] != sources["backward"]
    done = run_repros(tmp_path, sources)
    for name in ("dynamic", "backward"):
        assert done[name].returncode == 0 and "bug gone" in done[name].stdout, done[name].stdout + done[name].stderr
    assert done["planted"].returncode == 1 and "gradient 1 (of c1) of tf.function" in done["planted"].stdout


# ---- report.md ---------------------------------------------------------------------------------

def test_the_report_shows_the_plan_and_the_failing_check():
    from reports.bugs import signature_of
    from reports.render import render_report, title

    case = exp_mul_case(FULL)
    bad = Verdict(PLANTED + "wrong_backward", "mismatch", "backward", "gradient 1 (float32): 3 of 3 elements beyond "
                  "tolerance", 1, 0.5, 0.5, "float32", check="backward")
    text = render_report(case, bad, signature_of(case, bad), "torch.eager", "print('repro')", specs=SPECS,
                         versions_info={"torch": "2.13.0"})
    assert title(case, bad, SPECS).startswith(f"{bad.backend} returns wrong gradients (float32) on ")
    assert f"Checked: {FULL.summary()}. The check that fails is **backward**" in text
    assert "Expected: gradient 1 equal to `torch.eager`'s" in text
    assert "def vjp(fn):" in text and "np.random.default_rng(5)" in text  # the snippet takes the backward
    mutation = Verdict(PLANTED + "drops_input_mutation", "mismatch", "run", "input x0 after the call (float32): x",
                       1, 1.0, 1.0, "float32", check="mutation")
    case = inplace_case(CheckPlan(mutation=True))
    text = render_report(case, mutation, signature_of(case, mutation), "torch.eager", "", specs=SPECS,
                         versions_info={})
    assert "writes wrong values into its input x0 (float32)" in text.splitlines()[0]
    assert "Expected: input x0 after the call equal to" in text and "compiled(*actual)" in text
    shape_set = Verdict("torch.compile", "mismatch", "run", "shape set 2: output 0 (float32): x", 0, check="dynamic")
    case = exp_mul_case(FULL)
    text = render_report(case, shape_set, signature_of(case, shape_set), "torch.eager", "", specs=SPECS,
                         versions_info={})
    assert "returns wrong results with dynamic shapes" in text.splitlines()[0]
    assert "Expected: output 0 at shape set 2 (x0 (2, 3))" in text and "torch.compile(f, dynamic=True)" in text


# ---- reduction ---------------------------------------------------------------------------------

def test_the_plan_pass_offers_the_plan_without_each_check_the_bug_may_not_need():
    from reports.passes import PASSES, Context, plan_pass
    from reports.reduce import size

    assert PASSES[0][0] == "plan"
    case = exp_mul_case(CheckPlan([(0, 0)], [{0: (7, 3)}, {0: (2, 3)}], 5, {0: "transposed"}, True))
    plans = [c.plan for c in plan_pass(case, Context(SPECS, "mismatch", 0, (), "backward"))]
    assert [p.kinds() for p in plans[:2]] == [["forward", "backward", "layout", "mutation"],
                                              ["forward", "dynamic", "backward", "mutation"]]
    assert [p.shape_sets for p in plans[2:]] == [[{0: (2, 3)}], [{0: (7, 3)}]]
    assert all(size(c) < size(case) for c in plan_pass(case, Context(SPECS, "mismatch", 0, (), "backward")))
    one = exp_mul_case(CheckPlan([(0, 0)], [{0: (7, 3)}]))  # a dynamic compile that fails at the case's shapes
    assert [c.plan.to_json() for c in plan_pass(one, Context(SPECS, "mismatch", 0, (), "dynamic"))] == \
        [{"dynamic": {"dims": [[0, 0]], "shape_sets": []}}]
    assert list(plan_pass(exp_mul_case(CheckPlan()), Context(SPECS, "crash"))) == []


def test_reduction_keeps_only_the_checks_a_backward_bug_needs():
    from oracles.check import check_case
    from reports.localize import localize
    from reports.passes import plan_pass
    from reports.reduce import reduce_case

    backend = PLANTED + "wrong_backward"
    case = exp_mul_case(FULL)
    v = verdict_of(case, backend)
    assert v.check == "backward"

    def check(c):
        return check_case(c, ["torch.eager", backend], SPECS)

    red = reduce_case(case, v, check, SPECS, culprit=localize(case, v, check), passes=[("plan", plan_pass)],
                      time_s=120)
    assert red.case.plan.kinds() == ["forward", "backward"], red.case.plan
    assert red.verdict.check == "backward" and red.steps == ["plan", "plan"]


def test_a_reproducer_runs_the_framework_with_one_thread_as_dlfuzz_did():
    """The workers run with one thread, and Inductor generates other loops for one: a
    dynamic-shape argmin of booleans showed only so (an Inductor campaign's bug whose
    repro.py passed on a multi-threaded run)."""
    from reports.repro import repro_source

    for framework, line in (("torch", "torch.set_num_threads(1)"),
                            ("tensorflow", "tf.config.threading.set_intra_op_parallelism_threads(1)")):
        reference, candidate = ("torch.eager", "torch.compile") if framework == "torch" else ("tf.eager", "tf.xla")
        for check, plan in (("forward", CheckPlan()), ("dynamic", CheckPlan([(0, 0)], [{0: (7, 3)}]))):
            source = repro_source(exp_mul_case(plan, framework), SPECS, reference, candidate, "mismatch", output=0,
                                  check=check, message="shape set 1: output 0 (float32): x")
            assert line in source and source.index(line) < source.index("def to_tensor"), (framework, check)
