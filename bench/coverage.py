"""Compiler coverage of campaigns (issue 17): guided against unguided, hybrid against spec-only.

    python bench/coverage.py [--time 5m] [--seed 5] [--backends torch.eager,torch.compile]
                             [--runs hybrid-guided,hybrid-unguided,spec-guided,spec-unguided] [--workers 1]
                             [--repeats 1]

Runs ``dlfuzz fuzz --coverage`` (the real command) once per run, one after the other
(two cores: campaigns side by side would measure each other), each into a fresh
temporary folder with a cold Inductor cache, the same seed and time, and coverage over
the same folders (torch/_inductor and torch/_dynamo; ``--coverage-source`` to change).
``hybrid`` draws all operator kinds (``--ops spec,inferred,concrete``), ``spec`` only
the hand-written specs (``--ops spec``: the NNSmith-like baseline); ``unguided`` passes
``--no-guide`` (coverage measured, generation as without it).

Prints one JSON object: per run, line and branch coverage (%) at 1, 2 and 5 minutes
(scaled to ``--time``: at a fifth, two fifths and all of it; interpolated between the
campaign's timeline points, which come every 15 s here), the final figures (after the
in-flight cases drain), cases, valid, distinct operators and APIs, bugs and cases per
minute. The static analysis of the source folders is cached before the first run, so no
run pays for it.

``--repeats N`` runs each of them N times, on seeds ``seed`` .. ``seed+N-1`` (a campaign
of one seed is deterministic but for timing, so the spread over seeds is the honest
one), and adds per run name the branch coverage at the end of the time of each repeat,
its mean, and its spread (max - min): guided beats unguided where its mean lies above
unguided's by more than unguided's spread; and guided minus unguided repeat by repeat.
``--same-seed`` repeats on ``--seed`` itself, so that the spread is a run's own noise.
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
# run as a script, this file's folder comes first on the path, and this file would be
# imported as coverage.py itself
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

RUNS = {"hybrid-guided": ("spec,inferred,concrete", True), "hybrid-unguided": ("spec,inferred,concrete", False),
        "spec-guided": ("spec", True), "spec-unguided": ("spec", False)}


def parse_time(text: str) -> float:
    from fuzzer.campaign import parse_duration

    return parse_duration(text)


def at(timeline: list[list[float]], t: float) -> tuple[float, float] | None:
    """(lines %, branches %) at ``t`` seconds, linear between the points around it."""
    pts = sorted((float(s), float(ln), float(b)) for s, ln, b in timeline)
    if not pts or t < pts[0][0]:
        return None
    for (s0, l0, b0), (s1, l1, b1) in zip(pts, pts[1:]):
        if s0 <= t <= s1:
            f = (t - s0) / (s1 - s0) if s1 > s0 else 1.0
            return round(l0 + f * (l1 - l0), 2), round(b0 + f * (b1 - b0), 2)
    return pts[-1][1], pts[-1][2]


def run(name: str, backends: str, seconds: float, seed: int, workers: int, sources: list[str], max_nodes: int) -> dict:
    ops, guided = RUNS[name]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=str(Path(tmp) / "inductor-cache"),
                   DLFUZZ_COVERAGE_INTERVAL_S="15")
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", backends, "--time", f"{seconds:g}s",
               "--workers", str(workers), "--seed", str(seed), "--out", str(out), "--json", "--reduce-time", "0",
               "--max-nodes", str(max_nodes), "--ops", ops, "--coverage-source", ",".join(sources),
               "--guide" if guided else "--no-guide"]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: fuzz failed: {proc.stderr[-2000:]}")
        state = json.loads((out / "campaign.json").read_text())
        log = out / "coverage" / "jobs.jsonl"
        jobs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    cov = state.get("coverage") or {}
    timeline = cov.get("timeline") or []
    marks = {f"{round(seconds * k / 5)}s": at(timeline, seconds * k / 5) for k in (1, 2, 5)}
    apis = {op.split("#")[0] for op in state.get("ops") or {}}
    return {"ops": ops, "guided": guided,
            "lines_pct": {k: v and v[0] for k, v in marks.items()}, "branches_pct": {k: v and v[1] for k, v in marks.items()},
            "final": {k: cov.get(k) for k in ("lines_pct", "branches_pct", "lines", "lines_total", "branches",
                                              "branches_total")},
            "seconds": state["seconds"], "cases": state["cases"], "valid": state["valid"],
            "cases_per_minute": state["cases_per_minute"], "distinct_ops": state["distinct_ops"],
            "distinct_apis": len(apis), "bugs": state["bugs"], "bugs_by_kind": state["bugs_by_kind"],
            "guide": cov.get("guide"), "new_arcs": cov.get("new_arcs"), "combine_seconds": cov.get("combine_seconds"),
            "timeline": timeline, "jobs": jobs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--time", default="5m", help="per run, e.g. 300, 90s, 5m (default 5m)")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--backends", default="torch.eager,torch.compile")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-nodes", type=int, default=10)
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma list of {', '.join(RUNS)} (default all, in this order)")
    p.add_argument("--coverage-source", help="folders to measure (default torch/_inductor,torch/_dynamo)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each, on seeds seed, seed+1, ... (default 1)")
    p.add_argument("--same-seed", action="store_true",
                   help="repeat on --seed itself: the spread is then a run's own noise (timing), not the seeds'")
    args = p.parse_args()
    seconds = parse_time(args.time)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"--runs: unknown run {unknown[0]!r}; known: {', '.join(RUNS)}")
    from oracles.sut_coverage import package_dir
    from reports.coverage_totals import load_static

    if args.coverage_source:
        sources = [os.path.abspath(d) for d in args.coverage_source.split(",") if d.strip()]
    else:
        sources = [d for d in (package_dir("torch", "_inductor"), package_dir("torch", "_dynamo")) if d]
    load_static(sources)  # cached once, so that no run pays for parsing the sources
    if args.repeats < 1:
        raise SystemExit("--repeats: at least 1")
    results, summary = {}, {}
    ends: dict[str, list[float]] = {n: [] for n in names}
    for k in range(args.repeats):  # interleaved: a machine that slows down slows every run name alike
        seed = args.seed if args.same_seed else args.seed + k
        for n in names:
            key = n if args.repeats == 1 else f"{n}/seed{seed}" + (f"/run{k}" if args.same_seed else "")
            results[key] = run(n, args.backends, seconds, seed, args.workers, sources, args.max_nodes)
            end = results[key]["branches_pct"][f"{round(seconds)}s"]
            if end is not None:
                ends[n].append(end)
    for n, values in ends.items():
        if values:
            summary[n] = {"branches_pct_end": values, "mean": round(sum(values) / len(values), 2),
                          "spread": round(max(values) - min(values), 2)}
    for ops in ("hybrid", "spec"):  # guided minus unguided, repeat by repeat (the same seed each)
        g, u = ends.get(f"{ops}-guided"), ends.get(f"{ops}-unguided")
        if g and u and len(g) == len(u):
            summary[f"{ops}: guided - unguided"] = {"by_repeat": [round(a - b, 2) for a, b in zip(g, u)],
                                                    "mean": round((sum(g) - sum(u)) / len(g), 2)}
    print(json.dumps({"bench": "coverage", "backends": args.backends, "time_s": seconds, "seed": args.seed,
                      "repeats": args.repeats, "workers": args.workers, "sources": sources, "summary": summary,
                      "runs": results}))


if __name__ == "__main__":
    main()
