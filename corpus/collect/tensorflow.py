"""The TensorFlow tracer: wrappers around the public ``tf.*`` functions and ``tf.raw_ops``.

Installing the tracer replaces each public function of ``tf``, ``tf.math``, ``tf.nn``,
``tf.linalg``, ``tf.signal``, ``tf.image``, ``tf.random``, ``tf.bitwise`` and
``tf.raw_ops`` by a wrapper that records the call (errors included) and re-raises.
TensorFlow's own code calls its internal modules (``math_ops``, ``gen_nn_ops``), not the
public names, so nested calls seldom reach a wrapper, and a depth counter skips those that
do. Only eager calls are recorded (a ``tf.function`` being traced has symbolic shapes).
An API is named by its public path, preferring the specific namespace (``tf.math.add``
for ``tf.add``), so aliases share one name.

This module imports tensorflow only inside functions.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
import types
from typing import Any, Callable

from corpus.trace import TraceRecord, encode_value, error_line, tensor_marker

FRAMEWORK = "tensorflow"

# The preferred spelling first; each function object is named once.
NAMESPACES = ("tf.raw_ops", "tf.math", "tf.nn", "tf.linalg", "tf.signal", "tf.image", "tf.random", "tf.bitwise", "tf",
              "tf.strings", "tf.sparse", "tf.ragged", "tf.dtypes", "tf.debugging", "tf.compat.v1.math", "tf.compat.v1.nn",
              "tf.compat.v1")
# Tensor operators (``x + y``, ``x[1:]``): recorded as tf.Tensor.__add__ etc.
TENSOR_OPERATORS = tuple("""
__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __floordiv__ __rfloordiv__ __mod__
__rmod__ __pow__ __rpow__ __matmul__ __rmatmul__ __neg__ __abs__ __invert__ __and__ __rand__ __or__ __ror__
__xor__ __rxor__ __lt__ __le__ __gt__ __ge__ __getitem__
""".split())
# Docstrings whose examples are run (their calls to the wrapped functions are recorded): the
# wrapped namespaces, and the Tensor, tf.data and Keras ops/layers documentation, whose
# examples exercise the tf.* functions through Keras' TensorFlow backend.
DOCTEST_NAMESPACES = NAMESPACES + ("tf.Tensor", "tf.experimental.numpy", "tf.data.Dataset", "tf.keras.ops",
                                   "tf.keras.layers")
SKIP = frozenset("""
function numpy_function py_function cond case switch_case while_loop map_fn scan foldl foldr vectorized_map
custom_gradient recompute_grad print executing_eagerly device name_scope control_dependencies init_scope
no_gradient register_tensor_conversion_function get_logger get_static_value is_tensor is_symbolic_tensor
make_tensor_proto make_ndarray get_current_name_scope load_library load_op_library inside_function
grad_pass_through gradients hessians group tuple Assert assert_equal assert_greater assert_less assert_rank
import_graph_def py_func set_random_seed convert_to_tensor_v2 is_traceable enable_eager_execution
disable_eager_execution enable_v2_behavior disable_v2_behavior reset_default_graph enable_resource_variables
disable_resource_variables enable_control_flow_v2 disable_control_flow_v2 enable_tensor_equality
disable_tensor_equality enable_v2_tensorshape disable_v2_tensorshape get_default_graph get_default_session
""".split())
UNREALIZABLE_DTYPES = frozenset({"string", "resource", "variant"})

_state = threading.local()
_installed: dict[tuple[Any, str], Any] = {}  # (namespace, attr) -> original
_sinks: list[tuple[Callable[[TraceRecord], None], str]] = []


def setup() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialized: keep its settings


def _tf_path(path: str) -> Any:
    import tensorflow as tf

    obj = tf
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def public_functions():
    """(canonical name, namespace object, attribute, function) for every function to wrap."""
    seen: dict[int, str] = {}
    for ns_name in NAMESPACES:
        ns = _tf_path(ns_name)
        for attr in sorted(dir(ns)):
            if attr.startswith("_") or attr in SKIP:
                continue
            try:
                obj = getattr(ns, attr)
            except Exception:
                continue
            obj = _installed_original(obj)
            if isinstance(obj, types.ModuleType) or inspect.isclass(obj) or not callable(obj):
                continue
            name = seen.setdefault(id(obj), f"{ns_name}.{attr}")
            yield name, ns, attr, obj


def tensor_operators():
    """(name, class, attribute, function) for the Tensor operators to wrap."""
    import tensorflow as tf

    for attr in TENSOR_OPERATORS:
        fn = _installed_original(tf.Tensor.__dict__.get(attr))
        if callable(fn):
            yield f"tf.Tensor.{attr}", tf.Tensor, attr, fn


def _installed_original(obj: Any) -> Any:
    return getattr(obj, "__dlfuzz_original__", obj)


def resolve(api: str) -> Callable:
    if not api.startswith("tf."):
        parts = api.split(".")
        obj = importlib.import_module(".".join(parts[:-1]))
        return getattr(obj, parts[-1])
    return _installed_original(_tf_path(api))


# ---------------------------------------------------------------------------------------
# values


def _special(obj: Any) -> Any:
    import tensorflow as tf

    if isinstance(obj, tf.Variable):
        return tensor_marker(obj.shape.as_list(), obj.dtype.name, kind="variable")
    if isinstance(obj, tf.Tensor):
        shape = obj.shape.as_list() if obj.shape.rank is not None else None
        if shape is None:
            return {"repr": f"<tf.Tensor unknown rank {obj.dtype.name}>"}
        return tensor_marker(shape, obj.dtype.name)
    if isinstance(obj, tf.DType):
        return {"type": "dtype", "value": obj.name}
    if isinstance(obj, tf.TensorShape):
        return obj.as_list() if obj.rank is not None else {"repr": "TensorShape(None)"}
    if isinstance(obj, (tf.RaggedTensor, tf.SparseTensor, tf.IndexedSlices)):
        return {"repr": f"<{type(obj).__name__} {obj.dtype.name}>"}
    if isinstance(obj, bytes):
        return {"type": "bytes", "value": obj[:256].decode("latin-1")}
    return NotImplemented


def encode(obj: Any) -> Any:
    return encode_value(obj, _special)


class Unrealizable(ValueError):
    """An encoded value that cannot be rebuilt into an object."""


def random_array(shape: list[int], dtype_name: str, rng: Any) -> Any:
    import numpy as np

    if dtype_name in UNREALIZABLE_DTYPES or dtype_name.startswith("q"):
        raise Unrealizable(f"dtype {dtype_name}")
    if dtype_name == "bool":
        return rng.random(shape) < 0.5
    if dtype_name.startswith("complex"):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype_name)
    if dtype_name.startswith("float") or dtype_name in ("bfloat16", "half", "double"):
        return rng.standard_normal(shape).astype("float32" if dtype_name == "bfloat16" else dtype_name)
    try:
        np.dtype(dtype_name)
    except TypeError:
        raise Unrealizable(f"dtype {dtype_name}") from None
    return rng.integers(0, 3, size=shape).astype(dtype_name)


def realize(value: Any, rng: Any) -> Any:
    import numpy as np
    import tensorflow as tf

    if isinstance(value, list):
        return [realize(v, rng) for v in value]
    if not isinstance(value, dict):
        return value
    if "repr" in value:
        raise Unrealizable(value["repr"])
    kind = value.get("type")
    if kind is None and "shape" in value:
        if any(d is None for d in value["shape"]):
            raise Unrealizable("unknown dimension")
        arr = random_array(value["shape"], value["dtype"], rng)
        if value.get("kind") == "ndarray":
            return arr
        t = tf.constant(arr, dtype=tf.as_dtype(value["dtype"]))
        return tf.Variable(t) if value.get("kind") == "variable" else t
    if kind == "dtype":
        return tf.as_dtype(value["value"])
    if kind == "np_dtype":
        return np.dtype(value["value"])
    if kind == "float":
        return float(value["value"])
    if kind == "complex":
        return complex(*(realize(v, rng) for v in value["value"]))
    if kind == "slice":
        return slice(*(realize(v, rng) for v in value["value"]))
    if kind == "ellipsis":
        return Ellipsis
    if kind == "bytes":
        return value["value"].encode("latin-1")
    if kind == "dict":
        return {k: realize(v, rng) for k, v in value["value"].items()}
    raise Unrealizable(f"unknown value {value}")


def prepare(api: str, args: list, kwargs: dict, seed: int = 0) -> Callable[[], Any]:
    """Rebuild a recorded call with fresh random tensors of the recorded types; returns a thunk running it."""
    import numpy as np
    import tensorflow as tf

    fn = resolve(api)
    rng = np.random.default_rng(seed)
    a = [realize(v, rng) for v in args]
    kw = {k: realize(v, rng) for k, v in kwargs.items()}

    def run():
        tf.random.set_seed(seed)
        return fn(*a, **kw)

    return run


# ---------------------------------------------------------------------------------------
# the tracer


def _emit(name: str, args: tuple, kwargs: dict, out: Any, ok: bool, error: str | None) -> None:
    try:
        enc_args, enc_kwargs = encode(list(args)), {k: encode(v) for k, v in kwargs.items()}
        outputs = encode(out) if ok else None
    except Exception:
        return
    for sink, source in list(_sinks):
        try:
            sink(TraceRecord.make(name, FRAMEWORK, enc_args, enc_kwargs, outputs, ok, error, source))
        except Exception:
            pass


def _wrap(fn: Callable, name: str) -> Callable:
    import tensorflow as tf

    executing_eagerly = tf.executing_eagerly

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        if getattr(_state, "depth", 0) or not _sinks or not executing_eagerly():
            return fn(*args, **kwargs)
        _state.depth = 1
        try:
            try:
                out = fn(*args, **kwargs)
            except Exception as e:
                _emit(name, args, kwargs, None, False, error_line(e))
                raise
            _emit(name, args, kwargs, out, True, None)
            return out
        finally:
            _state.depth = 0

    traced.__dlfuzz_original__ = fn
    return traced


def install() -> int:
    """Wrap the public functions (once per process); returns how many attributes were wrapped."""
    if _installed:
        return len(_installed)
    setup()
    wrappers: dict[int, Callable] = {}
    for name, ns, attr, fn in list(public_functions()) + list(tensor_operators()):
        w = wrappers.get(id(fn))
        if w is None:
            w = wrappers[id(fn)] = _wrap(fn, name)
        try:
            setattr(ns, attr, w)
        except (AttributeError, TypeError):
            continue
        _installed[(ns, attr)] = fn
    return len(_installed)


def uninstall() -> None:
    for (ns, attr), fn in list(_installed.items()):
        try:
            setattr(ns, attr, fn)
        except (AttributeError, TypeError):
            pass
    _installed.clear()


class Tracer:
    """``with Tracer(sink, "doctest"): ...`` records the calls made inside the block."""

    def __init__(self, sink: Callable[[TraceRecord], None], source: str = "script") -> None:
        self.entry = (sink, source)
        install()

    def __enter__(self) -> "Tracer":
        _sinks.append(self.entry)
        return self

    def __exit__(self, *exc) -> None:
        if self.entry in _sinks:
            _sinks.remove(self.entry)


class GlobalTracer:
    def __init__(self, sink: Callable[[TraceRecord], None], source: str = "script") -> None:
        self.tracer = Tracer(sink, source)

    def install(self) -> None:
        self.tracer.__enter__()

    def uninstall(self) -> None:
        self.tracer.__exit__(None, None, None)


# ---------------------------------------------------------------------------------------
# doctests


def doctest_targets():
    """(qualified name, docstring) for the functions, classes and methods of DOCTEST_NAMESPACES."""
    done: set[int] = set()
    for ns_name in DOCTEST_NAMESPACES:
        try:
            ns = _tf_path(ns_name)
        except Exception:  # e.g. no Keras
            continue
        for attr in sorted(dir(ns)):
            if attr.startswith("_"):
                continue
            try:
                obj = _installed_original(getattr(ns, attr))
            except Exception:
                continue
            if isinstance(obj, types.ModuleType) or not callable(obj) or id(obj) in done:
                continue
            done.add(id(obj))
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and ">>>" in doc:
                yield f"{ns_name}.{attr}", doc


def doctest_namespace() -> dict:
    import numpy as np
    import tensorflow as tf

    import os

    ns = {"tf": tf, "np": np, "numpy": np, "os": os, "Dataset": tf.data.Dataset,
          "tnp": tf.experimental.numpy, "__name__": "__doctest__"}
    try:
        keras = tf.keras
        ns.update(keras=keras, ops=keras.ops, layers=keras.layers)
    except Exception:  # no Keras
        pass
    return ns


def reseed(seed: int) -> None:
    import tensorflow as tf

    tf.random.set_seed(seed)
