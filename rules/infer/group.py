"""From records to templates: grouping and symbol normalization (DESIGN §4).

Records are grouped by partial operator (``corpus.trace.partial_op_key``: the API and
which arguments are tensors of which rank, which attributes are present). Inside a
partial operator, a *template* fixes everything a rule cannot compute with:

- every tensor dimension becomes a symbol ``t{i}_{k}`` (tensor ``i`` in argument order,
  dimension ``k``);
- every other integer becomes a symbol named after its parameter (``stride_0`` for the
  first element of ``stride``, ``groups``), except integers named like dimensions
  (``dim``, ``axis``, ``dims`` ..., see :mod:`rules.infer.names`) and the sentinel ``-1``
  (``reshape(x, [2, -1])``), which stay concrete;
- floats become *float slots* (the rule keeps the values seen in valid calls);
- strings, booleans, None, dtypes, list lengths and everything else stay concrete.

The template's key is the skeleton with the symbols left out, so the records of one
template differ only in their symbol values, float values and tensor dtypes: exactly the
vectors the rule search works on. Records with a zero-sized input dimension are left out
(the generator never makes one), as are records that cannot be rebuilt (``repr``s).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from corpus.trace import TraceRecord, call_signature, has_opaque, is_tensor_marker
from rules.infer.names import Params, is_dim_name, param_name

_IDENT = re.compile(r"[^0-9A-Za-z_]")
_RESERVED = frozenset({"min", "max", "or", "and", "not", "if", "else", "in", "is", "lambda", "None", "True", "False"})


def ident(name: str) -> str:
    s = _IDENT.sub("_", name) or "a"
    if s[0].isdigit():
        s = "a" + s
    if s in _RESERVED or re.fullmatch(r"t\d+_\d+", s):
        s = s + "_"
    return s


@dataclass(frozen=True)
class Slot:
    """A tensor argument of the template."""

    label: str  # where it sits: "input", "weight", "tensors[1]"
    rank: int
    kind: str | None = None  # None (a framework tensor), "ndarray", "variable"


@dataclass
class Obs:
    """One record as seen by its template."""

    syms: list[int]
    dtypes: tuple[str, ...]
    floats: tuple[float, ...]
    ok: bool
    outputs: tuple[str, list[tuple[tuple[int, ...], str]]] | None  # (form, [(shape, dtype)]); None: not tensors
    record: TraceRecord


@dataclass
class Template:
    api: str
    signature: str  # the corpus's partial-operator signature
    key: str  # the signature plus the concrete skeleton
    skeleton: dict  # {"args": [...], "kwargs": {...}} with $tensor/$sym/$float placeholders
    slots: list[Slot]
    symbols: list[str]  # dims first (t{i}_{k}), then attributes
    attr_symbols: list[str]
    floats: list[str]
    obs: list[Obs] = field(default_factory=list)

    @property
    def valid(self) -> list[Obs]:
        return [o for o in self.obs if o.ok]

    @property
    def invalid(self) -> list[Obs]:
        return [o for o in self.obs if not o.ok]


class _Unusable(Exception):
    pass


class _Walker:
    """Walks one call, producing its skeleton and its symbol/float/dtype values."""

    def __init__(self) -> None:
        self.slots: list[Slot] = []
        self.dims: list[tuple[str, int]] = []
        self.attrs: list[tuple[str, int]] = []
        self.floats: list[tuple[str, float]] = []
        self.dtypes: list[str] = []
        self.used: set[str] = set()

    def _name(self, base: str) -> str:
        name = ident(base)
        if name in self.used:
            k = 2
            while f"{name}_{k}" in self.used:
                k += 1
            name = f"{name}_{k}"
        self.used.add(name)
        return name

    def walk(self, value: Any, name: str, label: str, concrete: bool) -> Any:
        if is_tensor_marker(value):
            shape = value["shape"]
            if "layout" in value or any(not isinstance(d, int) for d in shape):
                raise _Unusable("non-strided tensor")
            i = len(self.slots)
            self.slots.append(Slot(label, len(shape), value.get("kind")))
            self.dtypes.append(str(value["dtype"]))
            for k, d in enumerate(shape):
                self.dims.append((f"t{i}_{k}", int(d)))
            return {"$tensor": i}
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, int):
            if concrete or value == -1:
                return value
            n = self._name(name)
            self.attrs.append((n, value))
            return {"$sym": n}
        if isinstance(value, float):
            n = self._name(name)
            self.floats.append((n, value))
            return {"$float": n}
        if isinstance(value, list):
            return [self.walk(v, f"{name}_{j}", f"{label}[{j}]", concrete) for j, v in enumerate(value)]
        if isinstance(value, dict):
            if any(True for _ in _tensors_in(value)):
                raise _Unusable("tensor inside a tagged value")
            return value  # dtype, slice, device ...: concrete
        raise _Unusable(f"value of type {type(value).__name__}")


def _tensors_in(value: Any) -> Iterable[dict]:
    if is_tensor_marker(value):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _tensors_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors_in(v)


def parse_outputs(out: Any) -> tuple[str, list[tuple[tuple[int, ...], str]]] | None:
    def one(m: Any):
        if not is_tensor_marker(m) or "layout" in m or any(not isinstance(d, int) for d in m["shape"]):
            return None
        return tuple(int(d) for d in m["shape"]), str(m["dtype"])

    if is_tensor_marker(out):
        got = one(out)
        return None if got is None else ("single", [got])
    if isinstance(out, list) and out:
        items = [one(m) for m in out]
        if all(i is not None for i in items):
            return "tuple", items  # type: ignore[return-value]
    return None


def analyze(record: TraceRecord, params: Params | None) -> tuple[str, dict, _Walker] | None:
    """(template key, skeleton, walker) of one record, or None if it cannot be used."""
    if has_opaque(record.args) or has_opaque(record.kwargs):
        return None
    w = _Walker()
    try:
        args = []
        for i, a in enumerate(record.args):
            name, _ = param_name(params, i)
            if params is not None and params[1] == name and i >= len(params[0]):
                sub = f"{name}_{i - len(params[0])}"
            else:
                sub = name
            args.append(w.walk(a, sub, sub, is_dim_name(name)))
        kwargs = {k: w.walk(record.kwargs[k], k, k, is_dim_name(k)) for k in sorted(record.kwargs)}
    except _Unusable:
        return None
    if any(d == 0 for _, d in w.dims):
        return None
    skeleton = {"args": args, "kwargs": kwargs}
    signature = call_signature(record.args, record.kwargs)
    key = json.dumps([signature, skeleton, [(s.rank, s.kind) for s in w.slots]], sort_keys=True, separators=(",", ":"))
    return key, skeleton, w


def templates(records: Iterable[TraceRecord], params: Params | None) -> list[Template]:
    """The templates of one partial operator's records, the most valid records first."""
    out: dict[str, Template] = {}
    for rec in records:
        got = analyze(rec, params)
        if got is None:
            continue
        key, skeleton, w = got
        t = out.get(key)
        if t is None:
            t = out[key] = Template(rec.api, call_signature(rec.args, rec.kwargs), key, skeleton, list(w.slots),
                                    [n for n, _ in w.dims] + [n for n, _ in w.attrs], [n for n, _ in w.attrs],
                                    [n for n, _ in w.floats])
        outputs = parse_outputs(rec.outputs) if rec.ok else None
        t.obs.append(Obs([v for _, v in w.dims] + [v for _, v in w.attrs], tuple(w.dtypes),
                         tuple(v for _, v in w.floats), rec.ok, outputs, rec))
    return sorted(out.values(), key=lambda t: (-len(t.valid), -len(t.obs), t.key))
