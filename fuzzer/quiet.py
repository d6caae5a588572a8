"""Keep what the frameworks print off the user's terminal.

A campaign's parent process runs models too (value search and trial runs in eager mode),
and the frameworks' native code writes straight to file descriptors 1 and 2: TensorFlow's
start-up banners, oneMKL's ``Parameter 4 was incorrect on entry to SLASCL``, deprecation
warnings of the APIs under test. Left alone they shred the progress line and spoil
``--json`` output. Within ``native_output_to(log)`` both descriptors point at the log, and
the campaign's own output (the progress line) goes to the stream it yields, a copy of the
terminal's stderr. The sandbox workers keep logs of their own (``oracles.sandbox``).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO


@contextmanager
def native_output_to(log: Path) -> Iterator[TextIO]:
    """Send descriptors 1 and 2 (and so Python's print and warnings) to ``log`` while
    inside; yields a line-buffered stream on the original stderr for the progress line."""
    sys.stdout.flush()
    sys.stderr.flush()
    log.parent.mkdir(parents=True, exist_ok=True)
    saved_out, saved_err = os.dup(1), os.dup(2)
    sink = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal = os.fdopen(os.dup(saved_err), "w", buffering=1)
    try:
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (sink, saved_out, saved_err):
            os.close(fd)
        terminal.close()
