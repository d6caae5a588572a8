"""Every spec that claims both frameworks computes the same function in both: one solved
instance, one set of input values, run in PyTorch and in TensorFlow, equal results
(allclose for floats, exact otherwise). Restricted to dtype combinations with a
float32/float64 input and no half-precision one (index and condition inputs may be int or
bool), where the two frameworks are expected to agree to rounding."""

import random

import numpy as np
import pytest

from corpus import Graph, ValueSpec
from rules.execute import run_eager
from rules.solve import Bounds, instantiate
from rules.specs import SPECS

INSTANCES = 4
BOUNDS = Bounds(max_rank=4, max_dim=16, max_elements=1024)
WIDE = ("float32", "float64")
HALF = ("float16", "bfloat16")
RTOL = 1e-4


def _float_combos(spec):
    """dtype combinations both frameworks take with a float32/float64 input and no half one."""
    tf_opts = set(spec.dtype_options("tensorflow"))
    return [c for c in spec.dtype_options("torch")
            if c in tf_opts and any(d in WIDE for d in c) and not any(d in HALF for d in c)]


def _cases():
    for sid, spec in sorted(SPECS.items()):
        if set(spec.frameworks) >= {"torch", "tensorflow"}:
            yield pytest.param(sid, id=sid, marks=[pytest.mark.tensorflow])


def _compare(sid, k, inst, ref, got, unstable):
    for i, (a, b) in enumerate(zip(ref, got)):
        if i in unstable:
            continue
        where = f"{sid} output {i}: inputs {[str(t) for t in inst.in_types]} attrs {inst.attrs} (instance {k})"
        assert a.shape == b.shape and a.dtype == b.dtype, f"{where}: torch {a.dtype}{a.shape} vs tf {b.dtype}{b.shape}"
        if np.issubdtype(a.dtype, np.floating):
            finite = np.abs(a[np.isfinite(a)])
            atol = RTOL * max(1.0, float(finite.max()) if finite.size else 1.0)
            np.testing.assert_allclose(b, a, rtol=RTOL, atol=atol, equal_nan=True, err_msg=where)
        else:
            np.testing.assert_array_equal(b, a, err_msg=where)


@pytest.mark.parametrize("sid", list(_cases()))
def test_spec_agrees_across_frameworks(sid):
    spec = SPECS[sid]
    combos = _float_combos(spec)
    if not combos:
        pytest.skip(f"{sid} has no float32/float64 instance in both frameworks")
    rng = random.Random(f"cross/{sid}")
    ran = 0
    for k in range(INSTANCES * 3):
        inst = instantiate(spec, "torch", rng, BOUNDS, dtypes=combos[k % len(combos)])
        if inst is None:
            continue
        g = Graph()
        leaves = [g.add_leaf(t, "const" if pos in spec.weight_inputs else "input") for pos, t in enumerate(inst.in_types)]
        g.outputs = g.add_op(sid, inst.attrs, leaves, inst.out_types)
        values = {}
        for pos, (n, _) in enumerate(leaves):
            lo, hi = spec.value_range(pos, inst.in_types[pos].dtype) or (-2.0, 2.0)
            values[n] = ValueSpec(1000 + k * 7 + pos, lo, hi)
        ref = run_eager(g, "torch", values, SPECS)
        got = run_eager(g, "tensorflow", values, SPECS)
        _compare(sid, k, inst, ref, got, spec.unstable_outputs)
        ran += 1
        if ran == INSTANCES:
            break
    assert ran > 0, f"no float32/float64 instance of {sid} could be solved"
