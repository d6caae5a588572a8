"""Does a model's integer arithmetic overflow in eager mode, on given values?

Integer values across a dtype's range (``ValueSpec`` mode ``"limits"``) test compilers'
overflow paths and wide-range kernels, but only where eager itself computes the exact
result: an ``int8`` add that wraps makes eager a wrong reference (and C compilers may
assume signed overflow never happens), so a difference there proves nothing (DESIGN §5).

The check recomputes the model with the wide-range integer leaves *widened* to float64
(other narrow integer leaves, and narrow integer dtype attributes such as casts, to
int64; small int64 leaves such as indices stay), fed with exactly the same values, and
compares every integer and bool intermediate with the eager run: in the widened model
the first overflowing operator computes the true value, which the narrow one cannot
hold. float64, not int64, because frameworks promote integer sums and products to int64
(``torch.cumprod`` of int32 gives int64), where a wrap would go unseen. A result is
exact when it lies within float64 rounding (relative 2^-40) of the widened one; a wrap
moves it by 2^bits.

The answer is ``True`` (overflows), ``False`` (verified exact) or ``None`` (cannot tell:
the widened model raised, e.g. a bitwise op on float64, or changed shape). Callers fall
back to small values unless the answer is ``False``. A ``True`` can be conservative
(``bitwise_not`` of a ``uint8`` reads as a wrap), never the other way round.
"""

from __future__ import annotations

import warnings
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import INT_DTYPES
from corpus.values import ValueSpec
from rules.execute import load_module
from rules.spec import OpSpec

NARROW = ("int8", "int16", "int32", "uint8")
FLOAT64_RTOL = 2.0**-40  # float64 rounding over a chain of ops, far below a wrap (2^64)


def widened_graph(graph: Graph) -> Graph:
    """``graph`` with narrow integer dtype attributes (casts) turned into int64: a cast
    that wraps in the model is then exact in the widened one, and shows."""
    data = graph.to_json()
    for node in data["nodes"]:
        if node["kind"] == "op":
            node["attrs"] = {k: ("int64" if isinstance(v, str) and v in NARROW else v) for k, v in node["attrs"].items()}
    return Graph.from_json(data)


def _widen(framework: str, t: Any, wide: bool) -> Any:
    """A leaf tensor widened: to float64 for a wide-range leaf, narrow integers to int64."""
    if framework == "torch":
        import torch

        if wide:
            return t.to(torch.float64)
        return t.to(torch.int64) if t.dtype in (torch.int8, torch.int16, torch.int32, torch.uint8) else t
    import tensorflow as tf

    if wide:
        return tf.cast(t, tf.float64)
    return tf.cast(t, tf.int64) if t.dtype in (tf.int8, tf.int16, tf.int32, tf.uint8) else t


def _run(framework: str, model: Any, inputs: list[Any]) -> Any:
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model(*inputs)
    return model(*inputs)


def same_integers(narrow: np.ndarray, wide: np.ndarray) -> bool:
    """Is ``narrow`` (an integer result of the model) the exact value ``wide`` (the widened
    model's result for it)? Bools are not judged: no bool op overflows, and a comparison
    of int64 values near 2^63 rounds in float64 (the integer op before it is judged)."""
    if narrow.shape != wide.shape:
        return False
    if narrow.dtype.kind == "b":
        return True
    if wide.dtype.kind in "iu":
        return bool((narrow.astype(np.int64) == wide.astype(np.int64)).all())
    if wide.dtype.kind != "f":
        return False
    w = wide.astype(np.float64)
    with np.errstate(invalid="ignore"):
        # a wrap moves a value by 2^bits, far beyond float64's rounding of int64 values
        return bool((np.abs(narrow.astype(np.float64) - w) <= FLOAT64_RTOL * np.abs(w)).all())


def overflows(graph: Graph, framework: str, values: Mapping[int, ValueSpec], specs: Mapping[str, OpSpec],
              eager: Sequence[np.ndarray] | None = None, wide: Collection[int] | None = None,
              signed_only: bool = False) -> bool | None:
    """Does some integer intermediate of ``graph`` overflow in eager on ``values``?

    ``eager``: the eager results of ``graph``'s outputs when the caller has them (a value
    search runs the model with every intermediate as an output); computed otherwise.
    ``wide``: the leaves with wide-range values (default: those of mode ``"limits"``).
    ``signed_only``: unsigned results may wrap (modular arithmetic is defined in C and in
    every framework: a compiler must wrap the same way).
    """
    if wide is None:
        wide = [n for n, v in values.items() if v.mode == "limits"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ns = load_module(graph, framework, values, specs)
            consts = ns["CONSTS"]()
            inputs = ns["INPUTS"]()
            if eager is None:
                eager = [np.asarray(ns["to_numpy"](o)) for o in _run(framework, ns["Model"](consts), inputs)]
            wide_ns = load_module(widened_graph(graph), framework, values, specs)
            wide_model = wide_ns["Model"]({f"c{n}": _widen(framework, consts[f"c{n}"], n in wide)
                                           for n in graph.leaves("const")})
            # fresh inputs: the eager run above may have written its own in place
            wide_inputs = [_widen(framework, x, n in wide) for n, x in zip(graph.leaves("input"), ns["INPUTS"]())]
            widened = [np.asarray(wide_ns["to_numpy"](o)) for o in _run(framework, wide_model, wide_inputs)]
    except Exception:  # noqa: BLE001 - the widened model is not runnable: cannot tell
        return None
    if len(widened) != len(eager):
        return None
    for (node, index), narrow, w in zip(graph.outputs, eager, widened):
        narrow = np.asarray(narrow)
        op = graph.node(node).op
        if narrow.dtype.kind not in "iub" or (op is not None and index in specs[op].unstable_outputs) or \
                (signed_only and narrow.dtype.kind == "u"):
            continue  # floats, and tie-order indices (sort of tied values): nothing to overflow
        if narrow.dtype.kind != "b" and str(narrow.dtype) not in INT_DTYPES:
            return None
        if not same_integers(narrow, np.asarray(w)):
            return True
    return False


def overflowing_operator(graph: Graph, framework: str, specs: Mapping[str, OpSpec], nodes: Sequence[int],
                         env: Mapping[tuple[int, int], np.ndarray], signed_only: bool = False) -> int | None:
    """The first of ``nodes`` (integer arithmetic) whose eager integer result wraps, given
    every value of one eager run (``env``, by graph value): the op alone, rerun with its
    integer inputs widened to float64, must give the same integers.

    Op by op, because the integers may not come from a leaf at all: ``pow(n, n)`` of a
    ``count_nonzero`` of floats wraps in int64 whatever the leaves, and widening the leaves
    widens nothing there (seed 33's tf.xla false alarm: 65^65). An op the widened inputs
    do not run (bitwise ops of float64) cannot be told, and is passed. ``signed_only``: as
    for ``overflows``."""
    from rules.codegen import module_source

    for n in nodes:
        node = graph.node(n)
        sub = Graph()
        inputs = graph.inputs_of(n)
        leaves = [sub.add_leaf(graph.type_of(v)) for v in inputs]
        sub.outputs = sub.add_op(node.op, node.attrs, leaves, node.types)  # type: ignore[arg-type]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                space: dict[str, Any] = {"__name__": "dlfuzz_overflow_operator"}
                exec(compile(module_source(sub, framework, specs), "<dlfuzz overflow operator>", "exec"), space)
                args = [_tensor(framework, env[v], graph.type_of(v).dtype) for v in inputs]
                wide = [np.asarray(space["to_numpy"](o)) for o in _run(framework, space["Model"]({}), args)]
        except Exception:  # noqa: BLE001 - this op does not run widened: cannot tell
            continue
        for index, w in enumerate(wide):
            narrow = np.asarray(env.get((n, index)))
            if narrow.dtype.kind in ("i" if signed_only else "iu") and index not in specs[node.op].unstable_outputs \
                    and not same_integers(narrow, w):  # type: ignore[index]
                return n
    return None


def _tensor(framework: str, array: np.ndarray, dtype: str) -> Any:
    """A value of ``dtype`` as the framework's tensor: integers widened to float64."""
    wide = dtype in INT_DTYPES
    array = np.asarray(array, dtype=np.float64) if wide else np.asarray(array)
    if framework == "torch":
        import torch

        return torch.from_numpy(array.copy()).to(torch.float64 if wide else getattr(torch, dtype))
    import tensorflow as tf

    return tf.cast(tf.constant(array), tf.float64 if wide else getattr(tf, dtype))
