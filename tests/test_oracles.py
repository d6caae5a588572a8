"""The oracles: verdicts, the backend registry, the comparison policy, check_case."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles import backends as backends_mod
from oracles.backends import BackendError, Family, resolve, validate_backends
from oracles.check import check_case
from oracles.compare import (Output, OutputKind, Reference64, compare_output, compare_outputs, output_kinds,
                             tolerance)
from oracles.recompute import float64_outputs, near_discontinuity, promote_float64, reference64
from oracles.verdict import CheckResult, Verdict, exception_message, normalize_text
from rules.specs import SPECS, specs_for

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "torch.compile:tests.planted_backends:"


def chain(ops, shape=(2, 3), dtype="float32", low=-1.0, high=1.0, framework="torch"):
    """x, y -> op1 -> op2 ...: binary ops take y as their second input."""
    g = Graph()
    t = TensorType(shape, dtype)
    x, y = g.add_leaf(t), g.add_leaf(t)
    v = x
    for op in ops:
        v = g.add_op(op, {}, [v, y] if SPECS[op].n_inputs == 2 else [v], [t])[0]
    g.outputs = [v]
    return Case(g, framework, {0: ValueSpec(1, low, high), 1: ValueSpec(2, low, high)})


def generated(framework, n, seed, max_nodes=8, both=False):
    from fuzzer.generate import GenConfig, Generator
    from fuzzer.models import make_model

    specs = [s for s in specs_for(framework) if not both or len(s.frameworks) == 2]
    gen = Generator(framework, specs, GenConfig(max_nodes=max_nodes))
    models = [make_model(gen, SPECS, seed, i) for i in range(n)]
    return [m.case for m in models if m.valid]


# ---- verdicts ----------------------------------------------------------------------------

def test_verdict_and_result_round_trip_through_json():
    ok = Verdict("torch.eager", "ok", seconds=0.5)
    bad = Verdict("torch.compile", "mismatch", "run", "output 0 (float32): 3 of 6 elements beyond tolerance", 0, 1.5, 0.2,
                  "float32", 2.0)
    declined = Verdict("tf.xla", "crash", "compile", "ValueError: unsupported", unsupported=True)
    result = CheckResult(True, "", (ok, bad, declined))
    again = CheckResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result
    assert again.bugs == [bad]  # neither ok nor documented limitations are bugs
    assert result.verdict("torch.compile") is bad
    invalid = CheckResult(False, "reference produced NaN/Inf", (Verdict("torch.eager", "crash", "run", "x"),))
    assert invalid.bugs == []
    with pytest.raises(ValueError):
        Verdict("x", "exploded")
    with pytest.raises(ValueError):
        Verdict("x", "crash", "link")


def test_messages_are_normalized_to_one_line():
    assert normalize_text("bad pointer 0x7f3a12345678\n  at  line") == "bad pointer 0x? at line"
    assert normalize_text("graph __inference___call___5370[] failed") == "graph __inference___call___?[] failed"
    assert exception_message(ValueError("shape (2, 3) is wrong\nmore detail")) == "ValueError: shape (2, 3) is wrong"
    assert exception_message(KeyError()) == "KeyError"
    cpp = RuntimeError("C++ compile error\n\nCommand:\ng++ k.cpp\n\nOutput:\n/tmp/x/k.cpp: In function 'void kernel()':\n"
                       "/tmp/x/k.cpp:66:69: error: no matching function for call to 'max_masked_reduce'\n  66 | ...")
    assert exception_message(cpp) == "RuntimeError: C++ compile error: no matching function for call to 'max_masked_reduce'"

    class Wrapper(RuntimeError):
        def __init__(self, inner):
            super().__init__("backend='x' raised:\nRuntimeError: inner")
            self.inner_exception = inner

    assert exception_message(Wrapper(TypeError("the real one"))) == "TypeError: the real one"


# ---- the backend registry ----------------------------------------------------------------

@pytest.mark.parametrize("name,framework,eager", [
    ("torch.eager", "torch", True), ("torch.compile", "torch", False), ("torch.compile:aot_eager", "torch", False),
    ("torch.compile:tests.planted_backends:wrong_add", "torch", False), ("torch.jit", "torch", False),
    ("torch.jit:freeze", "torch", False), ("torch.export", "torch", False),
])
def test_torch_backend_names_resolve(name, framework, eager):
    b = resolve(name)
    assert (b.name, b.framework, b.eager) == (name, framework, eager)


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", ["tf.eager", "tf.function", "tf.xla"])
def test_tensorflow_backend_names_resolve(name):
    assert resolve(name).framework == "tensorflow"


@pytest.mark.parametrize("name,says", [
    ("torch.foo", ["unknown backend 'torch.foo'", "known: torch.eager, torch.compile", "torch.compile:<name> (aot_eager",
                   "torch.compile:pkg.module:function", "torch.jit", "torch.export", "tf.eager", "tf.function", "tf.xla"]),
    ("torch.compile:nope", ["unknown torch.compile backend 'nope'", "aot_eager", "inductor", "pkg.module:function"]),
    ("torch.compile:no_such_pkg.sub:fn", ["could not import module 'no_such_pkg.sub'", "ModuleNotFoundError"]),
    ("torch.compile:tests.planted_backends:missing", ["could not import it", "has no attribute 'missing'"]),
    ("torch.compile:tests.planted_backends:NOT_CALLABLE", ["is a int, not a callable"]),
    ("torch.eager:fast", ["takes no option"]),
    ("torch.jit:script", ["unknown torch.jit option 'script'"]),
    ("", ["empty backend name"]),
])
def test_bad_backend_names_say_what_is_wrong_in_one_line(name, says):
    with pytest.raises(BackendError) as e:
        resolve(name)
    message = str(e.value)
    assert "\n" not in message
    for part in says:
        assert part in message


def test_validate_backends_checks_the_list():
    assert [b.name for b in validate_backends(["torch.eager", " torch.compile:aot_eager "])] == \
        ["torch.eager", "torch.compile:aot_eager"]
    with pytest.raises(BackendError, match="at least two backends"):
        validate_backends(["torch.eager"])
    with pytest.raises(BackendError, match="listed twice"):
        validate_backends(["torch.eager", "torch.eager"])
    with pytest.raises(BackendError, match="unknown backend 'tf.jax'"):
        validate_backends(["torch.eager", "tf.jax"])


def test_registry_is_checked_when_built():
    make = backends_mod._torch_eager
    with pytest.raises(ValueError, match="duplicate"):
        backends_mod._build([Family("torch.a", "torch", True, "", make), Family("torch.a", "torch", True, "", make)])
    with pytest.raises(ValueError, match="unknown framework"):
        backends_mod._build([Family("jax.jit", "jax", False, "", make)])
    with pytest.raises(ValueError, match="must start with 'tf.'"):
        backends_mod._build([Family("torch.x", "tensorflow", False, "", make)])


def test_importing_the_oracles_imports_no_framework_and_torch_users_never_import_tensorflow():
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import oracles.backends, oracles.check, oracles.compare, oracles.recompute, oracles.sandbox, oracles.verdict
assert "torch" not in sys.modules and "tensorflow" not in sys.modules, "framework imported eagerly"
from tests.test_oracles import chain
from rules.specs import SPECS
result = oracles.check.check_case(chain(["core.Add", "core.Floor"]), ["torch.eager", "torch.compile:aot_eager"], SPECS)
assert result.valid and not result.bugs, result
assert "tensorflow" not in sys.modules, "a torch-only check imported tensorflow"
print("fine")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fine" in out.stdout


# ---- the comparison policy ----------------------------------------------------------------

def out(values, dtype="float32"):
    a = np.asarray(values, dtype="float32" if dtype == "bfloat16" else dtype)
    return Output(dtype, a.shape, a)


PLAIN = OutputKind(False, frozenset())


def test_tolerances_are_dtype_aware():
    assert tolerance("float16") > tolerance("float32") > tolerance("float64")
    assert tolerance("bfloat16")[1] >= tolerance("float16")[1]
    assert tolerance("int32") == tolerance("bool") == (0.0, 0.0)
    # 5e-3 off at 1.0: rounding noise in float16, a bug in float32
    assert compare_outputs([out([1.0], "float16")], [out([1.005], "float16")], [PLAIN]) is None
    diff = compare_outputs([out([1.0, 2.0])], [out([1.005, 2.0])], [PLAIN])
    assert diff is not None and diff.output == 0 and diff.dtype == "float32"
    assert diff.max_abs == pytest.approx(0.005, rel=1e-3)
    assert "1 of 2 elements" in diff.message


def test_shapes_dtypes_integers_and_nonfinite_values():
    assert "shape (3,)" in compare_outputs([out([1.0, 2.0])], [out([1.0, 2.0, 3.0])], [PLAIN]).message
    assert "dtype float64" in compare_outputs([out([1.0])], [out([1.0], "float64")], [PLAIN]).message
    assert compare_outputs([out([3, 4], "int64")], [out([3, 4], "int64")], [PLAIN]) is None
    assert compare_outputs([out([3, 4], "int64")], [out([3, 5], "int64")], [PLAIN]).max_abs == 1
    assert compare_outputs([out([True], "bool")], [out([False], "bool")], [PLAIN]) is not None
    assert "NaN/Inf" in compare_outputs([out([1.0, 2.0])], [out([1.0, np.nan])], [PLAIN]).message
    assert "2 outputs" in compare_outputs([out([1.0])], [out([1.0]), out([2.0])], [PLAIN, PLAIN]).message


def test_unstable_outputs_are_compared_for_shape_and_dtype_only():
    unstable = OutputKind(True, frozenset())
    assert compare_outputs([out([0, 1], "int64")], [out([1, 0], "int64")], [unstable]) is None
    assert compare_outputs([out([0, 1], "int64")], [out([1, 0, 2], "int64")], [unstable]) is not None


def r64(values, spread=None):
    values = np.asarray(values, dtype=np.float64)
    return lambda: Reference64(values, np.zeros_like(values) if spread is None else np.asarray(spread, dtype=np.float64))


def test_float64_judge_accepts_a_candidate_no_worse_than_rounding_explains():
    ref, cand = out([1.0, 10.0]), out([1.0, 10.01])
    assert compare_output(0, ref, cand, PLAIN, lambda: None, lambda n: True) is not None
    # the reference itself is 0.02 off the true value: 0.01 off is no worse
    assert compare_output(0, ref, cand, PLAIN, r64([1.0, 10.02]), lambda n: True) is None
    # the true value is the reference's: the candidate is wrong ...
    assert compare_output(0, ref, cand, PLAIN, r64([1.0, 10.0]), lambda n: True) is not None
    # ... unless the graph amplifies rounding that much (noisy runs spread by 0.008)
    assert compare_output(0, ref, cand, PLAIN, r64([1.0, 10.0], [0.0, 0.008]), lambda n: True) is None
    # ... and where rounding noise alone moves a value by half its size, anything goes
    assert compare_output(0, out([1.0, -136.0]), out([1.0, 2064.0]), PLAIN, r64([1.0, -535.0], [0.0, 681.0]),
                          lambda n: False) is None
    # integers: only elements that rounding cannot change are compared
    ints = out([3, 4], "int32"), out([3, 5], "int32")
    assert compare_output(0, *ints, PLAIN, r64([3, 4]), lambda n: False) is not None
    assert compare_output(0, *ints, PLAIN, r64([3, 4], [0, 1]), lambda n: False) is None
    assert compare_output(0, *ints, PLAIN, r64([3, 5]), lambda n: False) is None


def test_tolerance_follows_the_least_precise_dtype_on_the_path():
    via_bf16 = OutputKind(False, frozenset(), "bfloat16")
    assert compare_output(0, out([2.0]), out([2.01]), via_bf16, lambda: None, lambda n: True) is None
    assert compare_output(0, out([2.0]), out([2.01]), PLAIN, lambda: None, lambda n: True) is not None
    g = Graph()
    x = g.add_leaf(TensorType((3,), "bfloat16"))
    f32 = g.add_op("core.Cast", {"to": "float32"}, [x], [TensorType((3,), "float32")])[0]
    g.outputs = g.add_op("core.Exp", {}, [f32], [TensorType((3,), "float32")])
    assert output_kinds(g, SPECS)[0].precision == "bfloat16"


def test_float16_overflow_is_a_framework_difference_only_across_frameworks():
    half = OutputKind(False, frozenset(), "float16")
    ref, cand = out([1819.0], "float16"), out([np.inf], "float16")
    assert compare_output(0, ref, cand, half, lambda: None, lambda n: False, cross_framework=True) is None
    assert compare_output(0, ref, cand, half, lambda: None, lambda n: False) is not None
    assert compare_output(0, out([1.0]), out([np.inf]), PLAIN, lambda: None, lambda n: False, cross_framework=True)


def test_noisy_runs_measure_how_much_the_graph_amplifies_rounding():
    # cos of a float16 sum near 70: one ulp of the sum (0.06) moves the result by as much
    big = chain(["core.Add", "core.Cos"], dtype="float16", low=30.0, high=35.0)
    small = chain(["core.Sin"], dtype="float16", low=-0.5, high=0.5)
    [cos] = reference64(big.graph, "torch", big.values, SPECS)
    [sin] = reference64(small.graph, "torch", small.values, SPECS)
    assert cos.spread.max() > 0.01
    assert sin.spread.max() < 0.002
    assert cos.values.dtype == np.float64


def test_differences_behind_a_discontinuity_are_noise_only_near_one():
    kind = OutputKind(False, frozenset({3}))
    asked = []

    def near(nodes):
        asked.append(nodes)
        return True

    assert compare_output(0, out([2.0]), out([3.0]), kind, lambda: None, near) is None
    assert asked == [frozenset({3})]
    assert compare_output(0, out([2.0]), out([3.0]), kind, lambda: None, lambda n: False) is not None
    # agreeing outputs never pay for the probe
    assert compare_output(0, out([2.0]), out([2.0]), kind, lambda: None, lambda n: 1 / 0) is None


def test_output_kinds_follow_the_graph():
    g = Graph()
    x = g.add_leaf(TensorType((4, 5), "float32"))
    idx = g.add_op("core.ArgMax", {"dims": 1, "keepdim": True}, [x], [TensorType((4, 1), "int64")])[0]
    gathered = g.add_op("core.GatherElements", {"dims": 1}, [x, idx], [TensorType((4, 1), "float32")])[0]
    floor = g.add_op("core.Floor", {}, [x], [TensorType((4, 5), "float32")])[0]
    cast = g.add_op("core.CastFloatToInt", {"to": "int32"}, [x], [TensorType((4, 5), "int32")])[0]
    tanh = g.add_op("core.Tanh", {}, [floor], [TensorType((4, 5), "float32")])[0]
    plain = g.add_op("core.Exp", {}, [x], [TensorType((4, 5), "float32")])[0]
    g.outputs = [idx, gathered, tanh, cast, plain]
    kinds = output_kinds(g, SPECS)
    assert [k.unstable for k in kinds] == [True, True, False, False, False]
    assert kinds[2].discontinuous == {floor[0]}
    assert kinds[3].discontinuous == {cast[0]}
    assert kinds[4].discontinuous == frozenset()


def test_promotion_to_float64_keeps_values_and_respects_specs():
    case = chain(["core.Mul", "core.Exp"], dtype="float16")
    promoted = promote_float64(case.graph, "torch", SPECS)
    assert {promoted.type_of(v).dtype for v in promoted.values()} == {"float64"}
    f64 = float64_outputs(case.graph, "torch", case.values, SPECS)
    from corpus.values import make_value

    x, y = (make_value(TensorType((2, 3), "float16"), case.values[n]).astype(np.float64) for n in (0, 1))
    np.testing.assert_allclose(f64[0], np.exp(x * y), rtol=1e-12)  # the float16 inputs, upcast exactly

    g = Graph()
    a = g.add_leaf(TensorType((3,), "float32"))
    g.outputs = g.add_op("core.Cast", {"to": "float16"}, [a], [TensorType((3,), "float16")])
    assert promote_float64(g, "torch", SPECS).node(1).attrs == {"to": "float64"}

    class Float32Only(type(SPECS["core.Exp"])):
        def dtype_options(self, framework):
            return [("float32",)]

    specs = dict(SPECS, **{"core.Exp": Float32Only("Exp", "torch.exp({})", "tf.math.exp({})", ("float32",))})
    assert promote_float64(chain(["core.Exp"]).graph, "torch", specs) is None


def test_probe_finds_values_near_a_discontinuity():
    def probe(op, *arrays, dtype="float32", out_dtype=None):
        g = Graph()
        leaves = [g.add_leaf(TensorType(a.shape, dtype)) for a in arrays]
        node = g.add_op(op, {}, leaves, [TensorType(arrays[0].shape, out_dtype or dtype)])[0][0]
        env = {leaf: a.astype(dtype) for leaf, a in zip(leaves, arrays)}
        return near_discontinuity(g, node, "torch", SPECS, env, random.Random(0))

    assert probe("core.Floor", np.array([0.5, 1.5, -0.25]), dtype="float32") is False
    assert probe("core.Floor", np.array([0.5, 2.0000002])) is True
    assert probe("core.Round", np.array([0.5, 1.2]), dtype="float16") is True  # a tie rounds either way
    assert probe("core.Less", np.array([1.0, 2.0]), np.array([3.0, 0.0]), out_dtype="bool") is False
    assert probe("core.Less", np.array([1.0, 2.0]), np.array([1.00001, 0.0]), out_dtype="bool") is True


# ---- check_case ---------------------------------------------------------------------------

def test_wrong_add_is_a_mismatch_at_run_and_only_where_there_is_an_add():
    wrong = PLANTED + "wrong_add"
    result = check_case(chain(["core.Add", "core.Exp"]), ["torch.eager", wrong], SPECS)
    assert result.valid
    [bug] = result.bugs
    assert (bug.backend, bug.status, bug.stage, bug.output, bug.dtype) == (wrong, "mismatch", "run", 0, "float32")
    assert bug.max_abs > 0.3
    result = check_case(chain(["core.Mul", "core.Exp"]), ["torch.eager", wrong], SPECS)
    assert result.valid and result.bugs == []
    assert [v.status for v in result.verdicts] == ["ok", "ok"]


def test_raises_on_exp_is_a_crash_at_compile():
    raises = PLANTED + "raises_on_exp"
    result = check_case(chain(["core.Mul", "core.Exp"]), ["torch.eager", "torch.compile:aot_eager", raises], SPECS)
    assert [v.backend for v in result.verdicts] == ["torch.eager", "torch.compile:aot_eager", raises]
    [bug] = result.bugs
    assert (bug.backend, bug.status, bug.stage) == (raises, "crash", "compile")
    assert bug.message == "RuntimeError: planted: exp is not supported by this backend"
    assert check_case(chain(["core.Mul", "core.Sin"]), ["torch.eager", raises], SPECS).bugs == []


def test_planted_bug_is_found_in_a_generated_model():
    case = next(c for c in generated("torch", 40, 2) if "core.Exp" in c.graph.op_ids())
    result = check_case(case, ["torch.eager", PLANTED + "raises_on_exp"], SPECS)
    assert [(v.status, v.stage) for v in result.bugs] == [("crash", "compile")]


def test_an_invalid_reference_makes_an_invalid_case_not_a_bug():
    nan = check_case(chain(["core.Log"], low=-2.0, high=-1.0), ["torch.eager", PLANTED + "raises_on_exp"], SPECS)
    assert not nan.valid and "NaN/Inf" in nan.invalid_reason and nan.bugs == []
    g = Graph()
    a, b = g.add_leaf(TensorType((2, 3), "float32")), g.add_leaf(TensorType((4, 5), "float32"))
    g.outputs = g.add_op("core.Add", {}, [a, b], [TensorType((2, 3), "float32")])
    case = Case(g, "torch", {0: ValueSpec(0, 0, 1), 1: ValueSpec(1, 0, 1)})
    crash = check_case(case, ["torch.eager", "torch.compile:aot_eager"], SPECS)
    assert not crash.valid and crash.bugs == []
    assert "reference torch.eager raised at run (the generator made a model it rejects): RuntimeError" in crash.invalid_reason
    assert [v.backend for v in crash.verdicts] == ["torch.eager"]  # the others never ran


def test_skip_leaves_backends_out():
    result = check_case(chain(["core.Add"]), ["torch.eager", "torch.compile:aot_eager", "torch.jit"], SPECS,
                        skip={"torch.compile:aot_eager"})
    assert [v.backend for v in result.verdicts] == ["torch.eager", "torch.jit"]


def test_progress_hears_every_stage():
    heard = []
    check_case(chain(["core.Add", "core.Exp"]), ["torch.eager", "torch.compile:aot_eager", "torch.export"], SPECS,
               progress=lambda b, s: heard.append((b, s)))
    assert heard[:2] == [("torch.eager", "compile"), ("torch.eager", "run")]
    assert ("torch.compile:aot_eager", "compile") in heard and ("torch.export", "run") in heard


@pytest.mark.parametrize("seed,n,others", [
    (5, 30, ["torch.compile:aot_eager"]),
    pytest.param(6, 60, ["torch.compile:aot_eager", "torch.jit:freeze", "torch.export"], marks=pytest.mark.slow),
])
def test_no_false_alarm_between_eager_and_other_torch_backends_on_generated_models(seed, n, others):
    cases = generated("torch", n, seed)
    assert len(cases) >= n - 2
    for case in cases:
        result = check_case(case, ["torch.eager", *others], SPECS)
        assert result.valid, result.invalid_reason
        assert result.bugs == [], (case.graph.op_ids(), result.summary())


def test_inductor_agrees_with_eager_on_a_small_model():
    result = check_case(chain(["core.Mul", "core.Tanh", "core.Add"], shape=(3, 17)), ["torch.eager", "torch.compile"], SPECS)
    assert result.valid and [v.status for v in result.verdicts] == ["ok", "ok"]


@pytest.mark.tensorflow
def test_tensorflow_backends_agree_on_generated_models():
    cases = generated("tensorflow", 8, 3, max_nodes=6)
    for case in cases:
        result = check_case(case, ["tf.eager", "tf.function", "tf.xla"], SPECS)
        assert result.valid, result.invalid_reason
        assert result.bugs == [], (case.graph.op_ids(), result.summary())


@pytest.mark.tensorflow
def test_torch_and_tensorflow_agree_on_generated_models():
    cases = generated("torch", 10, 9, max_nodes=6, both=True)
    checked = 0
    for case in cases:
        result = check_case(case, ["torch.eager", "tf.eager"], SPECS)
        if not result.valid:  # a torch-only dtype of a shared op
            assert "not in tensorflow" in result.invalid_reason
            continue
        checked += 1
        assert result.bugs == [], (case.graph.op_ids(), result.summary())
    assert checked >= 6


@pytest.mark.tensorflow
def test_a_torch_only_dtype_makes_a_cross_framework_case_invalid():
    g = Graph()
    a = g.add_leaf(TensorType((3,), "bool"))
    g.outputs = g.add_op("core.BitwiseNot", {}, [a], [TensorType((3,), "bool")])
    result = check_case(Case(g, "torch", {0: ValueSpec(0, 0, 1)}), ["torch.eager", "tf.eager"], SPECS)
    assert not result.valid
    assert "core.BitwiseNot on bool (not in tensorflow)" in result.invalid_reason


@pytest.mark.tensorflow
def test_xla_limitations_are_recorded_but_not_bugs():
    xla = resolve("tf.xla")
    assert xla.is_unsupported("ValueError: Detected unsupported operations when trying to compile graph on XLA_CPU_JIT")
    assert not resolve("tf.function").is_unsupported("ValueError: Detected unsupported operations when trying")
