"""What the command line's parts share: the usage error and the argument checks.

A leaf module (stdlib only): ``fuzzer.cli`` builds the parser from it, and each
``fuzzer.commands*`` module raises its errors with it, so that neither imports the other.
"""

from __future__ import annotations

import argparse
import os

FRAMEWORK_CHOICES = ("torch", "tensorflow")


class UsageError(Exception):
    """A user's mistake: printed as one line, exit code 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def writable_dir(path: str) -> str:
    """Create ``path`` if needed and prove it writable, before any work is done."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".dlfuzz-write-probe")
        with open(probe, "w") as f:
            f.write("")
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"cannot write to output folder {path!r} ({e.strerror}); choose a writable folder with --out") from None
    return path
