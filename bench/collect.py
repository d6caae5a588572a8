"""Collection throughput and tracer overhead. Prints one JSON object.

- ``sources``: each source run into a fresh corpus under a time limit: seconds, records
  written, records per second (opinfo and mutate are time-limited, doctest runs whole);
- ``tracer_overhead``: a fixed set of OpInfo samples (torch) and of tf.* calls
  (tensorflow) run untraced and traced, in one process; the ratio traced / untraced.

    python bench/collect.py [--frameworks torch,tensorflow] [--opinfo-time 60] [--mutate-time 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from corpus.collect.runner import collect  # noqa: E402


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def torch_overhead(ops: int = 80, samples: int = 4, repeats: int = 5) -> dict:
    import itertools
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    from torch.testing._internal.common_methods_invocations import op_db

    from corpus.collect.torch import Tracer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    calls = []
    for op in sorted(op_db, key=lambda o: (o.name, o.variant_test_name)):
        if len({c[0] for c in calls}) >= ops:
            break
        if torch.float32 not in op.supported_dtypes("cpu"):
            continue
        try:
            batch = list(itertools.islice(op.sample_inputs("cpu", torch.float32), samples))
            for s in batch:  # keep the ones that run
                op(s.input, *s.args, **s.kwargs)
        except Exception:
            continue
        calls += [(op.name, op, s) for s in batch]

    def run_all():
        for _, op, s in calls:
            op(s.input, *s.args, **s.kwargs)

    run_all()  # warm-up
    untraced = _best(run_all, repeats)
    records: list = []
    tracer = Tracer(records.append, "opinfo")

    def traced():
        records.clear()
        with tracer:
            run_all()

    traced_s = _best(traced, repeats)
    return {"framework": "torch", "calls": len(calls), "ops": len({c[0] for c in calls}),
            "untraced_s": round(untraced, 4), "traced_s": round(traced_s, 4),
            "records_per_run": len(records), "overhead_ratio": round(traced_s / untraced, 2),
            "us_per_call_added": round(1e6 * (traced_s - untraced) / max(1, len(calls)), 1)}


def tf_overhead(repeats: int = 5, rounds: int = 50) -> dict:
    from corpus.collect import tensorflow as tfc

    tfc.setup()
    tfc.install()
    import tensorflow as tf

    x, w = tf.random.normal([2, 8, 8, 3]), tf.random.normal([3, 3, 3, 4])
    m = tf.random.normal([16, 16])

    def run_all():
        for _ in range(rounds):
            tf.math.add(m, m)
            tf.linalg.matmul(m, m)
            tf.nn.conv2d(x, w, 1, "SAME")
            tf.math.reduce_sum(m, axis=1)
            tf.nn.relu(m)
            tf.reshape(m, [4, 64])
            tf.concat([m, m], 0)
            tf.transpose(m)
            tf.raw_ops.AddV2(x=m, y=m)
            _ = m + m

    calls = 10 * rounds
    run_all()
    untraced = _best(run_all, repeats)
    records: list = []
    tracer = tfc.Tracer(records.append, "script")

    def traced():
        records.clear()
        with tracer:
            run_all()

    traced_s = _best(traced, repeats)
    return {"framework": "tensorflow", "calls": calls, "untraced_s": round(untraced, 4), "traced_s": round(traced_s, 4),
            "records_per_run": len(records), "overhead_ratio": round(traced_s / untraced, 2),
            "us_per_call_added": round(1e6 * (traced_s - untraced) / calls, 1)}


def sources(framework: str, opinfo_time: float, mutate_time: float) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="dlfuzz-bench-") as tmp:
        db = os.path.join(tmp, "corpus.db")
        plan = [("doctest", None)] + ([("opinfo", opinfo_time)] if framework == "torch" else []) + [("mutate", mutate_time)]
        for source, limit in plan:
            s = collect(framework, source, db, limit)
            out.append({"framework": framework, "source": source, "time_limit_s": limit, "seconds": s["seconds"],
                        "new_records": s["new_records"], "new_valid": s["new_valid"], "new_invalid": s["new_invalid"],
                        "records_per_second": s["records_per_second"], "stopped": s["stopped"]})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", default="torch,tensorflow")
    p.add_argument("--opinfo-time", type=float, default=60.0)
    p.add_argument("--mutate-time", type=float, default=30.0)
    p.add_argument("--no-sources", action="store_true", help="only the tracer overhead")
    args = p.parse_args()
    result: dict = {"sources": [], "tracer_overhead": []}
    for fw in args.frameworks.split(","):
        if importlib.util.find_spec("tensorflow" if fw == "tensorflow" else "torch") is None:
            continue
        if not args.no_sources:
            result["sources"] += sources(fw, args.opinfo_time, args.mutate_time)
    # the overheads run in this process: torch first, so that a torch-only run never loads tensorflow
    for fw in args.frameworks.split(","):
        if importlib.util.find_spec("tensorflow" if fw == "tensorflow" else "torch") is None:
            continue
        result["tracer_overhead"].append(torch_overhead() if fw == "torch" else tf_overhead())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
