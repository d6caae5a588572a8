"""Harnesses: Python code around the model that torch.compile traces with it (issue 17).

A generated model's ``forward`` is straight-line tensor code, so Dynamo, the half of
``torch.compile`` that turns Python into graphs, only ever meets the simplest frame. A
case whose plan names a harness (``corpus.plan.CheckPlan.harness``) is compiled as
``torch.compile(harness(model))``: a function that calls the model through Python
containers and builtins, across a graph break, or from a module hierarchy with hooks,
and returns exactly the model's outputs. Each harness is semantically the identity (it
computes nothing of its own: no arithmetic, no copies), so the reference runs the plain
model and any difference is the compiler's.

The sources here are what the sandbox executes and what ``repro.py`` and report.md
paste verbatim, so a bug found through a harness reproduces through the same code. Each
defines ``harness(model) -> callable``; the namespace it runs in has ``torch``.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable

from corpus.plan import HARNESSES

GRAPH_BREAK = '''
def harness(model):
    """The model's outputs cross a graph break: Dynamo compiles the model's graph, then
    resumes the rest of this frame in a function of its own."""

    def run(*xs):
        outs = model(*xs)
        torch._dynamo.graph_break()
        return tuple(outs)

    return run
'''

PYTHON = '''
import collections
import dataclasses
import functools
import itertools
import operator

Result = collections.namedtuple("Result", ["values", "count"])


@dataclasses.dataclass
class Inputs:
    names: list
    values: dict

    def ordered(self):
        return [self.values[name] for name in self.names]


class Box:
    """A plain Python object holding tensors."""

    def __init__(self, items):
        self.items = list(items)
        self.seen = {}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def record(self, key, value):
        self.seen.setdefault(key, []).append(value)
        return self.seen.get(key, [None])[-1]


def harness(model):
    """The model called through Python containers, closures, classes and builtins, which
    Dynamo traces away: only the model's own tensor code is left in the graph."""
    calls = {"count": 0}

    def call(inputs, scale=None):
        calls["count"] += 1
        return model(*inputs.ordered())

    def run(*xs):
        names = [f"x{i}" for i in range(len(xs))]
        values = dict(zip(names, xs))
        values.update({k: v for k, v in values.items() if isinstance(v, torch.Tensor)})
        inputs = Inputs(sorted(values, key=lambda k: int(k[1:])), values)
        outs = functools.partial(call, scale=None)(inputs)
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        box = Box(itertools.chain(outs, ()))
        result = Result(values=[box[i] for i in range(len(box)) if i >= 0], count=len(box))
        kept = []
        for i, value in enumerate(result.values):
            if i < result.count and hasattr(value, "shape"):
                kept.append(box.record(i % 2, value))
            else:
                kept.append(value)
        first, *rest = kept if kept else [None]
        assert all(a is b for a, b in zip(kept, [first, *rest]))
        return tuple(map(operator.itemgetter(1), sorted(enumerate(kept), key=operator.itemgetter(0))))

    return run
'''

MODULES = '''
class Call(torch.nn.Module):
    """A function as a module (the short reproducer's model is a plain function)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


class Stage(torch.nn.Module):
    """Calls its child; a container of one module."""

    def __init__(self, inner):
        super().__init__()
        self.inner = torch.nn.ModuleList([inner])
        self.table = torch.nn.ModuleDict({"main": self.inner[0]})

    @property
    def main(self):
        return self.table["main"]

    def forward(self, *xs):
        return self.main(*xs)


def harness(model):
    """The model inside a module hierarchy (ModuleList, ModuleDict, Sequential, a
    property) with forward hooks that return nothing (they change no value)."""
    seen = []
    if not isinstance(model, torch.nn.Module):
        model = Call(model)
    root = torch.nn.Sequential(Stage(model))
    root.register_forward_pre_hook(lambda module, args: None)
    model.register_forward_hook(lambda module, args, out: seen.append(len(args)))

    def run(*xs):
        return root[0](*xs)

    return run
'''

CHECKPOINT = '''
def harness(model):
    """The model as an activation-checkpointed region (torch.utils.checkpoint, which
    Dynamo traces as a higher-order op; its backward recomputes the forward). Never
    drawn for a model that writes into its inputs: a recomputation writes again."""

    def run(*xs):
        return torch.utils.checkpoint.checkpoint(model, *xs, use_reentrant=False)

    return run
'''

OBJECTS = '''
import contextlib


class Base:
    kind = "base"

    def __init__(self, model):
        self._model = model
        self.calls = 0

    @property
    def model(self):
        return self._model

    @staticmethod
    def ok(x):
        return x.dim() >= 0 and x.numel() >= 0 and len(x.shape) == x.dim()

    @classmethod
    def label(cls):
        return cls.kind.upper()


class Runner(Base):
    """A user-defined class: inheritance, super(), properties, class and static methods,
    __getattr__ and __call__, as Dynamo meets them in user code."""
    kind = "runner"

    def __init__(self, model):
        super().__init__(model)
        self.extra = {"tags": {"a", "b"}}

    def __getattr__(self, name):
        if name == "fallback":
            return None
        raise AttributeError(name)

    def __call__(self, *xs):
        self.calls += 1
        checks = {i for i, x in enumerate(xs) if self.ok(x) and x.stride() is not None and x.dtype is not None}
        queried = [(x.is_floating_point(), x.is_contiguous(), x.device.type, x.requires_grad, x.size()) for x in xs]
        assert len(queried) == len(xs) and self.fallback is None and self.label() == "RUNNER"
        tags = frozenset(self.extra["tags"]) | {"c"}
        with contextlib.nullcontext(), torch.autograd.profiler.record_function("dlfuzz"), \\
                torch.autocast("cpu", enabled=False):
            if len(checks) == len(xs) and "c" in tags:
                outs = self.model(*xs)
            else:
                outs = self.model(*xs)
        it = iter(outs)
        first = next(it, None)
        rest = list(filter(lambda o: o is not None, map(lambda o: o, it)))
        kept = [first] + rest if first is not None else rest
        return tuple(reversed(list(reversed(kept))))


def harness(model):
    """The model called by a user-defined class instance, under no-op context managers,
    after queries of its inputs' attributes (each inside a condition that always holds)."""
    return Runner(model)
'''

CONTAINERS = '''
import collections


def pairs(xs):
    """A generator function."""
    for i, x in enumerate(xs):
        yield i, x


def harness(model):
    """The model's inputs and outputs passed through dict, set, list, tuple, deque and
    generator operations (each leaves them as they were)."""

    def run(*xs):
        table = collections.OrderedDict(pairs(xs))
        spare = collections.defaultdict(list)
        for k, v in table.items():
            spare[k % 2].append(k)
        keys = set(table.keys()) | set()
        assert keys.issuperset(spare[0]) and not (keys - set(range(len(xs))))
        order = sorted(keys & set(table), reverse=True)
        order.reverse()
        inputs = tuple(table.get(k) for k in order)
        copy = dict(table)
        copy.setdefault(-1, None)
        copy.pop(-1)
        queue = collections.deque(inputs)
        queue.rotate(1)
        queue.rotate(-1)
        outs = model(*list(queue))
        listed = list(outs)
        listed.extend([])
        listed.insert(len(listed), None)
        listed.pop()
        names = "|".join(str(i) for i in range(len(listed))).split("|")
        count = sum(1 for name in names if name.isdigit())
        found = {i: o for i, o in zip(range(count), listed)}
        return tuple(found[i] for i in sorted(found)) if min(found, default=0) >= 0 else tuple(listed)

    return run
'''

GLOBALS = '''
import collections
import dataclasses
import enum
import functools
import math
import operator


class Mode(enum.Enum):
    PLAIN = 1
    OTHER = 2


@dataclasses.dataclass(frozen=True)
class Config:
    depth: int = 1
    name: str = "config"


Point = collections.namedtuple("Point", "x y")
ORIGIN = Point(0, 0)
CONFIG = Config()
ADD = functools.partial(operator.add, 0)
# No range(): under dynamic shapes Dynamo raises an internal error on len() of one in a
# frame resumed after a graph break ("SymNodeVariable() is not a constant"), whatever the
# model: a genuine Dynamo bug that would fail every case of this harness (reported once).
SETTINGS = {"mode": Mode.PLAIN, "scale": 1.0, "limits": (0, 1 << 20), "names": frozenset({"a"}),
            "dtype": torch.float32, "device": torch.device("cpu"), "size": torch.Size([2, 3]),
            "cut": slice(0, None), "flag": True, "none": None, "nested": {"list": [1, 2], "tuple": (3,)}}


def dtype_bits(x):
    if x.is_floating_point() or x.is_complex():
        return torch.finfo(x.dtype).bits
    if x.dtype == torch.bool:
        return 8
    return torch.iinfo(x.dtype).bits


def harness(model):
    """Global constants of many kinds (an enum, a frozen dataclass, a namedtuple, a
    partial, dtypes, a device, a torch.Size, a slice, nested containers) and
    tensor metadata (finfo/iinfo, ndim, element size, layout) read in conditions that
    always hold: Dynamo wraps and guards each of them."""

    def run(*xs):
        s = SETTINGS
        ok = s["mode"] is Mode.PLAIN and s["mode"] != Mode.OTHER and math.isfinite(s["scale"])
        ok = ok and s["limits"][0] == 0 and "a" in s["names"] and s["dtype"].is_floating_point
        ok = ok and s["device"].type == "cpu" and s["size"].numel() == 6
        ok = ok and s["cut"].start == 0 and s["flag"] and s["none"] is None and ORIGIN.x == ADD(0)
        ok = ok and CONFIG.depth == 1 and CONFIG.name.startswith("conf") and sum(s["nested"]["list"]) == 3
        for x in xs:
            ok = ok and torch.is_tensor(x) and dtype_bits(x) > 0 and x.ndim == x.dim() and x.element_size() > 0
            ok = ok and x.layout == torch.strided and not x.is_sparse
        ok = ok and torch.is_grad_enabled() in (True, False) and torch.get_default_dtype() is not None
        outs = model(*xs) if ok else model(*xs)
        return tuple(outs)

    return run
'''

SOURCES = {"graph_break": GRAPH_BREAK, "python": PYTHON, "modules": MODULES, "checkpoint": CHECKPOINT,
           "objects": OBJECTS, "containers": CONTAINERS, "globals": GLOBALS}
assert set(SOURCES) == set(HARNESSES), "corpus.plan.HARNESSES names the harnesses defined here"


def applies(backend: str) -> bool:
    """Whether backend ``backend`` is compiled through a plan's harness: ``torch.compile``
    with Inductor or a registered Dynamo backend (the harness is Python that Dynamo
    traces). Not a user's own ``torch.compile:pkg.module:function``: it gets the graph of
    the model alone, as it was promised (a checkpointed region would reach it as a
    higher-order op)."""
    family, _, option = backend.strip().partition(":")
    return family == "torch.compile" and ":" not in option


def make_harness(name: str) -> Callable[[Any], Callable[..., Any]]:
    """``harness(model)`` of harness ``name`` (its source executed with torch)."""
    import torch

    module = types.ModuleType(f"dlfuzz_harness_{name}")
    module.torch = torch  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module  # before its classes are made (dataclasses looks it up)
    exec(compile(SOURCES[name], f"<dlfuzz harness {name}>", "exec"), module.__dict__)
    return module.harness  # type: ignore[attr-defined]


def register_model_module(ns: dict[str, Any]) -> None:
    """Make the model's namespace importable by its ``__name__``: Dynamo looks up the
    module of a function it inlines (here the model's ``forward``, called from the
    harness), as it would for a model defined in a file."""
    _register(ns)


def _register(ns: dict[str, Any]) -> None:
    name = ns.get("__name__")
    if not name:
        return
    module = types.ModuleType(name)
    module.__dict__.update(ns)
    sys.modules[name] = module
