"""Generation throughput: models per second for generation alone (graph + z3) and with the
eager run (value search included), validity and distinct operators, at 10 and 30 nodes,
for each framework installed. Prints one JSON object.

    python bench/gen.py [--count N] [--frameworks torch,tensorflow]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fuzzer.generate import GenConfig, Generator  # noqa: E402
from fuzzer.models import make_case, make_model  # noqa: E402
from rules.execute import setup_framework  # noqa: E402
from rules.specs import SPECS, specs_for  # noqa: E402


def measure(framework: str, nodes: int, count: int, seed: int = 0) -> dict:
    gen = Generator(framework, specs_for(framework), GenConfig(max_nodes=nodes))
    start = time.perf_counter()
    for i in range(count):
        make_case(gen, seed, i)
    gen_only = time.perf_counter() - start
    setup_framework(framework)
    make_model(gen, SPECS, seed + 1, 0)  # warm-up: first framework calls are slow
    start = time.perf_counter()
    models = [make_model(gen, SPECS, seed, i) for i in range(count)]
    with_run = time.perf_counter() - start
    valid = [m for m in models if m.valid]
    ops = {op for m in valid for op in m.case.graph.op_ids()}
    return {
        "framework": framework, "max_nodes": nodes, "count": count,
        "gen_models_per_s": round(count / gen_only, 2),
        "gen_and_eager_models_per_s": round(count / with_run, 2),
        "valid_fraction": round(len(valid) / count, 4),
        "distinct_ops": len(ops),
        "discarded_draws": sum(m.discarded for m in models),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--frameworks", default="torch,tensorflow")
    args = p.parse_args()
    results = []
    for fw in args.frameworks.split(","):
        if importlib.util.find_spec("tensorflow" if fw == "tensorflow" else "torch") is None:
            continue
        for nodes in (10, 30):
            results.append(measure(fw, nodes, args.count))
    print(json.dumps({"bench": "gen", "results": results}))


if __name__ == "__main__":
    main()
