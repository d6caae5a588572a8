"""The gradients check: a backward with a seeded cotangent, in eager and compiled.

Compilers generate a second program for the backward (AOT autograd's joint graph,
Inductor's backward kernels, XLA's gradient HLO); a fault there never shows in forward
outputs. The check takes vector-Jacobian products: every float output ``o_i`` that has a
gradient path gets a random cotangent ``c_i`` (the same arrays for every backend), and the
gradients of ``sum_i <o_i, c_i>`` with respect to every float input and weight are
compared with the forward policy (``oracles.compare``), judged against the same
gradients computed in float64 by eager.

PyTorch: inputs get ``requires_grad`` before the forward call and the backward runs
through ``torch.autograd.grad`` on the compiled model's outputs, so the compiled backward
is what runs. TensorFlow: ``vjp`` is a ``tf.GradientTape`` inside the backend's own
``tf.function`` (with ``jit_compile`` for XLA), so XLA compiles the backward.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

GRADIENT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def cotangents(seed: int, outputs: Sequence[Any], framework: str) -> list[np.ndarray | None]:
    """One float64 array per output that carries a gradient (None for the rest), drawn
    from ``seed``: values of order one, so no output dominates the products."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray | None] = []
    for o in outputs:
        if has_gradient_path(o, framework):
            out.append(rng.uniform(-1.0, 1.0, size=tuple(int(d) for d in o.shape)))
        else:
            out.append(None)
    return out


def has_gradient_path(t: Any, framework: str) -> bool:
    if framework == "torch":
        return bool(t.is_floating_point() and t.requires_grad)
    return bool(t.dtype.is_floating)


def grad_inputs(xs: Sequence[Any], framework: str, keep: Callable[[int], bool]) -> list[Any]:
    """Mark the float inputs that gradients are taken of (``keep(position)``: an input
    written in place cannot be a leaf of autograd). Returns the marked inputs."""
    marked = []
    for i, x in enumerate(xs):
        if framework == "torch":
            if x.is_floating_point() and keep(i):
                x.requires_grad_()
                marked.append(x)
        elif x.dtype.is_floating:
            marked.append(x)
    return marked


def backward(fn: Any, xs: Sequence[Any], outs: Sequence[Any], cots: Sequence[np.ndarray | None],
             marked: Sequence[Any], framework: str) -> list[Any]:
    """The gradients of every marked input, then of every float weight, as framework
    tensors (zeros where a leaf does not reach any output)."""
    if framework == "torch":
        import torch

        leaves = list(marked) + [p for p in getattr(fn, "params", []) if p.requires_grad]
        pairs = [(o, c) for o, c in zip(outs, cots) if c is not None and o.requires_grad]
        if not leaves or not pairs:
            return [torch.zeros_like(x) for x in leaves]
        grads = torch.autograd.grad([o for o, _ in pairs], leaves,
                                    grad_outputs=[torch.from_numpy(c).to(o.dtype) for o, c in pairs],
                                    allow_unused=True)
        return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)]
    import tensorflow as tf

    tensors = [None if c is None else tf.cast(tf.constant(c), o.dtype) for o, c in zip(outs, cots)]
    return list(fn.vjp(list(xs), tensors))
