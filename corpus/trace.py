"""TraceRecord: one recorded API call (DESIGN §1), and the partial-operator key (§4).

A record's values are JSON: a tensor is a marker ``{"shape": [...], "dtype": "float32"}``
(plus ``"kind": "ndarray"`` for a numpy array, ``"layout"`` for a non-strided tensor),
plain Python values are themselves, and the few objects JSON cannot hold are tagged
(``{"type": "dtype", "value": "float32"}``, ``{"type": "slice", ...}``) or, when nothing
better is known, kept as ``{"repr": "..."}``. The fingerprint hashes the normalized call
(api, framework, the args/kwargs structure with shapes, dtypes and values, and ``ok``),
so the same call seen from two sources is stored once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

SCHEMA_VERSION = 1
SOURCES = ("opinfo", "doctest", "script", "mutation", "probe")
MAX_LIST = 64  # longer Python lists are summarized, not stored element by element
MAX_REPR = 160


class TraceFormatError(ValueError):
    """A record that cannot be read; the message is one line, ready for a user."""


# ---------------------------------------------------------------------------------------
# values


def is_tensor_marker(value: Any) -> bool:
    return isinstance(value, dict) and "shape" in value and "dtype" in value and "type" not in value


def tensor_marker(shape, dtype: str, **extra: Any) -> dict:
    marker: dict[str, Any] = {"shape": [None if d is None else int(d) for d in shape], "dtype": str(dtype)}
    marker.update({k: v for k, v in extra.items() if v is not None})
    return marker


def short_repr(obj: Any) -> dict:
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ must not lose the call
        text = f"<{type(obj).__name__}>"
    text = " ".join(text.split())
    if len(text) > MAX_REPR:
        text = text[: MAX_REPR - 3] + "..."
    return {"repr": text}


def encode_value(obj: Any, special=None, depth: int = 0) -> Any:
    """The JSON form of a call argument or output.

    ``special(obj)`` is the framework's hook: it returns the encoding of tensors, dtypes
    and the framework's other objects, or ``NotImplemented`` for anything else.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj if not isinstance(obj, str) or len(obj) <= 4 * MAX_REPR else obj[: 4 * MAX_REPR]
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return {"type": "float", "value": repr(obj)}  # 'nan', 'inf', '-inf'
    if special is not None:
        got = special(obj)
        if got is not NotImplemented:
            return got
    if depth > 6:
        return short_repr(obj)
    if isinstance(obj, (list, tuple)):
        if len(obj) > MAX_LIST:
            return {"type": "list", "len": len(obj), "repr": short_repr(obj)["repr"]}
        return [encode_value(v, special, depth + 1) for v in obj]
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and len(obj) <= MAX_LIST:
        return {"type": "dict", "value": {k: encode_value(v, special, depth + 1) for k, v in obj.items()}}
    if isinstance(obj, complex):
        return {"type": "complex", "value": [encode_value(obj.real), encode_value(obj.imag)]}
    if isinstance(obj, slice):
        return {"type": "slice", "value": [encode_value(obj.start, special, depth + 1),
                                           encode_value(obj.stop, special, depth + 1),
                                           encode_value(obj.step, special, depth + 1)]}
    if obj is Ellipsis:
        return {"type": "ellipsis"}
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        np = None
    if np is not None:
        if isinstance(obj, np.ndarray):
            return tensor_marker(obj.shape, obj.dtype.name, kind="ndarray")
        if isinstance(obj, np.generic):
            return encode_value(obj.item(), special, depth + 1)
        if isinstance(obj, np.dtype) or (isinstance(obj, type) and issubclass(obj, np.generic)):
            return {"type": "np_dtype", "value": np.dtype(obj).name}
    return short_repr(obj)


def iter_tensors(value: Any) -> Iterator[dict]:
    """The tensor markers inside an encoded value, in order."""
    if is_tensor_marker(value):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from iter_tensors(v)
    elif isinstance(value, dict) and value.get("type") == "dict":
        for v in value["value"].values():
            yield from iter_tensors(v)


def has_opaque(value: Any) -> bool:
    """Whether an encoded value holds something that cannot be rebuilt (a repr)."""
    if isinstance(value, list):
        return any(has_opaque(v) for v in value)
    if isinstance(value, dict):
        if "repr" in value or value.get("type") == "list":
            return True
        if value.get("type") == "dict":
            return any(has_opaque(v) for v in value["value"].values())
        if value.get("type") == "slice":
            return any(has_opaque(v) for v in value["value"])
        if is_tensor_marker(value):
            return any(d is None for d in value["shape"]) or "layout" in value
    return False


# ---------------------------------------------------------------------------------------
# partial operators


def _sig(value: Any) -> str:
    if is_tensor_marker(value):
        return f"T{len(value['shape'])}"
    if value is None:
        return "-"
    if isinstance(value, list) and any(True for _ in iter_tensors(value)):
        return "[" + ",".join(_sig(v) for v in value) + "]"
    return "A"


def call_signature(args: list, kwargs: dict) -> str:
    """Which arguments are tensors (with their ranks) and which attributes are present.

    ``T4`` is a rank-4 tensor, ``A`` an attribute, ``-`` an absent one (None), ``[T2,T2]``
    a list of tensors; keyword arguments follow a ``;`` sorted by name.
    """
    parts = [_sig(a) for a in args]
    kw = [f"{k}={_sig(v)}" for k, v in sorted(kwargs.items())]
    return ",".join(parts) + (";" + ",".join(kw) if kw else "")


def partial_op_key(record: "TraceRecord") -> tuple[str, str]:
    """(api, signature): the unit that rule inference groups records by."""
    return record.api, call_signature(record.args, record.kwargs)


# ---------------------------------------------------------------------------------------
# the record


def fingerprint(api: str, framework: str, args: list, kwargs: dict, ok: bool) -> str:
    payload = json.dumps([framework, api, args, kwargs, bool(ok)], sort_keys=True, separators=(",", ":"),
                         allow_nan=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def error_line(exc: BaseException) -> str:
    """The exception type and the first non-empty line of its message."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(exc)).strip()  # TF's eager prefix
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class TraceRecord:
    api: str
    framework: str  # "torch" | "tensorflow"
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    outputs: Any = None
    ok: bool = True
    error: str | None = None
    source: str = "script"
    fingerprint: str = ""
    flagged: bool = False  # the call killed the process that ran it

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.api, self.framework, self.args, self.kwargs, self.ok))

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @classmethod
    def make(cls, api: str, framework: str, args: list, kwargs: dict, outputs: Any = None, ok: bool = True,
             error: str | None = None, source: str = "script", flagged: bool = False) -> "TraceRecord":
        return cls(api, framework, list(args), dict(kwargs), outputs, bool(ok), error, source, "", bool(flagged))

    @property
    def signature(self) -> str:
        return call_signature(self.args, self.kwargs)

    @property
    def partial_op(self) -> tuple[str, str]:
        return partial_op_key(self)

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA_VERSION, "api": self.api, "framework": self.framework, "args": self.args,
            "kwargs": self.kwargs, "outputs": self.outputs, "ok": self.ok, "error": self.error,
            "source": self.source, "fingerprint": self.fingerprint, "flagged": self.flagged,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, data: Any, where: str = "record") -> "TraceRecord":
        if not isinstance(data, dict):
            raise TraceFormatError(f"{where}: expected a JSON object, got {type(data).__name__}; is this a dlfuzz corpus export?")
        version = data.get("schema")
        if not isinstance(version, int):
            raise TraceFormatError(f"{where}: no integer 'schema' field; is this a dlfuzz corpus export?")
        if version > SCHEMA_VERSION:
            raise TraceFormatError(f"{where}: schema version {version} is newer than this dlfuzz understands "
                                   f"({SCHEMA_VERSION}); upgrade dlfuzz to read it")
        try:
            args, kwargs = data["args"], data["kwargs"]
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise TypeError("args must be a list and kwargs an object")
            return cls(str(data["api"]), str(data["framework"]), args, kwargs, data.get("outputs"),
                       bool(data["ok"]), data.get("error"), str(data.get("source", "script")),
                       str(data.get("fingerprint") or ""), bool(data.get("flagged", False)))
        except (KeyError, TypeError, ValueError) as e:
            raise TraceFormatError(f"{where}: malformed record ({type(e).__name__}: {e}); re-export it with 'dlfuzz corpus export'") from None
