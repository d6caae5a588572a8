"""Implementations of the ``ops`` and ``gen`` commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fuzzer.cli import UsageError, writable_dir


def ready_framework(framework: str) -> None:
    from rules.execute import FrameworkUnavailable, setup_framework

    try:
        setup_framework(framework)
    except FrameworkUnavailable as e:
        raise UsageError(str(e)) from None


def cmd_ops(args: argparse.Namespace) -> int:
    from rules.specs import SPECS

    frameworks = [args.framework] if args.framework else ["torch", "tensorflow"]
    table = {fw: {"spec": sorted(s.id for s in SPECS.values() if fw in s.frameworks), "inferred": [], "concrete": []}
             for fw in frameworks}
    if args.json:
        print(json.dumps({fw: {kind: {"count": len(ids), "ids": ids} for kind, ids in kinds.items()}
                          for fw, kinds in table.items()}))
        return 0
    for fw, kinds in table.items():
        print(f"{fw}: " + ", ".join(f"{len(ids)} {kind}" for kind, ids in kinds.items()))
        for kind, ids in kinds.items():
            for sid in ids:
                print(f"  {kind:9s} {sid}")
    return 0


def cmd_gen(args: argparse.Namespace) -> int:
    out = Path(writable_dir(args.out)) if args.out else None
    ready_framework(args.framework)
    from fuzzer.generate import GenConfig, Generator
    from fuzzer.models import make_model, save_model
    from rules.specs import SPECS

    generator = Generator(args.framework, list(SPECS.values()), GenConfig(max_nodes=args.max_nodes))
    start = time.perf_counter()
    valid = discarded = 0
    ops: set[str] = set()
    for index in range(args.count):
        model = make_model(generator, SPECS, args.seed, index)
        discarded += model.discarded
        if model.valid:
            valid += 1
            ops.update(model.case.graph.op_ids())
            if out is not None:
                save_model(model.case, out / str(index), SPECS)
        if not args.json:
            print(f"\rgenerated {index + 1}/{args.count}, valid {valid}", end="", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    if not args.json:
        print(file=sys.stderr)
    summary = {"generated": args.count, "valid": valid, "distinct_ops": len(ops), "seconds": round(seconds, 3),
               "discarded_draws": discarded}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"generated {args.count} models in {seconds:.1f} s: {valid} valid ({100 * valid / args.count:.1f}%), "
              f"{len(ops)} distinct operators, {discarded} graphs redrawn for NaN/Inf" + (f", saved under {out}" if out else ""))
    return 0
