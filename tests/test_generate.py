"""The generator: valid models, determinism, backward insertion, standalone programs."""

import subprocess
import sys

import pytest

from fuzzer.generate import GenConfig, Generator
from fuzzer.models import make_model, save_model
from rules.codegen import program_source
from rules.specs import SPECS, specs_for


def gen(framework="torch", max_nodes=8):
    return Generator(framework, specs_for(framework), GenConfig(max_nodes=max_nodes))


def test_same_seed_same_models():
    a = [make_model(gen(), SPECS, 11, i).case.dumps() for i in range(5)]
    b = [make_model(gen(), SPECS, 11, i).case.dumps() for i in range(5)]
    assert a == b
    c = [make_model(gen(), SPECS, 12, i).case.dumps() for i in range(5)]
    assert a != c


def test_generated_models_are_valid_and_have_the_requested_size():
    models = [make_model(gen(max_nodes=6), SPECS, 3, i) for i in range(20)]
    assert sum(m.valid for m in models) >= 19
    for m in models:
        assert 1 <= len(m.case.graph.op_nodes()) <= 6
        assert m.case.graph.outputs
        # every saved type is what the framework produced
        if m.valid:
            want = [m.case.graph.type_of(v).shape for v in m.case.graph.outputs]
            assert [tuple(o.shape) for o in m.search.outputs] == want


def test_backward_insertion_grows_towards_inputs():
    g = Generator("torch", specs_for("torch"), GenConfig(max_nodes=8, forward_prob=0.0))
    import random

    graph = g.generate(random.Random(5))
    # with backward insertion only, the first leaf (id 0) has become an operator
    assert graph.node(0).kind == "op"
    assert len(graph.op_nodes()) >= 2


def test_saved_program_runs_standalone(tmp_path):
    model = make_model(gen(), SPECS, 0, 1)
    assert model.valid
    save_model(model.case, tmp_path, SPECS)
    src = (tmp_path / "program.py").read_text()
    assert "dlfuzz" not in src.split('"""')[-1]  # imports nothing of ours (docstring aside)
    out = subprocess.run([sys.executable, "program.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(model.case.graph.outputs)
    for line, v, arr in zip(lines, model.case.graph.outputs, model.search.outputs):
        assert f"shape={tuple(model.case.graph.type_of(v).shape)}" in line
        assert f"checksum={float(arr.astype('float64').sum()):.6g}" in line


@pytest.mark.tensorflow
def test_tensorflow_models_are_valid():
    models = [make_model(gen("tensorflow", 6), SPECS, 4, i) for i in range(10)]
    assert sum(m.valid for m in models) >= 9


def test_program_source_is_deterministic():
    m = make_model(gen(), SPECS, 2, 0)
    assert program_source(m.case.graph, "torch", m.case.values, SPECS) == program_source(m.case.graph, "torch", m.case.values, SPECS)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", pytest.param("tensorflow", marks=pytest.mark.tensorflow)])
def test_every_saved_program_runs_in_a_fresh_interpreter(tmp_path, framework):
    from fuzzer.cli import main

    assert main(["gen", "--framework", framework, "--count", "25", "--max-nodes", "10", "--seed", "9",
                 "--out", str(tmp_path), "--json"]) == 0
    folders = sorted(tmp_path.iterdir())
    assert len(folders) >= 24
    for folder in folders:
        out = subprocess.run([sys.executable, "program.py"], cwd=folder, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{folder.name}: {out.stderr[-500:]}"
        assert "checksum=" in out.stdout


def test_cross_framework_specs_keep_to_common_dtypes():
    from fuzzer.generate import common_dtype_specs

    both = common_dtype_specs(list(SPECS.values()), ("torch", "tensorflow"))
    amax = next(s for s in both if s.id == "core.Amax")
    assert ("bool",) in SPECS["core.Amax"].dtype_options("torch")  # torch reduces bools, tensorflow does not
    assert ("bool",) not in amax.dtype_options("torch")
    for s in both:
        assert set(s.dtype_options("torch")) <= set(SPECS[s.id].dtype_options("tensorflow"))


def test_pinning_a_free_value_takes_few_checks_even_over_the_int32_range():
    import z3

    from rules.solve import _least_value

    x = z3.Int("x")
    s = z3.Solver()
    s.add(x >= -(2 ** 31), x <= 2 ** 31, x % 7 == 3)
    assert s.check() == z3.sat
    checks = []
    real_check = s.check
    s.check = lambda *a: checks.append(a) or real_check(*a)
    least = next(v for v in range(-(2 ** 31), 0) if v % 7 == 3)
    assert _least_value(s, [], x, 2 ** 31 - 3) == least
    assert len(checks) < 80
    s.check = real_check
    unbounded = z3.Solver()
    unbounded.add(x <= 5)
    assert _least_value(unbounded, [], x, 5) is None
