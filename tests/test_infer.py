"""Rule inference where the true rule is known, the rule store, inferred specs, the CLI.

The operator tests call the real API (torch) over a grid of shapes and attributes,
valid and invalid, infer a rule from those records, and prove with z3 that the inferred
shape rule equals the true one on the domain the rule itself admits (its constraints,
dims >= 1 and at most 64, attributes in the ranges seen valid, output dims >= 1 as the
generator asks), and that every input the rule admits is truly valid.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import z3

from corpus.trace import TraceRecord
from rules.infer.bank import Bank
from rules.infer.engine import infer_template, sample_calls
from rules.infer.expr import (eval_int, floordiv, floormod, parse_expr, parse_pred, pred_to_str, pred_to_z3, to_str,
                              to_z3)
from rules.infer.group import templates
from rules.store import RuleStoreError, load, validate

torch = pytest.importorskip("torch")


# ---- building records by calling the real API ------------------------------------------------

class T:
    """A tensor argument of the given shape (float32 unless told)."""

    def __init__(self, *shape: int, dtype: str = "float32") -> None:
        self.shape, self.dtype = list(shape), dtype


def _real(v):
    if isinstance(v, T):
        return torch.randn(v.shape).to(getattr(torch, v.dtype))
    if isinstance(v, list):
        return [_real(x) for x in v]
    return v


def _enc(v):
    if isinstance(v, T):
        return {"shape": list(v.shape), "dtype": v.dtype}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    return v


def call_record(api: str, args: list, kwargs: dict | None = None) -> TraceRecord:
    from corpus.collect.torch import encode, resolve

    kwargs = kwargs or {}
    fn = resolve(api)
    try:
        with torch.no_grad():
            out = fn(*[_real(a) for a in args], **{k: _real(v) for k, v in kwargs.items()})
        return TraceRecord.make(api, "torch", [_enc(a) for a in args], {k: _enc(v) for k, v in kwargs.items()},
                                encode(out), True, None, "script")
    except Exception as e:  # noqa: BLE001 - an invalid call is a record too
        return TraceRecord.make(api, "torch", [_enc(a) for a in args], {k: _enc(v) for k, v in kwargs.items()},
                                None, False, f"{type(e).__name__}: {str(e)[:80]}", "script")


def infer_one(records: list[TraceRecord], params=None, seconds: float = 60.0) -> dict:
    tpls = templates(records, params)
    assert len(tpls) == 1, [t.key for t in tpls]
    out = infer_template(tpls[0], time.monotonic() + seconds)
    assert out.rule is not None, out.reason
    return out.rule


def rule_env(rule: dict) -> dict:
    env = {}
    for i, t in enumerate(rule["template"]["tensors"]):
        for k in range(t["rank"]):
            env[f"t{i}_{k}"] = z3.Int(f"t{i}_{k}")
    for name in rule["template"]["attrs"]:
        env[name] = z3.Int(name)
    return env


def rule_domain(rule: dict, env: dict, max_dim: int = 64) -> list:
    dom = []
    for name, v in env.items():
        if name in rule["template"]["attrs"]:
            lo, hi = rule["template"]["attrs"][name]
            dom += [v >= lo, v <= hi]
        else:
            dom += [v >= 1, v <= max_dim]
    dom += [pred_to_z3(parse_pred(c), env) for c in rule["constraints"]]
    # as the generator asks (rules.solve): every output dimension at least 1
    dom += [d >= 1 for shape in shapes_z3(rule, env) for d in shape]
    return dom


def prove(claim, domain: list, timeout_ms: int = 60000) -> None:
    s = z3.Solver()
    s.set("timeout", timeout_ms)
    s.add(*domain, z3.Not(claim))
    r = s.check()
    assert r == z3.unsat, f"counterexample: {s.model() if r == z3.sat else r}"


def shapes_z3(rule: dict, env: dict) -> list[list]:
    return [[to_z3(parse_expr(e), env) for e in shape] for shape in rule["outputs"]["shapes"]]


# ---- the language ----------------------------------------------------------------------------

def test_expressions_read_back_and_floor_semantics():
    rng = random.Random(0)
    ops = ["+", "-", "*", "//", "%", "min", "max"]

    def gen(d):
        if d == 0 or rng.random() < 0.3:
            return ("s", rng.choice("abc")) if rng.random() < 0.7 else ("c", rng.choice([-2, -1, 0, 1, 2, 3]))
        return (rng.choice(ops), gen(d - 1), gen(d - 1))

    for _ in range(3000):
        e = gen(4)
        assert parse_expr(to_str(e)) == e
        p = (rng.choice(["==", ">", ">="]), e, rng.choice([-1, 0, 2]))
        assert parse_pred(pred_to_str(p)) == p
    a, b = z3.Ints("a b")
    for x, y in itertools.product(range(-7, 8), [-3, -2, -1, 1, 2, 3]):
        assert z3.simplify(z3.substitute(floordiv(a, b), (a, z3.IntVal(x)), (b, z3.IntVal(y)))).as_long() == x // y
        assert z3.simplify(z3.substitute(floormod(a, b), (a, z3.IntVal(x)), (b, z3.IntVal(y)))).as_long() == x % y
    assert eval_int(parse_expr("(a + 2) // b"), {"a": 5, "b": 0}) is None


def test_bank_finds_the_smallest_expression_once():
    rng = np.random.default_rng(0)
    X = rng.integers(1, 30, size=(4, 40)).astype(float)
    bank = Bank(X, ["a", "b", "c", "d"])
    target = X[0] * X[1] // X[2]
    for _ in range(2):
        bank.grow()
    (size, row), *_ = bank.find(target)
    assert size == 5 and to_str(bank.expr(size, row)) in ("a * b // c", "b * a // c")
    # observational equivalence: a + b and b + a are one row
    assert len(bank.find(X[0] + X[1])) == 1


# ---- operators with known rules ---------------------------------------------------------------

def test_matmul_rule_is_exact():
    recs = []
    for n, k, k2, m in itertools.product([1, 2, 5], [1, 3, 4], [1, 3, 4], [2, 7]):
        recs.append(call_record("torch.matmul", [T(n, k), T(k2, m)]))
    rule = infer_one(recs)
    env = rule_env(rule)
    (out,) = shapes_z3(rule, env)
    dom = rule_domain(rule, env)
    prove(z3.And(out[0] == env["t0_0"], out[1] == env["t1_1"]), dom)
    prove(env["t0_1"] == env["t1_0"], dom)  # sound: everything admitted is valid
    s = z3.Solver()  # and complete on the grid's kind of input: any k == k2 is admitted
    s.add(*dom, env["t0_1"] == 9, env["t1_0"] == 9)
    assert s.check() == z3.sat


def test_broadcasting_add_rule_is_exact():
    recs = []
    for a0, a1, b0, b1 in itertools.product([1, 2, 3], [1, 4, 5], [1, 2, 3], [1, 4, 5]):
        recs.append(call_record("torch.add", [T(a0, a1), T(b0, b1)]))
    rule = infer_one(recs)
    env = rule_env(rule)
    (out,) = shapes_z3(rule, env)
    dom = rule_domain(rule, env)
    for k in range(2):
        a, b = env[f"t0_{k}"], env[f"t1_{k}"]
        prove(z3.Or(a == b, a == 1, b == 1), dom)
        prove(out[k] == z3.If(a == 1, b, a), dom)
    s = z3.Solver()
    s.add(*dom, env["t0_0"] == 1, env["t1_0"] == 7, env["t0_1"] == 6, env["t1_1"] == 6)
    assert s.check() == z3.sat, "a broadcasting pair the rule should admit"


def test_reshape_with_minus_one_rule_is_exact():
    recs = []
    for a, b, c, s0 in itertools.product([1, 2, 3, 4], [2, 3], [1, 2, 5], [1, 2, 3, 4, 6]):
        recs.append(call_record("torch.reshape", [T(a, b, c), [s0, -1]]))
    rule = infer_one(recs, (["input", "shape"], None))
    assert rule["template"]["args"][1][1] == -1  # the sentinel stays concrete
    env = rule_env(rule)
    (out,) = shapes_z3(rule, env)
    dom = rule_domain(rule, env)
    numel = env["t0_0"] * env["t0_1"] * env["t0_2"]
    prove(z3.And(out[0] == env["shape_0"], out[1] * env["shape_0"] == numel), dom)
    prove(numel % env["shape_0"] == 0, dom)


def conv_true(x, k, s, p, d):
    return (x + 2 * p - d * (k - 1) - 1) / s + 1  # z3 '/' is floor division for s > 0


@pytest.mark.slow
def test_conv2d_rule_is_exact():
    recs = []
    grid = itertools.product([2, 3], [1, 4], [4, 7, 12], [5, 8], [1, 2, 3], [1, 3], [1, 2, 3], [0, 1], [1, 2])
    for i, (c, o, h, w, kh, kw, s, p, d) in enumerate(grid):
        c2 = c + 1 if i % 7 == 0 else (c - 1 if i % 11 == 0 else c)  # some weights have the wrong channel count
        recs.append(call_record("torch.nn.functional.conv2d", [T(1, c, h, w), T(o, c2, kh, kw)],
                                {"stride": s, "padding": p, "dilation": d}))
    rule = infer_one(recs, seconds=120)
    env = rule_env(rule)
    (out,) = shapes_z3(rule, env)
    dom = rule_domain(rule, env)
    s_, p_, d_ = env["stride"], env["padding"], env["dilation"]
    prove(out[0] == env["t0_0"], dom)
    prove(out[1] == env["t1_0"], dom)
    prove(out[2] == conv_true(env["t0_2"], env["t1_2"], s_, p_, d_), dom)
    prove(out[3] == conv_true(env["t0_3"], env["t1_3"], s_, p_, d_), dom)
    valid = z3.And(env["t0_1"] == env["t1_1"], conv_true(env["t0_2"], env["t1_2"], s_, p_, d_) >= 1,
                   conv_true(env["t0_3"], env["t1_3"], s_, p_, d_) >= 1)
    prove(valid, dom)


def pool_true(x, k, s, p):
    o = (x + 2 * p - (k - 1) - 1 + (s - 1)) / s + 1
    return z3.If((o - 1) * s >= x + p, o - 1, o)


@pytest.mark.slow
def test_max_pool2d_ceil_mode_rule_is_exact():
    recs = []
    for c, w, h, k, s, p in itertools.product([1, 3], [4, 7], range(3, 13), [1, 2, 3, 4], [1, 2, 3], [0, 1, 2]):
        recs.append(call_record("torch.nn.functional.max_pool2d", [T(1, c, h, w)],
                                {"kernel_size": [k, 2], "stride": [s, 2], "padding": [p, 0], "ceil_mode": True}))
    rule = infer_one(recs, seconds=120)
    env = rule_env(rule)
    (out,) = shapes_z3(rule, env)
    dom = rule_domain(rule, env)
    x, k, s, p = env["t0_2"], env["kernel_size_0"], env["stride_0"], env["padding_0"]
    prove(out[2] == pool_true(x, k, s, p), dom)
    prove(z3.And(2 * p <= k, pool_true(x, k, s, p) >= 1), dom)


def test_inferred_spec_materializes_and_predicts():
    from rules.execute import setup_framework
    from rules.inferred import InferredSpec

    setup_framework("torch")
    recs = [call_record("torch.matmul", [T(n, k), T(k2, m)])
            for n, k, k2, m in itertools.product([1, 2, 5], [1, 3, 4], [1, 3, 4], [2, 7])]
    rule = infer_one(recs)
    rule["id"], rule["precision"] = "torch.matmul#test", 1.0
    del rule["key"]
    validate({"schema": 1, "framework": "torch", "rules": [rule]})
    spec = InferredSpec(rule, "torch")
    assert spec.code("torch", ["x1", "x2"], {}) == "torch.matmul(x1, x2)"
    calls = sample_calls(rule, "torch", 5)
    assert calls
    for c in calls:
        a, b = (torch.randn(t["shape"]).to(getattr(torch, t["dtype"])) for t in c["args"])
        assert list(torch.matmul(a, b).shape) == c["expect"][0][0]


# ---- the rule store ----------------------------------------------------------------------------

def _good_rule() -> dict:
    return {"id": "torch.add#0000", "api": "torch.add", "signature": "T1,T1",
            "template": {"args": [{"$tensor": 0}, {"$tensor": 1}], "kwargs": {},
                         "tensors": [{"label": "input", "rank": 1}, {"label": "other", "rank": 1}],
                         "attrs": {}, "floats": {}},
            "dtypes": [{"in": ["float32", "float32"], "out": ["float32"]}],
            "outputs": {"form": "single", "shapes": [["max(t0_0, t1_0)"]]},
            "constraints": ["t0_0 == 1 or t1_0 == 1 or t0_0 - t1_0 == 0"],
            "evidence": {"valid": 3, "invalid": 2}, "heldout_accuracy": 1.0, "precision": 1.0}


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d.update(schema="x"), "no integer 'schema'"),
    (lambda d: d["rules"][0].pop("outputs"), "missing field 'outputs'"),
    (lambda d: d["rules"][0].update(constraints=["t0_0 ==== 1"]), "not a predicate"),
    (lambda d: d["rules"][0]["outputs"].update(shapes=[["t9_0"]]), "unknown symbols ['t9_0']"),
    (lambda d: d["rules"][0].update(precision=3), "precision should be"),
    (lambda d: d["rules"].append(dict(d["rules"][0])), "duplicate id"),
])
def test_malformed_rule_file_gives_one_clear_line(tmp_path, mutate, expect):
    doc = {"schema": 1, "framework": "torch", "framework_version": "2.13.0", "rules": [_good_rule()]}
    validate(json.loads(json.dumps(doc)))
    mutate(doc)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(RuleStoreError) as e:
        load(path)
    msg = str(e.value)
    assert expect in msg and str(path) in msg and "\n" not in msg and "dlfuzz infer" in msg


def test_rules_show_cli(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = subprocess.run([sys.executable, "-m", "fuzzer", "rules", "show", "torch.add", "--store", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "not valid JSON" in out.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"schema": 1, "framework": "torch", "framework_version": "2.13.0",
                                "rules": [_good_rule()]}))
    out = subprocess.run([sys.executable, "-m", "fuzzer", "rules", "show", "torch.add", "--store", str(good)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "t0_0 == 1 or t1_0 == 1 or t0_0 == t1_0" in out.stdout and "max(t0_0, t1_0)" in out.stdout


def test_unknown_op_kind_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "fuzzer", "gen", "--ops", "spec,bogus", "--count", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "unknown operator kind 'bogus'" in out.stderr and out.stderr.count("\n") == 1


def test_shipped_stores_load_and_give_specs():
    from rules.inferred import inferred_specs
    from rules.store import default_path

    path = default_path("torch")
    assert path is not None and path.name == "torch-2.13.json"
    specs = inferred_specs("torch")
    assert len({s.api for s in specs}) >= 100
    # every usable spec renders a call over its inputs
    for s in specs[:50]:
        s.code("torch", [f"x{i}" for i in range(s.n_inputs)], {k: lo for k, (lo, _) in s.domains.items()}
               | {k: v[0] for k, v in s.float_values.items()})


def _shipped(framework: str):
    from rules.store import shipped

    files = shipped().get(framework)
    assert files, f"no {framework} rule store is shipped in rules/store/"
    return max(files)


@pytest.mark.parametrize("corrupt, expect", [
    (lambda line: line.replace('"outputs":', '"outputz":', 1), "missing field 'outputs'"),
    (lambda line: line.replace('"constraints":[]', '"constraints":["t0_0 >>> 1"]', 1) if '"constraints":[]' in line
     else line.replace('"constraints":[', '"constraints":["t0_0 >>> 1",', 1), "not a predicate"),
    (lambda line: line[: len(line) // 2] + "\n", "not valid JSON (line"),
])
def test_malformed_tensorflow_store_line_gives_one_clear_error(tmp_path, corrupt, expect):
    """One bad line (one rule) of the shipped tensorflow store: loading it, building specs
    from it and the CLI all give one line naming the file and where in it."""
    from rules.inferred import inferred_specs

    lines = _shipped("tensorflow").read_text().splitlines(keepends=True)
    k = len(lines) // 2  # a rule line in the middle
    assert lines[k].startswith('{"api":"tf.')
    lines[k] = corrupt(lines[k])
    bad = tmp_path / "tensorflow-2.21.json"
    bad.write_text("".join(lines))
    for attempt in (lambda: load(bad), lambda: inferred_specs("tensorflow", bad)):
        with pytest.raises(RuleStoreError) as e:
            attempt()
        msg = str(e.value)
        assert expect in msg and str(bad) in msg and "\n" not in msg and "dlfuzz infer" in msg
        if "JSON" not in expect:
            assert f"rule {k - 1} (tf." in msg  # the header takes the first line
    out = subprocess.run([sys.executable, "-m", "fuzzer", "rules", "stats", "--framework", "tensorflow",
                          "--store", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and expect in out.stderr


def test_shipped_tensorflow_store_loads_and_gives_specs():
    from rules.inferred import inferred_specs

    path = _shipped("tensorflow")
    assert path.name == "tensorflow-2.21.json" and path.stat().st_size < 10_000_000
    doc = load(path)
    assert doc["framework"] == "tensorflow" and doc["framework_version"].startswith("2.21")
    specs = inferred_specs("tensorflow", path)
    assert len({s.api for s in specs}) >= 150
    assert all(s.frameworks == ("tensorflow",) for s in specs)
    for s in specs[::10]:  # every usable spec renders a call over its inputs
        src = s.code("tensorflow", [f"x{i}" for i in range(s.n_inputs)],
                     {k: lo for k, (lo, _) in s.domains.items()} | {k: v[0] for k, v in s.float_values.items()})
        assert src.startswith(("tf.", "x0.")), src


def test_figures_count_what_the_generator_uses():
    from rules.inferred import MIN_PRECISION
    from rules.store.stats import figures

    good = _good_rule()
    weak = dict(_good_rule(), id="torch.sub#0000", api="torch.sub", precision=0.5)
    private = dict(_good_rule(), id="torch._foo#0000", api="torch._foo", precision=1.0)
    unmeasured = dict(_good_rule(), id="torch.mul#0000", api="torch.mul", precision=None)
    f = figures([good, weak, private, unmeasured], "torch")
    assert f["min_precision"] == MIN_PRECISION
    assert (f["apis_with_rules"], f["with_rules"], f["rules"], f["precision"]) == (1, 1, 1, 1.0)
    assert (f["all_apis_with_rules"], f["all_rules"], f["all_rules_measured"]) == (4, 4, 3)
    assert f["all_precision"] == round((1.0 + 0.5 + 1.0) / 3, 4)


def test_rules_stats_cli_prints_the_shipped_figures():
    from rules.store.stats import figures

    out = subprocess.run([sys.executable, "-m", "fuzzer", "rules", "stats", "--framework", "torch", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    want = figures(load(_shipped("torch"))["rules"], "torch")
    assert got["store"] == "torch-2.13.json"
    assert {k: got[k] for k in want} == want


def test_drop_redundant_prefers_the_disjunction():
    from rules.infer.constraints import _drop_redundant

    # a single predicate chosen first (rejects 0, 1) and a disjunction that rejects 0, 1, 2
    rejects = [np.array([True, True, False]), np.array([True, True, True])]
    assert _drop_redundant(rejects, 1) == [1]
    # both needed
    rejects = [np.array([True, False]), np.array([False, True])]
    assert _drop_redundant(rejects, 1) == [0, 1]


def test_precision_sampling_is_bounded_per_rule(monkeypatch):
    """z3 can search without end on some rules (a modulo by an attribute with a huge
    range), inside code that catches every Exception: in an inference worker, sampling
    stops at its limit all the same, keeps what it drew, and gives the partial
    operator's own alarm back."""
    import signal

    from rules.infer import driver, engine

    def endless(rule, framework, n, seed):
        yield {"args": [{"shape": [3], "dtype": "int64"}], "kwargs": {}, "expect": [[[3], "int64"]]}
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # noqa: BLE001 - as the solver's callers do
                pass

    monkeypatch.setattr(engine, "iter_sample_calls", endless)
    old = signal.signal(signal.SIGALRM, driver._alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 100)
        start = time.monotonic()
        calls, late = driver.bounded_sample({"api": "torch.neg"}, "torch", 12, 0, 1.0)
        assert late and len(calls) == 1 and time.monotonic() - start < 5
        assert 90 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
