"""Run a Graph in a framework's eager mode, from the same source a program.py holds."""

from __future__ import annotations

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
    return run_module(load_module(graph, framework, values, specs), framework)


def all_finite(arrays: Sequence[np.ndarray]) -> bool:
    return all(not np.issubdtype(a.dtype, np.floating) or bool(np.isfinite(a).all()) for a in arrays)
