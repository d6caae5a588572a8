"""The ``collect`` and ``corpus`` commands: API-trace collection and the corpus store.

    dlfuzz collect --framework torch|tensorflow --source opinfo|doctest|mutate|probe|script:COMMAND --db FILE
                   [--time LIMIT] [--json] [--ops NAMES] [--workers N] ...
    dlfuzz corpus stats --db FILE [--json]
    dlfuzz corpus export --db FILE --out X.jsonl [--framework F]
    dlfuzz corpus import --db FILE X.jsonl

Only the standard library is imported here at module level; the collection itself lives
in ``corpus.collect``.
"""

from __future__ import annotations

import argparse
import json
import re

from fuzzer.args import FRAMEWORK_CHOICES, UsageError, positive_int


def _duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 10m or 2h, got {text!r}")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_parsers(sub) -> None:
    p = sub.add_parser("collect", help="collect API traces into a corpus (SQLite)")
    p.add_argument("--framework", choices=FRAMEWORK_CHOICES, required=True)
    p.add_argument("--source", required=True,
                   help="opinfo (torch), doctest, mutate, probe (tensorflow), or script:COMMAND (a .py file, 'python -m M ...', 'pytest ...')")
    p.add_argument("--db", required=True, help="corpus file; created if new, resumed if it exists")
    p.add_argument("--time", type=_duration, help="time limit, e.g. 90s, 10m (default: run to the end)")
    p.add_argument("--ops", help="comma-separated op/API names to restrict the source to")
    p.add_argument("--samples", type=positive_int, default=12, help="opinfo: samples per op and dtype (default 12)")
    p.add_argument("--no-modules", action="store_true", help="opinfo: skip module_db")
    p.add_argument("--workers", type=positive_int, default=1, help="mutate, probe: sandbox worker processes (default 1)")
    p.add_argument("--op-time", type=_positive_float, default=30.0,
                   help="mutate: most seconds per partial operator (default 30, shared fairly under --time)")
    p.add_argument("--call-timeout", type=_positive_float, default=10.0, help="mutate, probe: seconds per call (default 10)")
    p.add_argument("--unit-timeout", type=_positive_float, default=120.0,
                   help="opinfo/doctest: seconds per op or docstring before it counts as a hang (default 120)")
    p.add_argument("--verbose", action="store_true", help="show the collection's own messages on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON line with the figures")

    p = sub.add_parser("corpus", help="inspect, export and import a corpus")
    csub = p.add_subparsers(dest="corpus_command", required=True, parser_class=type(p))
    q = csub.add_parser("stats", help="figures per framework: apis, partial_ops, records, valid, invalid")
    q.add_argument("--db", required=True)
    q.add_argument("--json", action="store_true", help="print one JSON line")
    q = csub.add_parser("export", help="write the records as JSON lines")
    q.add_argument("--db", required=True)
    q.add_argument("--out", required=True, help="a .jsonl file")
    q.add_argument("--framework", choices=FRAMEWORK_CHOICES, help="only this framework's records")
    q = csub.add_parser("import", help="add records from JSON lines (duplicates are ignored)")
    q.add_argument("--db", required=True)
    q.add_argument("jsonl", help="a file written by 'dlfuzz corpus export'")


def run(args: argparse.Namespace) -> int:
    from corpus.store import CorpusStoreError

    try:
        if args.command == "collect":
            return cmd_collect(args)
        return cmd_corpus(args)
    except CorpusStoreError as e:
        raise UsageError(str(e)) from None


def cmd_collect(args: argparse.Namespace) -> int:
    import importlib.util

    from corpus.collect.runner import CollectError, collect
    from corpus.store import CorpusStore

    module = "tensorflow" if args.framework == "tensorflow" else "torch"
    if importlib.util.find_spec(module) is None:
        hint = "pip install 'dlfuzz[tensorflow]'" if module == "tensorflow" else "pip install torch==2.13.0"
        raise UsageError(f"{module} is not installed; install it with: {hint}")
    CorpusStore(args.db).close()  # a foreign or corrupt file fails here, before any work
    only = [s.strip() for s in args.ops.split(",") if s.strip()] if args.ops else None
    try:
        summary = collect(args.framework, args.source, args.db, args.time, only=only, samples=args.samples,
                          workers=args.workers, op_time=args.op_time, call_timeout=args.call_timeout,
                          unit_timeout=args.unit_timeout, modules=not args.no_modules, verbose=args.verbose)
    except CollectError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.framework} {args.source}: {summary['new_records']} new records ({summary['new_valid']} valid, "
              f"{summary['new_invalid']} invalid) in {summary['seconds']:.1f} s, {summary['records_per_second']}/s; "
              f"stopped: {summary['stopped']}; {args.db} holds {summary['total_records']} {args.framework} records")
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    from corpus.store import CorpusStore

    if args.corpus_command == "stats":
        with CorpusStore(args.db, create=False) as store:
            stats = store.stats()
        if args.json:
            keys = ("apis", "partial_ops", "records", "valid", "invalid")
            print(json.dumps({"frameworks": {fw: {k: d[k] for k in keys}
                                             for fw, d in stats["frameworks"].items()}}))
        else:
            if not stats["frameworks"]:
                print(f"{args.db}: no records")
            for fw, d in stats["frameworks"].items():
                print(f"{fw}: {d['apis']} apis, {d['partial_ops']} partial ops, {d['records']} records "
                      f"({d['valid']} valid, {d['invalid']} invalid, {d['flagged']} flagged)")
                for src, s in d["by_source"].items():
                    print(f"  {src:9s} {s['records']} records, {s['valid']} valid")
        return 0
    if args.corpus_command == "export":
        with CorpusStore(args.db, create=False) as store:
            try:
                n = store.export_jsonl(args.out, args.framework)
            except OSError as e:
                raise UsageError(f"cannot write {args.out} ({e.strerror}); choose a writable path with --out") from None
        print(f"exported {n} records to {args.out}")
        return 0
    if args.corpus_command == "import":
        with CorpusStore(args.db) as store:
            try:
                read, added = store.import_jsonl(args.jsonl)
            except OSError as e:
                raise UsageError(f"cannot read {args.jsonl} ({e.strerror}); check the path") from None
        print(f"read {read} records from {args.jsonl}, {added} new, {read - added} already in {args.db}")
        return 0
    raise UsageError(f"unknown corpus command {args.corpus_command!r}")
