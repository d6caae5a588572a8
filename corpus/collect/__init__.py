"""API-trace collection (DESIGN §1, §4): tracers and the sources that drive them.

- ``torch.py``, ``tensorflow.py``: the framework adapters: a tracer, value encoding,
  rebuilding a recorded call with random tensors (``call``), doctest targets.
- ``opinfo.py``, ``doctests.py``: in-process sources, run by ``child.py`` in a supervised
  child process (a crash or a hang restarts it; progress in the store skips what is done).
- ``script.py``: any Python script or pytest command run under the tracer in a child.
- ``mutate.py`` + ``pool.py`` + ``worker.py``: NeuRI's augmentation, re-executing mutated
  calls in a pool of sandbox workers.
- ``probe.py`` + ``synth.py``: TensorFlow's public functions called, in the same pool,
  with calls built from their signatures (functions no docstring example calls).
- ``runner.py``: ``collect()``, the one entry point the CLI uses.

Nothing here imports a framework at import time; a torch-only collection never imports
tensorflow.
"""

from __future__ import annotations

import importlib

FRAMEWORKS = ("torch", "tensorflow")
SOURCES = ("opinfo", "doctest", "mutate", "probe", "script")


def adapter(framework: str):
    """The framework's adapter module (``corpus.collect.torch`` or ``corpus.collect.tensorflow``)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
    return importlib.import_module(f"corpus.collect.{framework}")
