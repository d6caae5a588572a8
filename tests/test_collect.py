"""API-trace collection: the tracers, the corpus store, resumable sources, mutation."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from corpus.store import CorpusStore, CorpusStoreError
from corpus.trace import TraceRecord, call_signature, partial_op_key
from fuzzer.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "fuzzer", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, **kw)


def conv2d_record(source="opinfo"):
    return TraceRecord.make(
        "torch.nn.functional.conv2d", "torch",
        [{"shape": [1, 3, 8, 8], "dtype": "float32"}, {"shape": [4, 3, 3, 3], "dtype": "float32"}],
        {"stride": 1, "padding": 1}, {"shape": [1, 4, 8, 8], "dtype": "float32"}, True, None, source)


# -- the torch tracer ---------------------------------------------------------------------


def test_torch_tracer_records_user_calls_not_nested_ones():
    import torch
    import torch.nn.functional as F

    from corpus.collect.torch import Tracer

    torch.set_num_threads(1)
    x = torch.randn(2, 3)
    records = []
    with Tracer(records.append, "script"):
        y = F.normalize(x, dim=1)  # calls norm, clamp_min, expand_as, div inside
        x.add(y)
        _ = x.shape, x.dim(), repr(x)  # metadata and printing: not API calls
    assert [r.api for r in records] == ["torch.nn.functional.normalize", "torch.Tensor.add"]
    first = records[0]
    assert first.ok and first.error is None and first.source == "script" and not first.flagged
    # a Python-level function hands the mode all its parameters, defaults included
    assert first.args == [{"shape": [2, 3], "dtype": "float32"}] and first.kwargs["dim"] == 1
    assert first.outputs == {"shape": [2, 3], "dtype": "float32"}
    assert records[1].args == [{"shape": [2, 3], "dtype": "float32"}] * 2


def test_torch_tracer_records_an_error_as_invalid():
    import torch

    from corpus.collect.torch import Tracer

    records = []
    with pytest.raises(RuntimeError):
        with Tracer(records.append):
            torch.matmul(torch.ones(2, 3), torch.ones(2, 3))
    bad = records[-1]
    assert bad.api == "torch.matmul" and not bad.ok and bad.outputs is None
    assert bad.error.startswith("RuntimeError: ") and "\n" not in bad.error
    assert [r.api for r in records] == ["torch.ones", "torch.ones", "torch.matmul"]


def test_torch_values_are_encoded_as_json():
    import torch

    from corpus.collect.torch import encode

    assert encode([torch.zeros(2, dtype=torch.int64), torch.float16, 3, 2.5, float("nan"), None, slice(1, None),
                   ..., torch.Size([4, 5])]) == [
        {"shape": [2], "dtype": "int64"}, {"type": "dtype", "value": "float16"}, 3, 2.5,
        {"type": "float", "value": "nan"}, None, {"type": "slice", "value": [1, None, None]}, {"type": "ellipsis"},
        [4, 5]]
    assert "repr" in encode(object())


# -- records and the store ----------------------------------------------------------------


def test_fingerprint_and_partial_operator():
    a, b = conv2d_record("opinfo"), conv2d_record("doctest")
    assert a.fingerprint == b.fingerprint  # the source is not part of the call
    other = TraceRecord.make(a.api, "torch", a.args, {"stride": 2, "padding": 1}, None, True)
    assert other.fingerprint != a.fingerprint
    failed = TraceRecord.make(a.api, "torch", a.args, a.kwargs, None, False, "RuntimeError: x")
    assert failed.fingerprint != a.fingerprint
    assert partial_op_key(a) == ("torch.nn.functional.conv2d", "T4,T4;padding=A,stride=A")
    assert call_signature([[{"shape": [2], "dtype": "float32"}] * 2, None], {}) == "[T1,T1],-"
    assert TraceRecord.from_json(json.loads(a.dumps())) == a


def test_store_dedups_by_fingerprint(tmp_path):
    db = tmp_path / "c.db"
    with CorpusStore(db) as store:
        assert store.add([conv2d_record("opinfo"), conv2d_record("doctest")]) == 1
        assert store.add([conv2d_record("mutation")]) == 0
        assert store.count("torch") == 1
    with CorpusStore(db) as store:  # reopen: same file, same rows
        stats = store.stats()["frameworks"]["torch"]
        assert (stats["apis"], stats["partial_ops"], stats["records"], stats["valid"], stats["invalid"]) == (1, 1, 1, 1, 0)
        assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_export_import_roundtrip_and_stats_cli(tmp_path, capsys):
    db, out, db2 = tmp_path / "a.db", tmp_path / "a.jsonl", tmp_path / "b.db"
    failed = TraceRecord.make("torch.matmul", "torch", [{"shape": [2, 3], "dtype": "float32"}] * 2, {}, None, False,
                              "RuntimeError: mat1 and mat2 shapes cannot be multiplied", "opinfo")
    with CorpusStore(db) as store:
        store.add([conv2d_record(), failed])
    assert main(["corpus", "export", "--db", str(db), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2
    assert main(["corpus", "import", "--db", str(db2), str(out)]) == 0
    assert main(["corpus", "import", "--db", str(db2), str(out)]) == 0  # again: nothing new
    capsys.readouterr()
    assert main(["corpus", "stats", "--db", str(db2), "--json"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert json.loads(line) == {"frameworks": {"torch": {"apis": 2, "partial_ops": 2, "records": 2, "valid": 1, "invalid": 1}}}


@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_bad_corpus_file_is_one_line_exit_2(tmp_path, capsys, kind):
    path = tmp_path / f"{kind}.db"
    if kind == "corrupt":
        path.write_bytes(b"\x00garbage, not a database\n" * 200)
    else:
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        con.commit()
        con.close()
    for argv in (["corpus", "stats", "--db", str(path), "--json"],
                 ["collect", "--framework", "torch", "--source", "mutate", "--db", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert f"{path} is not a dlfuzz corpus" in err[0] and "pass a file created by dlfuzz collect" in err[0]
    with pytest.raises(CorpusStoreError):
        CorpusStore(path)


def test_bad_script_command_is_one_line_exit_2(tmp_path, capsys):
    assert main(["collect", "--framework", "torch", "--source", "script:nope.sh", "--db", str(tmp_path / "c.db")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# -- sources ------------------------------------------------------------------------------

KILL_OPS = "abs,add,sub,mul,matmul,sum,cat,clamp,exp,sigmoid,maximum,where"


def test_killed_collection_resumes_without_duplicates(tmp_path):
    db = tmp_path / "c.db"
    args = [sys.executable, "-m", "fuzzer", "collect", "--framework", "torch", "--source", "opinfo", "--db", str(db),
            "--ops", KILL_OPS, "--no-modules", "--json"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                con = sqlite3.connect(db, timeout=30)
                done = con.execute("SELECT COUNT(*) FROM progress WHERE state = 'done'").fetchone()[0]
                con.close()
            except sqlite3.Error:
                continue
            if done >= 2:
                break
        assert proc.poll() is None, "the collection finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.5)  # the child notices its parent is gone and exits
    con = sqlite3.connect(db, timeout=30)
    before = {r[0] for r in con.execute("SELECT fingerprint FROM records")}
    con.close()
    time.sleep(1.0)
    con = sqlite3.connect(db, timeout=30)
    assert {r[0] for r in con.execute("SELECT fingerprint FROM records")} == before  # nothing writes any more
    con.close()

    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    details = summary["details"]
    assert details["skipped_done"] >= 2 and details["stopped"] == "complete"
    con = sqlite3.connect(db)
    states = dict(con.execute("SELECT key, state FROM progress").fetchall())
    assert set(states.values()) == {"done"}
    assert {k.split(".")[0] for k in states} == set(KILL_OPS.split(","))  # variants (div.floor_rounding) too
    rows = con.execute("SELECT COUNT(*), COUNT(DISTINCT fingerprint) FROM records").fetchone()
    assert rows[0] == rows[1] == len(before) + summary["new_records"]
    apis = {r[0] for r in con.execute("SELECT DISTINCT api FROM records")}
    assert {"torch.add", "torch.Tensor.add_", "torch.matmul", "torch.cat"} <= apis
    assert con.execute("SELECT COUNT(*) FROM records WHERE ok = 0").fetchone()[0] > 0  # error_inputs


def test_doctest_source_records_examples(tmp_path):
    db = tmp_path / "c.db"
    out = run_cli("collect", "--framework", "torch", "--source", "doctest", "--db", str(db),
                  "--ops", "torch.einsum,torch.nn.functional.conv2d", "--json")
    assert out.returncode == 0, out.stderr
    with CorpusStore(db) as store:
        recs = list(store.records(framework="torch"))
    assert {"torch.einsum", "torch.nn.functional.conv2d", "torch.randn"} <= {r.api for r in recs}
    assert {r.source for r in recs} == {"doctest"}


def test_script_source_traces_a_child_without_tensorflow(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import sys
        import torch
        x = torch.ones(2, 3)
        torch.nn.functional.relu(x)
        try:
            torch.cat([x, torch.ones(3, 2)])
        except RuntimeError:
            pass
        sys.exit(3 if "tensorflow" in sys.modules else 0)
    """))
    db = tmp_path / "c.db"
    out = run_cli("collect", "--framework", "torch", "--source", f"script:{script}", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["details"]["exit_code"] == 0  # a torch collection never imports tensorflow
    with CorpusStore(db) as store:
        recs = {(r.api, r.ok) for r in store.records(source="script")}
    assert {("torch.ones", True), ("torch.nn.functional.relu", True), ("torch.cat", False)} <= recs


def test_mutation_of_conv2d_gives_valid_and_invalid_records(tmp_path):
    from corpus.collect import mutate

    db = tmp_path / "c.db"
    with CorpusStore(db) as store:
        store.add([conv2d_record()])
        stats = mutate.run(store, "torch", time.time() + 120, op_time=60, max_valid=15)
        recs = list(store.records(source="mutation"))
    assert stats.valid >= 10 and stats.invalid >= 5 and stats.flagged == 0
    assert {r.ok for r in recs} == {True, False}
    bad = [r for r in recs if not r.ok]
    assert all(r.error and r.api == "torch.nn.functional.conv2d" for r in bad)
    assert any("channels" in r.error for r in bad)
    good = [r for r in recs if r.ok]
    assert all(isinstance(r.outputs, dict) and len(r.outputs["shape"]) == 4 for r in good)


def test_mutated_call_that_kills_its_worker_is_flagged(tmp_path, monkeypatch):
    from corpus.collect import mutate

    (tmp_path / "dlfuzz_planted_abort.py").write_text(textwrap.dedent("""
        import os

        def scale(x, k):
            if x.shape[0] == 3:
                os.abort()  # a planted crash: a native abort in the middle of a call
            if k < 0:
                raise ValueError("k must be non-negative")
            return x * k
    """))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    seed = TraceRecord.make("dlfuzz_planted_abort.scale", "torch", [{"shape": [2, 4], "dtype": "float32"}, 1], {},
                            {"shape": [2, 4], "dtype": "float32"}, True, None, "script")
    db = tmp_path / "c.db"
    with CorpusStore(db) as store:
        store.add([seed, conv2d_record()])
        stats = mutate.run(store, "torch", time.time() + 180, op_time=60, max_valid=10)
        recs = list(store.records(source="mutation"))
        progress = store.progress("torch", "mutation")
    flagged = [r for r in recs if r.flagged]
    assert flagged and all(not r.ok and r.args[0]["shape"][0] == 3 for r in flagged)
    assert "WorkerCrash" in flagged[0].error and "SIGABRT" in flagged[0].error
    planted = [r for r in recs if r.api == "dlfuzz_planted_abort.scale"]
    assert any(r.ok for r in planted) and any(not r.ok and not r.flagged for r in planted)
    # the collection went on: conv2d, mutated after the planted op, has records too
    assert any(r.api == "torch.nn.functional.conv2d" for r in recs)
    assert stats.partial_ops_done == 2 and all(state == "done" for state, _ in progress.values())


# -- tensorflow ---------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_tensorflow_tracer_records_calls_and_errors():
    from corpus.collect import tensorflow as tfc

    tfc.setup()
    import tensorflow as tf

    records = []
    with tfc.Tracer(records.append, "script"):
        x = tf.ones([2, 3])
        tf.add(x, tf.constant([1.0, 2.0, 3.0]))
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.raw_ops.AddV2(x=x, y=tf.ones([3, 2]))
    tf.add(x, x)  # outside the tracer: not recorded
    assert [r.api for r in records] == ["tf.ones", "tf.constant", "tf.math.add", "tf.ones", "tf.raw_ops.AddV2"]
    add = records[2]
    assert add.ok and add.args == [{"shape": [2, 3], "dtype": "float32"}, {"shape": [3], "dtype": "float32"}]
    bad = records[-1]
    assert not bad.ok and bad.error.startswith("InvalidArgumentError: ") and "function_node" not in bad.error
    assert bad.kwargs == {"x": {"shape": [2, 3], "dtype": "float32"}, "y": {"shape": [3, 2], "dtype": "float32"}}


@pytest.mark.tensorflow
def test_tensorflow_mutation(tmp_path):
    from corpus.collect import mutate

    seed = TraceRecord.make("tf.raw_ops.AddV2", "tensorflow", [], {"x": {"shape": [2, 3], "dtype": "float32"},
                            "y": {"shape": [3], "dtype": "float32"}}, {"shape": [2, 3], "dtype": "float32"}, True)
    with CorpusStore(tmp_path / "c.db") as store:
        store.add([seed])
        stats = mutate.run(store, "tensorflow", time.time() + 120, op_time=60, max_valid=10)
    assert stats.valid >= 3 and stats.invalid >= 3


@pytest.mark.slow
def test_full_opinfo_and_doctest_collection(tmp_path):
    db = tmp_path / "c.db"
    for source in ("opinfo", "doctest"):
        out = run_cli("collect", "--framework", "torch", "--source", source, "--db", str(db), "--json", timeout=3600)
        assert out.returncode == 0, out.stderr
    with CorpusStore(db) as store:
        stats = store.stats()["frameworks"]["torch"]
    assert stats["apis"] >= 600 and stats["valid"] >= 10000


# -- the probe source (tensorflow) ----------------------------------------------------------


def test_synthesized_calls_follow_the_signature_and_the_seed():
    import inspect
    import random

    from corpus.collect import synth

    def f(x, y, axis=None, keepdims=False, name=None):  # the shape of a tf.math binary op
        pass

    t = synth.target("m.f", inspect.signature(f))
    assert t.positional == ("x", "y") and t.tensors == ("x", "y")
    assert dict(t.optional) == {"axis": None, "keepdims": False}
    first = synth.first_calls(t, random.Random(0))
    assert [c.call() for c in first] == [c.call() for c in synth.first_calls(t, random.Random(0))]
    assert [c.call() for c in first] != [c.call() for c in synth.first_calls(t, random.Random(1))]
    calls = [c.call() for c in first]
    assert all(len(args) == 2 and kwargs == {} for args, kwargs in calls)
    assert {len(args[0]["shape"]) for args, _ in calls} == {0, 1, 2, 3, 4, 5}
    assert {args[0]["dtype"] for args, _ in calls} == {"float32", "int32", "bool"}
    matmul = [c for c in first if c.plan == "matmul"]
    assert matmul and all(c.shapes[0][-1] == c.shapes[1][-2] for c in matmul)
    more = synth.variants(first[:3], random.Random(0))
    extras = [c.extra for c in more if c.extra]
    assert {"axis": -1} in extras and {"keepdims": True} in extras
    assert {c.dtype for c in more} >= {"float64", "int64", "bool"}
    assert synth.target("m.g", inspect.signature(lambda axis, name=None: None)) is None  # no tensor: not probed


def test_probe_source_is_tensorflow_only(tmp_path):
    out = run_cli("collect", "--framework", "torch", "--source", "probe", "--db", str(tmp_path / "c.db"))
    assert out.returncode == 2 and "tensorflow" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.tensorflow
def test_probe_source_gives_valid_and_invalid_records(tmp_path):
    import numpy as np

    db = tmp_path / "c.db"
    args = ("collect", "--framework", "tensorflow", "--source", "probe", "--db", str(db),
            "--ops", "tf.math.add,matmul,tf.random.normal", "--json")
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["details"]["apis"] == 2 and summary["details"]["apis_done"] == 2  # random functions: never probed
    with CorpusStore(db) as store:
        recs = list(store.records(framework="tensorflow"))
        progress = store.progress("tensorflow", "probe")
    assert {r.api for r in recs} == {"tf.math.add", "tf.linalg.matmul"} and {r.source for r in recs} == {"probe"}
    add = [r for r in recs if r.api == "tf.math.add"]
    good = [r for r in add if r.ok]
    assert len(good) >= 20 and {len(r.args[0]["shape"]) for r in good} >= {0, 1, 2, 3, 4}
    for r in good:  # the recorded output is the broadcast of the inputs
        assert r.outputs["shape"] == list(np.broadcast_shapes(*(tuple(a["shape"]) for a in r.args)))
        assert r.outputs["dtype"] == r.args[0]["dtype"]
    bad = [r for r in add if not r.ok]
    assert any("Incompatible shapes" in r.error for r in bad) and any("of bool is not" in r.error for r in bad)
    assert all("Incompatible shapes" in r.error or "of bool is not" in r.error for r in bad)
    matmul = [r for r in recs if r.api == "tf.linalg.matmul" and r.ok and len(r.args[0]["shape"]) == 2]
    assert matmul and all(r.outputs["shape"] == [r.args[0]["shape"][0], r.args[1]["shape"][1]] for r in matmul)
    assert any(not r.ok for r in recs if r.api == "tf.linalg.matmul")
    assert set(progress) == {"tf.math.add", "tf.linalg.matmul"} and all(s == "done" for s, _ in progress.values())
    again = run_cli(*args)  # resumed: everything is done
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["new_records"] == 0
