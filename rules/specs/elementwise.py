"""Elementwise operators: unary math, binary arithmetic with broadcasting, comparisons,
logic. Each is one line in a table; the classes below turn a row into an OpSpec.

Binary ops take two inputs of the same dtype (no implicit type promotion: the two
frameworks promote differently, and TensorFlow not at all), broadcasting NumPy-style.
"""

from __future__ import annotations

from typing import Any, Sequence

from corpus.tensor_type import FLOAT_DTYPES, INT_DTYPES, SIGNED_INT_DTYPES
from rules.spec import OpSpec, SymTensor, broadcast, same_dtype_options

MAX_RANK = 5
NUMERIC = FLOAT_DTYPES + INT_DTYPES
SIGNED = FLOAT_DTYPES + SIGNED_INT_DTYPES


def _fill(template: str, args: Sequence[str]) -> str:
    return template.format(*args)


class Unary(OpSpec):
    """``y = f(x)``, same shape; output dtype the input's unless ``out_dtype`` is given."""

    n_inputs = 1

    def __init__(self, name: str, torch_t: str, tf_t: str, dtypes: Sequence[str], *,
                 tf_dtypes: Sequence[str] | None = None, domain: tuple[float, float] | None = None,
                 out_dtype: str | None = None, discontinuous: bool = False) -> None:
        self.id = f"core.{name}"
        self.torch_t, self.tf_t = torch_t, tf_t
        self._dtypes = {"torch": tuple(dtypes), "tensorflow": tuple(tf_dtypes if tf_dtypes is not None else dtypes)}
        self.domain = domain
        self.out_dtype = out_dtype
        self.discontinuous = discontinuous

    def rank_options(self) -> list[tuple[int, ...]]:
        return [(r,) for r in range(MAX_RANK + 1)]

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        return same_dtype_options(self._dtypes[framework], 1)

    def output_types(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[SymTensor]:
        return [SymTensor(list(ins[0].shape), self.out_dtype or ins[0].dtype)]

    def torch_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        return _fill(self.torch_t, args)

    def tf_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        return _fill(self.tf_t, args)

    def value_range(self, position: int, dtype: str) -> tuple[float, float] | None:
        return self.domain


class Binary(OpSpec):
    """``z = f(x, y)`` with broadcasting; both inputs of one dtype."""

    n_inputs = 2

    def __init__(self, name: str, torch_t: str, tf_t: str, dtypes: Sequence[str], *,
                 tf_dtypes: Sequence[str] | None = None, out_dtype: str | None = None,
                 rhs_domain: tuple[float, float] | None = None, lhs_domain: tuple[float, float] | None = None,
                 discontinuous: bool = False, rounding: str = "") -> None:
        self.id = f"core.{name}"
        self.torch_t, self.tf_t = torch_t, tf_t
        self.rounding = rounding
        self._dtypes = {"torch": tuple(dtypes), "tensorflow": tuple(tf_dtypes if tf_dtypes is not None else dtypes)}
        self.out_dtype = out_dtype
        self.domains = (lhs_domain, rhs_domain)
        self.discontinuous = discontinuous

    def rank_options(self) -> list[tuple[int, ...]]:
        return [(a, b) for a in range(MAX_RANK + 1) for b in range(MAX_RANK + 1)]

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        return same_dtype_options(self._dtypes[framework], 2)

    def requires(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list:
        return broadcast(ins[0].shape, ins[1].shape)[0]

    def output_types(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[SymTensor]:
        return [SymTensor(broadcast(ins[0].shape, ins[1].shape)[1], self.out_dtype or ins[0].dtype)]

    def torch_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        return _fill(self.torch_t, args)

    def tf_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        return _fill(self.tf_t, args)

    def value_range(self, position: int, dtype: str) -> tuple[float, float] | None:
        return self.domains[position]


POSITIVE = (0.5, 3.0)
UNIT = (-0.9, 0.9)

UNARY = [
    Unary("Abs", "torch.abs({})", "tf.math.abs({})", SIGNED),
    Unary("Neg", "torch.neg({})", "tf.math.negative({})", SIGNED),
    Unary("Exp", "torch.exp({})", "tf.math.exp({})", FLOAT_DTYPES),
    Unary("Log", "torch.log({})", "tf.math.log({})", FLOAT_DTYPES, domain=POSITIVE),
    Unary("Sqrt", "torch.sqrt({})", "tf.math.sqrt({})", FLOAT_DTYPES, domain=POSITIVE),
    Unary("Rsqrt", "torch.rsqrt({})", "tf.math.rsqrt({})", FLOAT_DTYPES, domain=POSITIVE),
    Unary("Sin", "torch.sin({})", "tf.math.sin({})", FLOAT_DTYPES),
    Unary("Cos", "torch.cos({})", "tf.math.cos({})", FLOAT_DTYPES),
    Unary("Tan", "torch.tan({})", "tf.math.tan({})", FLOAT_DTYPES, domain=UNIT),
    Unary("Asin", "torch.asin({})", "tf.math.asin({})", FLOAT_DTYPES, domain=UNIT),
    Unary("Acos", "torch.acos({})", "tf.math.acos({})", FLOAT_DTYPES, domain=UNIT),
    Unary("Atan", "torch.atan({})", "tf.math.atan({})", FLOAT_DTYPES),
    Unary("Tanh", "torch.tanh({})", "tf.math.tanh({})", FLOAT_DTYPES),
    Unary("Sigmoid", "torch.sigmoid({})", "tf.math.sigmoid({})", FLOAT_DTYPES),
    Unary("Relu", "torch.relu({})", "tf.nn.relu({})", SIGNED),
    Unary("Gelu", "torch.nn.functional.gelu({})", "tf.nn.gelu({}, approximate=False)", FLOAT_DTYPES),
    Unary("Silu", "torch.nn.functional.silu({})", "tf.nn.silu({})", FLOAT_DTYPES),
    Unary("Softplus", "torch.nn.functional.softplus({})", "tf.math.softplus({})", FLOAT_DTYPES),
    Unary("Elu", "torch.nn.functional.elu({})", "tf.nn.elu({})", FLOAT_DTYPES),
    Unary("Erf", "torch.erf({})", "tf.math.erf({})", FLOAT_DTYPES),
    Unary("Square", "torch.square({})", "tf.math.square({})", SIGNED),
    Unary("Reciprocal", "torch.reciprocal({})", "tf.math.reciprocal({})", FLOAT_DTYPES, domain=POSITIVE),
    Unary("Floor", "torch.floor({})", "tf.math.floor({})", FLOAT_DTYPES, discontinuous=True),
    Unary("Ceil", "torch.ceil({})", "tf.math.ceil({})", FLOAT_DTYPES, discontinuous=True),
    Unary("Round", "torch.round({})", "tf.math.round({})", FLOAT_DTYPES, discontinuous=True),
    Unary("Sign", "torch.sign({})", "tf.math.sign({})", SIGNED, discontinuous=True),
    Unary("LogicalNot", "torch.logical_not({})", "tf.math.logical_not({})", ("bool",)),
    Unary("BitwiseNot", "torch.bitwise_not({})", "tf.bitwise.invert({})", INT_DTYPES + ("bool",),
          tf_dtypes=INT_DTYPES),
    Unary("IsNan", "torch.isnan({})", "tf.math.is_nan({})", FLOAT_DTYPES, out_dtype="bool"),
]

BINARY = [
    Binary("Add", "torch.add({}, {})", "tf.math.add({}, {})", NUMERIC),
    Binary("Sub", "torch.sub({}, {})", "tf.math.subtract({}, {})", NUMERIC),
    Binary("Mul", "torch.mul({}, {})", "tf.math.multiply({}, {})", NUMERIC),
    Binary("Div", "torch.div({}, {})", "tf.math.truediv({}, {})", FLOAT_DTYPES, rhs_domain=POSITIVE),
    Binary("Maximum", "torch.maximum({}, {})", "tf.math.maximum({}, {})", NUMERIC),
    Binary("Minimum", "torch.minimum({}, {})", "tf.math.minimum({}, {})", NUMERIC),
    Binary("Pow", "torch.pow({}, {})", "tf.math.pow({}, {})", FLOAT_DTYPES, lhs_domain=POSITIVE, rhs_domain=(-2.0, 2.0)),
    # a branch cut along the negative x axis: y = +0.0 or -0.0 (or a rounding either
    # side of 0) gives +pi or -pi
    Binary("Atan2", "torch.atan2({}, {})", "tf.math.atan2({}, {})", FLOAT_DTYPES, discontinuous=True),
    Binary("Remainder", "torch.remainder({}, {})", "tf.math.floormod({}, {})", FLOAT_DTYPES, rhs_domain=POSITIVE,
           discontinuous=True, rounding="remainder"),
    Binary("FloorDiv", "torch.floor_divide({}, {})", "tf.math.floordiv({}, {})", FLOAT_DTYPES, rhs_domain=POSITIVE,
           discontinuous=True),
    Binary("Equal", "torch.eq({}, {})", "tf.math.equal({}, {})", NUMERIC + ("bool",), out_dtype="bool", discontinuous=True),
    Binary("NotEqual", "torch.ne({}, {})", "tf.math.not_equal({}, {})", NUMERIC + ("bool",), out_dtype="bool",
           discontinuous=True),
    Binary("Less", "torch.lt({}, {})", "tf.math.less({}, {})", NUMERIC, out_dtype="bool", discontinuous=True),
    Binary("LessEqual", "torch.le({}, {})", "tf.math.less_equal({}, {})", NUMERIC, out_dtype="bool", discontinuous=True),
    Binary("Greater", "torch.gt({}, {})", "tf.math.greater({}, {})", NUMERIC, out_dtype="bool", discontinuous=True),
    Binary("GreaterEqual", "torch.ge({}, {})", "tf.math.greater_equal({}, {})", NUMERIC, out_dtype="bool",
           discontinuous=True),
    Binary("LogicalAnd", "torch.logical_and({}, {})", "tf.math.logical_and({}, {})", ("bool",)),
    Binary("LogicalOr", "torch.logical_or({}, {})", "tf.math.logical_or({}, {})", ("bool",)),
    Binary("LogicalXor", "torch.logical_xor({}, {})", "tf.math.logical_xor({}, {})", ("bool",)),
    Binary("BitwiseAnd", "torch.bitwise_and({}, {})", "tf.bitwise.bitwise_and({}, {})", INT_DTYPES),
    Binary("BitwiseOr", "torch.bitwise_or({}, {})", "tf.bitwise.bitwise_or({}, {})", INT_DTYPES),
    Binary("BitwiseXor", "torch.bitwise_xor({}, {})", "tf.bitwise.bitwise_xor({}, {})", INT_DTYPES),
]

SPECS: list[OpSpec] = [*UNARY, *BINARY]
# values selected, negated or rounded to an integer: no rounding noise of their own
# (oracles.compare.op_rounding); comparisons and logic have no float output at all
_EXACT = {"Abs", "Neg", "Relu", "Floor", "Ceil", "Round", "Sign", "Maximum", "Minimum"}
for _spec in SPECS:
    if _spec.id.removeprefix("core.") in _EXACT:
        _spec.rounding = "exact"
