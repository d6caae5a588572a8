"""Other input shapes the same graph admits (rules.shape_sets): the dynamic-shapes check."""

import random

import pytest
import z3

from corpus.graph import Graph
from corpus.tensor_type import TensorType
from fuzzer.generate import GenConfig, Generator
from fuzzer.models import make_model
from rules.execute import run_eager, setup_framework
from rules.shape_sets import dynamic_dim_candidates, other_shape_sets, retype
from rules.solve import Bounds, instantiate
from rules.spec import OpSpec, SymTensor
from rules.specs import SPECS, specs_for


def op(g, op_id, inputs, rng_seed=0):
    """Add ``op_id`` on ``inputs`` with attributes and output types from ``instantiate``."""
    inst = instantiate(SPECS[op_id], "torch", random.Random(rng_seed), inputs=[g.type_of(v) for v in inputs])
    assert inst is not None
    return g.add_op(op_id, inst.attrs, inputs, inst.out_types)


def f32(*shape):
    return TensorType(shape, "float32")


def matmul_graph():
    g = Graph()
    a, b = g.add_leaf(f32(4, 5)), g.add_leaf(f32(5, 6))
    g.outputs = op(g, "core.MatMul", [a, b])
    return g


def test_broadcast_add_admits_other_batch_sizes_and_the_output_follows():
    g = Graph()
    x, y = g.add_leaf(f32(4, 3)), g.add_leaf(f32(1, 3))
    g.outputs = op(g, "core.Add", [x, y])
    assert g.type_of(g.outputs[0]).shape == (4, 3)
    sets = other_shape_sets(g, SPECS, random.Random(0), [(0, 0)], count=3)
    assert len(sets) == 3
    # a size of 2 or more first (the symbolic kernels as compiled), then 1 or 0, then
    # another size; only the dynamic dim moved
    assert sets[0][0][0] >= 2 and sets[0][0][0] != 4 and sets[1][0][0] in (0, 1)
    assert sets[2][0][0] not in (0, 1, 4)
    for s in sets:
        assert set(s) == {0} and s[0][1] == 3
        g2 = retype(g, SPECS, s)
        assert g2.type_of(g2.outputs[0]) == f32(s[0][0], 3)
        assert g2.type_of((1, 0)) == f32(1, 3)  # the other input did not move
    assert g.type_of(g.outputs[0]).shape == (4, 3)  # retype copies
    # both sides dynamic: y's 1 may stay 1 (broadcast) or grow with x, never mismatch
    for s in other_shape_sets(g, SPECS, random.Random(1), [(0, 0), (1, 0)], count=4):
        assert s[1][0] in (1, s[0][0]) or s[0][0] == 1
        assert retype(g, SPECS, s) is not None


def test_matmul_inner_dim_moves_only_when_both_sides_are_dynamic():
    g = matmul_graph()
    assert other_shape_sets(g, SPECS, random.Random(0), [(0, 1)]) == []
    assert other_shape_sets(g, SPECS, random.Random(0), [(1, 0)]) == []
    sets = other_shape_sets(g, SPECS, random.Random(0), [(0, 1), (1, 0)], count=3)
    assert len(sets) == 3
    for s in sets:
        assert s[0][1] == s[1][0] != 5 and s[0][0] == 4 and s[1][1] == 6
        assert retype(g, SPECS, s).type_of(g.outputs[0]) == f32(4, 6)
    # the outer dim is free on its own; the output follows it
    rows = other_shape_sets(g, SPECS, random.Random(0), [(0, 0)], count=2)
    shapes = [retype(g, SPECS, s).type_of(g.outputs[0]).shape for s in rows]
    assert shapes[0][0] >= 2 and shapes[1][0] in (0, 1) and all(s[1] == 6 for s in shapes)


def test_retype_rejects_what_the_graph_does_not_admit():
    g = matmul_graph()
    assert retype(g, SPECS, {0: (4, 7)}) is None  # inner dims disagree
    assert retype(g, SPECS, {0: (4, 7), 1: (7, 6)}).type_of(g.outputs[0]) == f32(4, 6)
    same = retype(g, SPECS, {})
    assert same.to_json() == g.to_json()
    with pytest.raises(ValueError):
        retype(g, SPECS, {0: (4, 5, 1)})  # another rank is not another shape
    with pytest.raises(ValueError):
        retype(g, SPECS, {2: (4, 6)})  # an op node is not an input


def test_a_fixed_reshape_target_pins_the_product():
    g = Graph()
    x = g.add_leaf(f32(4, 6))
    g.outputs = g.add_op("core.Reshape", {"out_rank": 2, "infer": -1, "s0": 2, "s1": 12}, [x], [f32(2, 12)])
    assert retype(g, SPECS, {}).to_json() == g.to_json()
    assert retype(g, SPECS, {0: (3, 8)}).type_of(g.outputs[0]) == f32(2, 12)
    assert retype(g, SPECS, {0: (3, 6)}) is None
    assert other_shape_sets(g, SPECS, random.Random(0), [(0, 0)]) == []
    sets = other_shape_sets(g, SPECS, random.Random(0), [(0, 0), (0, 1)], count=4)
    assert sets and all(s[0][0] * s[0][1] == 24 for s in sets)
    assert (1, 24) in [s[0] for s in sets]  # the size-1 set


def test_weights_keep_their_shapes():
    g = Graph()
    x = g.add_leaf(f32(8, 5))
    w, b = g.add_leaf(f32(7, 5), "const"), g.add_leaf(f32(7), "const")
    g.outputs = op(g, "core.Linear", [x, w, b])  # x @ W^T + b
    assert g.type_of(g.outputs[0]) == f32(8, 7)
    assert dynamic_dim_candidates(g) == [(0, 0), (0, 1)]
    sets = other_shape_sets(g, SPECS, random.Random(0), dynamic_dim_candidates(g), count=3)
    assert len(sets) == 3 and all(set(s) == {0} and s[0][1] == 5 for s in sets)
    with pytest.raises(ValueError):
        retype(g, SPECS, {1: (7, 6)})
    with pytest.raises(ValueError):
        other_shape_sets(g, SPECS, random.Random(0), [(1, 0)])  # a weight is never dynamic


def test_no_zero_when_not_allowed_and_sets_are_distinct():
    g = matmul_graph()
    dims = dynamic_dim_candidates(g)
    sets = other_shape_sets(g, SPECS, random.Random(3), dims, count=5, allow_zero=False, bounds=Bounds(max_dim=16))
    assert len(sets) == 5
    shapes = [tuple(sorted(s.items())) for s in sets]
    assert len(set(shapes)) == 5 and ((0, (4, 5)), (1, (5, 6))) not in shapes
    for s in sets:
        assert all(1 <= d <= 16 for shape in s.values() for d in shape)


def test_same_seed_same_sets_whatever_z3_solved_before():
    gen = Generator("torch", specs_for("torch"), GenConfig(max_nodes=6))
    graphs = [gen.generate(random.Random(f"det/{i}")) for i in range(6)]

    def sets():
        return [other_shape_sets(g, SPECS, random.Random(i), dynamic_dim_candidates(g), count=3)
                for i, g in enumerate(graphs)]

    first = sets()
    s = z3.Solver()  # unrelated solving in between
    a, b = z3.Ints("a b")
    s.add(a * b == 391, a > 1, b > 1)
    assert s.check() == z3.sat
    assert sets() == first
    assert any(first)
    other = [other_shape_sets(g, SPECS, random.Random(100 + i), dynamic_dim_candidates(g), count=3)
             for i, g in enumerate(graphs)]
    assert other != first


class _Picky(OpSpec):
    """Identity that refuses symbolic dims (as a careless spec might)."""

    id, origin = "test.Picky", "spec"

    def output_types(self, ins, attrs):
        if not all(z3.is_int_value(z3.simplify(d)) for d in ins[0].shape):
            raise TypeError("symbolic dim")
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]


class _Learned(_Picky):
    """Identity as an inferred rule: trusted only on the non-empty shapes it was seen on."""

    id, origin = "test.Learned", "inferred"

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]


@pytest.mark.parametrize("spec", [_Picky(), _Learned()])
def test_odd_specs(spec):
    g = Graph()
    x = g.add_leaf(f32(4, 3))
    g.outputs = g.add_op(spec.id, {}, [x], [f32(4, 3)])
    specs = {spec.id: spec}
    assert retype(g, specs, {0: (2, 3)}).type_of(g.outputs[0]) == f32(2, 3)
    sets = other_shape_sets(g, specs, random.Random(0), [(0, 0)], count=3)
    if spec.origin == "spec":
        assert sets == []  # raised under symbolic dims: nothing admitted, no crash
    else:
        assert len(sets) == 3 and all(s[0][0] >= 1 for s in sets)
        assert retype(g, specs, {0: (0, 3)}) is None


def test_generated_graphs_admit_other_shapes_that_run_in_eager():
    setup_framework("torch")
    gen = Generator("torch", specs_for("torch"), GenConfig(max_nodes=6))
    graphs = with_sets = total = ran = 0
    for i in range(30):
        model = make_model(gen, SPECS, 21, i)
        if not model.valid:
            continue
        g, rng = model.case.graph, random.Random(i)
        graphs += 1
        # a planner's draw: about half the input dims dynamic
        dims = [d for d in dynamic_dim_candidates(g) if rng.random() < 0.5] or dynamic_dim_candidates(g)[:1]
        sets = other_shape_sets(g, SPECS, rng, dims, count=3)
        with_sets += bool(sets)
        for s in sets:
            assert s and all(len(shape) == g.node(leaf).types[0].rank for leaf, shape in s.items())
            assert any(s[leaf] != g.node(leaf).types[0].shape for leaf in s)
            g2 = retype(g, SPECS, s)
            assert g2 is not None
            total += 1
            try:
                outs = run_eager(g2, "torch", model.case.values, SPECS)
            except Exception:  # noqa: BLE001 - eager refuses some empty tensors (max over 0 elements)
                continue
            assert [tuple(o.shape) for o in outs] == [g2.type_of(v).shape for v in g2.outputs]
            ran += 1
    assert graphs >= 25
    assert with_sets >= 0.7 * graphs, (with_sets, graphs)
    assert ran >= 0.8 * total, (ran, total)
