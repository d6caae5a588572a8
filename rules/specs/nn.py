"""Neural-network operators: matrix products, linear layers, softmax, normalizations
and parametrized activations. Convolution, pooling, padding and resizing are in
``rules.specs.conv`` (which reuses ``NNOp``).

Layouts are PyTorch's (N, C, ...). Where TensorFlow has no same-semantics op, its
materialization composes one (reshape + moments for the norms, a reshaped per-channel
slope for PReLU), through helper functions emitted into the programs (``helpers``).
Half-precision norms run in float32 inside TensorFlow, as PyTorch's CPU kernels do.

Weights (linear weights, norm statistics and affine parameters) are ``weight_inputs``:
fresh const leaves whose shapes the solver ties to the data input. Sizes that shape an
output (out_features, num_groups) are z3 integers; dims and scalar parameters are sampled.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from corpus.tensor_type import FLOAT_DTYPES
from rules.spec import OpSpec, SymTensor, broadcast, numel, same_dtype_options

FLOATS = FLOAT_DTYPES
INTS = ("int32", "int64")
EPS = 1e-5
POSITIVE = (0.5, 2.0)
F = "torch.nn.functional"


# ---- TensorFlow helpers (emitted verbatim into programs; only tf/np in scope) -------------

TF_HELPERS = {
    "tf_linear": '''
def tf_linear(x, w, b):
    """PyTorch linear: x @ w^T + b over the last dim of x (any rank >= 1)."""
    return tf.tensordot(x, w, [[len(x.shape) - 1], [1]]) + b
''',
    "tf_batch_norm": '''
def tf_batch_norm(x, mean, var, weight, bias, eps):
    """PyTorch batch_norm in inference mode; parameters along dim 1."""
    work = tf.float32 if x.dtype in (tf.float16, tf.bfloat16) else x.dtype
    shape = [-1] + [1] * (len(x.shape) - 2)
    p = [tf.reshape(tf.cast(t, work), shape) for t in (mean, var, bias, weight)]
    return tf.cast(tf.nn.batch_normalization(tf.cast(x, work), p[0], p[1], p[2], p[3], eps), x.dtype)
''',
    "tf_normalize": '''
def tf_normalize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over axes, biased variance; halves in float32."""
    work = tf.float32 if x.dtype in (tf.float16, tf.bfloat16) else x.dtype
    xw = tf.cast(x, work)
    mean, var = tf.nn.moments(xw, axes, keepdims=True)
    return (xw - mean) * tf.math.rsqrt(var + eps)
''',
    "tf_layer_norm": '''
def tf_layer_norm(x, n_dims, weight, bias, eps):
    """PyTorch layer_norm over the last n_dims dims."""
    y = tf_normalize(x, list(range(len(x.shape) - n_dims, len(x.shape))), eps)
    return tf.cast(y * tf.cast(weight, y.dtype) + tf.cast(bias, y.dtype), x.dtype)
''',
    "tf_group_norm": '''
def tf_group_norm(x, groups, weight, bias, eps):
    """PyTorch group_norm: statistics over each group of channels and all spatial dims."""
    shape = [-1] + [1] * (len(x.shape) - 2)
    y = tf_normalize(tf.reshape(x, [x.shape[0], groups, -1]), [2], eps)
    y = tf.reshape(y, x.shape)
    return tf.cast(y * tf.reshape(tf.cast(weight, y.dtype), shape) + tf.reshape(tf.cast(bias, y.dtype), shape), x.dtype)
''',
    "tf_instance_norm": '''
def tf_instance_norm(x, weight, bias, eps):
    """PyTorch instance_norm (input statistics): per sample and channel over spatial dims."""
    shape = [-1] + [1] * (len(x.shape) - 2)
    y = tf_normalize(x, list(range(2, len(x.shape))), eps)
    return tf.cast(y * tf.reshape(tf.cast(weight, y.dtype), shape) + tf.reshape(tf.cast(bias, y.dtype), shape), x.dtype)
''',
    "tf_prelu": '''
def tf_prelu(x, weight):
    """PyTorch prelu: one slope, or one per channel (dim 1)."""
    if len(x.shape) >= 2:
        weight = tf.reshape(weight, [-1] + [1] * (len(x.shape) - 2))
    return tf.where(x > 0, x, weight * x)
''',
    "tf_glu": '''
def tf_glu(x, axis):
    """PyTorch glu: first half times the sigmoid of the second half along axis."""
    a, b = tf.split(x, 2, axis=axis)
    return a * tf.math.sigmoid(b)
''',
}


class NNOp(OpSpec):
    """Shared plumbing: one dtype for every input (per framework), fixed rank options,
    per-input value ranges, and the TensorFlow helpers named in ``tf_helpers`` (taken from
    ``helper_sources``; a helper that calls another lists both)."""

    ranks: list[tuple[int, ...]] = []
    tf_helpers: tuple[str, ...] = ()
    helper_sources: dict[str, str] = TF_HELPERS
    value_ranges: dict[int, tuple[float, float]] = {}

    def __init__(self, name: str, dtypes: Sequence[str], tf_dtypes: Sequence[str] | None = None) -> None:
        self.id = f"core.{name}"
        self._dtypes = {"torch": tuple(dtypes), "tensorflow": tuple(tf_dtypes if tf_dtypes is not None else dtypes)}

    def rank_options(self) -> list[tuple[int, ...]]:
        return list(self.ranks)

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        return same_dtype_options(self._dtypes[framework], self.n_inputs)

    def value_range(self, position: int, dtype: str) -> tuple[float, float] | None:
        return self.value_ranges.get(position)

    def helpers(self, framework: str) -> dict[str, str]:
        return {n: self.helper_sources[n] for n in self.tf_helpers} if framework == "tensorflow" else {}


# ---- parametrized activations (elementwise, shape-preserving) ----------------------------

class Activation(NNOp):
    """``y = f(x)``; templates use ``{x}`` and the sampled parameters by name. ``params``
    lists the parameter sets to choose from (``int_params`` for integer inputs)."""

    n_inputs = 1
    ranks = [(r,) for r in range(5)]

    def __init__(self, name: str, torch_t: str, tf_t: str, dtypes: Sequence[str], *,
                 params: Sequence[dict[str, Any]] = ({},), int_params: Sequence[dict[str, Any]] | None = None,
                 discontinuous: bool = False) -> None:
        super().__init__(name, dtypes)
        self.torch_t, self.tf_t = torch_t, tf_t
        self.params, self.int_params = list(params), list(int_params or params)
        self.discontinuous = discontinuous

    def sample_attrs(self, ranks, dtypes, rng: random.Random) -> dict[str, Any]:
        return dict(rng.choice(self.int_params if dtypes[0] in INTS else self.params))

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        return self.torch_t.format(x=args[0], **attrs)

    def tf_code(self, args, attrs):
        return self.tf_t.format(x=args[0], **attrs)


def _choices(name: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    return [{name: v} for v in values]


# Scalar parameters are dyadic, so that float32 and float64 hold them exactly.
ACTIVATIONS = [
    Activation("LeakyRelu", F + ".leaky_relu({x}, {negative_slope!r})", "tf.nn.leaky_relu({x}, alpha={negative_slope!r})",
               FLOATS, params=_choices("negative_slope", (0.0078125, 0.0625, 0.25, 0.5))),
    Activation("Hardtanh", F + ".hardtanh({x}, {min_val!r}, {max_val!r})", "tf.clip_by_value({x}, {min_val!r}, {max_val!r})",
               FLOATS + INTS, params=[{"min_val": -1.0, "max_val": 1.0}, {"min_val": -0.5, "max_val": 2.0},
                                      {"min_val": 0.0, "max_val": 0.25}],
               int_params=[{"min_val": -1, "max_val": 1}, {"min_val": 0, "max_val": 2}]),
    Activation("Relu6", F + ".relu6({x})", "tf.nn.relu6({x})", FLOATS + INTS),
    Activation("Hardswish", F + ".hardswish({x})", "{x} * tf.nn.relu6({x} + 3) / 6", FLOATS),
    Activation("Hardsigmoid", F + ".hardsigmoid({x})", "tf.nn.relu6({x} + 3) / 6", FLOATS),
    Activation("LogSigmoid", F + ".logsigmoid({x})", "tf.math.log_sigmoid({x})", FLOATS),
    Activation("Softsign", F + ".softsign({x})", "tf.nn.softsign({x})", FLOATS),
    Activation("Celu", F + ".celu({x}, {alpha!r})", "tf.where({x} > 0, {x}, {alpha!r} * tf.math.expm1({x} / {alpha!r}))",
               FLOATS, params=_choices("alpha", (0.5, 1.0, 2.0))),
    Activation("Selu", F + ".selu({x})", "tf.nn.selu({x})", FLOATS),
    Activation("Mish", F + ".mish({x})", "{x} * tf.math.tanh(tf.math.softplus({x}))", FLOATS),
    Activation("Tanhshrink", F + ".tanhshrink({x})", "{x} - tf.math.tanh({x})", FLOATS),
    Activation("Softshrink", F + ".softshrink({x}, {lambd!r})",
               "tf.where({x} > {lambd!r}, {x} - {lambd!r}, tf.where({x} < -{lambd!r}, {x} + {lambd!r}, {x} * 0))",
               FLOATS, params=_choices("lambd", (0.25, 0.5, 1.0))),
    Activation("Hardshrink", F + ".hardshrink({x}, {lambd!r})",
               "tf.where(({x} >= -{lambd!r}) & ({x} <= {lambd!r}), tf.zeros_like({x}), {x})",
               FLOATS, params=_choices("lambd", (0.25, 0.5, 1.0)), discontinuous=True),
]


class Softmax(NNOp):
    n_inputs = 1
    ranks = [(r,) for r in range(1, 5)]

    def __init__(self, name: str, torch_fn: str, tf_fn: str) -> None:
        super().__init__(name, FLOATS)
        self.torch_fn, self.tf_fn = torch_fn, tf_fn

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dim": rng.randrange(-ranks[0], ranks[0])}

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"{self.torch_fn}({args[0]}, dim={attrs['dim']})"

    def tf_code(self, args, attrs):
        return f"{self.tf_fn}({args[0]}, axis={attrs['dim']})"


class PRelu(NNOp):
    """``x > 0 ? x : w * x`` with one slope or one per channel (dim 1) as a weight."""

    n_inputs = 2
    weight_inputs = (1,)
    ranks = [(r, 1) for r in range(1, 5)]
    tf_helpers = ("tf_prelu",)

    def sample_attrs(self, ranks, dtypes, rng):
        return {"per_channel": ranks[0] >= 2 and rng.random() < 0.7}

    def requires(self, ins, attrs):
        return [ins[1].shape[0] == (ins[0].shape[1] if attrs["per_channel"] else 1)]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"{F}.prelu({args[0]}, {args[1]})"

    def tf_code(self, args, attrs):
        return f"tf_prelu({args[0]}, {args[1]})"


class Glu(NNOp):
    n_inputs = 1
    ranks = [(r,) for r in range(1, 5)]
    tf_helpers = ("tf_glu",)

    def sample_attrs(self, ranks, dtypes, rng):
        return {"dim": rng.randrange(-ranks[0], ranks[0])}

    def requires(self, ins, attrs):
        return [ins[0].shape[attrs["dim"]] % 2 == 0]

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        shape[attrs["dim"]] = shape[attrs["dim"]] / 2
        return [SymTensor(shape, ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"{F}.glu({args[0]}, dim={attrs['dim']})"

    def tf_code(self, args, attrs):
        return f"tf_glu({args[0]}, {attrs['dim']})"


# ---- matrix products -----------------------------------------------------------------

class MatMul(NNOp):
    """torch.matmul on ranks 2..4: batch dims broadcast."""

    n_inputs = 2
    ranks = [(a, b) for a in range(2, 5) for b in range(2, 5)]
    rounding = "accumulate"

    def requires(self, ins, attrs):
        a, b = ins[0].shape, ins[1].shape
        return [a[-1] == b[-2], *broadcast(a[:-2], b[:-2])[0]]

    def output_types(self, ins, attrs):
        a, b = ins[0].shape, ins[1].shape
        return [SymTensor(broadcast(a[:-2], b[:-2])[1] + [a[-2], b[-1]], ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"torch.matmul({args[0]}, {args[1]})"

    def tf_code(self, args, attrs):
        return f"tf.linalg.matmul({args[0]}, {args[1]})"


class BMM(MatMul):
    ranks = [(3, 3)]

    def requires(self, ins, attrs):
        a, b = ins[0].shape, ins[1].shape
        return [a[0] == b[0], a[2] == b[1]]

    def torch_code(self, args, attrs):
        return f"torch.bmm({args[0]}, {args[1]})"


class Linear(NNOp):
    """x @ W^T + b, x of rank 1..4, W (out_features, in_features), b (out_features,)."""

    n_inputs = 3
    weight_inputs = (1, 2)
    ranks = [(r, 2, 1) for r in range(1, 5)]
    tf_helpers = ("tf_linear",)
    rounding = "accumulate"

    def int_attrs(self, ranks, sampled):
        return {"out_features": (1, 64)}

    def requires(self, ins, attrs):
        x, w, b = (t.shape for t in ins)
        return [w[0] == attrs["out_features"], w[1] == x[-1], b[0] == attrs["out_features"]]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape[:-1]) + [attrs["out_features"]], ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"{F}.linear({args[0]}, {args[1]}, {args[2]})"

    def tf_code(self, args, attrs):
        return f"tf_linear({args[0]}, {args[1]}, {args[2]})"


# ---- normalization -------------------------------------------------------------------

class BatchNorm(NNOp):
    """Inference-mode batch_norm: x (N, C, *), running mean/var, weight, bias (C,)."""

    n_inputs = 5
    weight_inputs = (1, 2, 3, 4)
    ranks = [(r, 1, 1, 1, 1) for r in range(2, 5)]
    tf_helpers = ("tf_batch_norm",)
    value_ranges = {2: POSITIVE}

    def requires(self, ins, attrs):
        return [t.shape[0] == ins[0].shape[1] for t in ins[1:]]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        x, m, v, w, b = args
        return f"{F}.batch_norm({x}, {m}, {v}, {w}, {b}, training=False, eps={EPS!r})"

    def tf_code(self, args, attrs):
        return f"tf_batch_norm({', '.join(args)}, {EPS!r})"


class LayerNorm(NNOp):
    """layer_norm over the last 1 or 2 dims, with weight and bias of that shape."""

    n_inputs = 3
    weight_inputs = (1, 2)
    ranks = [(r, k, k) for r in range(1, 5) for k in (1, 2) if k <= r]
    tf_helpers = ("tf_normalize", "tf_layer_norm")

    def requires(self, ins, attrs):
        x, w, b = (t.shape for t in ins)
        k = len(w)
        return [a == d for a, d in zip(w, x[-k:])] + [a == d for a, d in zip(b, x[-k:])]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        x, w, b = args
        return f"{F}.layer_norm({x}, {w}.shape, {w}, {b}, eps={EPS!r})"

    def tf_code(self, args, attrs):
        x, w, b = args
        return f"tf_layer_norm({x}, len({w}.shape), {w}, {b}, {EPS!r})"


class GroupNorm(NNOp):
    """group_norm: statistics over groups of C / num_groups channels and all spatial dims."""

    n_inputs = 3
    weight_inputs = (1, 2)
    ranks = [(r, 1, 1) for r in range(2, 5)]
    tf_helpers = ("tf_normalize", "tf_group_norm")

    def int_attrs(self, ranks, sampled):
        return {"num_groups": (1, 8)}

    def requires(self, ins, attrs):
        c, g = ins[0].shape[1], attrs["num_groups"]
        # PyTorch rejects inputs whose groups hold a single value in total (numel == groups).
        return [c % g == 0, ins[1].shape[0] == c, ins[2].shape[0] == c, numel(ins[0].shape) >= 2 * g]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        x, w, b = args
        return f"{F}.group_norm({x}, {attrs['num_groups']}, {w}, {b}, eps={EPS!r})"

    def tf_code(self, args, attrs):
        x, w, b = args
        return f"tf_group_norm({x}, {attrs['num_groups']}, {w}, {b}, {EPS!r})"


class InstanceNorm(NNOp):
    """instance_norm with input statistics and affine weight/bias; PyTorch needs more
    than one spatial element."""

    n_inputs = 3
    weight_inputs = (1, 2)
    ranks = [(r, 1, 1) for r in (3, 4)]
    tf_helpers = ("tf_normalize", "tf_instance_norm")

    def requires(self, ins, attrs):
        x = ins[0].shape
        return [numel(x[2:]) >= 2, ins[1].shape[0] == x[1], ins[2].shape[0] == x[1]]

    def output_types(self, ins, attrs):
        return [SymTensor(list(ins[0].shape), ins[0].dtype)]

    def torch_code(self, args, attrs):
        x, w, b = args
        return f"{F}.instance_norm({x}, weight={w}, bias={b}, eps={EPS!r})"

    def tf_code(self, args, attrs):
        x, w, b = args
        return f"tf_instance_norm({x}, {w}, {b}, {EPS!r})"


SPECS: list[OpSpec] = [
    *ACTIVATIONS,
    Softmax("Softmax", "torch.softmax", "tf.nn.softmax"),
    Softmax("LogSoftmax", "torch.log_softmax", "tf.nn.log_softmax"),
    PRelu("PRelu", FLOATS),
    Glu("Glu", FLOATS),
    MatMul("MatMul", FLOATS + INTS),
    BMM("BMM", FLOATS + INTS),
    Linear("Linear", FLOATS + INTS),
    BatchNorm("BatchNorm", FLOATS),
    LayerNorm("LayerNorm", FLOATS),
    GroupNorm("GroupNorm", FLOATS),
    InstanceNorm("InstanceNorm", FLOATS),
]
# clamps and selections: no rounding of their own (oracles.compare.op_rounding)
for _spec in SPECS:
    if _spec.id in ("core.Hardtanh", "core.Relu6", "core.Hardshrink"):
        _spec.rounding = "exact"
