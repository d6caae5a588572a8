"""A watchdog thread for collection child processes.

It ends the process (``os._exit``) when the parent that started it is gone (so that a
killed ``dlfuzz collect`` leaves no orphans) and when one unit of work runs past its time
limit (a hang in native code); ``on_hang`` may first record the unit as timed out.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Callable

HANG_EXIT = 86
ORPHAN_EXIT = 87


class Watchdog:
    def __init__(self, unit_timeout: float | None = None, on_hang: Callable[[str], None] | None = None,
                 poll: float = 0.25) -> None:
        self.parent = os.getppid()
        self.unit_timeout = unit_timeout
        self.on_hang = on_hang
        self.poll = poll
        self.current: tuple[str, float] | None = None
        self.thread = threading.Thread(target=self._run, name="dlfuzz-watchdog", daemon=True)
        self.thread.start()

    @contextmanager
    def unit(self, key: str):
        self.current = (key, time.monotonic())
        try:
            yield
        finally:
            self.current = None

    def _run(self) -> None:
        while True:
            time.sleep(self.poll)
            if os.getppid() != self.parent:
                os._exit(ORPHAN_EXIT)
            cur = self.current
            if cur is not None and self.unit_timeout and time.monotonic() - cur[1] > self.unit_timeout:
                if self.on_hang is not None:
                    try:
                        self.on_hang(cur[0])
                    except Exception:
                        pass
                os._exit(HANG_EXIT)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort, elsewhere a no-op)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except Exception:
        pass
