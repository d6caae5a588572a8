"""Concrete tensor values, regenerated from a tiny recipe instead of stored.

A leaf's value is ``numpy.random.default_rng(seed)`` drawn uniformly in ``[low, high]``
and cast to the leaf's dtype. Storing the recipe keeps case.json small and lets a
standalone program.py rebuild bit-identical inputs with numpy alone: the same function
body is emitted into every program (see ``VALUE_SOURCE``).

Two *modes* reach what compilers get wrong (DESIGN §5) while staying recipes:

* ``"limits"`` (integers): the uniform draw, then about a quarter of the elements moved
  to within 3 of ``low`` or ``high``; with ``[low, high]`` the dtype's range, that puts
  values at its limits, where overflow paths and wide-range kernels live.
* ``"special"`` (floats): the uniform draw, then 1-3 elements replaced by IEEE special
  values (NaN, +-inf, -0.0, subnormals, huge magnitudes), to test NaN/Inf propagation.

Both draw the uniform part first, from the same stream as the plain mode, so a recipe
with a mode differs from its plain twin only in the elements the mode changed. The mode
is left out of the JSON form (and of the emitted call) when plain, so case.json files
and programs written before modes existed read and rebuild unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from corpus.tensor_type import TensorType

MODES = ("", "limits", "special")


def _number(x: int | float) -> int | float:
    """Integers stay integers: int64's limits are not exact as floats."""
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else float(x)


@dataclass(frozen=True)
class ValueSpec:
    seed: int
    low: float
    high: float
    mode: str = ""  # "", "limits" or "special" (see the module docstring)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown value mode {self.mode!r}; expected one of {MODES}")

    def to_json(self) -> dict:
        d = {"seed": self.seed, "low": self.low, "high": self.high}
        if self.mode:
            d["mode"] = self.mode
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ValueSpec":
        return cls(int(d["seed"]), _number(d["low"]), _number(d["high"]), str(d.get("mode", "")))


def has_special(values: Iterable[ValueSpec]) -> bool:
    """Does a case feed deliberate special floats? Then NaN/Inf in the reference's outputs
    is the point of the case, not a reason to discard it (DESIGN §6)."""
    return any(getattr(v, "mode", "") == "special" for v in values)


# The source of ``make_value``: executed here and emitted verbatim into programs, so the
# two can never drift apart. bfloat16 has no numpy dtype: it travels as float32 and the
# framework casts it (float32 has bfloat16's exponent range, so its specials fit).
# Huge magnitudes are left out for float16: eager rounds every float16 op and overflows
# where fused code, computing in float32 as documented, does not.
VALUE_SOURCE = '''
def make_value(shape, dtype, seed, low, high, mode=""):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(size=shape) < 0.5
    if dtype.startswith("int") or dtype.startswith("uint"):
        value = rng.integers(int(low), int(high), size=shape, endpoint=True)
        if mode == "limits":
            near = rng.random(size=shape) < 0.25
            top = rng.random(size=shape) < 0.5
            offset = rng.integers(0, 4, size=shape)
            moved = np.where(top, np.int64(high) - offset, np.int64(low) + offset)
            value = np.where(near, np.clip(moved, int(low), int(high)), value)
        return value.astype(dtype)
    carrier = "float32" if dtype == "bfloat16" else dtype
    value = rng.uniform(low, high, size=shape).astype(carrier)
    if mode == "special" and value.size:
        info = np.finfo(carrier)
        tiny = float(info.tiny) / 4
        palette = [np.nan, np.inf, -np.inf, -0.0, tiny, -tiny]
        if dtype != "float16":
            palette += [float(info.max) / 2, -float(info.max) / 2]
        count = min(value.size, int(rng.integers(1, 4)))
        where = rng.choice(value.size, size=count, replace=False)
        flat = value.reshape(-1)
        flat[where] = np.array(palette)[rng.integers(0, len(palette), size=count)]
        value = flat.reshape(value.shape)
    return value
'''

_ns: dict = {"np": np}
exec(VALUE_SOURCE, _ns)
_make_value = _ns["make_value"]


def make_value(ttype: TensorType, spec: ValueSpec) -> np.ndarray:
    return _make_value(list(ttype.shape), ttype.dtype, spec.seed, spec.low, spec.high, spec.mode)
