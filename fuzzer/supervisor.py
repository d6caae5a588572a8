"""``dlfuzz fuzz`` runs its campaign in a child process and restarts it after a death.

The campaign's process runs framework code of its own (eager runs of each new model:
``fuzzer.generation_guard``); a fault there (a heap corruption, an abort) kills it
where a sandbox worker's death would only be a verdict. The parent (no framework
imported: it costs nothing) waits for the child; when a signal killed it, the parent
says so in one line and starts it again on the same folder, which resumes: nothing
written is lost, the model that killed it is skipped and counted. A child that exits
(done, a usage error, Ctrl-C) ends the command with its exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

CHILD_ENV = "DLFUZZ_CAMPAIGN_CHILD"
MAX_RESTARTS = 5


def is_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def supervise(argv: Sequence[str], out: Path, restarts: int = MAX_RESTARTS,
              program: Sequence[str] = (sys.executable, "-m", "fuzzer")) -> int:
    """Run ``python -m fuzzer ARGV`` (``program`` + ``argv``) as the campaign's process
    until it exits by itself."""
    from fuzzer.generation_guard import pending

    env = dict(os.environ, **{CHILD_ENV: "1"})
    cmd = [*program, *argv]
    code = 0
    for attempt in range(restarts + 1):
        child = subprocess.Popen(cmd, env=env)
        try:
            code = child.wait()
        except KeyboardInterrupt:  # the child has the same Ctrl-C and saves its state
            code = child.wait()
        if code >= 0:
            return code
        index = pending(out)
        where = f" while generating case {index}" if index is not None else ""
        if attempt == restarts:
            print(f"dlfuzz fuzz: the campaign process was killed by {_signal_name(code)}{where}, "
                  f"{restarts + 1} times; giving up (its results are in {out}; run the same command to resume)",
                  file=sys.stderr)
            break
        print(f"dlfuzz fuzz: the campaign process was killed by {_signal_name(code)}{where}; resuming in {out} "
              f"(restart {attempt + 1} of {restarts}){'; that case is skipped and counted' if where else ''}",
              file=sys.stderr)
    return 128 - code if code < 0 else code
