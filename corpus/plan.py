"""A check plan: how a case is checked beyond its forward outputs (DESIGN §6, "What is checked").

Compilers break least in the forward pass of contiguous tensors of static shape; they
break most under symbolic shapes, in the backward graph, on strided inputs and around
in-place mutation. A plan, drawn from the case's seed and saved with it, says which of
these checks the case gets and how:

* ``dynamic``: the input dims compiled as symbolic, and the other shape sets (input leaf
  id -> shape) the same compiled model is run at, each compared with eager;
* ``backward``: the seed of the random cotangent; gradients of every float input and
  weight are compared;
* ``layouts``: input leaf id -> layout name (``oracles.layouts``): the same values fed as
  non-contiguous tensors to the same compiled model;
* ``mutation``: the graph writes into tensors in place; every input is compared after
  the call as well as the outputs;
* ``options``: compiler settings the case is compiled under (Inductor's config, as
  ``torch.compile(model, options=...)`` takes them: ``cpp_wrapper``, ``freezing``,
  ``max_autotune``, ...). Not a check of its own: every call of the plan is made on the
  model compiled so, and a difference under an option is a bug like any other. Options
  apply to Inductor (``torch.compile``, ``torch.compile:inductor``) and are ignored by
  every other backend;
* ``harness``: Python code around the model that ``torch.compile`` traces with it
  (``oracles.harness``: containers and builtins, a graph break, a module hierarchy with
  hooks, activation checkpointing); the identity on the model's outputs. "" for none.

Forward outputs are always checked. An empty plan is the plain forward check, the form
every case had before plans existed (a case.json without ``plan`` reads as one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

CHECK_KINDS = ("forward", "dynamic", "backward", "layout", "mutation")
HARNESSES = ("graph_break", "python", "modules", "checkpoint", "objects", "containers", "globals")  # oracles.harness.SOURCES


class PlanFormatError(ValueError):
    """A malformed plan in a case.json; the message is one line, ready for a user."""


def parse_checks(text: str) -> tuple[str, ...]:
    """``--checks forward,dynamic,...`` -> the kinds in canonical order ("all" for every
    kind). ValueError (one line) for an unknown kind."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or names == ["all"]:
        return CHECK_KINDS
    unknown = [n for n in names if n not in CHECK_KINDS]
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; known: {', '.join(CHECK_KINDS)} (or all)")
    return tuple(k for k in CHECK_KINDS if k in names or k == "forward")


@dataclass
class CheckPlan:
    dynamic_dims: list[tuple[int, int]] = field(default_factory=list)  # (input leaf, dim)
    shape_sets: list[dict[int, tuple[int, ...]]] = field(default_factory=list)
    backward_seed: int | None = None
    layouts: dict[int, str] = field(default_factory=dict)
    mutation: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # Inductor config name -> value
    harness: str = ""  # one of HARNESSES, or "" (the model compiled as it is)

    @property
    def dynamic(self) -> bool:
        return bool(self.dynamic_dims)

    @property
    def backward(self) -> bool:
        return self.backward_seed is not None

    def kinds(self) -> list[str]:
        """The check kinds this plan applies, forward first."""
        on = {"forward": True, "dynamic": self.dynamic, "backward": self.backward, "layout": bool(self.layouts),
              "mutation": self.mutation}
        return [k for k in CHECK_KINDS if on[k]]

    def without(self, kind: str) -> "CheckPlan":
        """This plan with one check kind dropped (the reducer drops what a bug does not need)."""
        if kind not in CHECK_KINDS or kind == "forward":
            raise ValueError(f"cannot drop check {kind!r}")
        data = self.to_json()
        data.pop({"dynamic": "dynamic", "backward": "backward", "layout": "layouts", "mutation": "mutation"}[kind], None)
        return CheckPlan.from_json(data)

    def restricted_to(self, leaves: set[int]) -> "CheckPlan":
        """The plan for a graph that kept only ``leaves`` of its inputs (reduction)."""
        dims = [(n, d) for n, d in self.dynamic_dims if n in leaves]
        sets = [{n: s for n, s in shapes.items() if n in leaves} for shapes in self.shape_sets] if dims else []
        return CheckPlan(dims, [s for s in sets if s], self.backward_seed,
                         {n: k for n, k in self.layouts.items() if n in leaves}, self.mutation, dict(self.options),
                         self.harness)

    def with_options(self, options: dict[str, Any]) -> "CheckPlan":
        """This plan compiled under ``options`` instead (the reducer drops those a bug does
        not need)."""
        return replace(self, options=dict(options))

    def options_summary(self) -> str:
        """``cpp_wrapper=True, cpp.simdlen=0``: the options as Python keyword values."""
        return ", ".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))

    def summary(self) -> str:
        """One line for report.md and the progress log."""
        parts = ["forward"]
        if self.dynamic:
            dims = ", ".join(f"x{n} dim {d}" for n, d in self.dynamic_dims)
            parts.append(f"dynamic ({dims}; {len(self.shape_sets)} other shape sets)")
        if self.backward:
            parts.append(f"backward (cotangent seed {self.backward_seed})")
        if self.layouts:
            parts.append("layout (" + ", ".join(f"x{n} {k}" for n, k in sorted(self.layouts.items())) + ")")
        if self.mutation:
            parts.append("mutation (inputs compared after the call)")
        if self.options:
            parts.append(f"compiled with options {self.options_summary()}")
        if self.harness:
            parts.append(f"called through the {self.harness} harness")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.dynamic:
            data["dynamic"] = {"dims": [list(p) for p in self.dynamic_dims],
                               "shape_sets": [{str(n): list(s) for n, s in sorted(shapes.items())}
                                              for shapes in self.shape_sets]}
        if self.backward:
            data["backward"] = {"cotangent_seed": self.backward_seed}
        if self.layouts:
            data["layouts"] = {str(n): k for n, k in sorted(self.layouts.items())}
        if self.mutation:
            data["mutation"] = True
        if self.options:
            data["options"] = {k: self.options[k] for k in sorted(self.options)}
        if self.harness:
            data["harness"] = self.harness
        return data

    @classmethod
    def from_json(cls, data: Any) -> "CheckPlan":
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise PlanFormatError(f"plan: expected an object, got {type(data).__name__}")
        unknown = set(data) - {"dynamic", "backward", "layouts", "mutation", "options", "harness"}
        if unknown:
            raise PlanFormatError(f"plan: unknown check {sorted(unknown)[0]!r}; known: dynamic, backward, layouts, "
                                  "mutation, options, harness")
        harness = data.get("harness") or ""
        if harness not in ("", *HARNESSES):
            raise PlanFormatError(f"plan: unknown harness {harness!r}; known: {', '.join(HARNESSES)}")
        options = data.get("options") or {}
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise PlanFormatError("plan: options must be an object of config names")
        try:
            json.dumps(options)
        except (TypeError, ValueError):
            raise PlanFormatError("plan: options must hold JSON values") from None
        try:
            dyn = data.get("dynamic") or {}
            dims = [(int(n), int(d)) for n, d in dyn.get("dims", [])]
            sets = [{int(n): tuple(int(x) for x in s) for n, s in shapes.items()} for shapes in dyn.get("shape_sets", [])]
            back = data.get("backward")
            seed = None if back is None else int(back["cotangent_seed"])
            layouts = {int(n): str(k) for n, k in (data.get("layouts") or {}).items()}
            return cls(dims, sets, seed, layouts, bool(data.get("mutation", False)), dict(options),
                       harness)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise PlanFormatError(f"plan: malformed ({type(e).__name__}: {e})") from None
