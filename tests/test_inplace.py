"""In-place operators and mutation through views (issue 15, part 5): each spec writes
what its out-of-place twin computes; generated graphs keep the mutation rule (a value
written in place has no other reader, so statement order does not matter); inputs
written by a model are written in the tensors the caller passed; and the consumers of
graphs (value probes, overflow check, reducer) cope with writes."""

import json
import random

import numpy as np
import pytest
import torch

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec, make_value
from fuzzer.generate import GenConfig, Generator
from rules.execute import load_module, run_eager
from rules.solve import Bounds, instantiate
from rules.specs import SPECS, inplace, specs_for
from rules.specs.inplace import (OVERLAPPING_OPS, VIEW_OPS, has_mutation, mutation_violations, spent_values,
                                 written_inputs)

BOUNDS = Bounds(max_rank=4, max_dim=16, max_elements=512)
SPEC_ONLY = {"spec": 1.0, "inferred": 0.0, "concrete": 0.0}
F32 = TensorType((3, 4), "float32")


def _t(a, dtype):
    return torch.from_numpy(np.array(a)).to(getattr(torch, dtype))


def _full(t, v):
    return torch.full_like(t, v)


def _slice(x, a):
    start, step = a["start"], a["step"]
    end = min(a["end"], x.shape[a["axis"]])
    return start, end, step


# The out-of-place computation of every in-place spec: (x, *others, attrs) -> new x.
REFERENCE = {
    "core.ReluInplace": lambda x, a: torch.relu(x),
    "core.NegInplace": lambda x, a: torch.neg(x),
    "core.AbsInplace": lambda x, a: torch.abs(x),
    "core.SigmoidInplace": lambda x, a: torch.sigmoid(x),
    "core.TanhInplace": lambda x, a: torch.tanh(x),
    "core.ExpInplace": lambda x, a: torch.exp(x),
    "core.SqrtInplace": lambda x, a: torch.sqrt(x),
    "core.ZeroInplace": lambda x, a: torch.zeros_like(x),
    "core.FillInplace": lambda x, a: _full(x, a["value"]),
    "core.ClampInplace": lambda x, a: torch.clamp(x, a["min"], a["max"]),
    "core.AddInplace": lambda x, y, a: torch.add(x, y),
    "core.SubInplace": lambda x, y, a: torch.sub(x, y),
    "core.MulInplace": lambda x, y, a: torch.mul(x, y),
    "core.DivInplace": lambda x, y, a: torch.div(x, y),
    "core.CopyInplace": lambda x, y, a: y.expand(x.shape).clone(),
    "core.BitwiseXorInplace": lambda x, y, a: torch.bitwise_xor(x, y),
    "core.MaskedFillInplace": lambda x, m, a: torch.masked_fill(x, m, a["value"]),
    "core.AddcmulInplace": lambda x, p, q, a: torch.addcmul(x, p, q, value=a["value"]),
    "core.IndexPutInplace": lambda x, y, a: x.index_put((torch.tensor([a[f"i{j}"] for j in range(a["k"])]),), y),
    "core.IndexPutAccumulateInplace":
        lambda x, y, a: x.index_put((torch.tensor([a[f"i{j}"] for j in range(a["k"])]),), y, accumulate=True),
    "core.FlatViewAddInplace": lambda x, y, a: (x.reshape(-1) + y).reshape(x.shape),
    "core.SliceMulInplace": lambda x, y, a: torch.slice_scatter(
        x, torch.mul(x[(slice(None),) * a["axis"] + (slice(*_slice(x, a)),)], y), a["axis"], *_slice(x, a)),
    "core.TransposeCopyInplace": lambda x, y, a: y.expand(x.transpose(a["dim0"], a["dim1"]).shape)
        .transpose(a["dim0"], a["dim1"]).clone(),
    "core.TCopyInplace": lambda x, y, a: y.expand(x.t().shape).t().clone(),
    "core.SelectFillInplace": lambda x, a: torch.select_scatter(
        x, _full(x.select(a["dim"], a["index"]), a["value"]), a["dim"], a["index"]),
    "core.NarrowFillInplace": lambda x, a: torch.slice_scatter(
        x, _full(x.narrow(a["dim"], a["start"], a["length"]), a["value"]), a["dim"], a["start"], a["start"] + a["length"]),
    "core.NarrowAddInplace": lambda x, y, a: torch.slice_scatter(
        x, torch.add(x.narrow(a["dim"], a["start"], a["length"]), y), a["dim"], a["start"], a["start"] + a["length"]),
    "core.UnsqueezeMulInplace": lambda x, y, a: torch.mul(x.unsqueeze(a["dim"]), y).squeeze(a["dim"]),
    "core.DiagonalFillInplace": lambda x, a: torch.diagonal_scatter(
        x, _full(x.diagonal(a["offset"], a["dim1"], a["dim2"]), a["value"]), a["offset"], a["dim1"], a["dim2"]),
}


def _values(spec, in_types, seed):
    out = {}
    for pos, t in enumerate(in_types):
        lo, hi = spec.value_range(pos, t.dtype) or (-2.0, 2.0)
        if t.dtype == "uint8":
            lo, hi = max(lo, 0), max(hi, 1)
        out[pos] = ValueSpec(seed * 7 + pos, lo, hi)
    return out


def test_every_inplace_spec_is_registered_torch_only_and_has_a_reference():
    ids = {s.id for s in inplace.SPECS}
    assert ids == set(REFERENCE)
    for sid in ids:
        spec = SPECS[sid]
        assert spec.mutates == (0,) and spec.frameworks == ("torch",) and spec.one_framework_reason
    assert not any(s.mutates for s in specs_for("tensorflow"))
    assert {s.id for s in SPECS.values() if s.mutates} == ids


@pytest.mark.parametrize("sid", sorted(REFERENCE))
def test_inplace_spec_writes_what_its_out_of_place_twin_computes(sid):
    spec = SPECS[sid]
    rng = random.Random(sid)
    ran = 0
    for k in range(30):
        inst = instantiate(spec, "torch", rng, BOUNDS)
        if inst is None:
            continue
        g = Graph()
        leaves = [g.add_leaf(t) for t in inst.in_types]
        g.outputs = g.add_op(sid, inst.attrs, leaves, inst.out_types)
        vals = _values(spec, inst.in_types, k)
        values = {leaf[0]: vals[pos] for pos, leaf in enumerate(leaves)}
        (got,) = run_eager(g, "torch", values, SPECS)
        ins = [_t(make_value(t, vals[p]), t.dtype) for p, t in enumerate(inst.in_types)]
        want = REFERENCE[sid](*ins, inst.attrs)
        assert want.dtype == ins[0].dtype and tuple(want.shape) == inst.out_types[0].shape
        if want.dtype == torch.bfloat16:
            want = want.float()
        np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{sid} {inst.in_types} {inst.attrs}")
        ran += 1
        if ran == 6:
            break
    assert ran == 6


@pytest.mark.parametrize("sid", sorted(REFERENCE))
def test_the_model_writes_the_input_tensor_it_was_given(sid):
    """What an oracle compares after the call: the caller's tensor holds the new value."""
    spec = SPECS[sid]
    inst = None
    rng = random.Random(f"{sid}/leaf")
    while inst is None:
        inst = instantiate(spec, "torch", rng, BOUNDS)
    g = Graph()
    leaves = [g.add_leaf(t) for t in inst.in_types]
    g.outputs = g.add_op(sid, inst.attrs, leaves, inst.out_types)
    assert written_inputs(g, SPECS) == [leaves[0][0]]
    vals = _values(spec, inst.in_types, 3)
    ns = load_module(g, "torch", {leaf[0]: vals[p] for p, leaf in enumerate(leaves)}, SPECS)
    xs = ns["INPUTS"]()
    (out,) = ns["Model"](ns["CONSTS"]())(*xs)
    assert out is xs[0]  # the whole written tensor, not the view written through
    fresh = ns["INPUTS"]()
    torch.testing.assert_close(xs[0], REFERENCE[sid](*fresh, inst.attrs), rtol=0, atol=0, equal_nan=True)
    for x, f in zip(xs[1:], fresh[1:]):  # what is only read stays as it was
        torch.testing.assert_close(x, f, rtol=0, atol=0, equal_nan=True)


def _instances(spec, n=3):
    rng = random.Random(spec.id)
    for _ in range(n * 4):
        inst = instantiate(spec, "torch", rng, BOUNDS)
        if inst is not None:
            yield inst
            n -= 1
            if not n:
                return


def test_view_lists_name_every_hand_written_op_whose_result_shares_storage():
    """The mutation rule knows which ops may return views: eager must agree."""
    for spec in specs_for("torch"):
        if spec.mutates:
            continue
        for inst in _instances(spec):
            g = Graph()
            leaves = [g.add_leaf(t, "const" if p in spec.weight_inputs else "input") for p, t in enumerate(inst.in_types)]
            g.outputs = g.add_op(spec.id, inst.attrs, leaves, inst.out_types)
            values = {leaf[0]: ValueSpec(p, 0.0, 3.0) for p, leaf in enumerate(leaves)}
            ns = load_module(g, "torch", values, SPECS)
            model = ns["Model"](ns["CONSTS"]())
            xs = ns["INPUTS"]()
            storages = {x.untyped_storage().data_ptr() for x in xs} | \
                {b.untyped_storage().data_ptr() for b in model.buffers()}
            for o in model(*xs):
                if o.numel() and o.untyped_storage().data_ptr() in storages:
                    assert spec.id in VIEW_OPS, f"{spec.id} returns a view {inst.attrs}"
                if any(s == 0 and d > 1 for s, d in zip(o.stride(), o.shape)):
                    assert spec.id in OVERLAPPING_OPS, f"{spec.id} returns a self-overlapping tensor"


def _generator(kinds=None, **cfg):
    from rules.registry import operator_specs

    cfg.setdefault("mutation", True)
    if kinds is None:
        return Generator("torch", specs_for("torch"), GenConfig(max_nodes=10, kind_weights=dict(SPEC_ONLY), **cfg))
    return Generator("torch", operator_specs("torch", kinds), GenConfig(max_nodes=10, **cfg))


def _check_rule(g, specs):
    assert mutation_violations(g, specs) == []
    for n in g.op_nodes():
        for p in specs[g.node(n).op].mutates:
            v = g.inputs_of(n)[p]
            assert g.users_of(v) == [(n, p)]  # the write is the value's only reader
            assert g.node(v[0]).kind != "const"
    assert not spent_values(g, specs) & set(g.outputs)


def test_spec_only_graphs_write_in_place_and_keep_the_mutation_rule():
    gen = _generator()
    graphs = [gen.generate(random.Random(seed)) for seed in range(40)]
    with_writes = [g for g in graphs if has_mutation(g, gen.by_id)]
    assert len(with_writes) >= 18, len(with_writes)  # about 27 of 40 (GenConfig.mutation_share)
    assert sum(bool(written_inputs(g, gen.by_id)) for g in graphs) >= 8  # graph inputs written too
    assert sum(any(g.node(v[0]).kind == "op" for n in g.op_nodes() for p in gen.by_id[g.node(n).op].mutates
                   for v in [g.inputs_of(n)[p]]) for g in graphs) >= 8  # and intermediates
    for g in graphs:
        _check_rule(g, gen.by_id)


def test_default_kinds_with_inferred_inplace_apis_keep_the_mutation_rule():
    gen = _generator(("spec", "inferred", "concrete"))
    inferred = [s for s in gen.specs if s.mutates and s.origin != "spec"]
    assert any(s.api == "torch.Tensor.add_" for s in inferred)
    graphs = [gen.generate(random.Random(seed)) for seed in range(30)]
    assert sum(has_mutation(g, gen.by_id) for g in graphs) >= 8
    for g in graphs:
        _check_rule(g, gen.by_id)


def test_without_mutation_no_op_writes_in_place():
    for gen in (_generator(mutation=False), _generator(("spec", "inferred", "concrete"), mutation=False)):
        assert not any(s.mutates for s in gen.specs)
        for seed in range(40 if gen.config.kind_weights == SPEC_ONLY else 15):
            assert not has_mutation(gen.generate(random.Random(seed)), gen.by_id)


def test_backward_insertion_keeps_the_mutation_rule():
    gen = _generator(forward_prob=0.3)
    for seed in range(30):
        _check_rule(gen.generate(random.Random(seed)), gen.by_id)


def test_generation_with_writes_is_seeded():
    a = [json.dumps(_generator().generate(random.Random(s)).to_json()) for s in range(5)]
    b = [json.dumps(_generator().generate(random.Random(s)).to_json()) for s in range(5)]
    assert a == b


def _relabelled(g: Graph) -> tuple[Graph, dict[int, int]]:
    """The same graph with node ids reversed: its statements come in another order."""
    data = g.to_json()
    top = max(d["id"] for d in data["nodes"])
    new = {d["id"]: top - d["id"] for d in data["nodes"]}
    for d in data["nodes"]:
        d["id"] = new[d["id"]]
        if "inputs" in d:
            d["inputs"] = [[new[a], b] for a, b in d["inputs"]]
    data["outputs"] = [[new[a], b] for a, b in data["outputs"]]
    return Graph.from_json(data), new


def _run_with_inputs(g, values):
    ns = load_module(g, "torch", values, SPECS)
    xs = ns["INPUTS"]()
    with torch.no_grad():
        outs = ns["Model"](ns["CONSTS"]())(*xs)
    return [o.float().numpy() if o.dtype == torch.bfloat16 else o.numpy() for o in outs], \
        {n: x for n, x in zip(g.leaves("input"), xs)}


def test_statement_order_does_not_change_outputs_or_written_inputs():
    from fuzzer.models import make_model

    gen = _generator()
    checked = 0
    for i in range(25):
        m = make_model(gen, SPECS, 21, i)
        g = m.case.graph
        if not m.valid or not has_mutation(g, SPECS):
            continue
        other, new = _relabelled(g)
        if [new[n] for n in g.op_nodes()] == other.op_nodes():
            continue  # same order
        outs_a, ins_a = _run_with_inputs(g, m.case.values)
        outs_b, ins_b = _run_with_inputs(other, {new[n]: v for n, v in m.case.values.items()})
        for a, b in zip(outs_a, outs_b):
            np.testing.assert_array_equal(a, b)
        written = set(written_inputs(g, SPECS))
        fresh = {n: x for n, x in zip(g.leaves("input"), load_module(g, "torch", m.case.values, SPECS)["INPUTS"]())}
        for n, x in ins_a.items():
            torch.testing.assert_close(x, ins_b[new[n]], rtol=0, atol=0, equal_nan=True)
            if n not in written:  # an input the analysis says is never written is never written
                torch.testing.assert_close(x, fresh[n], rtol=0, atol=0, equal_nan=True)
        checked += 1
    assert checked >= 10


def _add_into_leaf():
    g = Graph()
    x, y = g.add_leaf(F32), g.add_leaf(F32)
    (r,) = g.add_op("core.Relu", {}, [y], [F32])
    (w,) = g.add_op("core.AddInplace", {}, [x, r], [F32])
    (o,) = g.add_op("core.Sin", {}, [w], [F32])
    g.outputs = [o]
    return g, x, y, r, w


def test_probes_of_every_value_see_values_before_they_are_written():
    """A probe that makes every value an output (value search, localization,
    discontinuity probe) gets each value as computed, not as a later write left it."""
    from oracles.probe import all_values

    g, x, y, r, w = _add_into_leaf()
    values = {x[0]: ValueSpec(1, -2.0, 2.0), y[0]: ValueSpec(2, -2.0, 2.0)}
    env = all_values(g, "torch", values, SPECS)
    xv, yv = make_value(F32, values[x[0]]), make_value(F32, values[y[0]])
    np.testing.assert_array_equal(env[x], xv)
    np.testing.assert_array_equal(env[w], xv + np.maximum(yv, 0))
    # the program a user sees is unchanged: no copies where no written value is an output
    from rules.codegen import forward_body

    assert not any("clone" in line for line in forward_body(g, "torch", SPECS))


def test_overflow_check_widens_the_inputs_as_given_not_as_written():
    from fuzzer.overflow import overflows

    t = TensorType((5,), "int32")
    g = Graph()
    x, y = g.add_leaf(t), g.add_leaf(t)
    g.outputs = g.add_op("core.AddInplace", {}, [x, y], [t])
    values = {x[0]: ValueSpec(1, -100, 100, "limits"), y[0]: ValueSpec(2, -100, 100, "limits")}
    assert overflows(g, "torch", values, SPECS) is False
    big = {x[0]: ValueSpec(1, 2**31 - 10, 2**31 - 1, "limits"), y[0]: ValueSpec(2, 100, 200, "limits")}
    assert overflows(g, "torch", big, SPECS) is True


def test_reducer_passes_never_give_a_written_value_another_reader():
    from fuzzer.models import make_model
    from reports.passes import Context, bypass_pass, cut_pass, detach_pass, outputs_pass

    gen = _generator()
    ctx = Context(SPECS, "mismatch", output=0)
    cases = [m.case for m in (make_model(gen, SPECS, 4, i) for i in range(6)) if m.valid]
    assert any(has_mutation(c.graph, SPECS) for c in cases)
    for case in cases:
        for p in (outputs_pass, cut_pass, bypass_pass, detach_pass):
            for cand in p(case, ctx):
                assert mutation_violations(cand.graph, SPECS) == []
    # relu(y) is written in place; relu's bypass would write y, which neg reads too
    g = Graph()
    x, y = g.add_leaf(F32), g.add_leaf(F32)
    (r,) = g.add_op("core.Relu", {}, [y], [F32])
    (w,) = g.add_op("core.AddInplace", {}, [r, x], [F32])
    (n,) = g.add_op("core.Neg", {}, [y], [F32])
    g.outputs = [w, n]
    case = Case(g, "torch", {x[0]: ValueSpec(1, -2.0, 2.0), y[0]: ValueSpec(2, -2.0, 2.0)})
    bypassed = [c.graph for c in bypass_pass(case, ctx)]
    assert bypassed and all(mutation_violations(c, SPECS) == [] for c in bypassed)
    assert not any(r[0] not in c.nx and w[0] in c.nx for c in bypassed)  # relu stays while the add does


def test_mutation_violations_name_the_second_reader():
    g = Graph()
    x, y = g.add_leaf(F32), g.add_leaf(F32)
    g.add_op("core.AddInplace", {}, [x, y], [F32])
    (s,) = g.add_op("core.Sin", {}, [x], [F32])  # reads x: before or after the write?
    g.outputs = [s]
    assert any("also read" in v for v in mutation_violations(g, SPECS))
    g = Graph()
    x, y = g.add_leaf(F32), g.add_leaf(F32)
    (t,) = g.add_op("core.Transpose", {"dim0": 0, "dim1": 1, "perm": [1, 0]}, [x], [TensorType((4, 3), "float32")])
    g.add_op("core.Sin", {}, [x], [F32])  # x is read, and written through its transpose
    g.add_op("core.ZeroInplace", {}, [t], [TensorType((4, 3), "float32")])
    assert any("may share" in v for v in mutation_violations(g, SPECS))


def test_inferred_inplace_apis_write_their_receiver_and_keep_its_type():
    from rules.inferred import inferred_specs, usable

    specs = [s for s in inferred_specs("torch") if s.mutates]
    assert specs and all(s.mutates == (0,) and s.api.endswith("_") for s in specs)
    assert {"torch.Tensor.add_", "torch.Tensor.clamp_", "torch.Tensor.masked_fill_"} <= {s.api for s in specs}
    eq = next(s for s in specs if s.api == "torch.Tensor.eq_")
    assert eq.discontinuous  # writes 0.0/1.0 into a float tensor
    rule = {"api": "torch.Tensor.unsqueeze_", "template": {"args": [{"$tensor": 0}, {"$sym": "a0"}], "kwargs": {},
            "tensors": [{"kind": None, "rank": 2}], "attrs": {"a0": [0, 1]}, "floats": {}},
            "outputs": {"shapes": [["1", "t0_0", "t0_1"]]}, "dtypes": [{"in": ["float32"], "out": ["float32"]}],
            "constraints": [], "precision": 1.0}
    assert "changes the shape" in usable(rule, "torch")
    rule["outputs"]["shapes"] = [["t0_0", "t0_1"]]
    assert usable(rule, "torch") is None
    rule["dtypes"] = [{"in": ["float32"], "out": ["float64"]}]
    assert "changes the dtype" in usable(rule, "torch")


def test_the_last_write_through_a_view_is_the_programs_last_not_the_highest_node_id():
    """x10 is filled through a transposed view, then sigmoid values are added into it; the
    writes' node ids (8, 0, 1, 4) do not follow the program, and taking the highest id
    judged x10 as filled (exact) where it holds 1.375 + sigmoid: a 1-ulp sigmoid difference
    was reported (a coverage campaign under cpp.simdlen=0)."""
    from pathlib import Path

    from corpus.case import Case
    from oracles.judge import written_through_views
    from rules.specs import SPECS

    case = Case.load(Path(__file__).parent / "data" / "view_writes_out_of_id_order.json")
    [(leaf, last)] = written_through_views(case.graph, SPECS).items()
    assert case.graph.node(last[0]).op == "core.AddInplace"
