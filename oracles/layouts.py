"""Memory layouts: the same values as non-contiguous tensors (the layout check).

A compiler specializes its kernels on strides; one that reads a transposed, stepped or
offset input as if it were contiguous computes from the wrong elements. Every layout here
keeps the tensor's shape and, except ``expanded``, its values, so the case's float64
evidence still applies; only the strides and the storage offset change. PyTorch only:
TensorFlow's tensors have no user-visible strides.

``expanded`` (stride 0) cannot keep arbitrary values: it repeats the first slice along
dim 0, so its call is compared with eager on those values, without the float64 evidence.
"""

from __future__ import annotations

import random
from typing import Any

# name -> the least rank it needs
LAYOUTS = {
    "transposed": 2,  # the last two dims swapped in memory
    "permuted": 3,  # every dim reversed in memory
    "stepped": 1,  # a view of every other element of a larger buffer
    "offset": 0,  # a view starting 7 elements into its storage
    "expanded": 1,  # dim 0 of stride 0 (values repeat along it)
    "channels_last": 4,
    "channels_last_3d": 5,
}
KEEPS_VALUES = frozenset(LAYOUTS) - {"expanded"}


def applicable(shape: tuple[int, ...], name: str) -> bool:
    """Whether ``name`` changes anything for a tensor of ``shape`` (a layout of a tensor
    with a dim of size 0, or of one element, is the same tensor)."""
    rank = len(shape)
    if rank < LAYOUTS[name] or 0 in shape:
        return False
    if name == "channels_last":
        return rank == 4 and shape[1] > 1 and shape[2] * shape[3] > 1
    if name == "channels_last_3d":
        return rank == 5 and shape[1] > 1 and shape[2] * shape[3] * shape[4] > 1
    if name == "transposed":
        return shape[-1] > 1 and shape[-2] > 1
    if name == "expanded":
        return shape[0] > 1
    if name == "permuted":
        return sum(d > 1 for d in shape) >= 2
    return True


def draw_layout(shape: tuple[int, ...], rng: random.Random, expanded: bool = True) -> str | None:
    """A layout for a tensor of ``shape``; ``expanded``: stride 0 allowed (not for a
    tensor the model writes in place)."""
    options = [n for n in LAYOUTS if applicable(shape, n) and (expanded or n != "expanded")]
    return rng.choice(options) if options else None


def relayout(t: Any, name: str) -> Any:
    """``t`` (a torch tensor) laid out as ``name``, with the same shape (and values,
    except ``expanded``)."""
    import torch

    t = t.detach()
    if name == "transposed":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if name == "permuted":
        order = list(reversed(range(t.dim())))
        return t.permute(order).contiguous().permute(order)
    if name == "stepped":
        wide = torch.zeros(*t.shape[:-1], t.shape[-1] * 2, dtype=t.dtype)
        wide[..., ::2] = t
        return wide[..., ::2]
    if name == "offset":
        storage = torch.zeros(t.numel() + 7, dtype=t.dtype)
        view = storage[7:].view(t.shape)
        view.copy_(t)
        return view
    if name == "expanded":
        return t[:1].expand(t.shape)
    if name == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if name == "channels_last_3d":
        return t.contiguous(memory_format=torch.channels_last_3d)
    raise ValueError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")


def layout_source(name: str) -> str:
    """The expression repro.py applies to an input tensor ``x`` for ``name``."""
    return {
        "transposed": "x.transpose(-1, -2).contiguous().transpose(-1, -2)",
        "permuted": "x.permute(*reversed(range(x.dim()))).contiguous().permute(*reversed(range(x.dim())))",
        "stepped": "torch.zeros(*x.shape[:-1], x.shape[-1] * 2, dtype=x.dtype).index_copy_(-1, "
                   "torch.arange(0, x.shape[-1] * 2, 2), x)[..., ::2]",
        "offset": "torch.zeros(x.numel() + 7, dtype=x.dtype)[7:].view(x.shape).copy_(x)",
        "expanded": "x[:1].expand(x.shape)",
        "channels_last": "x.contiguous(memory_format=torch.channels_last)",
        "channels_last_3d": "x.contiguous(memory_format=torch.channels_last_3d)",
    }[name]
