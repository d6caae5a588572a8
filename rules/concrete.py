"""Concrete operators (DESIGN §5): replays of recorded valid calls.

A rule of the store keeps a bounded sample of the valid calls it was inferred from. Each
such call is an operator of its own: its input shapes and dtypes, its integer and float
arguments and its output types are exactly those recorded. A replay needs no rule to be
right, only the record, so it brings in APIs whose rules are imprecise or too narrow
(NeuRI's "concrete operators": they raise API coverage at no cost in validity).

The generator places a replay like any other operator. Since its input types are fixed,
a replay rarely finds a matching tensor in the graph: it then takes fresh leaves as
inputs (``fresh_inputs_ok``) and its outputs are there for later operators to consume.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import z3

from corpus.tensor_type import ALL_DTYPES
from rules.inferred import InferredSpec, usable
from rules.semantics import keeps_argument_contract
from rules.spec import SymTensor


def _bind(tpl: Any, rec: Any, tensors: dict[int, dict], values: dict[str, Any]) -> None:
    """Walk a rule's call template beside one recorded call: which recorded tensor is
    tensor ``i``, which value each ``$sym`` / ``$float`` slot had."""
    if isinstance(tpl, list) and isinstance(rec, list):
        for t, r in zip(tpl, rec):
            _bind(t, r, tensors, values)
    elif isinstance(tpl, dict):
        if "$tensor" in tpl and isinstance(rec, dict):
            tensors[tpl["$tensor"]] = rec
        elif "$sym" in tpl:
            values[tpl["$sym"]] = rec
        elif "$float" in tpl:
            values[tpl["$float"]] = rec


def _outputs(sample: dict) -> list[dict]:
    outs = sample.get("outputs")
    return outs if isinstance(outs, list) else [outs]


class ConcreteSpec(InferredSpec):
    """One recorded call of a rule, replayed exactly."""

    origin = "concrete"
    fresh_inputs_ok = True

    def __init__(self, rule: dict, index: int, framework: str) -> None:
        super().__init__(rule, framework)
        self.sample_index = index
        self.id = f"{rule['id']}/{index}"
        sample = rule["samples"][index]
        tpl = rule["template"]
        tensors: dict[int, dict] = {}
        values: dict[str, Any] = {}
        _bind(tpl["args"], sample["args"], tensors, values)
        for k, v in tpl["kwargs"].items():
            _bind(v, sample["kwargs"].get(k), tensors, values)
        if sorted(tensors) != list(range(self.n_inputs)):
            raise ValueError(f"{self.id}: the recorded call does not fill every tensor of the template")
        self.in_shapes = [tuple(int(d) for d in tensors[i]["shape"]) for i in range(self.n_inputs)]
        self.in_dtypes = tuple(str(tensors[i]["dtype"]) for i in range(self.n_inputs))
        self.ranks = tuple(len(s) for s in self.in_shapes)
        outs = _outputs(sample)
        self.out_shapes = [tuple(int(d) for d in o["shape"]) for o in outs]
        self.out_dtypes = [str(o["dtype"]) for o in outs]
        self.fixed_ints = {k: int(values[k]) for k in self.domains if isinstance(values.get(k), (int, bool))}
        self.fixed_floats = {k: values[k] for k in self.float_values if k in values}
        if len(self.fixed_ints) != len(self.domains) or len(self.fixed_floats) != len(self.float_values):
            raise ValueError(f"{self.id}: the recorded call does not give every argument of the template")

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        return [self.in_dtypes]

    def sample_attrs(self, ranks: tuple[int, ...], dtypes: tuple[str, ...], rng: random.Random) -> dict[str, Any]:
        return dict(sorted(self.fixed_floats.items()))

    def int_attrs(self, ranks: tuple[int, ...], sampled: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {k: (v, v) for k, v in self.fixed_ints.items()}

    def requires(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list:
        return [d == v for t, shape in zip(ins, self.in_shapes) for d, v in zip(t.shape, shape)] + \
            [attrs[k] == v for k, v in self.fixed_ints.items() if isinstance(attrs.get(k), z3.ArithRef)]

    def output_types(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[SymTensor]:
        return [SymTensor([z3.IntVal(d) for d in shape], dt) for shape, dt in zip(self.out_shapes, self.out_dtypes)]

    def __getstate__(self) -> dict:
        return {"rule": self.rule, "framework": self.frameworks[0], "index": self.sample_index}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["rule"], state["index"], state["framework"])


def concrete_specs(framework: str, rules: Sequence[dict]) -> list[ConcreteSpec]:
    """Every replayable recorded call of ``rules``: usable whatever the rule's precision,
    with dtypes the generator makes."""
    out: list[ConcreteSpec] = []
    for rule in rules:
        if usable(rule, framework, min_precision=None) is not None:
            continue
        for i, sample in enumerate(rule.get("samples") or []):
            try:
                spec = ConcreteSpec(rule, i, framework)
            except (ValueError, KeyError, TypeError):
                continue  # a record the template does not cover: skip it, the others stand
            if all(d in ALL_DTYPES for d in spec.in_dtypes + tuple(spec.out_dtypes)) and \
                    keeps_argument_contract(spec.api, spec.in_shapes, spec.fixed_ints):
                out.append(spec)
    return out
