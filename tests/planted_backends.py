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


# ---- ATen level ---------------------------------------------------------------------------

def _broadcast_add_plus_one(gm: torch.fx.GraphModule, example_inputs):
    """Rewrites every ``aten.add.Tensor`` of two tensors of different shapes (a broadcast)
    into ``a + b + 1``: one faulty ATen operator, reached through ``torch.add`` and through
    every API whose decomposition broadcasts an addition (layer_norm's bias, ...)."""
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.aten.add.Tensor:
            continue
        a, b = node.args[:2]
        if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node)):
            continue
        va, vb = a.meta.get("val"), b.meta.get("val")
        if not (isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor)) or va.shape == vb.shape:
            continue
        with gm.graph.inserting_after(node):
            plus_one = gm.graph.call_function(torch.ops.aten.add.Tensor, (node, 1))
        node.replace_all_uses_with(plus_one, delete_user_cb=lambda user: user is not plus_one)
    gm.recompile()
    return gm.forward


def _inductor_decompositions():
    from torch._inductor.decomposition import select_decomp_table

    return select_decomp_table()


def _make_wrong_broadcast_add():
    from torch._dynamo.backends.common import aot_autograd

    # the decompositions Inductor uses, so that the norms' bias additions reach it as
    # aten.add.Tensor (a callable: aot_autograd resolves it on the first compile)
    return aot_autograd(fw_compiler=_broadcast_add_plus_one, decompositions=_inductor_decompositions)


wrong_broadcast_add = _make_wrong_broadcast_add()


# ---- special values ------------------------------------------------------------------------

def nan_to_zero(gm: torch.fx.GraphModule, example_inputs):
    """Runs the graph correctly, then turns every NaN of a float output into 0 (a
    backend that gets NaN propagation wrong; finite values and infinities untouched)."""
    def run(*args):
        outs = gm.forward(*args)
        fixed = [torch.where(torch.isnan(o), torch.zeros_like(o), o)
                 if isinstance(o, torch.Tensor) and o.is_floating_point() else o for o in outs]
        return type(outs)(fixed) if isinstance(outs, tuple) else fixed

    return run


def aborts_on_sin_or_cos(gm: torch.fx.GraphModule, example_inputs):
    """Two distinct faults with one symptom: the process dies (SIGABRT) on sin and on cos."""
    if _has(gm, torch.sin, torch.ops.aten.sin.default, torch.cos, torch.ops.aten.cos.default):
        os.abort()
    return gm.forward


def _exp_of_mul_doubled(single_use: bool):
    """``exp(a * b)`` computed as ``2 * exp(a * b)``: a fault of two ATen operators
    together (a fused pattern); with ``single_use`` only where the product has no other
    use, so that it shows only in the fused graph (a fusion bug, no ATen operator's)."""

    def fw_compiler(gm: torch.fx.GraphModule, example_inputs):
        for node in list(gm.graph.nodes):
            if node.op != "call_function" or node.target is not torch.ops.aten.exp.default:
                continue
            src = node.args[0]
            if not (isinstance(src, torch.fx.Node) and src.target is torch.ops.aten.mul.Tensor):
                continue
            if single_use and len(src.users) != 1:
                continue
            with gm.graph.inserting_after(node):
                doubled = gm.graph.call_function(torch.ops.aten.mul.Tensor, (node, 2))
            node.replace_all_uses_with(doubled, delete_user_cb=lambda user: user is not doubled)
        gm.recompile()
        return gm.forward

    from torch._dynamo.backends.common import aot_autograd

    return aot_autograd(fw_compiler=fw_compiler)


wrong_mul_exp = _exp_of_mul_doubled(single_use=False)
wrong_fused_mul_exp = _exp_of_mul_doubled(single_use=True)


def raises_quietly_on_exp(gm: torch.fx.GraphModule, example_inputs):
    """A crash whose message names no operator: only the ATen localization can pin it."""
    if _has(gm, torch.exp, torch.ops.aten.exp.default):
        raise RuntimeError("planted: lowering failed")
    return gm.forward


def int_add_via_float32(gm: torch.fx.GraphModule, example_inputs):
    """Adds int32 tensors through float32: right for small values, wrong past 2**24, a
    fault only values across the integer range can show."""
    def add(a, b, *rest, **kw):
        if isinstance(a, torch.Tensor) and a.dtype == torch.int32 and isinstance(b, torch.Tensor):
            return (a.to(torch.float32) + b.to(torch.float32)).to(torch.int32)
        return torch.add(a, b, *rest, **kw)

    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in ADD_TARGETS:
            node.target = add
    gm.recompile()
    return gm.forward


# ---- faults only a check plan shows (corpus.plan): each is invisible to a forward check
# of contiguous inputs of static shape -----------------------------------------------------

def _is_symbolic(x) -> bool:
    if isinstance(x, torch.SymInt):
        return True
    return isinstance(x, torch.Tensor) and any(isinstance(d, torch.SymInt) for d in x.shape)


def _map_float_outputs(outs, fn):
    """``outs`` (a tensor, a tuple or a list) with ``fn`` applied to every float tensor."""
    def one(o):
        return fn(o) if isinstance(o, torch.Tensor) and o.is_floating_point() else o

    if isinstance(outs, torch.Tensor):
        return one(outs)
    return type(outs)(one(o) for o in outs)


def wrong_when_symbolic(gm: torch.fx.GraphModule, example_inputs):
    """Right for a graph of static shapes; a graph traced with symbolic shapes (a dynamic
    compile) gets 1 added to every float output."""
    values = [n.meta.get("example_value") for n in gm.graph.nodes if n.op == "placeholder"]
    if not any(_is_symbolic(x) for x in [*example_inputs, *values]):
        return gm.forward

    def run(*args):
        return _map_float_outputs(gm.forward(*args), lambda o: o + 1)

    return run


def _identity_compiler(gm: torch.fx.GraphModule, example_inputs):
    from functorch.compile import make_boxed_func

    return make_boxed_func(gm.forward)


def _scales_gradients(gm: torch.fx.GraphModule, example_inputs):
    """A backward graph whose float results (the gradients) come out 1.5 times too large."""
    from functorch.compile import make_boxed_func

    def run(*args):
        return _map_float_outputs(gm.forward(*args), lambda g: g * 1.5)

    return make_boxed_func(run)


def _flips_infinite_gradients(gm: torch.fx.GraphModule, example_inputs):
    """A backward graph whose infinite gradients come out with the other sign."""
    from functorch.compile import make_boxed_func

    def run(*args):
        return _map_float_outputs(gm.forward(*args), lambda g: torch.where(torch.isinf(g), -g, g))

    return make_boxed_func(run)


def _raises_on_backward(gm: torch.fx.GraphModule, example_inputs):
    raise RuntimeError("planted: backward compile")


def _aot(bw_compiler):
    from torch._dynamo.backends.common import aot_autograd

    return aot_autograd(fw_compiler=_identity_compiler, bw_compiler=bw_compiler)


wrong_backward = _aot(_scales_gradients)  # forward right, every gradient 1.5 times too large
crashes_compiling_backward = _aot(_raises_on_backward)  # forward right, the backward never compiles
flips_infinite_gradients = _aot(_flips_infinite_gradients)  # finite gradients right, infinite ones negated


def _as_contiguous(x):
    """``x``'s storage read as if ``x`` were contiguous (from its storage offset)."""
    if not isinstance(x, torch.Tensor) or x.is_contiguous():
        return x
    strides, step = [], 1
    for d in reversed(x.shape):
        strides.append(step)
        step *= max(int(d), 1)
    return torch.as_strided(x, x.shape, tuple(reversed(strides)), x.storage_offset())


def reads_strided_as_contiguous(gm: torch.fx.GraphModule, example_inputs):
    """Ignores strides: every non-contiguous input is read as if it were contiguous
    (right for contiguous inputs, wrong values for transposed, stepped, channels_last ...)."""
    def run(*args):
        return gm.forward(*[_as_contiguous(a) for a in args])

    return run


def drops_input_mutation(gm: torch.fx.GraphModule, example_inputs):
    """Runs the graph on copies of its inputs: outputs right, but an in-place write into a
    graph input never reaches the caller's tensor."""
    def run(*args):
        return gm.forward(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])

    return run


def off_by_two_percent(gm: torch.fx.GraphModule, example_inputs):
    """Every float output 2% too large: a plain wrong result, for allowance tests."""
    def call(*args):
        outs = gm.forward(*args)
        scale = lambda t: t * 1.02 if isinstance(t, torch.Tensor) and t.is_floating_point() else t  # noqa: E731
        return type(outs)(scale(o) for o in outs) if isinstance(outs, (tuple, list)) else scale(outs)

    return call
