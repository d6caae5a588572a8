"""The public Python API (DESIGN §7): generate, check, reduce, load and save.

The CLI and the pytest plugin stand on these few calls, so that a backend author's
script, a test and ``dlfuzz gen``/``replay`` generate and judge a model the same way:

    from fuzzer import api
    case = api.generate("torch", seed=3, max_nodes=5)
    result = api.check(case, ["torch.eager", "torch.compile:mypkg.backend:compile"])
    if result.bugs:
        api.save(case, "bug-folder")

Nothing here imports a framework at module level; the first model generated does.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from corpus.case import Case, CaseFormatError
from fuzzer.generate import GenConfig, Generator, GenerationError, common_dtype_specs
from fuzzer.models import Model, make_model, save_model
from oracles.backends import frameworks_of
from oracles.verdict import CheckResult, Verdict
from rules.spec import OpSpec

__all__ = ["Case", "CheckResult", "GenerationError", "InvalidModel", "ModelSource", "Verdict", "check", "checker", "framework_of",
           "backend_names", "generate", "load", "load_bug", "model_source", "reduce", "save", "specs_for"]

ALL_KINDS = ("spec", "inferred", "concrete")


class InvalidModel(ValueError):
    """The reference computes NaN/Inf (or fails) on every draw of this model: such a
    model is discarded, never checked; the message says why."""


def framework_of(backends: Sequence[str]) -> tuple[str, bool]:
    """(the framework models are generated for, whether ops must exist in both)."""
    fws = {"tensorflow" if b.strip().startswith("tf.") else "torch" for b in backends}
    return (fws.pop(), False) if len(fws) == 1 else ("torch", True)


class _Restricted:
    """An OpSpec seen through input dtypes in ``allowed`` only (``generate(dtypes=...)``)."""

    def __init__(self, spec: OpSpec, allowed: frozenset[str]) -> None:
        self._spec = spec
        self._allowed = allowed

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_spec", "_allowed"):
            raise AttributeError(name)
        return getattr(self._spec, name)

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        return [d for d in self._spec.dtype_options(framework) if set(d) <= self._allowed]


@dataclass
class ModelSource:
    """A generator built once for one set of settings (building one over thousands of
    inferred operators takes seconds); ``model(seed, index)`` is then cheap to call."""

    generator: Generator
    specs: dict[str, OpSpec]  # every operator a generated case may use, by id
    special_values: bool = True
    checks: tuple[str, ...] = ("forward",)  # what each model's plan may check (corpus.plan)
    frameworks: tuple[str, ...] = ()  # of the backends the models are for
    options: bool = False  # plans draw Inductor settings (an Inductor backend, checks past forward)
    harness: bool = False  # plans draw a Python harness (a torch.compile backend, checks past forward)

    def model(self, seed: int = 0, index: int = 0) -> Model:
        return make_model(self.generator, self.specs, seed, index, special_values=self.special_values,
                          checks=self.checks, frameworks=self.frameworks or None, options=self.options,
                          harness=self.harness)


@functools.lru_cache(maxsize=16)
def model_source(framework: str = "torch", max_nodes: int = 10, ops: tuple[str, ...] = ALL_KINDS,
                 dtypes: tuple[str, ...] | None = None, backends: tuple[str, ...] | None = None,
                 checks: tuple[str, ...] = ("forward",)) -> ModelSource:
    """The generator for these settings, cached per process (per xdist worker too).
    ``backends``: the backends the models are for: torch and tensorflow together keep the
    operators and dtypes both accept; tf.function/tf.xla trial-run operators in graph mode.
    ``checks``: the check kinds (``corpus.plan.CHECK_KINDS``) each model's plan may use;
    with ``mutation`` the generator also draws in-place operators.
    Raises ValueError for an unknown kind or dtype, or when no operator is left."""
    from corpus.tensor_type import ALL_DTYPES
    from rules.registry import operator_specs, parse_op_kinds
    from rules.specs import SPECS

    kinds = parse_op_kinds(",".join(ops))
    specs = operator_specs(framework, kinds)
    both = False
    if backends:
        fw, both = framework_of(backends)
        if fw != framework:
            raise ValueError(f"backends {', '.join(backends)} test {fw} models, not {framework}")
    if both:
        specs = common_dtype_specs(specs, ("torch", "tensorflow"))
    spec_map = {**SPECS, **{s.id: s for s in specs}}
    if dtypes is not None:
        unknown = set(dtypes) - set(ALL_DTYPES)
        if unknown:
            raise ValueError(f"unknown dtype(s) {sorted(unknown)}; expected some of {', '.join(ALL_DTYPES)}")
        specs = [w for w in (_Restricted(s, frozenset(dtypes)) for s in specs) if w.dtype_options(framework)]
    if not specs:
        raise ValueError(f"no {framework} operators of kinds {', '.join(kinds)}"
                         + (f" taking dtypes {', '.join(dtypes)}" if dtypes else ""))
    graph_mode = any(b.split(":")[0] in ("tf.function", "tf.xla") for b in backends or ())
    from corpus.plan import parse_checks

    checks = parse_checks(",".join(checks))  # ValueError (one line) for an unknown kind
    generator = Generator(framework, specs, GenConfig(max_nodes=max_nodes, graph_mode_trials=graph_mode,
                                                      mutation="mutation" in checks))
    frameworks = tuple(frameworks_of(backends)) if backends else (framework,)
    # compiler settings and harnesses as a campaign draws them: where a candidate takes them
    # and the plan checks more than the forward (fuzzer.campaign)
    options = harness = False
    if backends and set(checks) - {"forward"}:
        from oracles.backends import takes_options
        from oracles.harness import applies

        options = any(takes_options(b) for b in backends[1:])
        harness = any(applies(b) for b in backends[1:])
    return ModelSource(generator, spec_map, special_values=not both, checks=checks, frameworks=frameworks,
                       options=options, harness=harness)


def generate(framework: str = "torch", seed: int = 0, max_nodes: int = 10, ops: Sequence[str] = ALL_KINDS,
             dtypes: Sequence[str] | None = None, *, index: int = 0,
             backends: Sequence[str] | None = None, checks: Sequence[str] = ("forward",)) -> Case:
    """Model ``index`` of seed ``seed`` (the same case ``dlfuzz gen`` saves), with input
    values on which the framework's eager mode computes only finite values.
    ``dtypes``: the dtypes operators may take as inputs (so the model's inputs too).
    ``checks``: what the case's plan may check (``corpus.plan.CHECK_KINDS``; "all" for
    every kind); forward outputs only by default.
    Raises InvalidModel when no finite values were found (the CLI counts such models)."""
    source = model_source(framework, max_nodes, tuple(ops), tuple(dtypes) if dtypes is not None else None,
                          tuple(backends) if backends else None,
                          (checks,) if isinstance(checks, str) else tuple(checks))
    model = source.model(seed, index)
    if not model.valid:
        raise InvalidModel(f"model {index} of seed {seed}: no finite values found "
                           f"({model.search.error or 'NaN/Inf in the reference'}); try another index")
    return model.case


# ---- checking --------------------------------------------------------------------------

def specs_for(case_or_framework: Case | str, op_ids: Sequence[str] = ()) -> Mapping[str, OpSpec]:
    """Every operator a case may name: the hand-written specs, and the inferred and
    concrete ones of its framework when it names one of those."""
    from rules.specs import SPECS

    if isinstance(case_or_framework, Case):
        framework, op_ids = case_or_framework.framework, case_or_framework.graph.op_ids()
    else:
        framework = case_or_framework
    if all(o in SPECS for o in op_ids):
        return SPECS
    from rules.registry import operator_specs

    return {**SPECS, **{s.id: s for s in operator_specs(framework, ("inferred", "concrete"))}}


def backend_names(backends: Sequence[str]) -> list[str]:
    """Validated names; a user's backend module is found from the current folder, as with
    ``python -m`` (sandbox workers inherit the path)."""
    from oracles.backends import validate_backends

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    names = [b.strip() for b in backends if b.strip()]
    validate_backends(names)  # BackendError (a ValueError) with a one-line message
    return names


def checker(backends: Sequence[str], *, timeout_s: float = 60.0, isolate: bool = True,
            specs: Mapping[str, OpSpec] | None = None):
    """A context manager giving ``check(case) -> CheckResult`` for many cases: with
    ``isolate`` one sandbox worker (a crash, abort or hang is a verdict, not the caller's
    death) started once; without, in this process (fast, but a segfault kills it)."""
    import contextlib

    names = backend_names(backends)

    @contextlib.contextmanager
    def cm():
        if not isolate:
            from oracles.check import check_case

            yield lambda case: check_case(case, names, specs if specs is not None else specs_for(case))
            return
        from oracles.sandbox import Sandbox
        from rules.specs import SPECS

        with Sandbox(names, timeout_s=timeout_s, workers=1,
                     specs=None if specs is None or specs is SPECS else specs) as sandbox:
            yield sandbox.check

    return cm()


def check(case: Case, backends: Sequence[str], timeout_s: float = 60.0, isolate: bool = True) -> CheckResult:
    """Run ``case`` on ``backends`` (the first is the reference) and judge each: the
    verdicts. ``isolate``: in a child process with a timeout (``oracles.sandbox``)."""
    specs = specs_for(case)
    with checker(backends, timeout_s=timeout_s, isolate=isolate, specs=specs) as run:
        return run(case)


# ---- reduction -------------------------------------------------------------------------

def reduce(folder_or_case: Case | str | os.PathLike, backends: Sequence[str] | None = None, *,
           time_s: float = 60.0, max_checks: int = 500, timeout_s: float = 60.0, isolate: bool = True,
           backend: str | None = None, log: Callable[[str], None] | None = None):
    """Minimize a failing case while it keeps showing its bug (``reports.reduce``).

    A bug folder is reduced in place (its backends from bug.json unless given); returns
    the ``Reduction``, or None when the bug no longer shows. A Case is checked first and
    its first failing verdict (``backend``'s, if given) reduced; returns the Reduction
    (``.case`` is the minimal case), or None when it shows no bug."""
    from reports.localize import localize, needs_probe
    from reports.reduce import reduce_bug_folder, reduce_case

    if isinstance(folder_or_case, Case):
        case = folder_or_case
        if not backends:
            raise ValueError("reducing a Case needs its backends (the first is the reference)")
        specs = specs_for(case)
        with checker(backends, timeout_s=timeout_s, isolate=isolate, specs=specs) as run:
            result = run(case)
            failing = [v for v in result.bugs if backend is None or v.backend == backend] if result.valid else []
            if not failing:
                return None
            verdict = failing[0]
            culprit = localize(case, verdict, run) if needs_probe(case, verdict) else None
            return reduce_case(case, verdict, run, specs, culprit=culprit, time_s=time_s, max_checks=max_checks,
                               log=log)
    folder = Path(folder_or_case)
    bug, case = load_bug(folder)
    specs = specs_for(case)
    with checker(backends or bug["backends"], timeout_s=timeout_s, isolate=isolate, specs=specs) as run:
        return reduce_bug_folder(folder, run, specs, time_s=time_s, max_checks=max_checks, timeout_s=timeout_s,
                                 verify=True, log=log)


# ---- load and save ---------------------------------------------------------------------

def load_bug(folder: str | os.PathLike) -> tuple[dict, Case]:
    """(bug.json, the case) of a campaign's bug folder; CaseFormatError (one line) when
    the folder is not a complete bug folder."""
    folder = Path(folder)
    try:
        bug = json.loads((folder / "bug.json").read_text())
        bug["backends"], bug["verdict"]["status"]  # noqa: B018 - the fields every reader needs
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CaseFormatError(f"{folder}: no readable bug.json ({type(e).__name__}); pass a bug folder "
                              f"from a campaign's bugs/") from None
    return bug, Case.load(folder / "case.json")


def load(path: str | os.PathLike) -> Case:
    """A case from a case.json, a folder holding one (a bug folder, a ``dlfuzz gen``
    model), or a JSON string."""
    if isinstance(path, str) and path.lstrip().startswith("{"):
        return Case.from_json(json.loads(path))
    p = Path(path)
    return Case.load(p / "case.json" if p.is_dir() else p)


def save(case: Case, folder: str | os.PathLike, specs: Mapping[str, OpSpec] | None = None) -> Path:
    """Write ``case.json`` and a standalone ``program.py`` into ``folder`` (as ``dlfuzz
    gen`` does); returns the folder."""
    folder = Path(folder)
    save_model(case, folder, specs if specs is not None else specs_for(case))
    return folder

