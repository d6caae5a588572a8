"""Rule inference over a whole corpus: wall time, CPU time and the figures. Prints one JSON object.

    python bench/infer.py [--framework torch] [--db /tmp/full_torch.db] [--workers 2] [--every K] [--out FILE]

``--every K`` infers every K-th partial operator only (the operators are listed largest
first, so the sample spans the size range) and extrapolates the time to the whole
corpus. ``cpu_seconds`` counts this process and all its children (inference workers,
sandbox workers): on a machine shared with other jobs, ``cpu_seconds / workers`` is the
wall time the run would take on ``workers`` dedicated cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rules.infer import InferOptions, infer_corpus  # noqa: E402


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--framework", default="torch")
    ap.add_argument("--db", default="/tmp/full_torch.db")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--time-per-op", type=float, default=20.0)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the rule store here (default: a temporary file)")
    args = ap.parse_args()
    out = args.out or f"/tmp/bench-infer-{args.framework}-{os.getpid()}.json"
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    summary = infer_corpus(args.framework, args.db, out,
                           InferOptions(workers=args.workers, time_per_op=args.time_per_op, every=args.every),
                           progress=lambda m: print(f"\r{m:<90}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
    print(json.dumps({
        "framework": args.framework, "workers": args.workers, "every": args.every, "store": out,
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
        "dedicated_core_seconds": round(cpu / args.workers, 1),
        "extrapolated_wall_seconds": round(wall * args.every, 1),
        "extrapolated_dedicated_core_seconds": round(cpu / args.workers * args.every, 1),
        **{k: v for k, v in summary.items() if k not in ("slowest", "errors")},
        "slowest": summary["slowest"],
    }, indent=1))


if __name__ == "__main__":
    main()
