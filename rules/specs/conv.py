"""Spatial operators on PyTorch's (N, C, L) and (N, C, H, W) layouts: convolutions,
pooling, padding, resizing and pixel shuffles.

TensorFlow's CPU kernels are channels-last: its materializations transpose to NHWC and
back, and compose what has no same-semantics op (explicit padding with -inf or zeros
before VALID pooling, gathers of clamped indices for replicate padding, window-sum
matrices for adaptive pooling, reshape + transpose for pixel shuffles), through helper
functions emitted into the programs.

Kernels, strides, paddings, dilations, groups, channel counts, output sizes and shuffle
factors are z3 integers with small domains; ``requires`` holds what makes them valid
(channels divisible by groups, padding at most half a pooling window, the window fitting
the padded input, reflect padding smaller than the dim). Conv filters and biases are
``weight_inputs``.
"""

from __future__ import annotations

from typing import Any, Sequence

from rules.spec import OpSpec, SymTensor
from rules.specs.nn import F, FLOATS, INTS, NNOp

SPATIAL = {1: ("l",), 2: ("h", "w")}  # attribute suffixes of the spatial dims


def _conv_len(n: Any, k: Any, s: Any, p: Any, d: Any = 1) -> Any:
    """Output length of a convolution or pooling window (floor mode)."""
    return (n + 2 * p - d * (k - 1) - 1) / s + 1


def _tup(attrs: dict[str, Any], name: str, nd: int) -> tuple[int, ...]:
    return tuple(attrs[f"{name}_{s}"] for s in SPATIAL[nd])


# ---- TensorFlow helpers (emitted verbatim into programs; only tf/np in scope) -------------

TF_HELPERS = {
    "tf_conv_nchw": '''
def tf_conv_nchw(x, w, b, strides, pads, dilations):
    """PyTorch conv1d/conv2d (NCL/NCHW, OIL/OIHW filter, symmetric padding) in TensorFlow.

    A 1-d conv runs as a 2-d conv of height 1; groups follow from the filter's
    input-channel count, as in tf.nn.conv2d."""
    one_d = len(x.shape) == 3
    if one_d:
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, pads, dilations = [1, *strides], [0, *pads], [1, *dilations]
    y = tf.nn.conv2d(tf.transpose(x, [0, 2, 3, 1]), tf.transpose(w, [2, 3, 1, 0]), strides=[1, *strides, 1],
                     padding=[[0, 0], [pads[0], pads[0]], [pads[1], pads[1]], [0, 0]], dilations=[1, *dilations, 1])
    y = tf.transpose(y + b, [0, 3, 1, 2])
    return y[:, :, 0, :] if one_d else y
''',
    "tf_pool_nchw": '''
def tf_pool_nchw(x, kind, ksize, strides, pads, count_include_pad=True):
    """PyTorch max/avg pooling (NCL/NCHW, floor mode) in TensorFlow: pad explicitly
    (-inf for max, zeros for avg), then VALID pooling channels-last."""
    one_d = len(x.shape) == 3
    if one_d:
        x = x[:, :, None, :]
        ksize, strides, pads = [1, *ksize], [1, *strides], [0, *pads]
    x = tf.transpose(x, [0, 2, 3, 1])
    paddings = [[0, 0], [pads[0], pads[0]], [pads[1], pads[1]], [0, 0]]
    if kind == "max":
        low = x.dtype.min if x.dtype.is_integer else float("-inf")
        y = tf.nn.max_pool2d(tf.pad(x, paddings, constant_values=low), ksize, strides, "VALID")
    else:
        y = tf.nn.avg_pool2d(tf.pad(x, paddings), ksize, strides, "VALID")
        if not count_include_pad and any(pads):
            window = ksize[0] * ksize[1]
            ones = tf.pad(tf.ones_like(x[:1, :, :, :1]), paddings)
            count = tf.round(tf.nn.avg_pool2d(ones, ksize, strides, "VALID") * window)
            y = y * window / count
    y = tf.transpose(y, [0, 3, 1, 2])
    return y[:, :, 0, :] if one_d else y
''',
    "tf_adaptive_avg_pool2d": '''
def tf_adaptive_avg_pool2d(x, out_h, out_w):
    """PyTorch adaptive_avg_pool2d: window i spans [floor(i*n/out), ceil((i+1)*n/out)).
    Window sums as products with 0/1 matrices, then division by the window sizes."""
    work = tf.float32 if x.dtype in (tf.float16, tf.bfloat16) else x.dtype

    def windows(n, out):
        rows = [[1.0 if (i * n) // out <= j < -((-(i + 1) * n) // out) else 0.0 for j in range(n)] for i in range(out)]
        return tf.constant(rows, dtype=work)

    rows, cols = windows(x.shape[2], out_h), windows(x.shape[3], out_w)
    sums = tf.linalg.matmul(tf.linalg.matmul(rows, tf.cast(x, work)), cols, transpose_b=True)
    counts = tf.reduce_sum(rows, axis=1)[:, None] * tf.reduce_sum(cols, axis=1)[None, :]
    return tf.cast(sums / counts, x.dtype)
''',
    "tf_replicate_pad": '''
def tf_replicate_pad(x, pads):
    """Edge padding: pads is a list of [axis, before, after]; gathers clamped indices."""
    for axis, before, after in pads:
        n = x.shape[axis]
        x = tf.gather(x, tf.clip_by_value(tf.range(-before, n + after), 0, n - 1), axis=axis)
    return x
''',
    "tf_resize_nchw": '''
def tf_resize_nchw(x, size, method):
    """PyTorch interpolate (align_corners=False) on NCL/NCHW: nearest uses
    floor(dst * in/out) like ResizeNearestNeighbor without half-pixel centers;
    (bi)linear uses half-pixel centers. A 1-d resize runs as a 2-d one of height 1."""
    one_d = len(x.shape) == 3
    y = tf.transpose(x, [0, 2, 1])[:, None] if one_d else tf.transpose(x, [0, 2, 3, 1])
    size = [1, *size] if one_d else list(size)
    if method == "nearest":
        y = tf.raw_ops.ResizeNearestNeighbor(images=y, size=size, align_corners=False, half_pixel_centers=False)
    else:
        y = tf.cast(tf.raw_ops.ResizeBilinear(images=y, size=size, align_corners=False, half_pixel_centers=True),
                    x.dtype)
    return tf.transpose(y[:, 0], [0, 2, 1]) if one_d else tf.transpose(y, [0, 3, 1, 2])
''',
    "tf_pixel_shuffle": '''
def tf_pixel_shuffle(x, r):
    """PyTorch pixel_shuffle: out[n, c, h*r+i, w*r+j] = in[n, c*r*r + i*r + j, h, w]."""
    n, c, h, w = x.shape
    y = tf.transpose(tf.reshape(x, [n, c // (r * r), r, r, h, w]), [0, 1, 4, 2, 5, 3])
    return tf.reshape(y, [n, c // (r * r), h * r, w * r])
''',
    "tf_pixel_unshuffle": '''
def tf_pixel_unshuffle(x, r):
    """PyTorch pixel_unshuffle, the inverse of pixel_shuffle."""
    n, c, h, w = x.shape
    y = tf.transpose(tf.reshape(x, [n, c, h // r, r, w // r, r]), [0, 1, 3, 5, 2, 4])
    return tf.reshape(y, [n, c * r * r, h // r, w // r])
''',
}


class SpatialOp(NNOp):
    helper_sources = TF_HELPERS


# ---- convolution and pooling ---------------------------------------------------------

class Conv(SpatialOp):
    """convNd with bias: x (N, C, *S), weight (O, C/groups, *K), bias (O,)."""

    n_inputs = 3
    weight_inputs = (1, 2)
    tf_helpers = ("tf_conv_nchw",)

    def __init__(self, nd: int, dtypes: Sequence[str], tf_dtypes: Sequence[str] | None = None) -> None:
        super().__init__(f"Conv{nd}d", dtypes, tf_dtypes)
        self.nd = nd
        self.rounding = "accumulate"
        self.ranks = [(nd + 2, nd + 2, 1)]

    def int_attrs(self, ranks, sampled):
        attrs = {"out_channels": (1, 32), "groups": (1, 4)}
        for s in SPATIAL[self.nd]:
            attrs.update({f"kernel_{s}": (1, 5), f"stride_{s}": (1, 3), f"padding_{s}": (0, 2), f"dilation_{s}": (1, 2)})
        return attrs

    def requires(self, ins, attrs):
        x, w, b = (t.shape for t in ins)
        g, out = attrs["groups"], attrs["out_channels"]
        cons = [x[1] % g == 0, out % g == 0, w[0] == out, w[1] * g == x[1], b[0] == out]
        for i, s in enumerate(SPATIAL[self.nd]):
            k, p, d = attrs[f"kernel_{s}"], attrs[f"padding_{s}"], attrs[f"dilation_{s}"]
            cons += [w[2 + i] == k, d * (k - 1) + 1 <= x[2 + i] + 2 * p]
        return cons

    def output_types(self, ins, attrs):
        x = ins[0].shape
        spatial = [_conv_len(x[2 + i], attrs[f"kernel_{s}"], attrs[f"stride_{s}"], attrs[f"padding_{s}"],
                             attrs[f"dilation_{s}"]) for i, s in enumerate(SPATIAL[self.nd])]
        return [SymTensor([x[0], attrs["out_channels"], *spatial], ins[0].dtype)]

    def torch_code(self, args, attrs):
        nd = self.nd
        return (f"{F}.conv{nd}d({args[0]}, {args[1]}, {args[2]}, stride={_tup(attrs, 'stride', nd)}, "
                f"padding={_tup(attrs, 'padding', nd)}, dilation={_tup(attrs, 'dilation', nd)}, groups={attrs['groups']})")

    def tf_code(self, args, attrs):
        nd = self.nd
        return (f"tf_conv_nchw({args[0]}, {args[1]}, {args[2]}, {list(_tup(attrs, 'stride', nd))}, "
                f"{list(_tup(attrs, 'padding', nd))}, {list(_tup(attrs, 'dilation', nd))})")


class Pool(SpatialOp):
    """max/avg poolNd, floor mode, symmetric padding of at most half the kernel."""

    n_inputs = 1
    tf_helpers = ("tf_pool_nchw",)

    def __init__(self, kind: str, nd: int, dtypes: Sequence[str]) -> None:
        super().__init__(f"{kind.capitalize()}Pool{nd}d", dtypes)
        self.kind, self.nd = kind, nd
        self.ranks = [(nd + 2,)]
        self.rounding = "exact" if kind == "max" else "accumulate"

    def sample_attrs(self, ranks, dtypes, rng):
        return {"count_include_pad": rng.random() < 0.5} if self.kind == "avg" else {}

    def int_attrs(self, ranks, sampled):
        attrs = {}
        for s in SPATIAL[self.nd]:
            attrs.update({f"kernel_{s}": (1, 5), f"stride_{s}": (1, 3), f"padding_{s}": (0, 2)})
        return attrs

    def requires(self, ins, attrs):
        x = ins[0].shape
        cons = []
        for i, s in enumerate(SPATIAL[self.nd]):
            k, p = attrs[f"kernel_{s}"], attrs[f"padding_{s}"]
            cons += [2 * p <= k, k <= x[2 + i] + 2 * p]
        return cons

    def output_types(self, ins, attrs):
        x = ins[0].shape
        spatial = [_conv_len(x[2 + i], attrs[f"kernel_{s}"], attrs[f"stride_{s}"], attrs[f"padding_{s}"])
                   for i, s in enumerate(SPATIAL[self.nd])]
        return [SymTensor([x[0], x[1], *spatial], ins[0].dtype)]

    def _windows(self, attrs):
        return tuple(_tup(attrs, n, self.nd) for n in ("kernel", "stride", "padding"))

    def torch_code(self, args, attrs):
        k, s, p = self._windows(attrs)
        extra = f", count_include_pad={attrs['count_include_pad']}" if self.kind == "avg" else ""
        return f"{F}.{self.kind}_pool{self.nd}d({args[0]}, kernel_size={k}, stride={s}, padding={p}{extra})"

    def tf_code(self, args, attrs):
        k, s, p = self._windows(attrs)
        extra = f", count_include_pad={attrs['count_include_pad']}" if self.kind == "avg" else ""
        return f"tf_pool_nchw({args[0]}, {self.kind!r}, {list(k)}, {list(s)}, {list(p)}{extra})"


class AdaptiveAvgPool2d(SpatialOp):
    n_inputs = 1
    rounding = "accumulate"
    ranks = [(4,)]
    tf_helpers = ("tf_adaptive_avg_pool2d",)

    def int_attrs(self, ranks, sampled):
        return {"out_h": (1, 16), "out_w": (1, 16)}

    def output_types(self, ins, attrs):
        x = ins[0].shape
        return [SymTensor([x[0], x[1], attrs["out_h"], attrs["out_w"]], ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"{F}.adaptive_avg_pool2d({args[0]}, ({attrs['out_h']}, {attrs['out_w']}))"

    def tf_code(self, args, attrs):
        return f"tf_adaptive_avg_pool2d({args[0]}, {attrs['out_h']}, {attrs['out_w']})"


# ---- padding and resizing ------------------------------------------------------------

PAD_NAMES = (("left", "right"), ("top", "bottom"))  # last dim, then the one before (torch order)


class Pad(SpatialOp):
    """F.pad on the last 1 or 2 dims. Non-constant modes take the ranks PyTorch accepts
    (2-3 for 1 dim, 3-4 for 2 dims); reflect needs every pad smaller than its dim."""

    n_inputs = 1

    def __init__(self, mode: str, dtypes: Sequence[str]) -> None:
        super().__init__(f"Pad{mode.capitalize()}", dtypes)
        self.mode = mode
        self.rounding = "exact"
        self.ranks = [(r,) for r in range(1, 5)] if mode == "constant" else [(2,), (3,), (4,)]
        if mode == "replicate":
            self.tf_helpers = ("tf_replicate_pad",)

    def sample_attrs(self, ranks, dtypes, rng):
        r = ranks[0]
        if self.mode == "constant":
            n_dims = rng.choice([n for n in (1, 2) if n <= r])
            value = rng.choice((0, 1, 3) if dtypes[0] in INTS else (0.0, -1.5, 2.0, 0.25))
            return {"n_dims": n_dims, "value": value}
        return {"n_dims": {2: 1, 3: rng.choice((1, 2)), 4: 2}[r]}

    def _names(self, sampled):
        return [name for pair in PAD_NAMES[:sampled["n_dims"]] for name in pair]

    def int_attrs(self, ranks, sampled):
        return {name: (0, 4) for name in self._names(sampled)}

    def requires(self, ins, attrs):
        if self.mode != "reflect":
            return []
        x = ins[0].shape
        return [attrs[name] < x[-1 - j] for j, pair in enumerate(PAD_NAMES[:attrs["n_dims"]]) for name in pair]

    def output_types(self, ins, attrs):
        shape = list(ins[0].shape)
        for j, (before, after) in enumerate(PAD_NAMES[:attrs["n_dims"]]):
            shape[-1 - j] = shape[-1 - j] + attrs[before] + attrs[after]
        return [SymTensor(shape, ins[0].dtype)]

    def torch_code(self, args, attrs):
        pads = tuple(attrs[name] for name in self._names(attrs))
        extra = f", value={attrs['value']!r}" if self.mode == "constant" else ""
        return f"{F}.pad({args[0]}, {pads}, mode={self.mode!r}{extra})"

    def tf_code(self, args, attrs):
        x, n = args[0], attrs["n_dims"]
        pairs = [[attrs[b], attrs[a]] for b, a in PAD_NAMES[:n]]  # last dim first
        if self.mode == "replicate":
            return f"tf_replicate_pad({x}, {[[-1 - j, b, a] for j, (b, a) in enumerate(pairs)]})"
        paddings = f"[[0, 0]] * (len({x}.shape) - {n}) + {pairs[::-1]}"
        if self.mode == "constant":
            return f"tf.pad({x}, {paddings}, constant_values={attrs['value']!r})"
        return f"tf.pad({x}, {paddings}, mode='REFLECT')"


class Interpolate(SpatialOp):
    """F.interpolate, align_corners=False, to an integer size or by scale factor 2.
    ``nearest`` on 3-D and 4-D inputs; ``linear`` is linear (3-D) or bilinear (4-D)."""

    n_inputs = 1
    ranks = [(3,), (4,)]
    tf_helpers = ("tf_resize_nchw",)

    def __init__(self, method: str) -> None:
        super().__init__(f"Interpolate{method.capitalize()}", FLOATS)
        self.method = method
        self.rounding = "exact" if method == "nearest" else ""

    def sample_attrs(self, ranks, dtypes, rng):
        mode = self.method if self.method == "nearest" else {3: "linear", 4: "bilinear"}[ranks[0]]
        return {"mode": mode, "scale2": rng.random() < 0.3}

    def int_attrs(self, ranks, sampled):
        return {} if sampled["scale2"] else {f"size_{s}": (1, 48) for s in SPATIAL[ranks[0] - 2]}

    def output_types(self, ins, attrs):
        x = ins[0].shape
        nd = len(x) - 2
        spatial = [2 * x[2 + i] if attrs["scale2"] else attrs[f"size_{s}"] for i, s in enumerate(SPATIAL[nd])]
        return [SymTensor([x[0], x[1], *spatial], ins[0].dtype)]

    @staticmethod
    def _size(attrs):
        return tuple(attrs[f"size_{s}"] for s in ("l", "h", "w") if f"size_{s}" in attrs)

    def torch_code(self, args, attrs):
        how = "scale_factor=2.0" if attrs["scale2"] else f"size={self._size(attrs)}"
        corners = "" if attrs["mode"] == "nearest" else ", align_corners=False"
        return f"{F}.interpolate({args[0]}, {how}, mode={attrs['mode']!r}{corners})"

    def tf_code(self, args, attrs):
        x = args[0]
        size = f"[2 * d for d in {x}.shape[2:]]" if attrs["scale2"] else str(list(self._size(attrs)))
        return f"tf_resize_nchw({x}, {size}, {self.method!r})"


class PixelShuffle(SpatialOp):
    n_inputs = 1
    ranks = [(4,)]

    def __init__(self, inverse: bool) -> None:
        super().__init__("PixelUnshuffle" if inverse else "PixelShuffle", FLOATS + INTS)
        self.inverse = inverse
        self.rounding = "exact"
        self.fn = "pixel_unshuffle" if inverse else "pixel_shuffle"
        self.tf_helpers = (f"tf_{self.fn}",)

    def int_attrs(self, ranks, sampled):
        return {"factor": (1, 3)}

    def requires(self, ins, attrs):
        n, c, h, w = ins[0].shape
        r = attrs["factor"]
        return [h % r == 0, w % r == 0] if self.inverse else [c % (r * r) == 0]

    def output_types(self, ins, attrs):
        n, c, h, w = ins[0].shape
        r = attrs["factor"]
        shape = [n, c * r * r, h / r, w / r] if self.inverse else [n, c / (r * r), h * r, w * r]
        return [SymTensor(shape, ins[0].dtype)]

    def torch_code(self, args, attrs):
        return f"{F}.{self.fn}({args[0]}, {attrs['factor']})"

    def tf_code(self, args, attrs):
        return f"tf_{self.fn}({args[0]}, {attrs['factor']})"


SPECS: list[OpSpec] = [
    Conv(1, FLOATS),  # integer convs: PyTorch has no dilated kernel for them, TensorFlow no int64
    Conv(2, FLOATS),
    Pool("max", 1, FLOATS),  # PyTorch max_pool1d has no integer kernel
    Pool("max", 2, FLOATS + INTS),
    Pool("avg", 1, FLOATS),
    Pool("avg", 2, FLOATS),
    AdaptiveAvgPool2d("AdaptiveAvgPool2d", FLOATS),
    Pad("constant", FLOATS + INTS),
    Pad("reflect", FLOATS + INTS),
    Pad("replicate", FLOATS + INTS),
    Interpolate("nearest"),
    Interpolate("linear"),
    PixelShuffle(inverse=False),
    PixelShuffle(inverse=True),
]
