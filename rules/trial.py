"""Trial runs: execute one operator instance eagerly before it enters a graph.

An inferred rule is right for most instances, not all (its precision is measured, and
0.95 is good). In a model of ten inferred operators one wrong rule is likely, and one
wrong rule makes the whole model invalid. So the generator runs each new instance of a
spec with ``needs_trial`` on small random inputs of the solved types, and keeps it only
if the framework accepts the call, returns exactly the predicted output types, and
returns the same values when run again (a random instance would be a false alarm).
This is NeuRI's concolic step made concrete: a millisecond per operator buys
whole-model validity.

With ``graph_mode`` (a campaign that tests ``tf.function`` or ``tf.xla``) a TensorFlow
instance must also trace and run inside ``tf.function``: many TF APIs accept in eager
calls that graph mode forbids (``tf.constant`` of a tensor, ``tf.reverse`` with a scalar
axis). Such a call would fail alike under ``tf.function`` and XLA, a contract of graph
mode and not a compiler bug, and make the whole model fail on every graph backend.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from corpus.graph import Graph
from corpus.tensor_type import TensorType, is_float
from corpus.values import ValueSpec
from rules.execute import all_finite, load_module, run_eager
from rules.semantics import keeps_argument_contract
from rules.spec import OpSpec

POSITIVE = (0.5, 2.0)
# How a dtype comes back from ``to_numpy`` (bfloat16 travels as float32).
_NUMPY_NAME = {"bfloat16": "float32"}


def _range(spec: OpSpec, position: int, ttype: TensorType) -> tuple[float, float]:
    preferred = spec.value_range(position, ttype.dtype)
    if preferred is not None:
        return preferred
    if is_float(ttype.dtype):
        return (-2.0, 2.0)
    return (0, 1) if ttype.dtype in ("bool", "uint8") else (-4, 4)


def trial_run(spec: OpSpec, framework: str, in_types: Sequence[TensorType], attrs: dict,
              out_types: Sequence[TensorType], seed: int, graph_mode: bool = False) -> bool:
    """Whether ``spec`` with ``attrs`` runs on inputs of ``in_types`` and gives ``out_types``.

    Any exception of the framework is a "no": it is data about the rule, not a fault.
    An instance whose outputs are NaN/Inf on finite inputs is a "no" too, unless positive
    inputs cure it (``log``, ``sqrt``: the value search finds those): ``std`` of a single
    element is NaN whatever the values, and would only make the model invalid.
    ``graph_mode``: a TensorFlow instance must run inside ``tf.function`` too.
    """
    if not keeps_argument_contract(str(getattr(spec, "api", "") or ""), [tuple(t.shape) for t in in_types], attrs):
        return False  # eager would run it, on terms the API does not promise (rules.semantics)
    g = Graph()
    leaves = [g.add_leaf(t) for t in in_types]
    g.outputs = g.add_op(spec.id, attrs, leaves, list(out_types))
    for positive in (False, True):
        values = {v[0]: ValueSpec(seed + i, *(POSITIVE if positive and is_float(t.dtype) else _range(spec, i, t)))
                  for i, (v, t) in enumerate(zip(leaves, in_types))}
        try:
            arrays = run_eager(g, framework, values, {spec.id: spec})
        except Exception:  # noqa: BLE001 - the framework refused the call
            return False
        if len(arrays) != len(out_types):
            return False
        for a, t in zip(arrays, out_types):
            if tuple(np.shape(a)) != tuple(t.shape) or str(np.asarray(a).dtype) != _NUMPY_NAME.get(t.dtype, t.dtype):
                return False
        if all_finite(arrays):
            return _same_again(g, framework, values, spec, arrays) and \
                (not graph_mode or framework != "tensorflow" or _runs_in_graph(g, values, spec))
    return False


def _runs_in_graph(g: Graph, values: dict, spec: OpSpec) -> bool:
    """Whether the instance traces and runs inside ``tf.function`` (no XLA): its values are
    not compared, since a difference from eager would be a bug of tf.function to find."""
    import tensorflow as tf

    try:
        ns = load_module(g, "tensorflow", values, {spec.id: spec})
        fn = tf.function(ns["Model"](ns["CONSTS"]()).__call__, autograph=False)
        fn(*ns["INPUTS"]())
    except Exception:  # noqa: BLE001 - graph mode refused the call
        return False
    return True


def _same_again(g: Graph, framework: str, values: dict, spec: OpSpec, first: list) -> bool:
    """Whether a second run on the same inputs gives the same outputs, bit for bit.

    An instance that draws random numbers (``scaled_dot_product_attention`` with
    ``dropout_p=0.5``, an API whose name does not say it is random) computes something
    else under every backend: a compiler's random stream is its own, so the difference
    would be a false alarm. The global generator moves on between the two runs, so a
    random instance differs."""
    try:
        again = run_eager(g, framework, values, {spec.id: spec})
    except Exception:  # noqa: BLE001 - accepted once, refused now: not a stable instance
        return False
    return all(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) for a, b in zip(first, again))
