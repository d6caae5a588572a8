"""The ``opinfo`` source: PyTorch's OpInfo database run under the tracer.

For each OpInfo (one unit, keyed ``name`` or ``name.variant``): for a few dtypes it
supports (float32, float64, int64, bool), up to ``samples`` of its ``sample_inputs`` are
generated with the tracer off and run through the op with the tracer on (so the records
are what the tracer sees: ``torch.add``, or the Tensor methods a lambda op calls); the
method and in-place variants run on the first few samples; then up to ``samples`` of its
``error_inputs`` run, which the tracer records as invalid calls. Then ``module_db`` (the
``torch.nn`` modules' forward calls record the functional calls they make).
"""

from __future__ import annotations

import itertools
import zlib
from typing import Callable, Iterator

DTYPES = ("float32", "float64", "int64", "bool")
VARIANT_SAMPLES = 3


def op_key(op) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def _clone(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_clone(v) for v in x)
    return x


def _op_body(op, samples: int) -> Callable:
    import torch

    def body(traced) -> None:
        torch.manual_seed(zlib.crc32(op_key(op).encode()))
        supported = op.supported_dtypes("cpu")
        for dtype_name in DTYPES:
            dtype = getattr(torch, dtype_name)
            if dtype not in supported:
                continue
            try:
                batch = list(itertools.islice(op.sample_inputs("cpu", dtype, requires_grad=False), samples))
            except Exception:
                continue
            for i, s in enumerate(batch):
                if not traced(lambda s=s: op(s.input, *s.args, **s.kwargs)):
                    return
                if i < VARIANT_SAMPLES:
                    if op.method_variant is not None and isinstance(s.input, torch.Tensor):
                        x = s.input.clone()
                        traced(lambda s=s, x=x: op.method_variant(x, *s.args, **s.kwargs))
                    if op.inplace_variant is not None and isinstance(s.input, torch.Tensor):
                        x, args = s.input.clone(), _clone(s.args)
                        traced(lambda s=s, x=x, args=args: op.inplace_variant(x, *args, **s.kwargs))
        try:
            errors = list(itertools.islice(op.error_inputs("cpu"), samples))
        except Exception:
            errors = []
        for e in errors:
            s = e.sample_input
            if not traced(lambda s=s: op(s.input, *s.args, **s.kwargs)):
                return

    return body


def _module_body(info, samples: int) -> Callable:
    import torch

    def body(traced) -> None:
        torch.manual_seed(zlib.crc32(info.name.encode()))
        for dtype in (torch.float32, torch.float64):
            try:
                batch = list(itertools.islice(
                    info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=False, training=False), samples))
            except Exception:
                continue
            for mi in batch:
                try:
                    with torch.no_grad():
                        m = info.module_cls(*mi.constructor_input.args, **mi.constructor_input.kwargs).to(dtype)
                        m.eval()
                except Exception:
                    continue
                fi = mi.forward_input
                if fi is None:
                    continue
                if not traced(lambda m=m, fi=fi: m(*fi.args, **fi.kwargs)):
                    return

    return body


def units(samples: int = 12, only: set[str] | None = None, modules: bool = True) -> Iterator[tuple[str, Callable]]:
    """(key, body) for every OpInfo, then every ModuleInfo (keys ``module:<name>``)."""
    import warnings

    warnings.filterwarnings("ignore")
    from torch.testing._internal.common_methods_invocations import op_db

    for op in sorted(op_db, key=op_key):
        key = op_key(op)
        if only and key not in only and op.name not in only:
            continue
        yield key, _op_body(op, samples)
    if not modules:
        return
    try:
        from torch.testing._internal.common_modules import module_db
    except Exception:
        return
    for info in sorted(module_db, key=lambda i: i.name):
        key = f"module:{info.name}"
        if only and key not in only and info.name not in only:
            continue
        yield key, _module_body(info, samples)
