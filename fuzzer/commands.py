"""Implementations of the ``ops`` and ``gen`` commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fuzzer.args import UsageError, writable_dir


def ready_framework(framework: str) -> None:
    from rules.execute import FrameworkUnavailable, setup_framework

    try:
        setup_framework(framework)
    except FrameworkUnavailable as e:
        raise UsageError(str(e)) from None


def op_kinds(ops: str) -> tuple[str, ...]:
    """``--ops`` text -> operator kinds; UsageError (one line) on an unknown kind."""
    from rules.registry import parse_op_kinds

    try:
        return parse_op_kinds(ops)
    except ValueError as e:
        raise UsageError(f"--ops: {e}") from None


def op_specs(framework: str, ops: str) -> list:
    """The specs of the ``--ops`` kinds (``spec,inferred``) for one framework; UsageError on bad input."""
    from rules.registry import operator_specs, parse_op_kinds
    from rules.store import RuleStoreError

    try:
        specs = operator_specs(framework, parse_op_kinds(ops))
    except (ValueError, RuleStoreError) as e:
        raise UsageError(f"--ops: {e}") from None
    if not specs:
        raise UsageError(f"no {framework} operators of kinds {ops!r}; see 'dlfuzz ops --framework {framework}'")
    return specs


def cmd_ops(args: argparse.Namespace) -> int:
    """The operators of each kind (spec, inferred, concrete) per framework, with counts."""
    from rules.registry import operator_specs
    from rules.store import RuleStoreError

    frameworks = [args.framework] if args.framework else ["torch", "tensorflow"]
    table: dict[str, dict[str, list]] = {}
    for fw in frameworks:
        try:
            specs = operator_specs(fw, ("spec", "inferred", "concrete"))
        except RuleStoreError as e:
            raise UsageError(str(e)) from None
        table[fw] = {kind: sorted((s for s in specs if s.origin == kind), key=lambda s: s.id)
                     for kind in ("spec", "inferred", "concrete")}
    if args.json:
        print(json.dumps({fw: {kind: {"count": len(ss), "apis": len({getattr(s, "api", s.id) for s in ss}),
                                      "ids": [s.id for s in ss]} for kind, ss in kinds.items()}
                          for fw, kinds in table.items()}))
        return 0
    for fw, kinds in table.items():
        print(f"{fw}: " + ", ".join(f"{len(ss)} {kind} ({len({getattr(s, 'api', s.id) for s in ss})} APIs)"
                                    for kind, ss in kinds.items()))
        if args.list:
            for kind, ss in kinds.items():
                for s in ss:
                    print(f"  {kind:9s} {s.id}")
    return 0


def cmd_gen(args: argparse.Namespace) -> int:
    out = Path(writable_dir(args.out)) if args.out else None
    ready_framework(args.framework)
    from fuzzer.api import model_source
    from fuzzer.models import save_model

    from rules.store import RuleStoreError

    try:
        source = model_source(args.framework, args.max_nodes, op_kinds(args.ops))  # the API's generator
    except (ValueError, RuleStoreError) as e:
        raise UsageError(f"--ops: {e}; see 'dlfuzz ops --framework {args.framework}'") from None
    SPECS = source.specs  # noqa: N806
    start = time.perf_counter()
    valid = discarded = 0
    ops: set[str] = set()
    for index in range(args.count):
        model = source.model(args.seed, index)
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
               "discarded_draws": discarded, "distinct_apis": len({op.split("#")[0] for op in ops})}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"generated {args.count} models in {seconds:.1f} s: {valid} valid ({100 * valid / args.count:.1f}%), "
              f"{len(ops)} distinct operators, {discarded} graphs redrawn for NaN/Inf" + (f", saved under {out}" if out else ""))
    return 0
