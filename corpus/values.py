"""Concrete tensor values, regenerated from a tiny recipe instead of stored.

A leaf's value is ``numpy.random.default_rng(seed)`` drawn uniformly in ``[low, high]``
and cast to the leaf's dtype. Storing the recipe keeps case.json small and lets a
standalone program.py rebuild bit-identical inputs with numpy alone: the same function
body is emitted into every program (see ``VALUE_SOURCE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corpus.tensor_type import TensorType


@dataclass(frozen=True)
class ValueSpec:
    seed: int
    low: float
    high: float

    def to_json(self) -> dict:
        return {"seed": self.seed, "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, d: dict) -> "ValueSpec":
        return cls(int(d["seed"]), float(d["low"]), float(d["high"]))


# The source of ``make_value``: executed here and emitted verbatim into programs, so the
# two can never drift apart. bfloat16 has no numpy dtype: it travels as float32 and the
# framework casts it.
VALUE_SOURCE = '''
def make_value(shape, dtype, seed, low, high):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(size=shape) < 0.5
    if dtype.startswith("int") or dtype.startswith("uint"):
        return rng.integers(int(low), int(high), size=shape, endpoint=True).astype(dtype)
    carrier = "float32" if dtype == "bfloat16" else dtype
    return rng.uniform(low, high, size=shape).astype(carrier)
'''

_ns: dict = {"np": np}
exec(VALUE_SOURCE, _ns)
_make_value = _ns["make_value"]


def make_value(ttype: TensorType, spec: ValueSpec) -> np.ndarray:
    return _make_value(list(ttype.shape), ttype.dtype, spec.seed, spec.low, spec.high)
