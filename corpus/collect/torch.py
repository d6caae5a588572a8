"""The PyTorch tracer: a ``TorchFunctionMode`` that records user-level API calls.

Every ``torch.*``, ``torch.nn.functional.*`` and ``Tensor`` method call goes through the
mode; the call the user made is recorded, and the calls nested inside it (a Python-level
function such as ``F.normalize`` calling ``norm``, ``clamp_min`` and ``div``) are not: a
depth counter skips them (PyTorch also pops the mode while a handler runs). Metadata
queries (``size``, ``dim``, ``item``, printing) and attribute reads are not API calls and
are skipped. An API is named by the public path it is reachable under, preferring
``torch.nn.functional`` over ``torch`` (``F.conv2d is torch.conv2d``).

This module imports torch only inside functions, so ``corpus.collect`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from corpus.trace import TraceRecord, encode_value, error_line, tensor_marker

FRAMEWORK = "torch"

# Introspection, printing and conversion: not API calls worth a record.
SKIP_METHODS = frozenset("""
dim ndimension size numel nelement item tolist numpy data_ptr stride is_contiguous element_size storage
untyped_storage storage_offset is_floating_point is_complex is_signed get_device type has_names is_set_to
is_nonzero is_inference is_shared is_pinned is_leaf nbytes itemsize _is_view __repr__ __format__ __str__ __len__
__bool__ __nonzero__ __index__ __int__ __long__ __float__ __complex__ __array__ __array_wrap__ __reduce_ex__
__reduce__ __deepcopy__ __hash__ __iter__ __contains__ __dir__ __setstate__ __getstate__ __reversed__ __dlpack__
__dlpack_device__ __dlpack_c_exchange_api__ __sizeof__ __torch_function__ __torch_dispatch__ __init__ __new__
__getattribute__ __setattr__ __delattr__ __init_subclass__ __subclasshook__ __class__
""".split())
# Global-state switches, not operators.
SKIP_FUNCTIONS = frozenset({"_set_grad_enabled", "set_grad_enabled", "_DisableTorchDispatch"})
# Attribute reads that compute something (recorded as torch.Tensor.<name>).
PROPERTIES = frozenset({"T", "mT", "H", "mH", "real", "imag"})
# Namespaces searched for names, the preferred spelling first.
NAMESPACES = ("torch.nn.functional", "torch.linalg", "torch.fft", "torch.special", "torch.nn.init", "torch", "torch.Tensor")

_NAMES: dict[int, str] = {}
_KEEP: list[Any] = []  # keeps the named objects alive, so their ids stay theirs


def setup() -> None:
    import os

    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def _name_table() -> dict[int, str]:
    if _NAMES:
        return _NAMES
    import torch  # noqa: F401
    import torch.nn.functional  # noqa: F401

    for ns_name in NAMESPACES:
        ns = _resolve_path(ns_name)
        for attr in dir(ns):
            if attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__")) and ns_name != "torch":
                continue
            try:
                obj = getattr(ns, attr)
            except Exception:
                continue
            if not callable(obj) or isinstance(obj, type):
                continue
            if id(obj) not in _NAMES:
                _NAMES[id(obj)] = f"{ns_name}.{attr}"
                _KEEP.append(obj)
    return _NAMES


def api_name(func: Any) -> str | None:
    """The public name of what the mode was called with, or None for a call not worth recording."""
    name = _name_table().get(id(func))
    if name is not None:
        return None if name.startswith("torch.Tensor.") and name[13:] in SKIP_METHODS else name
    short = getattr(func, "__name__", None)
    if short in ("__get__", "__set__", "__delete__"):
        owner = getattr(func, "__self__", None)
        attr = getattr(owner, "__name__", None)
        return f"torch.Tensor.{attr}" if short == "__get__" and attr in PROPERTIES else None
    if short is None or short in SKIP_METHODS or short in SKIP_FUNCTIONS:
        return None
    if type(func).__name__ in ("OpOverload", "OpOverloadPacket"):  # torch.ops.aten.x.overload
        return "torch.ops." + str(func)
    qual = getattr(func, "__qualname__", short)
    if qual.startswith("TensorBase.") or qual.startswith("Tensor."):
        return "torch.Tensor." + qual.split(".", 1)[1]
    module = getattr(func, "__module__", None) or "torch"
    if qual.startswith("_VariableFunctionsClass."):
        return "torch." + short
    return f"{module}.{qual}" if "<" not in qual else None


def _resolve_path(path: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for p in parts[cut:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(f"cannot resolve {path!r}")


def resolve(api: str) -> Callable:
    """The callable an API name stands for (a Tensor property becomes a one-argument function)."""
    if api.startswith("torch.Tensor.") and api[13:] in PROPERTIES:
        attr = api[13:]
        return lambda self: getattr(self, attr)
    return _resolve_path(api)


# ---------------------------------------------------------------------------------------
# values


def _dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _special(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        layout = None if obj.layout == torch.strided else str(obj.layout).replace("torch.", "")
        try:
            shape = list(obj.shape)
        except Exception:
            return {"repr": f"<{type(obj).__name__}>"}
        return tensor_marker(shape, _dtype_name(obj.dtype), layout=layout)
    if isinstance(obj, torch.Size):
        return [int(d) for d in obj]
    if isinstance(obj, torch.dtype):
        return {"type": "dtype", "value": _dtype_name(obj)}
    if isinstance(obj, torch.device):
        return {"type": "device", "value": str(obj)}
    if isinstance(obj, torch.memory_format):
        return {"type": "memory_format", "value": _dtype_name(obj)}
    if isinstance(obj, torch.layout):
        return {"type": "layout", "value": _dtype_name(obj)}
    if isinstance(obj, torch.nn.Module):
        return {"repr": f"<{type(obj).__name__} module>"}
    return NotImplemented


def encode(obj: Any) -> Any:
    return encode_value(obj, _special)


class Unrealizable(ValueError):
    """An encoded value that cannot be rebuilt into an object (a repr, a truncated list)."""


def random_tensor(shape: list[int], dtype_name: str, gen: Any = None) -> Any:
    import torch

    dtype = getattr(torch, dtype_name, None)
    if not isinstance(dtype, torch.dtype):
        raise Unrealizable(f"unknown dtype {dtype_name}")
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) < 0.5
    if dtype.is_complex:
        return torch.randn(shape, dtype=dtype, generator=gen)
    if dtype.is_floating_point:
        if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            return torch.randn(shape, dtype=dtype, generator=gen)
        return torch.randn(shape, generator=gen).to(dtype)
    if "qint" in dtype_name or "quint" in dtype_name:
        raise Unrealizable(f"quantized dtype {dtype_name}")
    return torch.randint(0, 3, shape, generator=gen).to(dtype)


def realize(value: Any, gen: Any = None) -> Any:
    import numpy as np
    import torch

    if isinstance(value, list):
        return [realize(v, gen) for v in value]
    if not isinstance(value, dict):
        return value
    if "repr" in value:
        raise Unrealizable(value["repr"])
    kind = value.get("type")
    if kind is None and "shape" in value:
        if "layout" in value or any(d is None for d in value["shape"]):
            raise Unrealizable("non-strided or unknown-shape tensor")
        t = random_tensor(value["shape"], value["dtype"], gen)
        return t.numpy() if value.get("kind") == "ndarray" else t
    if kind == "dtype":
        return getattr(torch, value["value"])
    if kind == "np_dtype":
        return np.dtype(value["value"])
    if kind == "device":
        return torch.device(value["value"])
    if kind in ("memory_format", "layout"):
        return getattr(torch, value["value"])
    if kind == "float":
        return float(value["value"])
    if kind == "complex":
        return complex(*(realize(v, gen) for v in value["value"]))
    if kind == "slice":
        return slice(*(realize(v, gen) for v in value["value"]))
    if kind == "ellipsis":
        return Ellipsis
    if kind == "dict":
        return {k: realize(v, gen) for k, v in value["value"].items()}
    raise Unrealizable(f"unknown value {value}")


def prepare(api: str, args: list, kwargs: dict, seed: int = 0) -> Callable[[], Any]:
    """Rebuild a recorded call with fresh random tensors of the recorded types; returns a thunk running it.

    Raises (ImportError, AttributeError, Unrealizable) when the call cannot be rebuilt.
    """
    import torch

    fn = resolve(api)
    gen = torch.Generator().manual_seed(seed)
    a = [realize(v, gen) for v in args]
    kw = {k: realize(v, gen) for k, v in kwargs.items()}

    def run():
        torch.manual_seed(seed)
        with torch.no_grad():
            return fn(*a, **kw)

    return run


# ---------------------------------------------------------------------------------------
# the tracer


def _make_mode_class():
    from torch.overrides import TorchFunctionMode

    class TorchTracer(TorchFunctionMode):
        """Records user-level calls as TraceRecords into ``sink`` (a callable)."""

        def __init__(self, sink: Callable[[TraceRecord], None], source: str = "script") -> None:
            super().__init__()
            self.sink = sink
            self.source = source
            self.depth = 0
            self.enabled = True
            self.errors = 0  # records the sink refused (never stops the traced program)

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if self.depth or not self.enabled:
                return func(*args, **kwargs)
            name = api_name(func)
            if name is None:
                return func(*args, **kwargs)
            self.depth += 1
            try:
                try:
                    enc_args, enc_kwargs = encode(list(args)), {k: encode(v) for k, v in kwargs.items()}
                except Exception:
                    enc_args = None
                try:
                    out = func(*args, **kwargs)
                except Exception as e:
                    if enc_args is not None:
                        self._emit(name, enc_args, enc_kwargs, None, False, error_line(e))
                    raise
                if enc_args is not None:
                    self._emit(name, enc_args, enc_kwargs, out, True, None)
                return out
            finally:
                self.depth -= 1

        def _emit(self, name, args, kwargs, out, ok, error) -> None:
            try:
                outputs = encode(out) if ok else None
                self.sink(TraceRecord.make(name, FRAMEWORK, args, kwargs, outputs, ok, error, self.source))
            except Exception:
                self.errors += 1

    return TorchTracer


_TRACER_CLASS = None


def Tracer(sink: Callable[[TraceRecord], None], source: str = "script"):
    """A new tracer mode; use it as a context manager (``with Tracer(sink, "opinfo"): ...``)."""
    global _TRACER_CLASS
    if _TRACER_CLASS is None:
        _TRACER_CLASS = _make_mode_class()
    _name_table()
    return _TRACER_CLASS(sink, source)


class GlobalTracer:
    """Install a tracer for the rest of the process (script mode); ``uninstall`` leaves it."""

    def __init__(self, sink: Callable[[TraceRecord], None], source: str = "script") -> None:
        self.mode = Tracer(sink, source)

    def install(self) -> None:
        self.mode.__enter__()

    def uninstall(self) -> None:
        self.mode.enabled = False
        try:
            self.mode.__exit__(None, None, None)
        except Exception:
            pass


# ---------------------------------------------------------------------------------------
# doctests


def doctest_targets():
    """(qualified name, docstring) for torch, torch.nn.functional, torch.linalg/fft/special and Tensor methods."""
    import torch
    import torch.nn.functional  # noqa: F401

    seen: set[int] = set()
    for ns_name in ("torch.nn.functional", "torch.linalg", "torch.fft", "torch.special", "torch", "torch.Tensor"):
        ns = _resolve_path(ns_name)
        for attr in sorted(dir(ns)):
            if attr.startswith("_"):
                continue
            try:
                obj = getattr(ns, attr)
            except Exception:
                continue
            if not callable(obj) or isinstance(obj, type) or id(obj) in seen:
                continue
            seen.add(id(obj))
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and ">>>" in doc:
                yield f"{ns_name}.{attr}", doc


def doctest_namespace() -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    return {"torch": torch, "F": F, "nn": torch.nn, "np": np, "numpy": np, "__name__": "__doctest__"}


def reseed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
