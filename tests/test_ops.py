"""Every operator spec, in every framework it claims: many z3-solved instances run
without error and produce exactly the predicted output types. A wrong shape rule, a
wrong dtype rule or a constraint that admits invalid inputs fails here."""

import random

import pytest

from corpus import Graph, ValueSpec
from rules.execute import run_eager
from rules.solve import Bounds, instantiate
from rules.specs import SPECS

INSTANCES = 12
BOUNDS = Bounds(max_rank=4, max_dim=32, max_elements=2048)
NUMPY_NAME = {"bfloat16": "float32"}  # bfloat16 comes back to numpy as float32


def _cases():
    for sid, spec in sorted(SPECS.items()):
        for fw in spec.frameworks:
            marks = [pytest.mark.tensorflow] if fw == "tensorflow" else []
            yield pytest.param(sid, fw, id=f"{sid}-{fw}", marks=marks)


def check_spec(sid: str, framework: str, seed: int = 0, count: int = INSTANCES) -> int:
    spec = SPECS[sid]
    rng = random.Random(f"{sid}/{framework}/{seed}")
    ran = 0
    for k in range(count * 3):
        inst = instantiate(spec, framework, rng, BOUNDS)
        if inst is None:
            continue
        g = Graph()
        leaves = []
        for pos, t in enumerate(inst.in_types):
            leaves.append(g.add_leaf(t, "const" if pos in spec.weight_inputs else "input"))
        g.outputs = g.add_op(sid, inst.attrs, leaves, inst.out_types)
        values = {}
        for pos, (n, _) in enumerate(leaves):
            lo, hi = spec.value_range(pos, inst.in_types[pos].dtype) or (-2.0, 2.0)
            if inst.in_types[pos].dtype == "uint8":
                lo, hi = max(lo, 0), max(hi, 1)
            values[n] = ValueSpec(k * 7 + pos, lo, hi)
        try:
            outs = run_eager(g, framework, values, SPECS)
        except Exception as e:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{sid} in {framework} raised on inputs {[str(t) for t in inst.in_types]} attrs {inst.attrs}: "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        got = [(tuple(o.shape), str(o.dtype)) for o in outs]
        want = [(t.shape, NUMPY_NAME.get(t.dtype, t.dtype)) for t in inst.out_types]
        assert got == want, f"{sid} in {framework}: inputs {[str(t) for t in inst.in_types]} attrs {inst.attrs}"
        ran += 1
        if ran == count:
            break
    return ran


@pytest.mark.parametrize("sid,framework", list(_cases()))
def test_spec_instances_run_with_predicted_types(sid, framework):
    ran = check_spec(sid, framework)
    assert ran == INSTANCES, f"only {ran} of {INSTANCES} instances of {sid} could be solved"
