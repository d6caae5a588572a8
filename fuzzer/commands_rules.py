"""The ``infer`` and ``rules`` commands: rule inference and the rule store.

    dlfuzz infer --framework F --db FILE --out FILE [--workers W] [--time-per-op S] [--json]
    dlfuzz rules show API [--framework F] [--store FILE]
    dlfuzz rules stats [--framework F] [--store FILE] [--json]

Only the standard library is imported at module level; inference lives in ``rules.infer``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from fuzzer.args import FRAMEWORK_CHOICES, UsageError, positive_int


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_parsers(sub) -> None:
    p = sub.add_parser("infer", help="infer operator rules from a corpus into a rule store (JSON)")
    p.add_argument("--framework", choices=FRAMEWORK_CHOICES, required=True)
    p.add_argument("--db", required=True, help="corpus file written by 'dlfuzz collect'")
    p.add_argument("--out", required=True, help="rule store to write (JSON), e.g. torch-2.13.json")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--time-per-op", type=_positive_float, default=20.0,
                   help="seconds per partial operator, for all its templates (default 20)")
    p.add_argument("--samples", type=int, default=12,
                   help="calls per rule run through the real API to measure precision (default 12; 0 skips)")
    p.add_argument("--ops", help="comma-separated API names to restrict inference to")
    p.add_argument("--json", action="store_true",
                   help='print one line {"partial_ops", "with_rules", "apis_with_rules", "heldout_accuracy", '
                        '"precision", "seconds", ...}: with_rules, apis_with_rules and precision count the rules '
                        'the generator uses; the all_* keys count every rule written')

    p = sub.add_parser("rules", help="inspect a rule store")
    rsub = p.add_subparsers(dest="rules_command", required=True, parser_class=type(p))
    q = rsub.add_parser("show", help="print an API's rules: constraints and shape formulas")
    q.add_argument("api", help="API name, e.g. torch.nn.functional.conv2d (a rule id shows one rule)")
    q.add_argument("--framework", choices=FRAMEWORK_CHOICES, help="default: from the API's prefix")
    q.add_argument("--store", help="rule store (default: the one shipped for the installed framework version)")
    q.add_argument("--json", action="store_true", help="print the rules as JSON")
    q = rsub.add_parser("stats", help="figures of a rule store: APIs with rules and mean precision, for the rules "
                                      "the generator uses and for all rules")
    q.add_argument("--framework", choices=FRAMEWORK_CHOICES, default="torch", help="default: torch")
    q.add_argument("--store", help="rule store (default: the one shipped for the installed framework version)")
    q.add_argument("--json", action="store_true", help="print one JSON line")


def run(args: argparse.Namespace) -> int:
    from rules.store import RuleStoreError

    try:
        if args.command == "infer":
            return cmd_infer(args)
        return cmd_rules(args)
    except RuleStoreError as e:
        raise UsageError(str(e)) from None


def cmd_infer(args: argparse.Namespace) -> int:
    import importlib.util

    from corpus.store import CorpusStore, CorpusStoreError

    module = "tensorflow" if args.framework == "tensorflow" else "torch"
    if importlib.util.find_spec(module) is None:
        hint = "pip install 'dlfuzz[tensorflow]'" if module == "tensorflow" else "pip install torch==2.13.0"
        raise UsageError(f"{module} is not installed; install it with: {hint}")
    try:
        with CorpusStore(args.db, create=False) as store:
            n = store.count(args.framework)
    except CorpusStoreError as e:
        raise UsageError(str(e)) from None
    if n == 0:
        raise UsageError(f"{args.db} holds no {args.framework} records; collect some with "
                         f"'dlfuzz collect --framework {args.framework} --source ... --db {args.db}'")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        raise UsageError(f"cannot write {args.out}: folder {out_dir} does not exist or is not writable; "
                         f"choose another --out")
    if args.samples < 0:
        raise UsageError(f"--samples must be 0 or more, got {args.samples}")
    from rules.infer import InferOptions, infer_corpus

    only = frozenset(s.strip() for s in args.ops.split(",") if s.strip()) if args.ops else None
    options = InferOptions(workers=args.workers, time_per_op=args.time_per_op, precision_samples=args.samples,
                           only=only)

    def progress(msg: str) -> None:
        if not args.json:
            print(f"\r{msg:<90}", end="", file=sys.stderr, flush=True)

    summary = infer_corpus(args.framework, args.db, args.out, options, progress)
    if args.json:
        print(json.dumps({k: summary[k] for k in JSON_KEYS}))
    else:
        print(file=sys.stderr)
        print(f"{args.framework}: {summary['partial_ops']} partial operators in {summary['seconds']:.0f} s; "
              f"{describe(summary)}; written to {args.out}")
    return 0


# what `infer --json` and `rules stats --json` print (stats has no partial_ops or seconds)
JSON_KEYS = ("partial_ops", "with_rules", "apis_with_rules", "heldout_accuracy", "precision", "seconds",
             "rules", "min_precision", "all_with_rules", "all_apis_with_rules", "all_rules", "all_rules_measured",
             "all_precision")


def describe(f: dict) -> str:
    return (f"the generator uses {f['rules']} rules (precision >= {f['min_precision']}) for {f['apis_with_rules']} "
            f"APIs ({f['with_rules']} partial operators), mean precision {f['precision']}; all rules: "
            f"{f['all_rules']} for {f['all_apis_with_rules']} APIs ({f['all_with_rules']} partial operators), "
            f"mean precision {f['all_precision']} over the {f['all_rules_measured']} measured; held-out accuracy "
            f"{f['heldout_accuracy']}")


def _store_for(args: argparse.Namespace, framework: str) -> tuple[dict, str]:
    from rules.store import default_path, load

    if args.store:
        return load(args.store), args.store
    path = default_path(framework)
    if path is None:
        raise UsageError(f"no rule store is shipped for {framework}; pass one with --store "
                         f"(write one with 'dlfuzz infer')")
    return load(path), str(path)


def format_rule(rule: dict, framework: str) -> list[str]:
    from rules.infer.expr import parse_pred, pretty_pred
    from rules.inferred import call_source, usable

    tpl = rule["template"]
    names = []
    for i, t in enumerate(tpl["tensors"]):
        dims = ", ".join(f"t{i}_{k}" for k in range(t["rank"]))
        names.append(f"t{i}[{dims}]")
    call = call_source(rule, framework, names, {**{k: k for k in tpl["attrs"]}, **{k: k for k in tpl["floats"]}})
    lines = [f"{rule['id']}  ({rule['signature']})", f"  call:        {call}"]
    if tpl["attrs"]:
        lines.append("  attributes:  " + ", ".join(f"{k} in [{lo}, {hi}]" for k, (lo, hi) in tpl["attrs"].items()))
    if tpl["floats"]:
        lines.append("  floats:      " + ", ".join(f"{k} in {v}" for k, v in tpl["floats"].items()))
    cons = [pretty_pred(parse_pred(c)) for c in rule["constraints"]]
    lines.append("  requires:    " + (cons[0] if cons else "(nothing beyond positive dimensions)"))
    lines += [f"               {c}" for c in cons[1:]]
    for j, shape in enumerate(rule["outputs"]["shapes"]):
        lines.append(f"  output {j}:    [{', '.join(shape)}]")
    dts = ", ".join(f"({', '.join(d['in'])}) -> {', '.join(d['out'])}" for d in rule["dtypes"][:6])
    more = f" (+{len(rule['dtypes']) - 6} more)" if len(rule["dtypes"]) > 6 else ""
    lines.append(f"  dtypes:      {dts}{more}")
    ev = rule["evidence"]
    lines.append(f"  evidence:    {ev.get('valid')} valid, {ev.get('invalid')} invalid records; held-out "
                 f"{ev.get('heldout_valid')} valid + {ev.get('heldout_invalid')} invalid, accuracy "
                 f"{rule.get('heldout_accuracy')}; precision {rule.get('precision')} over "
                 f"{rule.get('precision_samples', 0)} sampled calls")
    why = usable(rule, framework)
    lines.append("  generator:   " + ("used" if why is None else f"not used ({why})"))
    return lines


def cmd_stats(args: argparse.Namespace) -> int:
    from rules.store.stats import figures

    doc, path = _store_for(args, args.framework)
    if doc["framework"] != args.framework:
        raise UsageError(f"{path} holds {doc['framework']} rules, not {args.framework}; "
                         f"pass --framework {doc['framework']}")
    f = figures(doc["rules"], args.framework)
    if args.json:
        print(json.dumps({"framework": args.framework, "framework_version": doc.get("framework_version"),
                          "store": os.path.basename(path), **{k: f[k] for k in JSON_KEYS if k in f}}))
    else:
        print(f"{path} ({args.framework} {doc.get('framework_version', '?')}): {describe(f)}")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    if args.rules_command == "stats":
        return cmd_stats(args)
    if args.rules_command != "show":
        raise UsageError(f"unknown rules command {args.rules_command!r}")
    framework = args.framework or ("tensorflow" if args.api.startswith("tf.") else "torch")
    doc, path = _store_for(args, framework)
    if doc["framework"] != framework:
        raise UsageError(f"{path} holds {doc['framework']} rules, not {framework}; pass --framework {doc['framework']}")
    api = args.api
    if api.startswith("F."):
        api = "torch.nn.functional." + api[2:]
    rules = [r for r in doc["rules"] if r["api"] == api or r["id"] == api]
    if not rules:
        close = sorted({r["api"] for r in doc["rules"] if api.rsplit(".", 1)[-1] == r["api"].rsplit(".", 1)[-1]})
        hint = f"; did you mean {', '.join(close[:4])}?" if close else f"; list the operators with 'dlfuzz ops --framework {framework}'"
        raise UsageError(f"no rules for {args.api!r} in {path}{hint}")
    if args.json:
        print(json.dumps(rules, indent=1))
        return 0
    print(f"{len(rules)} rule{'s' if len(rules) != 1 else ''} for {api} ({path}, {doc['framework']} "
          f"{doc.get('framework_version', '?')})")
    for rule in rules:
        print()
        print("\n".join(format_rule(rule, framework)))
    return 0
