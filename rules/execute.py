"""Run a Graph in a framework's eager mode, from the same source a program.py holds."""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from corpus.graph import Graph
from corpus.values import ValueSpec
from rules.codegen import leaves_source, module_source
from rules.spec import OpSpec


def load_module(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec]) -> dict[str, Any]:
    """Exec the model module and its leaf recipes; returns the namespace (Model, CONSTS, INPUTS, ...)."""
    source = module_source(graph, framework, specs) + "\n\n" + leaves_source(graph, values)
    ns: dict[str, Any] = {"__name__": f"dlfuzz_model_{framework}"}
    exec(compile(source, f"<dlfuzz {framework} model>", "exec"), ns)
    return ns


def run_module(ns: dict[str, Any], framework: str) -> list[np.ndarray]:
    model = ns["Model"](ns["CONSTS"]())
    inputs = ns["INPUTS"]()
    if framework == "torch":
        import torch

        with torch.no_grad():
            outs = model(*inputs)
    else:
        outs = model(*inputs)
    return [ns["to_numpy"](o) for o in outs]


def run_eager(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec]) -> list[np.ndarray]:
    # Frameworks warn about legal but odd calls (cov with one observation ...); a
    # generated model makes many, and they are not ours to report.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_module(load_module(graph, framework, values, specs), framework)


def all_finite(arrays: Sequence[np.ndarray]) -> bool:
    return all(not np.issubdtype(a.dtype, np.floating) or bool(np.isfinite(a).all()) for a in arrays)


class FrameworkUnavailable(RuntimeError):
    """The framework is not installed; the message says how to install it."""


_READY: set[str] = set()


def setup_framework(framework: str) -> None:
    """Import the framework once, single-threaded (several times faster on small models)."""
    if framework in _READY:
        return
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if framework == "torch":
        try:
            import torch
        except ImportError:
            raise FrameworkUnavailable("PyTorch is not installed; install it with: pip install torch==2.13.0") from None
        torch.set_num_threads(1)
    elif framework == "tensorflow":
        try:
            import tensorflow as tf
        except ImportError:
            raise FrameworkUnavailable(
                "TensorFlow is not installed; install it with: pip install 'dlfuzz[tensorflow]' (tensorflow-cpu)") from None
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialized by an earlier op: keep its settings
    else:
        raise ValueError(f"unknown framework {framework!r}")
    _READY.add(framework)
