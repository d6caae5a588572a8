"""The Inductor kernel-merge hook: one g++ call per graph, same results, stock fallback.

Each test runs in a subprocess: the hook patches Inductor process-wide.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, {root!r})
    import torch
    torch.set_num_threads(1)
    import torch._inductor.config as cfg
    cfg.compile_threads = 1
    from torch._inductor.codecache import CppPythonBindingsCodeCache
    from oracles import inductor_merge
    assert inductor_merge.install()
    if {break_merge!r}:
        inductor_merge.merged_source = lambda kernels, template: "this is not C++"
    loads = []
    stock_load = CppPythonBindingsCodeCache.load_async.__func__
    def counting(cls, source, *a, **k):
        loads.append(source.count("dlfuzz_k"))
        return stock_load(cls, source, *a, **k)
    CppPythonBindingsCodeCache.load_async = classmethod(counting)

    def f(x, y):
        a = torch.sin(x) + y          # pointwise kernel
        b = a.sum(1)                  # reduction
        c = torch.cumsum(a * 2, 0)    # scan: another kernel
        d = torch.amax(torch.relu(x - y), 0)
        return b, c, d

    x, y = torch.randn(6, 7), torch.randn(6, 7)
    want = f(x, y)
    got = torch.compile(f, dynamic=False)(x, y)
    same = all(torch.allclose(w, g, atol=1e-5) for w, g in zip(want, got))
    print(json.dumps({{"same": same, "loads": loads}}))
''')


def run(tmp_path: Path, break_merge: bool) -> dict:
    env = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT), break_merge=break_merge)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kernels_of_a_graph_compile_in_one_call_with_the_same_results(tmp_path):
    got = run(tmp_path, break_merge=False)
    assert got["same"]
    # one merged module holding every kernel (each in its namespace, named twice in the source)
    merged = [n for n in got["loads"] if n > 0]
    assert len(merged) == 1 and merged[0] >= 2 * 2
    assert len(got["loads"]) == 1


def test_a_merged_compile_that_fails_falls_back_to_stock_kernel_by_kernel(tmp_path):
    got = run(tmp_path, break_merge=True)
    assert got["same"]
    assert len(got["loads"]) >= 3  # the broken merge, then each kernel on its own
