"""The backends a Case runs on (DESIGN §6), by name, in one explicit registry.

A backend name is a *family* and, for some families, an option after a colon:

* ``torch.eager``; ``torch.compile`` (Inductor); ``torch.compile:NAME`` for any name in
  ``torch._dynamo.list_backends(exclude_tags=())`` (``aot_eager``, ``eager``, ...);
  ``torch.compile:pkg.module:function`` for a user's own torch.compile backend, a callable
  ``(gm: torch.fx.GraphModule, example_inputs) -> callable`` imported by module path;
  ``torch.jit`` (``torch.jit.trace``; ``torch.jit:freeze`` also freezes); ``torch.export``
  (``torch.export.export(...).module()``);
* ``tf.eager``, ``tf.function``, ``tf.xla`` (``tf.function(jit_compile=True)``).

``onnxruntime`` (DESIGN §6) is left out: it needs an ONNX export path and an optional
dependency; a family for it slots into ``FAMILIES`` without touching the rest.

A backend turns the namespace of a materialized model (``rules.execute.load_module``:
``Model``, ``CONSTS``, ``INPUTS``, ``to_numpy``) into a function of the input tensors:
``prepare`` is the *compile* stage, calling the function the *run* stage. Compilers that
compile lazily on the first call (torch.compile) report the stage they are in through a
:class:`StageTracker`, so that a crash, abort or hang is attributed to the right stage.
Frameworks are imported inside the functions, never at import of this module, and only
the framework a backend needs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from rules.spec import FRAMEWORKS

Namespace = dict[str, Any]


class BackendError(ValueError):
    """A backend name that cannot be used; the message is one line, ready for a user."""


class StageTracker:
    """The stage a backend is in ("compile", "run" or "backward") and the check it serves
    (``check``: "forward", "dynamic", ...); ``on_change`` hears every change as
    ``stage`` or ``check/stage`` (the sandbox worker forwards it to its parent before the
    step begins). ``compiles`` counts the compiler's invocations (recompiles included)."""

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        self.current = ""
        self.check = "forward"
        self.compiles = 0
        self.on_change = on_change

    def set(self, stage: str) -> None:
        if stage != self.current:
            self.current = stage
            if self.on_change is not None:
                self.on_change(stage if self.check == "forward" else f"{self.check}/{stage}")


@dataclass(frozen=True)
class CompileMode:
    """How a backend compiles for a case's check plan: ``dynamic`` compiles for symbolic
    shapes (torch.compile ``dynamic=True``; tf.function with unknown dims at
    ``dynamic_dims``, (input position, dim)); ``grad`` keeps autograd on, so the
    compiled model also has a backward (the gradients check). ``options``: Inductor config
    settings (name, value) the plan compiles under (``corpus.plan.CheckPlan.options``),
    as ``torch.compile(model, options=...)`` applies them; other backends ignore them."""

    dynamic: bool = False
    dynamic_dims: tuple[tuple[int, int], ...] = ()
    grad: bool = False
    options: tuple[tuple[str, Any], ...] = ()
    harness: str = ""  # torch.compile: compile oracles.harness's harness(model) instead of the model


Prepare = Callable[[Namespace, StageTracker, CompileMode], Callable[..., Any]]


@dataclass(frozen=True)
class Backend:
    name: str
    framework: str  # "torch" | "tensorflow"
    eager: bool  # runs the framework's ops one by one (a natural reference)
    _prepare: Prepare
    unsupported: tuple[str, ...] = ()  # regexes of messages that are documented limitations
    dynamic_shapes: bool = True  # see Family.dynamic_shapes

    def is_unsupported(self, message: str) -> bool:
        """A crash the backend's documentation announces (XLA has no kernel for an op):
        the backend declines the model; not a bug."""
        return any(re.search(p, message) for p in self.unsupported)

    def prepare(self, ns: Namespace, stage: StageTracker | None = None, mode: CompileMode = CompileMode()) -> Callable[..., Any]:
        """Compile stage: build the model from ``ns`` and return a function of its inputs.
        In ``mode.grad`` the function carries ``params`` (the weights gradients are taken
        of) and, for TensorFlow, ``vjp(inputs, cotangents)``."""
        return self._prepare(ns, stage or StageTracker(), mode)


@dataclass(frozen=True)
class Family:
    name: str
    framework: str
    eager: bool
    option: str  # "" when the family takes no option, else how to spell it (for messages)
    make: Callable[[str], Prepare]  # option ("" for none) -> prepare
    check: Callable[[str], None] = lambda option: None  # raises BackendError for a bad option
    unsupported: tuple[str, ...] = ()  # see Backend.is_unsupported
    # runs a model compiled once at other input shapes (torch.jit and torch.export bake
    # shapes in: a run at other shapes is their documented limitation, not a bug)
    dynamic_shapes: bool = True


# ---- torch -------------------------------------------------------------------------------

def _torch_model(ns: Namespace, mode: CompileMode = CompileMode()) -> Any:
    consts = ns["CONSTS"]()
    if mode.grad:  # float weights become parameters (codegen registers them so)
        consts = {k: v.requires_grad_() if v.is_floating_point() else v for k, v in consts.items()}
    model = ns["Model"](consts)
    model.eval()
    return model


def _no_grad(fn: Callable[..., Any], mode: CompileMode = CompileMode(), model: Any = None) -> Callable[..., Any]:
    def call(*xs: Any) -> Any:
        import torch

        if mode.grad:
            return fn(*xs)
        with torch.no_grad():
            return fn(*xs)

    call.params = list(model.parameters()) if model is not None else []  # type: ignore[attr-defined]
    return call


def _torch_eager(option: str) -> Prepare:
    def prepare(ns: Namespace, stage: StageTracker, mode: CompileMode) -> Callable[..., Any]:
        model = _torch_model(ns, mode)
        return _no_grad(model, mode, model)

    return prepare


def dynamo_backend_names() -> list[str]:
    import torch._dynamo

    return sorted(torch._dynamo.list_backends(exclude_tags=()))


def _import_callable(spec: str) -> Callable[..., Any]:
    """``pkg.module:function`` -> the function; BackendError (one line) if impossible."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise BackendError(f"torch.compile backend {spec!r}: expected the form pkg.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's to see
        line = str(e).splitlines()[0] if str(e) else ""
        raise BackendError(f"torch.compile backend {spec!r}: could not import module {module_name!r} "
                           f"({type(e).__name__}: {line})") from None
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise BackendError(f"torch.compile backend {spec!r}: could not import it: module {module_name!r} "
                               f"has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise BackendError(f"torch.compile backend {spec!r}: {attr!r} is a {type(fn).__name__}, not a callable")
    return fn  # type: ignore[return-value]


def _check_compile_option(option: str) -> None:
    if not option:
        return
    if ":" in option:
        _import_callable(option)
        return
    names = dynamo_backend_names()
    if option not in names:
        raise BackendError(f"unknown torch.compile backend {option!r}; registered: {', '.join(names)}; "
                           "or give your own as torch.compile:pkg.module:function")


def _compiler(option: str, options: tuple[tuple[str, Any], ...] = ()) -> Callable[..., Any]:
    if ":" in option:
        return _import_callable(option)
    from torch._dynamo.backends.registry import lookup_backend

    if options and option in ("", "inductor"):
        # what torch.compile(options=...) does: Inductor's compile_fx under the config
        # patches, which also cover the backward compiled lazily later
        from torch._inductor.compile_fx import compile_fx

        patches = dict(options)
        return lambda gm, example_inputs: compile_fx(gm, example_inputs, config_patches=patches)
    return lookup_backend(option or "inductor")


def _torch_compile(option: str) -> Prepare:
    def prepare(ns: Namespace, stage: StageTracker, mode: CompileMode) -> Callable[..., Any]:
        import torch
        import torch._dynamo

        torch._dynamo.reset()  # no guard or cache of an earlier case may serve this one
        inner = _compiler(option, mode.options)
        if option in ("", "inductor") and os.environ.get("DLFUZZ_MERGE_KERNELS", "1") != "0":
            from oracles.inductor_merge import install

            install()  # one g++ call per graph instead of one per kernel (see its docstring)

        def tracked(gm: Any, example_inputs: Any) -> Any:
            stage.set("compile")
            stage.compiles += 1
            compiled = inner(gm, example_inputs)
            stage.set("run")
            return compiled

        model = _torch_model(ns, mode)
        target = model
        if mode.harness and ":" not in option:  # (oracles.harness.applies: not a user's own backend)
            from oracles.harness import make_harness, register_model_module

            register_model_module(ns)
            target = make_harness(mode.harness)(model)
        # a dynamic plan also captures data-dependent shapes (nonzero, masked_select,
        # unique, .item()) into the graph instead of breaking it there
        torch._dynamo.config.capture_scalar_outputs = mode.dynamic
        torch._dynamo.config.capture_dynamic_output_shape_ops = mode.dynamic
        compiled = torch.compile(target, backend=tracked, dynamic=mode.dynamic, fullgraph=False)
        first = [True]

        def call(*xs: Any) -> Any:
            if first[0]:  # Dynamo traces and the backend compiles on the first call
                first[0] = False
                stage.set("compile")
            if mode.grad:
                out = compiled(*xs)
            else:
                with torch.no_grad():
                    out = compiled(*xs)
            stage.set("run")
            return out

        call.params = list(model.parameters())  # type: ignore[attr-defined]
        return call

    return prepare


def _check_jit_option(option: str) -> None:
    if option not in ("", "freeze"):
        raise BackendError(f"unknown torch.jit option {option!r}; known: torch.jit, torch.jit:freeze")


def _torch_jit(option: str) -> Prepare:
    def prepare(ns: Namespace, stage: StageTracker, mode: CompileMode) -> Callable[..., Any]:
        import warnings

        import torch

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer warnings
            inputs = tuple(ns["INPUTS"]())
            model = _torch_model(ns, mode)
            traced = torch.jit.trace(model, inputs, check_trace=False)
            if option == "freeze":
                traced = torch.jit.freeze(traced.eval())
            traced(*inputs)  # the profiling run; the next call runs the optimized graph
        stage.compiles += 1
        return _no_grad(traced, mode, traced)

    return prepare


def _torch_export(option: str) -> Prepare:
    def prepare(ns: Namespace, stage: StageTracker, mode: CompileMode) -> Callable[..., Any]:
        import torch

        with torch.no_grad():
            program = torch.export.export(_torch_model(ns, mode), tuple(ns["INPUTS"]()))
        stage.compiles += 1
        module = program.module()
        return _no_grad(module, mode, module)

    return prepare


# ---- tensorflow --------------------------------------------------------------------------

def _tf_vjp(model: Any, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[..., Any]:
    """``vjp(inputs, cotangents)`` -> gradients of every float input, then of every float
    weight, under ``wrap`` (identity for eager, tf.function for graph and XLA): the
    backward is compiled with the forward, as a user's training step would be."""
    import tensorflow as tf

    weights = [v for _, v in sorted(vars(model).items()) if isinstance(v, tf.Tensor) and v.dtype.is_floating]

    def vjp(xs: list, cots: list) -> list:
        with tf.GradientTape() as tape:
            watched = [x for x in xs if x.dtype.is_floating] + weights
            for w in watched:
                tape.watch(w)
            outs = model(*xs)
        pairs = [(o, c) for o, c in zip(outs, cots) if c is not None]
        grads = tape.gradient([o for o, _ in pairs], watched, output_gradients=[c for _, c in pairs],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return list(grads)

    return wrap(vjp)


def _tf_eager(option: str) -> Prepare:
    def prepare(ns: Namespace, stage: StageTracker, mode: CompileMode) -> Callable[..., Any]:
        model = ns["Model"](ns["CONSTS"]())
        if mode.grad:
            def call(*xs: Any) -> Any:
                return model(*xs)

            call.vjp = _tf_vjp(model, lambda f: f)  # type: ignore[attr-defined]
            return call
        return model

    return prepare


def _tf_function(jit_compile: bool) -> Callable[[str], Prepare]:
    def make(option: str) -> Prepare:
        def prepare(ns: Namespace, stage: StageTracker, mode: CompileMode) -> Callable[..., Any]:
            import tensorflow as tf

            model = ns["Model"](ns["CONSTS"]())
            inputs = ns["INPUTS"]()
            signature = None
            if mode.dynamic:  # unknown dims where the plan says: one trace serves every shape set
                unknown = set(mode.dynamic_dims)
                signature = [tf.TensorSpec([None if (i, d) in unknown else n for d, n in enumerate(x.shape)], x.dtype)
                             for i, x in enumerate(inputs)]
            fn = tf.function(model.__call__, jit_compile=jit_compile, autograph=False, input_signature=signature)
            fn.get_concrete_function(*inputs)  # trace
            stage.compiles += 1
            if jit_compile:
                fn.experimental_get_compiler_ir(*inputs)(stage="optimized_hlo")  # XLA's HLO passes
            if mode.grad:
                fn.vjp = _tf_vjp(model, lambda f: tf.function(f, jit_compile=jit_compile, autograph=False))
            return fn

        return prepare

    return make


# XLA compiles only ops with an XLA kernel for the dtype at hand; TensorFlow documents the
# gaps (tf.math.cumprod of integers, ...). Such a model is declined, not miscompiled.
XLA_UNSUPPORTED = (r"Detected unsupported operations when trying to compile", r"No registered '\w+' OpKernel for XLA",
                   r"XLA does not support pooling ops with explicit padding",
                   r"must be a compile-time constant",  # XLA needs static shapes and attributes
                   r"does not yet support pivoting",  # tridiagonal_solve
                   r"XLA compilation requires a fixed tensor list size",  # a TensorList with no max size (expm's gradient)
                   # bounded dynamic shapes (rot90 by a traced k) meeting a slice the dynamic
                   # padder does not implement: XLA's Unimplemented status, not a wrong result
                   r"Dynamic dimension propagation on \w+ where a partial dimension is selected")


# ---- the registry ------------------------------------------------------------------------

def _build(families: Iterable[Family]) -> dict[str, Family]:
    """Check the families when the registry is built: unique names, a known framework,
    names prefixed by their framework."""
    prefix = {"torch": "torch.", "tensorflow": "tf."}
    out: dict[str, Family] = {}
    for f in families:
        if f.name in out:
            raise ValueError(f"duplicate backend family {f.name!r}")
        if f.framework not in FRAMEWORKS:
            raise ValueError(f"backend family {f.name!r}: unknown framework {f.framework!r}")
        if not f.name.startswith(prefix[f.framework]) or ":" in f.name:
            raise ValueError(f"backend family {f.name!r} must start with {prefix[f.framework]!r} and contain no ':'")
        if not callable(f.make) or not callable(f.check):
            raise ValueError(f"backend family {f.name!r}: make and check must be callables")
        out[f.name] = f
    return out


FAMILIES: dict[str, Family] = _build([
    Family("torch.eager", "torch", True, "", _torch_eager),
    Family("torch.compile", "torch", False, "<name> (aot_eager, eager, inductor, ...), torch.compile:pkg.module:function",
           _torch_compile, _check_compile_option),
    Family("torch.jit", "torch", False, "freeze", _torch_jit, _check_jit_option, dynamic_shapes=False),
    Family("torch.export", "torch", False, "", _torch_export, dynamic_shapes=False),
    Family("tf.eager", "tensorflow", True, "", _tf_eager),
    Family("tf.function", "tensorflow", False, "", _tf_function(False)),
    Family("tf.xla", "tensorflow", False, "", _tf_function(True), unsupported=XLA_UNSUPPORTED),
])

INSTALL = {"torch": ("PyTorch", "pip install torch==2.13.0"),
           "tensorflow": ("TensorFlow", "pip install 'dlfuzz[tensorflow]' (tensorflow-cpu)")}


def known_names() -> str:
    parts = []
    for f in FAMILIES.values():
        parts.append(f.name)
        if f.option:
            parts.append(f"{f.name}:{f.option}")
    return ", ".join(parts)


def resolve(name: str) -> Backend:
    """The backend called ``name``; BackendError (one line) when there is none.

    Checks the name, that the framework is installed, and for ``torch.compile:...`` that
    the Dynamo backend exists or the user's module imports. Compiles nothing.
    """
    if not isinstance(name, str) or not name.strip():
        raise BackendError(f"empty backend name; known: {known_names()}")
    name = name.strip()
    family_name, _, option = name.partition(":")
    family = FAMILIES.get(family_name)
    if family is None:
        raise BackendError(f"unknown backend {name!r}; known: {known_names()}")
    if option and not family.option:
        raise BackendError(f"backend {family_name!r} takes no option (got {name!r}); known: {known_names()}")
    if importlib.util.find_spec(family.framework) is None:
        what, how = INSTALL[family.framework]
        raise BackendError(f"backend {name!r} needs {what}, which is not installed; install it with: {how}")
    family.check(option)
    return Backend(name, family.framework, family.eager, family.make(option), family.unsupported, family.dynamic_shapes)


def validate_backends(names: list[str]) -> list[Backend]:
    """Check a ``--backends`` list before any work starts: at least two (the first is the
    reference), no repeats, every name resolvable. Raises BackendError (one line)."""
    names = [n.strip() for n in names if n.strip()]
    if len(names) < 2:
        raise BackendError(f"need at least two backends, a reference and one to test (got {', '.join(names) or 'none'}); "
                           f"known: {known_names()}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BackendError(f"backend {repeated[0]!r} is listed twice")
    return [resolve(n) for n in names]


def frameworks_of(names: Iterable[str]) -> list[str]:
    """The frameworks the backends need, in the order first named (imports nothing)."""
    out: list[str] = []
    for n in names:
        family = FAMILIES.get(n.strip().partition(":")[0])
        if family is None:
            raise BackendError(f"unknown backend {n!r}; known: {known_names()}")
        if family.framework not in out:
            out.append(family.framework)
    return out


def takes_options(name: str) -> bool:
    """Whether backend ``name`` compiles under a plan's Inductor options
    (``CompileMode.options``): ``torch.compile`` and ``torch.compile:inductor``."""
    family, _, option = name.strip().partition(":")
    return family == "torch.compile" and option in ("", "inductor")


def eager_backend(framework: str) -> Backend:
    """The framework's eager backend (the float64 recomputation runs on it)."""
    return resolve("torch.eager" if framework == "torch" else "tf.eager")
