"""Hybrid generation against symbolic specs only: one campaign each, side by side.

    python bench/hybrid.py [--backends torch.eager,torch.compile] [--time 30m] [--seed 7] [--out DIR]

Both campaigns run at once (one worker each, so each has one of the two cores), with
the same seed, time and backends; the only difference is ``--ops``. Prints one JSON
object: per campaign the cases, valid cases, distinct operators and APIs exercised in
valid cases, distinct bugs by kind, and each bug's title (the first line of report.md).
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
ARMS = {"hybrid": "spec,inferred,concrete", "spec_only": "spec"}


def api(op: str) -> str:
    """``torch.sum#78fd/4`` -> ``torch.sum``; a hand-written spec is its own API."""
    return op.split("#")[0]


def summarize(out: Path) -> dict:
    c = json.loads((out / "campaign.json").read_text())
    bugs = []
    for folder in sorted((out / "bugs").glob("*/")):
        report = folder / "report.md"
        title = report.read_text().splitlines()[0].lstrip("# ") if report.exists() else folder.name
        bugs.append({"signature": folder.name, "title": title})
    return {"cases": c["cases"], "valid": c["valid"], "cases_per_minute": c["cases_per_minute"],
            "distinct_ops": len(c["ops"]), "distinct_apis": len({api(o) for o in c["ops"]}),
            "distinct_framework_apis": len({api(o) for o in c["ops"] if not o.startswith("core.")}),
            "bugs": c["bugs"], "bugs_by_kind": c["bugs_by_kind"], "bug_titles": bugs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="torch.eager,torch.compile")
    p.add_argument("--time", default="30m")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="keep both campaigns here (default: a temporary folder)")
    args = p.parse_args()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dlfuzz-bench-hybrid-"))
    base.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {}
    for arm, ops in ARMS.items():
        cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", args.backends, "--time", args.time,
               "--seed", str(args.seed), "--workers", "1", "--ops", ops, "--out", str(base / arm), "--json"]
        arm_env = dict(env, TORCHINDUCTOR_CACHE_DIR=str(base / f"{arm}-inductor-cache"))
        procs[arm] = subprocess.Popen(cmd, cwd=ROOT, env=arm_env, stdout=subprocess.DEVNULL,
                                      stderr=open(base / f"{arm}.log", "w"))
    results = {}
    for arm, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"the {arm} campaign failed; see {base / (arm + '.log')}")
        results[arm] = summarize(base / arm)
    print(json.dumps({"bench": "hybrid", "backends": args.backends, "time": args.time, "seed": args.seed,
                      "out": str(base), **results}))


if __name__ == "__main__":
    main()
