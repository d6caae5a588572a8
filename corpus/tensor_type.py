"""Tensor types: the one vocabulary of shapes and dtypes shared by every stage.

Dtypes are plain strings (``"float32"``) so that a TensorType is hashable, JSON-able
and framework-neutral; the frameworks' own dtype objects appear only in materialized
code (``rules/``) and in the oracles.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
SIGNED_INT_DTYPES = ("int8", "int16", "int32", "int64")
INT_DTYPES = SIGNED_INT_DTYPES + ("uint8",)
BOOL_DTYPES = ("bool",)
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + BOOL_DTYPES

# Dtypes that carry half-precision arithmetic: eager and fused code may legitimately
# differ in their rounding, which the oracles must know.
HALF_DTYPES = ("float16", "bfloat16")


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_bool(dtype: str) -> bool:
    return dtype == "bool"


@dataclass(frozen=True)
class TensorType:
    """A concrete tensor type: a shape (tuple of non-negative ints) and a dtype name."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        if self.dtype not in ALL_DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(ALL_DTYPES)}")
        shape = tuple(int(d) for d in self.shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimension in shape {shape}")
        object.__setattr__(self, "shape", shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict) -> "TensorType":
        return cls(tuple(data["shape"]), data["dtype"])

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"
