"""Where an Inductor case's time goes: per-case seconds of each compile phase.

    python bench/inductor_cost.py [--batches 6] [--batch 8] [--max-nodes 10] [--seed 1000]

Generates campaign models (the campaign's own generator and operator kinds), merges
them ``--batch`` at a time as a campaign does, and checks each batch in this process on
``torch.eager,torch.compile`` with a cold Inductor cache and one thread. The first batch
only warms the process up (imports, the precompiled header) and is not counted. Phases
come from torch's own compile-time metrics (``torch._dynamo.utils``), so the split is
Inductor's view of itself, not a profiler's (which would slow the Python phases).

Why this exists: campaign throughput on a 2-core machine is bounded by the CPU seconds
one case costs. The figures say how much of that is g++ (which batching and the kernel
merge of ``oracles/inductor_merge.py`` already pay once per batch) and how much is
Inductor's own Python, which no packaging of the cases can avoid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# torch's metric names -> our phase names. Each metric is measured by torch around that
# step; the phases do not nest, so they add up (the rest of the wall time is "other").
PHASES = {
    "bytecode_tracing": "dynamo_tracing",
    "create_aot_dispatcher_function": "aot_autograd",  # includes the phases below it
    "GraphLowering.run": "lowering",
    "Scheduler.__init__": "scheduling_fusion",
    "Scheduler.codegen": "kernel_codegen",
    "compile_file": "gxx",
}
NESTED_IN_AOT = ("GraphLowering.run", "Scheduler.__init__", "Scheduler.codegen", "compile_file")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=6, help="batches measured (after one warm-up batch)")
    p.add_argument("--batch", type=int, default=8, help="cases per compiled model, as in a campaign")
    p.add_argument("--max-nodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000)
    args = p.parse_args()

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlfuzz-inductor-cost-")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    import torch._dynamo.utils as dynamo_utils
    import torch._inductor.config as inductor_config

    torch.set_num_threads(1)
    inductor_config.compile_threads = 1  # as in the sandbox's workers

    from corpus.batch import merge_cases
    from fuzzer.generate import GenConfig, Generator
    from fuzzer.models import make_model
    from oracles.check import check_case
    from rules.registry import operator_specs
    from rules.specs import SPECS

    specs = operator_specs("torch", ("spec", "inferred", "concrete"))
    spec_map = {**SPECS, **{s.id: s for s in specs}}
    generator = Generator("torch", specs, GenConfig(max_nodes=args.max_nodes))
    start = time.perf_counter()
    cases, index = [], 0
    while len(cases) < args.batch * (args.batches + 1):
        model = make_model(generator, spec_map, args.seed, index)
        index += 1
        if model.valid:
            cases.append(model.case)
    generate_s = (time.perf_counter() - start) / index
    batches = [merge_cases(cases[i:i + args.batch]).case for i in range(0, len(cases), args.batch)]

    backends = ["torch.eager", "torch.compile"]
    check_case(batches[0], backends, spec_map)  # warm-up, not counted
    dynamo_utils.compilation_time_metrics.clear()
    wall = eager = 0.0
    operators = graphs_compiled = 0
    metrics: dict[str, float] = {}
    statuses: dict[str, int] = {}
    for batch in batches[1:]:
        t = time.perf_counter()
        result = check_case(batch, backends, spec_map)
        wall += time.perf_counter() - t
        operators += len(batch.graph.op_nodes())
        if result.verdicts:
            eager += result.verdicts[0].seconds
        for v in result.verdicts[1:]:
            statuses[v.status] = statuses.get(v.status, 0) + 1
        # the backend's torch._dynamo.reset() before each case clears torch's metrics,
        # so they are read after every batch
        for k, v in dynamo_utils.compilation_time_metrics.items():
            metrics[k] = metrics.get(k, 0.0) + sum(v)
        graphs_compiled += len(dynamo_utils.compilation_time_metrics.get("GraphLowering.run", []))
        dynamo_utils.compilation_time_metrics.clear()
    n = args.batch * args.batches
    phases = {name: metrics.get(key, 0.0) for key, name in PHASES.items()}
    phases["aot_autograd"] -= sum(metrics.get(k, 0.0) for k in NESTED_IN_AOT)
    phases["eager_reference"] = eager
    phases["other"] = wall - sum(phases.values())
    per_case = {k: round(v / n, 3) for k, v in phases.items()}
    print(json.dumps({
        "bench": "inductor_cost", "max_nodes": args.max_nodes, "batch": args.batch, "cases": n,
        "operators_per_case": round(operators / n, 2), "graphs_compiled": graphs_compiled,
        "batch_verdicts": statuses,
        "generate_s_per_case": round(generate_s, 3),
        "check_s_per_case": round(wall / n, 3),
        "phase_s_per_case": per_case,
        "gxx_share": round(phases["gxx"] / wall, 3),
        "cases_per_minute_per_core": round(60 * n / (wall + generate_s * n), 1),
    }))


if __name__ == "__main__":
    main()
