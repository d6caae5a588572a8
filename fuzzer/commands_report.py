"""Implementations of the ``reduce`` and ``report`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fuzzer.args import UsageError


def cmd_reduce(args: argparse.Namespace) -> int:
    """Minimize a bug folder in place. Exit 0 when done (reduced or already minimal), 1
    when the bug no longer reproduces (nothing is changed)."""
    from corpus.case import Case, CaseFormatError
    from fuzzer.commands import ready_framework
    from fuzzer.commands_fuzz import _backends
    from oracles.sandbox import Sandbox
    from reports.reduce import reduce_bug_folder
    from rules.specs import SPECS

    folder = Path(args.path)
    if not (folder / "bug.json").is_file():
        raise UsageError(f"{folder} has no bug.json; pass a bug folder from a campaign's bugs/")
    try:
        bug = json.loads((folder / "bug.json").read_text())
        backends, kind = list(bug["backends"]), bug["verdict"]["status"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{folder / 'bug.json'} is not a readable dlfuzz bug ({type(e).__name__}); "
                         f"the folder is corrupt") from None
    try:
        Case.load(folder / "case.json")
    except CaseFormatError as e:
        raise UsageError(str(e)) from None
    backends = _backends(",".join(backends))
    for fw in {"tensorflow" if b.startswith("tf.") else "torch" for b in backends}:
        ready_framework(fw)

    def log(line: str) -> None:
        if not args.json:
            print(f"  {line}", file=sys.stderr, flush=True)

    with Sandbox(backends, timeout_s=args.timeout, workers=1) as sandbox:
        red = reduce_bug_folder(folder, sandbox.check, SPECS, time_s=args.time, max_checks=args.max_checks,
                                timeout_s=args.timeout, verify=True, log=log)
    if red is None:
        message = f"{folder.name}: the {kind} no longer reproduces on {', '.join(backends)}; nothing changed"
        print(json.dumps({"reproduced": False}) if args.json else message)
        return 1
    figures = {"reproduced": True, **red.stats(), "operators": sorted(set(red.case.graph.op_ids()))}
    if args.json:
        print(json.dumps(figures))
    else:
        budget = " (budget spent)" if red.out_of_budget else ""
        print(f"{folder.name}: {red.operators_before} -> {red.operators_after} operators, {red.nodes_before} -> "
              f"{red.nodes_after} nodes in {red.seconds:.1f} s, {red.checks} checks{budget}; "
              f"{', '.join(figures['operators'])}; rewrote case.json, program.py, repro.py, report.md")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports.summary import SummaryError, write_summary

    try:
        md, page, campaign = write_summary(Path(args.dir))
    except SummaryError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps({"markdown": str(md), "html": str(page), "bugs": len(campaign.bugs),
                          "cases": campaign.state.get("cases", 0)}))
    else:
        print(f"wrote {md} and {page} ({len(campaign.bugs)} bugs, {campaign.state.get('cases', 0)} cases)")
    return 0
