"""Campaigns on Ray against the local pool: cases per minute, Ray's cost per case, and a
paper estimate for a cluster.

    python bench/cluster.py [--backends torch.eager,torch.compile:aot_eager] [--time 60] [--seed 11]
                            [--checks forward] [--nodes 8] [--cores 16] [--calls 30]

Runs ``dlfuzz fuzz`` (the real command) four times into fresh temporary folders, the same
seed and budget each: the local pool (``--cluster local``) and a local Ray instance
(``--cluster ray``), each at 1 and 2 workers; each run's driver reports its own CPU time
(generation, bookkeeping, Ray's calls: the part a cluster does not spread). Then a
micro-benchmark: one small case checked ``--calls`` times through ``Sandbox`` and through
``RaySandbox`` with one warm worker each, whose difference is Ray's overhead per case.
The estimate for ``--nodes`` x ``--cores`` workers: each worker checks at the measured
one-worker Ray rate (steady), capped by what one driver can feed: 60 / its seconds per
case, generation (measured here, in-process) plus Ray's round trip, or its whole CPU time
per case in the campaigns, assuming cores as fast as this machine's. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fuzz import steady_rate  # noqa: E402

# the campaign CLI, reporting this process's own CPU time (the driver's, threads included)
DRIVER = ("import json, resource, sys\n"
          "from fuzzer.cli import main\n"
          "try:\n"
          "    code = main(sys.argv[1:])\n"
          "finally:\n"
          "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
          "    print('DRIVER_CPU ' + json.dumps(u.ru_utime + u.ru_stime), file=sys.stderr)\n"
          "sys.exit(code)\n")


def campaign(backends: str, seconds: int, workers: int, cluster: str, seed: int, checks: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-c", DRIVER, "fuzz", "--backends", backends, "--time", f"{seconds}s",
               "--workers", str(workers), "--cluster", cluster, "--seed", str(seed), "--checks", checks,
               "--out", str(Path(tmp) / "out"), "--json", "--reduce-time", "0", "--quiet"]
        start = time.monotonic()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        if out.returncode != 0:
            raise SystemExit(f"fuzz --cluster {cluster} failed: {out.stderr[-2000:]}")
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        state = json.loads((Path(tmp) / "out" / "campaign.json").read_text())
        cpu = next(float(ln.split()[1]) for ln in out.stderr.splitlines()[::-1] if ln.startswith("DRIVER_CPU "))
    cases = figures["cases"]
    return {"cluster": cluster, "workers": workers, "cases": cases, "valid": figures["valid"], "bugs": figures["bugs"],
            "cases_per_minute": figures["cases_per_minute"], "steady_cases_per_minute": steady_rate(state["timeline"], seconds),
            "wall_seconds": round(wall, 1), "driver_cpu_seconds": round(cpu, 1),
            "driver_cpu_seconds_per_case": round(cpu / cases, 4) if cases else None,
            "cluster_record": state.get("cluster")}


def per_call(backends: list[str], calls: int) -> dict:
    """Seconds per check of one small case, warm, through the local sandbox and through Ray
    (both open at once, checks interleaved, medians), and the round trip of a Ray actor
    call carrying a case's JSON both ways (Ray's own cost, without the check)."""
    import statistics

    import ray

    from fuzzer.cluster import RaySandbox
    from oracles.sandbox import Sandbox
    from tests.test_oracles import chain

    case = chain(["core.Add", "core.Mul", "core.Relu"])
    times: dict[str, list[float]] = {"local": [], "ray": []}
    with Sandbox(backends, timeout_s=60) as local, RaySandbox(backends, timeout_s=60, workers=1) as remote:
        for _ in range(3):  # warm: workers started, frameworks imported, first compiles done
            local.check(case)
            remote.check(case)
        for _ in range(calls):
            for name, sandbox in (("local", local), ("ray", remote)):
                start = time.monotonic()
                assert sandbox.check(case).valid
                times[name].append(time.monotonic() - start)

        @ray.remote(num_cpus=0)
        class Echo:
            def check(self, data, timeout_s):
                return data

        echo, data = Echo.remote(), case.to_json()
        ray.get(echo.check.remote(data, 60))
        start = time.monotonic()
        for _ in range(calls * 10):
            ray.get(echo.check.remote(data, 60))
        trip = (time.monotonic() - start) / (calls * 10)
    local_s, ray_s = statistics.median(times["local"]), statistics.median(times["ray"])
    return {"calls": calls, "case_json_bytes": len(json.dumps(data)), "local_seconds_per_check": round(local_s, 4),
            "ray_seconds_per_check": round(ray_s, 4), "ray_overhead_seconds": round(ray_s - local_s, 4),
            "ray_round_trip_seconds": round(trip, 5)}


def generation_cost(seed: int, checks: str, cases: int = 100) -> float:
    """The driver's generation, CPU seconds per case (``fuzzer.models`` as the campaign
    calls it, ops spec+inferred+concrete, 10 operators): what no cluster spreads."""
    from corpus.plan import parse_checks
    from fuzzer.generate import GenConfig, Generator
    from fuzzer.guidance import model_maker
    from rules.registry import operator_specs
    from rules.specs import SPECS

    kinds = parse_checks(checks)
    specs = operator_specs("torch", ("spec", "inferred", "concrete"))
    spec_map = {**SPECS, **{s.id: s for s in specs}}
    make = model_maker(Generator("torch", specs, GenConfig(max_nodes=10, mutation="mutation" in kinds)), spec_map,
                       seed, None, special_values=True, checks=kinds, frameworks=["torch"], batch=1)
    make(10**6)  # warm: specs loaded, z3 ready
    start = time.process_time()
    for i in range(cases):
        make(i)
    return (time.process_time() - start) / cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default="torch.eager,torch.compile:aot_eager")
    p.add_argument("--time", type=int, default=60, help="seconds per campaign")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--checks", default="forward")
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--cores", type=int, default=16)
    p.add_argument("--calls", type=int, default=30, help="checks per sandbox in the per-case overhead measure")
    args = p.parse_args()
    runs = [campaign(args.backends, args.time, w, cluster, args.seed, args.checks)
            for cluster in ("local", "ray") for w in (1, 2)]
    by = {(r["cluster"], r["workers"]): r for r in runs}
    micro = per_call(args.backends.split(","), args.calls)
    generation = generation_cost(args.seed, args.checks)

    def spc(key):  # seconds per case per worker, steady
        r = by[key]
        rate = r["steady_cases_per_minute"] or r["cases_per_minute"]
        return 60 * key[1] / rate if rate else None

    campaign_overhead = {f"{w}_workers": round(spc(("ray", w)) - spc(("local", w)), 4)
                         for w in (1, 2) if spc(("ray", w)) and spc(("local", w))}
    per_worker = spc(("ray", 1))
    workers = args.nodes * args.cores
    driver_cpu = min(r["driver_cpu_seconds_per_case"] for r in runs if r["driver_cpu_seconds_per_case"])
    # per case on the driver: generation, and Ray's call (its side of the round trip, at most)
    driver_case = generation + max(micro["ray_round_trip_seconds"], 0.0)
    by_workers = workers * 60 / per_worker if per_worker else None
    by_driver = 60 / driver_case
    estimate = {
        "nodes": args.nodes, "cores_per_node": args.cores, "workers": workers,
        "seconds_per_case_per_worker": round(per_worker, 3) if per_worker else None,
        "workers_bound_cases_per_minute": round(by_workers) if by_workers else None,
        "driver_cpu_seconds_per_case_whole_run": driver_cpu,
        "driver_generation_seconds_per_case": round(generation, 4),
        "driver_seconds_per_case": round(driver_case, 4),
        "driver_bound_cases_per_minute_whole_run": round(60 / driver_cpu) if driver_cpu else None,
        "driver_bound_cases_per_minute": round(by_driver) if by_driver else None,
        # the driver's cost per case two ways: generation and Ray's call measured apart, or
        # its whole CPU time per case in the best run here (start-up and bookkeeping included)
        "cases_per_minute": round(min(by_workers or by_driver, by_driver)),
        "cases_per_minute_from_whole_run_cpu": round(min(by_workers or 60 / driver_cpu, 60 / driver_cpu)),
        "bound_by": "driver" if by_workers and by_driver < by_workers else "workers",
    }
    print(json.dumps({"bench": "cluster", "backends": args.backends, "seconds": args.time, "seed": args.seed,
                      "checks": args.checks, "runs": runs,
                      "ray_overhead_seconds_per_case": {"campaign": campaign_overhead, "micro": micro},
                      "estimate": estimate}))


if __name__ == "__main__":
    main()
