"""The ``dlfuzz`` command line (DESIGN §7).

Parsing lives here and stays light: no framework is imported until a command runs, so
``dlfuzz --help`` is instant. Usage errors print one line (what, why, how to fix) and
exit with code 2; bugs found exit 1 where that is the question; success exits 0.
"""

from __future__ import annotations

import argparse
import sys

from fuzzer.args import check_kinds, cluster_spec, FRAMEWORK_CHOICES, SAMPLE_BATCHES, UsageError, non_negative_int, \
    positive_int, share


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dlfuzz", description="Fuzz deep-learning frameworks and compilers with generated models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("ops", help="list the operators the generator can use")
    p.add_argument("--framework", choices=FRAMEWORK_CHOICES, help="only this framework's operators")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--list", action="store_true", help="list every operator id, not only the counts")

    p = sub.add_parser("gen", help="generate models, run them in eager mode, save them")
    p.add_argument("--framework", choices=FRAMEWORK_CHOICES, default="torch")
    p.add_argument("--count", type=positive_int, default=10, help="number of models")
    p.add_argument("--max-nodes", type=positive_int, default=10, help="operator nodes per model")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", help="save each valid model as OUT/<index>/{case.json,program.py}")
    p.add_argument("--json", action="store_true",
                   help='print one line {"generated", "valid", "distinct_ops", "seconds"}')
    p.add_argument("--ops", default="spec,inferred,concrete",
                   help="operator kinds to draw from: a comma list of spec (hand-written), inferred (from rules), "
                        "concrete (replayed records); default all three")
    p = sub.add_parser("fuzz", help="run a differential fuzzing campaign")
    p.add_argument("--backends", required=True,
                   help="comma-separated backends, the first is the reference (e.g. torch.eager,torch.compile)")
    p.add_argument("--time", default="10m", help="time budget, e.g. 90s, 10m, 2h (default 10m)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", required=True, help="campaign folder; re-running with the same folder resumes")
    p.add_argument("--workers", type=positive_int, default=1, help="sandbox worker processes")
    p.add_argument("--cluster", type=cluster_spec, default="local", metavar="local|ray|ray:HOST:PORT",
                   help="where the workers run: local (default, this machine's worker pool), ray (a local Ray "
                        "instance), ray:HOST:PORT (Ray actors on a running cluster's nodes); needs pip install -e '.[ray]'")
    p.add_argument("--max-nodes", type=positive_int, default=10, help="operator nodes per model")
    p.add_argument("--timeout", type=positive_int, default=60, help="seconds per case before it counts as a hang")
    p.add_argument("--max-cases", type=positive_int, help="stop after this many cases")
    p.add_argument("--batch", type=positive_int,
                   help="cases compiled together as one model (default: 8 for Inductor and XLA, else 1)")
    p.add_argument("--sample-batches", type=share, default=SAMPLE_BATCHES, metavar="SHARE",
                   help="share of passing batches re-checked member by member, to measure what batching hides "
                        f"(campaign.json's batches.alone_only); each costs a compile per member (default {SAMPLE_BATCHES:g})")
    p.add_argument("--json", action="store_true", help="print campaign.json's figures as one line at the end")
    p.add_argument("--quiet", action="store_true",
                   help="no live screen: one plain progress line a minute and the final line (for logs)")
    p.add_argument("--ops", default="spec,inferred,concrete",
                   help="operator kinds to draw from: a comma list of spec (hand-written), inferred (from rules), "
                        "concrete (replayed records); default all three")
    p.add_argument("--ignore", metavar="FILE",
                   help="known bugs: a file of signature digests or regular expressions, one per line (# comments); "
                        "matching bugs are counted in campaign.json as 'ignored', not written")
    p.add_argument("--reduce-time", type=non_negative_int, default=60, metavar="SECONDS",
                   help="reduce each new bug for at most this many seconds after the campaign (0: no reduction; "
                        "default 60)")
    p.add_argument("--checks", type=check_kinds, default="all",
                   help="what each case is checked for, a comma list of forward, dynamic (other shapes on one "
                        "symbolic compile), backward (gradients), layout (strided inputs), mutation (in-place ops, "
                        "inputs compared after the call); default all, each where the case allows it")
    p.add_argument("--coverage", action="store_true",
                   help="measure line and branch coverage of the compilers under test in the workers; campaign.json "
                        "records it over time, and generation is steered by it (see --no-guide)")
    p.add_argument("--coverage-source", metavar="DIRS",
                   help="folders to measure (a comma list; implies --coverage); default: the compiler packages of the "
                        "backends, e.g. torch/_inductor and torch/_dynamo for torch.compile")
    p.add_argument("--guide", action=argparse.BooleanOptionalAction, default=True,
                   help="with --coverage: favour operators, dtypes and checks that recently reached new code, and "
                        "mutate the cases that did (default); --no-guide only measures")

    p = sub.add_parser("replay", help="re-check a bug folder or a case.json on its backends")
    p.add_argument("path", help="a bug folder (with bug.json) or a case.json")
    p.add_argument("--backends", help="backends for a bare case.json (a bug folder names its own)")
    p.add_argument("--timeout", type=positive_int, default=60)

    p = sub.add_parser("reduce", help="minimize a bug folder in place (delta debugging, re-checked on its backends)")
    p.add_argument("path", help="a bug folder (with bug.json and case.json)")
    p.add_argument("--time", type=positive_int, default=120, metavar="SECONDS", help="time budget (default 120)")
    p.add_argument("--max-checks", type=positive_int, default=500, help="oracle calls at most (default 500)")
    p.add_argument("--timeout", type=positive_int, default=60, help="seconds per check before it counts as a hang")
    p.add_argument("--json", action="store_true", help="print the reduction's figures as one JSON line")

    p = sub.add_parser("report", help="write a campaign's summary: DIR/summary.md and DIR/summary.html")
    p.add_argument("dir", help="a campaign folder (with campaign.json)")
    p.add_argument("--json", action="store_true", help="print the paths written and the figures as one JSON line")
    from fuzzer.commands_collect import add_parsers as add_collect_parsers  # stdlib-only module

    add_collect_parsers(sub)
    from fuzzer.commands_rules import add_parsers as add_rules_parsers  # stdlib-only module

    add_rules_parsers(sub)
    from fuzzer.commands_merge import add_parsers as add_merge_parsers  # stdlib-only module

    add_merge_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # (fuzzer.supervisor restarts with them)
    try:
        if args.command == "ops":
            from fuzzer.commands import cmd_ops

            return cmd_ops(args)
        if args.command == "gen":
            from fuzzer.commands import cmd_gen

            return cmd_gen(args)
        if args.command in ("fuzz", "replay"):
            from fuzzer import commands_fuzz

            return commands_fuzz.cmd_fuzz(args) if args.command == "fuzz" else commands_fuzz.cmd_replay(args)
        if args.command in ("reduce", "report"):
            from fuzzer import commands_report

            return commands_report.cmd_reduce(args) if args.command == "reduce" else commands_report.cmd_report(args)
        if args.command in ("collect", "corpus"):
            from fuzzer import commands_collect

            return commands_collect.run(args)
        if args.command in ("infer", "rules"):
            from fuzzer import commands_rules

            return commands_rules.run(args)
        if args.command == "merge":
            from fuzzer import commands_merge

            return commands_merge.cmd_merge(args)
    except UsageError as e:
        print(f"dlfuzz {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dlfuzz {args.command}: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2

