"""The OpSpec interface (DESIGN §3): everything the generator needs to know of an operator.

An operator instance is fixed in four steps, each owned by the spec:

1. ``rank_options()`` and ``dtype_options(framework)``: which input ranks and dtypes
   it takes (a list of combinations, one entry per input).
2. ``sample_attrs(ranks, dtypes, rng)``: attributes chosen concretely by the seed before
   solving: dims, modes, permutations, keepdim, an output rank. (NeuRI keeps dim-like
   integers concrete too: they select shapes rather than compute them.)
3. ``int_attrs(ranks, sampled)``: integer attributes that z3 solves, with their domains
   (kernel sizes, strides, paddings, split sizes, target shapes ...).
4. ``requires(ins, attrs)`` and ``output_types(ins, attrs)``: the input constraints and
   the output types, over symbolic input shapes (z3 integer expressions) and the union
   of sampled (concrete) and solved (z3) attributes.

Materialization is source code: ``code(framework, args, attrs)`` returns one Python
expression over the argument names. The executor and every saved program.py are built
from the same text, so a reproducer is exactly what ran. Helper functions an expression
needs are declared in ``helpers(framework)`` and emitted once per program.

A spec that cannot be expressed faithfully in one framework leaves that framework out of
``frameworks`` and says why in ``one_framework_reason``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import z3

FRAMEWORKS = ("torch", "tensorflow")


@dataclass
class SymTensor:
    """A tensor whose dims are z3 integer expressions (constants for existing tensors)."""

    shape: list[z3.ArithRef]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)


class OpSpec:
    """Base class of every operator spec. Subclasses set ``id`` and override the hooks."""

    id: str = ""
    n_inputs: int = 1
    # "spec" (hand-written, symbolic), "inferred" (from a rule) or "concrete" (a replay).
    origin: str = "spec"
    # A spec that may be wrong (an inferred rule) has each instance run once, eagerly, by
    # the generator before it enters a graph (``rules.trial``).
    needs_trial: bool = False
    # A spec with fixed input types (a replay) may take only fresh leaves as inputs.
    fresh_inputs_ok: bool = False
    # positions of inputs that are weights: the generator creates a fresh ``const`` leaf
    # for them instead of consuming an existing tensor.
    weight_inputs: tuple[int, ...] = ()
    # positions of inputs the op writes in place; its output 0 is the mutated tensor (same
    # type as that input). The generator gives such a position only a value nothing else
    # reads, before or after (``rules.specs.inplace``: the mutation rule).
    mutates: tuple[int, ...] = ()
    frameworks: tuple[str, ...] = FRAMEWORKS
    one_framework_reason: str = ""
    # Outputs whose values are arbitrary under ties or legitimately nondeterministic
    # (argmax indices, sort indices): the oracles must not compare them.
    unstable_outputs: tuple[int, ...] = ()
    # True for ops whose result jumps under tiny input changes (floor, round, casts to int,
    # comparisons): a rounding difference upstream becomes a large one downstream.
    discontinuous: bool = False
    # How the op rounds, which sets the rounding noise the oracle allows it
    # (``oracles.compare.op_rounding``): "exact" for ops that only select or move values
    # (max, slicing, indexing, sort values, reshape: no noise, so a 1-ulp difference is a
    # bug), "accumulate" for sums of many terms (sum, mean, matmul, conv: noise from the
    # accumulation dtype), "fused" for a product fused into a sum (addcmul: a compiler may
    # round each step in the dtype), "" for the rest (a few ulps; inferred ops are looked up by API).
    rounding: str = ""

    # -- 1. signature -----------------------------------------------------------------
    def rank_options(self) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        raise NotImplementedError

    # -- 2. and 3. attributes ----------------------------------------------------------------
    def sample_attrs(self, ranks: tuple[int, ...], dtypes: tuple[str, ...], rng: random.Random) -> dict[str, Any]:
        return {}

    def int_attrs(self, ranks: tuple[int, ...], sampled: dict[str, Any]) -> dict[str, tuple[int, int]]:
        """Name -> inclusive (low, high) domain of each z3-solved integer attribute."""
        return {}

    # -- 4. constraints and types ---------------------------------------------------------
    def requires(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[z3.BoolRef]:
        return []

    def output_types(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[SymTensor]:
        raise NotImplementedError

    # -- materialization -------------------------------------------------------------------
    def code(self, framework: str, args: Sequence[str], attrs: dict[str, Any]) -> str:
        """A Python expression computing the op's output (a tuple if it has several)."""
        if framework == "torch":
            return self.torch_code(args, attrs)
        if framework == "tensorflow":
            return self.tf_code(args, attrs)
        raise ValueError(f"unknown framework {framework!r}")

    def torch_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        raise NotImplementedError(f"{self.id} has no PyTorch materialization")

    def tf_code(self, args: Sequence[str], attrs: dict[str, Any]) -> str:
        raise NotImplementedError(f"{self.id} has no TensorFlow materialization")

    def helpers(self, framework: str) -> dict[str, str]:
        """Helper function name -> its source, emitted once into any program using the op."""
        return {}

    def value_range(self, position: int, dtype: str) -> tuple[float, float] | None:
        """A preferred range for values fed to input ``position`` (e.g. positive for log).

        The value search uses it for leaves that feed the op directly.
        """
        return None

    def __repr__(self) -> str:
        return f"<OpSpec {self.id}>"


# ---- z3 helpers shared by the specs ------------------------------------------------------

def numel(shape: Sequence[z3.ArithRef]) -> z3.ArithRef:
    n: Any = z3.IntVal(1)
    for d in shape:
        n = n * d
    return n


def broadcast(a: Sequence[z3.ArithRef], b: Sequence[z3.ArithRef]) -> tuple[list[z3.BoolRef], list[z3.ArithRef]]:
    """NumPy broadcasting of two symbolic shapes: (constraints, result shape).

    Each pair of aligned dims must be equal or one of them 1; the result takes the
    larger. Both frameworks broadcast this way.
    """
    cons: list[z3.BoolRef] = []
    out: list[z3.ArithRef] = []
    ra, rb = len(a), len(b)
    for i in range(max(ra, rb)):
        da = a[ra - max(ra, rb) + i] if i >= max(ra, rb) - ra else None
        db = b[rb - max(ra, rb) + i] if i >= max(ra, rb) - rb else None
        if da is None:
            out.append(db)  # type: ignore[arg-type]
        elif db is None:
            out.append(da)
        else:
            cons.append(z3.Or(da == db, da == 1, db == 1))
            out.append(z3.If(da == 1, db, da))
    return cons, out


def same_dtype_options(dtypes: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Every input of the same dtype, for each dtype in ``dtypes``."""
    return [(d,) * n for d in dtypes]


def torch_dtype(dtype: str) -> str:
    return f"torch.{dtype}"


def tf_dtype(dtype: str) -> str:
    return f"tf.{dtype}"


def dim_list(rank: int) -> list[int]:
    return list(range(rank))
