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


def _int_at_least(low: int, what: str):
    """An argparse type: an integer of at least ``low``, else one line naming ``what``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "a non-negative integer")


# the share of passing batches re-checked member by member (fuzzer.batches.sample_passing),
# here so that ``--help`` shows it without importing the campaign: each sampled batch of 8
# costs 8 compiles, so at 0.05 sampling took 17% of a campaign's compiles
# (bench/fuzz.py's compiles_by_job); at 0.01 a nightly campaign still re-checks some 60
# batches, about 500 members
SAMPLE_BATCHES = 0.01


def share(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {value:g}")
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


def check_kinds(text: str) -> tuple[str, ...]:
    """An argparse type for ``--checks``: the check kinds (corpus.plan), one line if unknown."""
    from corpus.plan import parse_checks

    try:
        return parse_checks(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_cluster(text: str) -> tuple[str, str | None]:
    """``--cluster``: ``local`` -> ("local", None), the sandbox's worker pool on this
    machine; ``ray`` -> ("ray", None), a local Ray instance; ``ray:ADDRESS`` -> ("ray",
    ADDRESS), a running cluster (``HOST:PORT`` of its head, ``ray://HOST:PORT``, or
    ``auto``). ValueError, one line, for anything else."""
    text = text.strip()
    if text in ("local", "ray"):
        return text, None
    if text.startswith("ray:"):
        address = text[4:]
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if address == "auto" or (host and not any(c.isspace() for c in host) and port.isdigit()
                                 and 0 < int(port) < 65536):
            return "ray", address
    raise ValueError(f"expected local, ray (a local Ray instance) or ray:HOST:PORT (a running cluster's head, "
                     f"or ray:auto), got {text!r}")


def cluster_spec(text: str) -> str:
    """An argparse type for ``--cluster`` (see :func:`parse_cluster`), normalized."""
    try:
        kind, address = parse_cluster(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return kind if address is None else f"{kind}:{address}"
