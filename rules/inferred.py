"""Inferred operator specs (DESIGN §3): an OpSpec built from one rule of the rule store.

The rule's template gives the signature (one rank combination; the dtype combinations
seen valid), its integer symbols that are attributes become z3-solved attributes over
the range seen valid, its float slots are sampled from the values seen valid, the
constraints become ``requires`` and the shape expressions ``output_types``.
Materialization renders the recorded call with the generator's tensors and values:
``torch.nn.functional.conv2d(x1, c2, c3, dilation=[2, 1])``, ``x1.transpose(0, 1)`` for a
Tensor method, ``tf.raw_ops.Conv2D(input=x1, ...)``.

Only rules the generator can use become specs (``usable``): a single tensor output or a
fixed tuple of them; inputs that are tensors, integers, booleans, floats, strings, None
or dtypes; a precision at least ``min_precision``; an API that is deterministic. A torch
API named with a trailing ``_`` writes its first argument, a tensor, in place: it is usable
when the rule says the result keeps that tensor's shape and dtype (``add_``, ``clamp_``,
``masked_fill_``; not ``t_`` or ``unsqueeze_``), and its spec ``mutates`` that input.
"""

from __future__ import annotations

import hashlib
import random
import re
from functools import lru_cache
from typing import Any, Sequence

from corpus.tensor_type import ALL_DTYPES, BOOL_DTYPES, FLOAT_DTYPES
from rules.infer.expr import parse_expr, parse_pred, pred_to_z3, side_conditions, to_z3
from rules.semantics import meet_preconditions
from rules.spec import OpSpec, SymTensor

MIN_PRECISION = 0.9
TORCH_PROPERTIES = frozenset({"T", "mT", "H", "mH", "real", "imag"})

# APIs a differential fuzzer must not use: random, approximate (``approx_max_k``: each
# backend may pick other elements) or uninitialized results, writes into inputs, private
# entry points, Python-level indexing (tuples are recorded as lists).
_DENY = {
    "torch": re.compile(r"\._[A-Za-z]|rand|normal|bernoulli|multinomial|poisson|dropout|rrelu|gumbel|fractional|"
                        r"empty|uniform|exponential|geometric|cauchy|log_normal|__getitem__|__setitem__|"
                        r"__i[a-z]+__$|\.set_$|\.resize|\.share_memory|\.pin_memory|\.record_stream|"
                        r"\.nn\.init\.|\.cuda|\.to_sparse|\.to_mkldnn|\.detach_|\.requires_grad|\.retain_grad|"
                        r"\.backward|\.register_hook|seed|\.data_ptr|\.storage|\.tolist|\.numpy|\.item$|"
                        r"\.new_tensor|\.as_strided|\.unique|\.nonzero|\.masked_select|torch\.Tensor\.type$"),
    "tensorflow": re.compile(r"\._[A-Za-z]|random|Random|dropout|Dropout|shuffle|Shuffle|Variable|Assign|"
                             r"sample|Sample|__getitem__|Unique|unique|uniform|Uniform|"
                             r"Multinomial|Stateful|stateless|Stateless|ResourceGather|Print|Empty\b|"
                             r"(^|\.)empty$|Timestamp|\.print$|Save|Restore|Reader|Queue|Iterator|Dataset|"
                             r"approx_|ApproxTopK"),
}

_CONCRETE_TAGS = frozenset({"dtype"})
# torch's in-place naming: ``add_``, ``clamp_`` (not dunders such as ``__iadd__``)
_INPLACE = {"torch": re.compile(r"[a-z0-9]_$")}
# in-place APIs whose result jumps under tiny input changes while keeping a float dtype
# (``x.eq_(y)`` writes 0.0/1.0 into x), which no float-to-integer rule would notice
_JUMPS_INPLACE = re.compile(r"\.(eq|ne|lt|le|gt|ge|floor|ceil|round|trunc|frac|sign|sgn|heaviside|remainder|fmod|"
                            r"floor_divide|atan2|logical_and|logical_or|logical_xor|logical_not)_$")


def written_input(rule: dict, framework: str) -> int | None:
    """The tensor an in-place API writes (its first argument), None for other APIs."""
    pattern = _INPLACE.get(framework)
    if pattern is None or not pattern.search(rule["api"]):
        return None
    args = rule["template"]["args"]
    return _as_dict(args[0]).get("$tensor", -1) if args else -1


def _inplace_problem(rule: dict, k: int) -> str | None:
    """Why an in-place rule cannot be a spec that ``mutates`` tensor ``k``, or None."""
    if k < 0:
        return "in-place API whose first argument is not a tensor"
    rank = int(rule["template"]["tensors"][k]["rank"])
    shapes = rule["outputs"]["shapes"]
    if len(shapes) != 1 or [str(e).replace(" ", "") for e in shapes[0]] != [f"t{k}_{j}" for j in range(rank)]:
        return "in-place API that changes the shape of what it writes"
    if any(len(d["out"]) != 1 or d["out"][0] != d["in"][k] for d in rule["dtypes"]):
        return "in-place API that changes the dtype of what it writes"
    return None


def rule_id(api: str, key: str, digits: int = 4) -> str:
    return f"{api}#{hashlib.sha1(key.encode()).hexdigest()[:digits]}"


def _template_ok(node: Any, framework: str) -> str | None:
    if isinstance(node, list):
        for v in node:
            why = _template_ok(v, framework)
            if why:
                return why
        return None
    if isinstance(node, dict):
        if "$tensor" in node or "$sym" in node or "$float" in node:
            return None
        if node.get("type") in _CONCRETE_TAGS:
            return None
        return f"argument value {node.get('type', 'object')!r} cannot be materialized"
    return None


def usable(rule: dict, framework: str, min_precision: float | None = MIN_PRECISION) -> str | None:
    """Why the generator cannot use ``rule`` (None when it can); ``min_precision=None``
    skips the precision test (a replay of a recorded call needs no precise rule)."""
    api = rule["api"]
    if _DENY[framework].search(api):
        return "nondeterministic, in-place or private API"
    k = written_input(rule, framework)
    if k is not None and _inplace_problem(rule, k):
        return _inplace_problem(rule, k)
    tpl = rule["template"]
    for t in tpl["tensors"]:
        if t.get("kind") == "variable" or (t.get("kind") == "ndarray" and framework == "torch"):
            return f"input of kind {t['kind']}"
    why = _template_ok(tpl["args"], framework) or _template_ok(list(tpl["kwargs"].values()), framework)
    if why:
        return why
    if not _dtype_combos(rule):
        return "no dtype combination the generator makes"
    p = rule.get("precision")
    if min_precision is not None and (p is None or p < min_precision):
        return f"precision {p} below {min_precision}"
    if framework == "torch" and api.startswith("torch.Tensor.") and not (tpl["args"] and "$tensor" in _as_dict(tpl["args"][0])):
        return "Tensor method without a tensor receiver"
    return None


def _as_dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _dtype_combos(rule: dict, everything: bool = False) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    out = []
    for d in rule["dtypes"]:
        ins, outs = tuple(d["in"]), tuple(d["out"])
        if everything or all(x in ALL_DTYPES for x in ins + outs):
            out.append((ins, outs))
    return out


# ---- materialization --------------------------------------------------------------------------

def _literal(value: Any, framework: str) -> str:
    if isinstance(value, dict):
        if value.get("type") == "dtype":
            return f"{'torch' if framework == 'torch' else 'tf'}.{value['value']}"
        raise ValueError(f"cannot materialize {value!r}")
    if isinstance(value, float):
        return repr(value)
    return repr(value)


def render(node: Any, args: Sequence[str], attrs: dict[str, Any], framework: str) -> str:
    if isinstance(node, list):
        return "[" + ", ".join(render(v, args, attrs, framework) for v in node) + "]"
    if isinstance(node, dict):
        if "$tensor" in node:
            return args[node["$tensor"]]
        for tag, cast in (("$sym", int), ("$float", float)):
            if tag in node:
                v = attrs[node[tag]]
                return v if isinstance(v, str) else repr(cast(v))  # a name: the symbolic form for display
    return _literal(node, framework)


def call_source(rule: dict, framework: str, args: Sequence[str], attrs: dict[str, Any]) -> str:
    tpl = rule["template"]
    api = rule["api"]
    pos = [render(a, args, attrs, framework) for a in tpl["args"]]
    kw = [f"{k}={render(v, args, attrs, framework)}" for k, v in tpl["kwargs"].items()]
    method = None
    if framework == "torch" and api.startswith("torch.Tensor."):
        method = api[len("torch.Tensor."):]
    elif framework == "tensorflow" and api.startswith("tf.Tensor."):
        method = api[len("tf.Tensor."):]
    if method is not None and tpl["args"] and "$tensor" in _as_dict(tpl["args"][0]):
        if framework == "torch" and method in TORCH_PROPERTIES and len(pos) == 1 and not kw:
            return f"{pos[0]}.{method}"
        return f"{pos[0]}.{method}({', '.join(pos[1:] + kw)})"
    return f"{api}({', '.join(pos + kw)})"


# ---- the spec ---------------------------------------------------------------------------------

class InferredSpec(OpSpec):
    """An OpSpec from one rule. ``all_dtypes`` admits dtypes the generator never makes
    (complex ...), for measuring a rule's precision on everything it was inferred from."""

    origin = "inferred"
    needs_trial = True  # a rule is right 95% of the time: the generator runs each instance once

    def __init__(self, rule: dict, framework: str, all_dtypes: bool = False) -> None:
        self.rule = rule
        self.all_dtypes = all_dtypes
        self.id = rule["id"]
        self.api = rule["api"]
        self.frameworks = (framework,)
        self.one_framework_reason = f"inferred from {framework} API traces"
        tpl = rule["template"]
        self.n_inputs = len(tpl["tensors"])
        self.ranks = tuple(int(t["rank"]) for t in tpl["tensors"])
        self.table = {ins: outs for ins, outs in _dtype_combos(rule, all_dtypes)}
        self.domains = {k: (int(v[0]), int(v[1])) for k, v in tpl["attrs"].items()}
        self.float_values = {k: list(v) for k, v in tpl["floats"].items()}
        self.constraints = [parse_pred(c) for c in rule["constraints"]]
        self.shapes = [[parse_expr(e) for e in shape] for shape in rule["outputs"]["shapes"]]
        self.int_input_range = (0, 2)  # the values the corpus's calls were made with
        written = written_input(rule, framework)
        self.mutates = (written,) if written is not None and written >= 0 else ()
        self.discontinuous = bool(self.mutates) and bool(_JUMPS_INPLACE.search(self.api))

    def rank_options(self) -> list[tuple[int, ...]]:
        return [self.ranks]

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        return list(self.table)

    def sample_attrs(self, ranks: tuple[int, ...], dtypes: tuple[str, ...], rng: random.Random) -> dict[str, Any]:
        return {k: rng.choice(v) for k, v in sorted(self.float_values.items())}

    def int_attrs(self, ranks: tuple[int, ...], sampled: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return dict(self.domains)

    def _env(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> dict[str, Any]:
        env: dict[str, Any] = {}
        for i, t in enumerate(ins):
            for k, d in enumerate(t.shape):
                env[f"t{i}_{k}"] = d
        for k in self.domains:
            env[k] = attrs[k]
        return env

    def requires(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list:
        env = self._env(ins, attrs)
        return [pred_to_z3(p, env) for p in self.constraints] + \
            side_conditions([e for shape in self.shapes for e in shape], env)

    def output_types(self, ins: Sequence[SymTensor], attrs: dict[str, Any]) -> list[SymTensor]:
        env = self._env(ins, attrs)
        outs = self.table.get(tuple(t.dtype for t in ins))
        if outs is None:
            outs = next(iter(self.table.values()))
        return [SymTensor([to_z3(e, env) for e in shape], dt) for shape, dt in zip(self.shapes, outs)]

    def code(self, framework: str, args: Sequence[str], attrs: dict[str, Any]) -> str:
        if framework not in self.frameworks:
            raise NotImplementedError(f"{self.id} is a {self.frameworks[0]} operator")
        # a sorted-sequence argument is sorted in the call (rules.semantics: preconditions)
        return call_source(self.rule, framework, meet_preconditions(self.api, self.rule["template"], framework, args),
                           attrs)

    def value_range(self, position: int, dtype: str) -> tuple[float, float] | None:
        if dtype not in FLOAT_DTYPES and dtype not in BOOL_DTYPES:
            return self.int_input_range
        return None

    def __getstate__(self) -> dict:
        return {"rule": self.rule, "framework": self.frameworks[0], "all": self.all_dtypes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["rule"], state["framework"], state["all"])


# ---- loading ------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _load(framework: str, path: str | None) -> tuple:
    from rules.store import RuleStoreError, load, load_default

    doc = load(path) if path else load_default(framework)
    if doc is None:
        return ()
    if doc["framework"] != framework:
        raise RuleStoreError(f"{path}: holds {doc['framework']} rules, not {framework}; pass a {framework} rule file")
    return tuple(doc["rules"])


def inferred_specs(framework: str, path: str | None = None, min_precision: float = MIN_PRECISION) -> list[InferredSpec]:
    """The generator-usable specs of a rule store (the shipped one by default)."""
    rules = _load(framework, str(path) if path else None)
    return [InferredSpec(r, framework) for r in rules if usable(r, framework, min_precision) is None]
