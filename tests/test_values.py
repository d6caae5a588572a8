"""Values that reach what compilers get wrong: integers up to their dtype's limits (where
eager does not overflow) and special floats, rebuilt exactly from their recipes."""

import random

import numpy as np

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec, has_special, make_value
from fuzzer.generate import GenConfig, Generator
from fuzzer.models import make_model
from fuzzer.overflow import overflows
from fuzzer.values import search_values
from oracles.check import check_case
from oracles.compare import Output, compare_nonfinite
from rules.codegen import leaf_recipes, program_source
from rules.specs import SPECS, specs_for

PLANTED = "torch.compile:tests.planted_backends:"


def binary(op, dtype, values, shape=(64,)):
    g = Graph()
    t = TensorType(shape, dtype)
    x, y = g.add_leaf(t), g.add_leaf(t)
    g.outputs = g.add_op(op, {}, [x, y], [t])
    return Case(g, "torch", {0: values[0], 1: values[1]})


def identical(a, b):
    """Bit for bit, NaN positions and the sign of zero included."""
    a, b = np.asarray(a), np.asarray(b)
    return (a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
            and (a.dtype.kind != "f" or np.array_equal(np.signbit(a), np.signbit(b))))


def a_seed_with_nan(shape=(4, 4), dtype="float32"):
    return next(s for s in range(1000)
                if np.isnan(make_value(TensorType(shape, dtype), ValueSpec(s, -1.0, 1.0, "special"))).any())


def batch(n=60, seed=1, framework="torch"):
    gen = Generator(framework, specs_for(framework), GenConfig(max_nodes=8))
    return [make_model(gen, SPECS, seed, i) for i in range(n)]


# ---- recipes ------------------------------------------------------------------------------

def test_same_seed_same_values_in_every_mode():
    for dtype, spec in [("int64", ValueSpec(3, -2**63, 2**63 - 1, "limits")), ("uint8", ValueSpec(4, 0, 255, "limits")),
                        ("float16", ValueSpec(5, -2.0, 2.0, "special")), ("bfloat16", ValueSpec(6, -2.0, 2.0, "special"))]:
        t = TensorType((5, 7), dtype)
        assert identical(make_value(t, spec), make_value(t, spec))
        assert not identical(make_value(t, spec), make_value(t, ValueSpec(spec.seed + 1, spec.low, spec.high, spec.mode)))
    # the modes change only the elements they target: the rest is the plain draw
    t = TensorType((8, 8), "float32")
    plain, special = make_value(t, ValueSpec(9, -1.0, 1.0)), make_value(t, ValueSpec(9, -1.0, 1.0, "special"))
    changed = ~((plain == special) & (np.signbit(plain) == np.signbit(special)))
    assert 1 <= changed.sum() <= 3


def test_generated_batches_are_deterministic_and_record_their_value_mode():
    a, b = batch(25, seed=3), batch(25, seed=3)
    assert [m.case.dumps() for m in a] == [m.case.dumps() for m in b]
    assert all(m.case.provenance["values_mode"] in ("plain", "limits", "special") for m in a)


def test_old_recipes_load_and_print_as_before():
    old = {"seed": 7, "low": -8.0, "high": 8.0}  # a case.json value written before modes existed
    spec = ValueSpec.from_json(old)
    assert spec.mode == "" and spec.to_json() == old
    g = Graph()
    g.outputs = [g.add_leaf(TensorType((3,), "int32"))]
    consts, inputs = leaf_recipes(g, {0: spec})
    assert inputs == ["    to_tensor(make_value([3], 'int32', 7, -8.0, 8.0), 'int32'),"]
    # int64's limits survive JSON exactly (as floats they would round to 2**63)
    wide = ValueSpec(1, -2**63, 2**63 - 1, "limits")
    assert ValueSpec.from_json(wide.to_json()) == wide and isinstance(ValueSpec.from_json(wide.to_json()).high, int)


# ---- integers near their limits -----------------------------------------------------------

def test_integer_leaves_reach_their_dtype_limits_in_a_seeded_batch():
    near = []
    for m in batch(80, seed=1):
        for leaf, spec in m.case.values.items():
            t = m.case.graph.node(leaf).types[0]
            if spec.mode == "limits" and t.numel:
                info, a = np.iinfo(t.dtype), make_value(t, spec).astype(np.int64)
                near.append(bool(((a >= int(info.max) - 3) | (a <= int(info.min) + 3)).any()))
        if m.case.provenance["values_mode"] == "limits":
            assert any(v.mode == "limits" for v in m.case.values.values())
    assert any(near)


def test_the_overflow_check_sees_an_int8_add_that_wraps():
    wraps = binary("core.Add", "int8", [ValueSpec(1, 100, 127, "limits"), ValueSpec(2, 100, 127, "limits")])
    assert overflows(wraps.graph, "torch", wraps.values, SPECS) is True
    fits = binary("core.Add", "int8", [ValueSpec(1, -64, 63, "limits"), ValueSpec(2, -64, 63, "limits")])
    assert overflows(fits.graph, "torch", fits.values, SPECS) is False
    # int32 products are promoted to int64 by cumprod-like ops; the float64 recomputation
    # still sees int64 overflow
    big = binary("core.Mul", "int64", [ValueSpec(3, 2**40, 2**41, "limits"), ValueSpec(4, 2**40, 2**41, "limits")])
    assert overflows(big.graph, "torch", big.values, SPECS) is True


def test_no_accepted_limits_values_overflow_in_eager():
    modes = []
    for op, dtype in [("core.Add", "int8"), ("core.Sub", "uint8"), ("core.Mul", "int16"), ("core.Mul", "int64")]:
        case = binary(op, dtype, [None, None])
        for seed in range(3):
            result = search_values(case.graph, "torch", SPECS, random.Random(seed), mode="limits")
            assert result.ok
            modes.append(result.mode)
            if result.mode != "limits":
                continue  # fell back to the plain small values
            x, y = (make_value(case.graph.node(n).types[0], result.values[n]).astype(object) for n in (0, 1))
            exact = {"core.Add": x + y, "core.Sub": x - y, "core.Mul": x * y}[op]
            info = np.iinfo(dtype)
            assert all(info.min <= int(v) <= info.max for v in exact), (op, dtype, result.values)
            assert max(abs(result.values[n].low) for n in (0, 1)) > 8  # wide, not the small default
    assert modes.count("limits") >= 6  # most shrink to a range that fits rather than give up


# ---- special floats -----------------------------------------------------------------------

def test_compare_nonfinite_wants_nan_where_the_reference_has_it_and_infinities_by_sign():
    ref = [Output("float32", (4,), np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32))]
    same = [Output("float32", (4,), np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32))]
    diff, r, c = compare_nonfinite(ref, same)
    assert diff is None and np.isfinite(r[0].array).all() and np.isfinite(c[0].array).all()
    for wrong in ([0.0, np.inf, -np.inf, 1.0], [np.nan, -np.inf, -np.inf, 1.0], [np.nan, np.inf, np.nan, 1.0]):
        diff, _, _ = compare_nonfinite(ref, [Output("float32", (4,), np.array(wrong, dtype=np.float32))])
        assert diff is not None and diff.output == 0


def test_special_values_keep_nan_valid_and_a_backend_dropping_nan_is_a_mismatch():
    spec = ValueSpec(a_seed_with_nan(), -1.0, 1.0, "special")
    case = binary("core.Add", "float32", [spec, ValueSpec(2, -1.0, 1.0)], shape=(4, 4))
    assert has_special(case.values.values())
    result = check_case(case, ["torch.eager", "torch.compile:aot_eager", PLANTED + "nan_to_zero"], SPECS)
    assert result.valid, result.invalid_reason
    by_name = {v.backend: v for v in result.verdicts}
    assert by_name["torch.compile:aot_eager"].status == "ok"
    assert by_name[PLANTED + "nan_to_zero"].status == "mismatch"
    assert "NaN" in by_name[PLANTED + "nan_to_zero"].message


def test_a_nan_reference_is_invalid_outside_special_cases():
    g = Graph()
    t = TensorType((4,), "float32")
    x = g.add_leaf(t)
    g.outputs = g.add_op("core.Sqrt", {}, [x], [t])
    result = check_case(Case(g, "torch", {0: ValueSpec(1, -2.0, -1.0)}), ["torch.eager"], SPECS)
    assert not result.valid and "NaN/Inf" in result.invalid_reason


def test_program_of_a_special_or_limits_case_rebuilds_the_same_values():
    cases = [binary("core.Add", "float32", [ValueSpec(a_seed_with_nan(), -1.0, 1.0, "special"),
                                            ValueSpec(5, -1.0, 1.0, "special")], shape=(4, 4)),
             binary("core.Add", "int64", [ValueSpec(6, -2**62, 2**62 - 1, "limits"), ValueSpec(7, -8.0, 8.0)]),
             binary("core.Mul", "bfloat16", [ValueSpec(8, -2.0, 2.0, "special"), ValueSpec(9, -2.0, 2.0)])]
    for case in cases:
        again = Case.from_json(case.to_json())  # through case.json, as a saved case travels
        ns = {"__name__": "program"}
        exec(program_source(again.graph, "torch", again.values, SPECS, "header"), ns)
        rebuilt = [ns["to_numpy"](x) for x in ns["INPUTS"]()]
        for n, array in zip(case.graph.leaves("input"), rebuilt):
            t = case.graph.node(n).types[0]
            want = make_value(t, case.values[n])
            if t.dtype == "bfloat16":  # the framework rounds the float32 carrier
                import torch

                want = torch.from_numpy(want).to(torch.bfloat16).float().numpy()
            assert identical(array, want.astype(array.dtype)), (t, case.values[n])


def test_special_cases_come_from_generation_and_check_valid():
    specials = [m for m in batch(60, seed=2) if m.case.provenance["values_mode"] == "special"]
    assert specials and all(has_special(m.case.values.values()) and m.valid for m in specials)
    result = check_case(specials[0].case, ["torch.eager"], SPECS)
    assert result.valid, result.invalid_reason


def test_no_accepted_values_cast_floats_outside_the_integer_range():
    """int8 of 300.0 is undefined in C: eager's result means nothing and frameworks
    differ (a false alarm across frameworks); the search repairs such values."""
    import random

    import numpy as np

    from corpus.graph import Graph
    from corpus.tensor_type import TensorType
    from fuzzer.values import search_values
    from rules.specs import SPECS

    g = Graph()
    x = g.add_leaf(TensorType((64,), "float32"))
    big = g.add_op("core.Mul", {}, [x, g.add_leaf(TensorType((64,), "float32"))], [TensorType((64,), "float32")])[0]
    r = g.add_op("core.Reciprocal", {}, [big], [TensorType((64,), "float32")])[0]
    g.outputs = [r] + g.add_op("core.CastFloatToInt", {"to": "int8"}, [r], [TensorType((64,), "int8")])
    accepted = 0
    for seed in range(20):
        found = search_values(g, "torch", SPECS, random.Random(seed))
        if found.ok:
            accepted += 1
            assert np.abs(found.outputs[0]).max() < 128
    assert accepted >= 5


def test_an_integer_fault_only_large_values_show_is_found_in_limits_mode():
    """A backend adding int32 through float32 is right below 2**24: small values never see
    it; values across the range (where eager does not overflow) do."""
    import random

    from corpus.case import Case
    from corpus.graph import Graph
    from corpus.tensor_type import TensorType
    from fuzzer.values import search_values
    from oracles.check import check_case
    from rules.specs import SPECS

    t = TensorType((16,), "int32")
    g = Graph()
    g.outputs = g.add_op("core.Add", {}, [g.add_leaf(t), g.add_leaf(t)], [t])
    backends = ["torch.eager", "torch.compile:tests.planted_backends:int_add_via_float32"]
    verdicts = {}
    for mode in ("", "limits"):
        found = search_values(g, "torch", SPECS, random.Random(4), mode=mode)
        assert found.ok and found.mode == mode
        result = check_case(Case(g, "torch", found.values), backends, SPECS)
        verdicts[mode] = [v.status for v in result.bugs]
    assert verdicts == {"": [], "limits": ["mismatch"]}


def test_small_values_whose_product_wraps_in_eager_are_not_accepted():
    """x * x * x in int8 wraps for |x| >= 6 even on small values (an XLA campaign compared
    two different wraps of pow(total_variation(x), ...) in int64): such values are redrawn,
    and a model that wraps on every draw gets none, saying why; int64 holds the product."""
    def cube(dtype):
        g = Graph()
        t = TensorType((16,), dtype)
        x = g.add_leaf(t)
        sq = g.add_op("core.Mul", {}, [x, x], [t])
        g.outputs = g.add_op("core.Mul", {}, [sq[0], x], [t])
        return g

    wrapped = search_values(cube("int8"), "torch", SPECS, random.Random(0))
    assert not wrapped.ok and "overflow" in wrapped.error
    held = search_values(cube("int64"), "torch", SPECS, random.Random(0))
    assert held.ok
