"""Campaign throughput: cases per minute for a backend pair with 1 and 2 workers.

    python bench/fuzz.py [--backends torch.eager,torch.compile] [--time 120] [--batch N] [--max-nodes K]
                         [--checks all|forward,...]

``--checks forward`` is the campaign as it was before check plans (issue 15): compare it
with the default (all checks) for what the plans cost in cases per minute and what they
buy in checks per compile (calls of compiled models, every shape set, layout and backward
included, per compiler invocation).

Runs ``dlfuzz fuzz`` (the real command) into fresh temporary folders, one per worker
count, with a cold Inductor cache so that every compile is paid for, and prints one JSON
object with each run's campaign.json figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(backends: str, seconds: int, workers: int, batch: int | None, seed: int, max_nodes: int,
        checks: str = "all") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=str(Path(tmp) / "inductor-cache"))
        cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", backends, "--time", f"{seconds}s",
               "--workers", str(workers), "--seed", str(seed), "--out", str(Path(tmp) / "out"), "--json",
               "--reduce-time", "0", "--max-nodes", str(max_nodes), "--checks", checks]  # checking only: no reduction after the loop
        if batch:
            cmd += ["--batch", str(batch)]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"fuzz failed: {out.stderr[-2000:]}")
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        timeline = json.loads((Path(tmp) / "out" / "campaign.json").read_text())["timeline"]
    per_kind = figures.get("checks", {})
    calls = sum(v for k, v in per_kind.items() if k.startswith("calls: "))
    compiles = per_kind.get("compiles", 0)
    return {"workers": workers, "batch": batch, "max_nodes": max_nodes, "checks": checks, **{k: figures[k] for k in
            ("cases", "valid", "bugs", "bugs_by_kind", "cases_per_minute", "distinct_ops", "seconds")},
            "steady_cases_per_minute": steady_rate(timeline, seconds),
            "cases_per_check_kind": {k.removeprefix("cases: "): v for k, v in per_kind.items() if k.startswith("cases: ")},
            "compiles": compiles,
            "compiles_by_job": {k.removeprefix("compiles by job: "): v for k, v in per_kind.items()
                                if k.startswith("compiles by job: ")}, "calls_per_compile": round(calls / compiles, 2) if compiles else None}


def steady_rate(timeline: list[list[float]], budget: float) -> float | None:
    """Cases per minute from the first finished batch to the end of the time budget.

    ``cases_per_minute`` also counts the workers' start-up (imports, the first compile)
    and the drain after the budget (in-flight batches and the re-checks of failed ones
    finish, so that nothing found is lost): a fixed cost per campaign, large in a
    4-minute bench, negligible in a nightly run. This rate leaves both out.
    """
    inside = [(t, n) for t, n, _ in timeline if n > 0 and t <= budget]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return round(60 * (n1 - n0) / (t1 - t0), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backends", default="torch.eager,torch.compile")
    p.add_argument("--time", type=int, default=120, help="seconds per run")
    p.add_argument("--batch", type=int, help="cases per compiled model (default: the campaign's own)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--max-nodes", type=int, default=10, help="operators per model (the public fuzzer's default is 5)")
    p.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    p.add_argument("--checks", default="all", help="the campaign's --checks; several runs: separate by ';'")
    args = p.parse_args()
    results = [run(args.backends, args.time, int(w), args.batch, args.seed, args.max_nodes, checks)
               for checks in args.checks.split(";") for w in args.workers.split(",")]
    print(json.dumps({"bench": "fuzz", "backends": args.backends, "results": results}))


if __name__ == "__main__":
    main()
