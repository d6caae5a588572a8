"""torch.compile backends with planted bugs, for testing the oracles end to end.

Use them as ``torch.compile:tests.planted_backends:NAME``. Each takes the FX graph Dynamo
traced (torch-level calls: ``torch.add``, ``torch.exp``, ...) and returns a callable; when
its trigger op is absent it returns ``gm.forward`` unchanged.
"""

from __future__ import annotations

import operator
import os
import time

import torch


def _targets(gm: torch.fx.GraphModule) -> set:
    return {n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method")}


def _has(gm: torch.fx.GraphModule, *fns) -> bool:
    names = {getattr(f, "__name__", f) for f in fns}
    return any(t in fns or (isinstance(t, str) and t in names) for t in _targets(gm))


ADD_TARGETS = (torch.add, operator.add, torch.ops.aten.add.Tensor)


def wrong_add(gm: torch.fx.GraphModule, example_inputs):
    """Computes ``a + b + 1`` for additions whose result has more than one element."""
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in ADD_TARGETS:
            continue
        value = node.meta.get("example_value")
        if value is None or value.numel() <= 1:
            continue
        with gm.graph.inserting_after(node):
            plus_one = gm.graph.call_function(torch.add, (node, 1))
        node.replace_all_uses_with(plus_one, delete_user_cb=lambda user: user is not plus_one)
    gm.recompile()
    return gm.forward


def raises_on_exp(gm: torch.fx.GraphModule, example_inputs):
    if _has(gm, torch.exp, torch.ops.aten.exp.default):
        raise RuntimeError("planted: exp is not supported by this backend")
    return gm.forward


def aborts_on_sin(gm: torch.fx.GraphModule, example_inputs):
    if _has(gm, torch.sin, torch.ops.aten.sin.default):
        os.abort()
    return gm.forward


def hangs_on_tanh(gm: torch.fx.GraphModule, example_inputs):
    if _has(gm, torch.tanh, torch.ops.aten.tanh.default):
        while True:
            time.sleep(3600)
    return gm.forward


def not_a_backend_value():  # pragma: no cover - only its name is used
    return None


NOT_CALLABLE = 42


def raises_always(gm: torch.fx.GraphModule, example_inputs):
    """As a reference backend, it makes every case invalid (the reference rejects it)."""
    raise RuntimeError("planted: this backend rejects every model")


def crashes_on_big_graphs(gm: torch.fx.GraphModule, example_inputs):
    """Fails only on graphs of more than 30 calls: a failure only a batch shows."""
    if sum(n.op in ("call_function", "call_method") for n in gm.graph.nodes) > 30:
        raise RuntimeError("planted: graph too big for this backend")
    return gm.forward
