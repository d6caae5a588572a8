"""Campaign throughput: cases per minute for a backend pair with 1 and 2 workers.

    python bench/fuzz.py [--backends torch.eager,torch.compile] [--time 120] [--batch N]

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


def run(backends: str, seconds: int, workers: int, batch: int | None, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=str(Path(tmp) / "inductor-cache"))
        cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", backends, "--time", f"{seconds}s",
               "--workers", str(workers), "--seed", str(seed), "--out", str(Path(tmp) / "out"), "--json",
               "--reduce-time", "0"]  # reduction after the loop would count in the campaign's seconds
        if batch:
            cmd += ["--batch", str(batch)]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"fuzz failed: {out.stderr[-2000:]}")
        figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {"workers": workers, "batch": batch, **{k: figures[k] for k in
            ("cases", "valid", "bugs", "bugs_by_kind", "cases_per_minute", "distinct_ops", "seconds")}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backends", default="torch.eager,torch.compile")
    p.add_argument("--time", type=int, default=120, help="seconds per run")
    p.add_argument("--batch", type=int, help="cases per compiled model (default: the campaign's own)")
    p.add_argument("--seed", type=int, default=1000)
    args = p.parse_args()
    results = [run(args.backends, args.time, w, args.batch, args.seed) for w in (1, 2)]
    print(json.dumps({"bench": "fuzz", "backends": args.backends, "results": results}))


if __name__ == "__main__":
    main()
