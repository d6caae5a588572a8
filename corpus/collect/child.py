"""The child process that runs an in-process source (``opinfo``, ``doctest``).

    python -m corpus.collect.child CONFIG_JSON

CONFIG: framework, source, db, deadline (epoch seconds or null), only (names or null),
samples, unit_timeout, summary (a file to write the summary JSON to). The parent
(``runner.py``) restarts this process when it dies; the progress table makes it skip what
is done and what crashed it twice.
"""

from __future__ import annotations

import json
import os
import sys
import warnings


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")

    from corpus.collect import adapter as get_adapter
    from corpus.collect.units import run_units
    from corpus.collect.watchdog import Watchdog, die_with_parent
    from corpus.store import CorpusStore

    die_with_parent()
    framework, source, db = config["framework"], config["source"], os.path.abspath(config["db"])
    only = set(config["only"]) if config.get("only") else None

    def on_hang(key: str) -> None:
        with CorpusStore(db) as s:
            s.mark(framework, source, key, "timeout")

    watchdog = Watchdog(config.get("unit_timeout") or None, on_hang)
    store = CorpusStore(db)
    ad = get_adapter(framework)
    ad.setup()
    if source == "opinfo":
        from corpus.collect import opinfo

        units = opinfo.units(int(config.get("samples") or 12), only, modules=config.get("modules", True))
    elif source == "doctest":
        from corpus.collect import doctests

        doctests.scratch_dir()
        units = doctests.units(ad, only)
    else:
        raise SystemExit(f"unknown in-process source {source!r}")

    def log(msg: str) -> None:
        if config.get("verbose"):
            print(f"[{source}] {msg}", file=sys.stderr, flush=True)

    stats = run_units(store, framework, source, units, lambda sink: ad.Tracer(sink, source),
                      config.get("deadline"), watchdog, log)
    store.close()
    if config.get("summary"):
        with open(config["summary"], "w") as f:
            json.dump(stats.to_json(), f)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (framework atexit hooks can be slow or crash)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
