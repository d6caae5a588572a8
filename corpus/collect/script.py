"""The ``script:COMMAND`` source: any Python script or pytest command, run under the tracer.

COMMAND is ``path/to/file.py [ARGS]``, ``python file.py [ARGS]``, ``python -m MODULE [ARGS]``
or ``pytest [ARGS]``. It runs in a child process started as ``python -c BOOTSTRAP``: the
bootstrap installs the framework's tracer for the whole process, runs the target as
``__main__`` (or pytest's ``main``), and writes the records to the store in small
transactions while it runs and at exit (also on SIGTERM, which the parent sends at the
time limit).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

BOOTSTRAP = "import sys, json; from corpus.collect.script import bootstrap; sys.exit(bootstrap(json.loads(sys.argv[1])))"


class ScriptCommandError(ValueError):
    """A COMMAND that cannot be run; one line for the user."""


def parse_command(command: str) -> dict:
    """``{"kind": "path"|"module", "target": ..., "argv": [...]}``."""
    try:
        tokens = shlex.split(command)
    except ValueError as e:
        raise ScriptCommandError(f"cannot parse script command {command!r} ({e})") from None
    if not tokens:
        raise ScriptCommandError("empty script command; use script:path/to/file.py or 'script:pytest tests/x.py'")
    if os.path.basename(tokens[0]).startswith("python"):
        tokens = tokens[1:]
        if tokens and tokens[0] == "-m" and len(tokens) > 1:
            return {"kind": "module", "target": tokens[1], "argv": tokens[1:]}
    if not tokens:
        raise ScriptCommandError("no script after 'python'; use script:path/to/file.py")
    if tokens[0] in ("pytest", "py.test"):
        return {"kind": "module", "target": "pytest", "argv": ["pytest"] + tokens[1:]}
    if tokens[0].endswith(".py"):
        if not os.path.isfile(tokens[0]):
            raise ScriptCommandError(f"script {tokens[0]!r} does not exist; check the path")
        return {"kind": "path", "target": os.path.abspath(tokens[0]), "argv": tokens}
    raise ScriptCommandError(f"cannot run {tokens[0]!r}: use script:path/to/file.py, "
                             "'script:python -m MODULE ...' or 'script:pytest ...'")


def bootstrap(config: dict) -> int:
    """In the child: install the tracer, run the target, flush records at exit."""
    import atexit
    import runpy

    from corpus.collect import adapter as get_adapter
    from corpus.collect.watchdog import die_with_parent
    from corpus.store import CorpusStore, RecordWriter

    die_with_parent()
    ad = get_adapter(config["framework"])
    ad.setup()
    store = CorpusStore(config["db"])
    writer = RecordWriter(store, batch=200, interval=1.0)
    tracer = ad.GlobalTracer(writer, "script")
    flushed = []

    def finish() -> None:
        if flushed:
            return
        flushed.append(True)
        tracer.uninstall()
        try:
            writer.flush()
        except Exception as e:
            print(f"dlfuzz: could not write the last records ({e})", file=sys.stderr)
        if config.get("summary"):
            with open(config["summary"], "w") as f:
                json.dump({"records_seen": writer.seen, "records_new": writer.added}, f)

    def on_term(signum, frame):
        finish()
        os._exit(124)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(finish)
    target = config["command"]
    sys.argv = list(target["argv"])
    code = 0
    tracer.install()
    try:
        if target["kind"] == "path":
            sys.path.insert(0, os.path.dirname(target["target"]))
            runpy.run_path(target["target"], run_name="__main__")
        elif target["target"] == "pytest":
            import pytest

            code = int(pytest.main(sys.argv[1:]))
        else:
            runpy.run_module(target["target"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finish()
    return code


def run(framework: str, command: str, db: str, deadline: float | None) -> dict:
    """In the parent: run the child to its end or to the deadline; returns a summary."""
    import tempfile

    target = parse_command(command)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    fd, summary_path = tempfile.mkstemp(prefix="dlfuzz-script-", suffix=".json")
    os.close(fd)
    config = {"framework": framework, "db": os.path.abspath(db), "command": target, "summary": summary_path}
    proc = subprocess.Popen([sys.executable, "-c", BOOTSTRAP, json.dumps(config)], env=env,
                            stdout=sys.stderr.fileno())
    stopped = "complete"
    try:
        while True:
            try:
                proc.wait(timeout=None if deadline is None else max(0.1, deadline - time.time()))
                break
            except subprocess.TimeoutExpired:
                stopped = "time"
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                break
    except BaseException:
        proc.kill()
        raise
    try:
        with open(summary_path) as f:
            text = f.read()
        summary = json.loads(text) if text.strip() else {}
    except (OSError, json.JSONDecodeError):
        summary = {}
    finally:
        try:
            os.unlink(summary_path)
        except OSError:
            pass
    summary.update({"exit_code": proc.returncode, "stopped": stopped})
    return summary
