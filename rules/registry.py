"""The operator registry: every kind of operator the generator can draw, by kind.

It sits above the modules that define each kind (``rules.specs`` for the hand-written
specs, ``rules.inferred`` for specs from the rule store, ``rules.concrete`` for replayed
records) so that none of them needs another: concrete replays build on inferred specs,
and only this module gathers them all.
"""

from __future__ import annotations

from typing import Sequence

from rules.concrete import concrete_specs
from rules.inferred import _load, inferred_specs
from rules.spec import OpSpec
from rules.specs import specs_for

OP_KINDS = ("spec", "inferred", "concrete")


def parse_op_kinds(text: str) -> tuple[str, ...]:
    """``spec,inferred`` -> ("spec", "inferred"); ValueError (one line) for unknown kinds."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise ValueError(f"expected a comma list of operator kinds ({', '.join(OP_KINDS)}), got {text!r}")
    for k in kinds:
        if k not in OP_KINDS:
            raise ValueError(f"unknown operator kind {k!r}; expected a comma list of {', '.join(OP_KINDS)}")
    return tuple(dict.fromkeys(kinds))


def operator_specs(framework: str, kinds: Sequence[str] = ("spec",), rules_path: str | None = None) -> list[OpSpec]:
    """The specs of the given kinds for one framework."""
    out: list[OpSpec] = []
    if "spec" in kinds:
        out += specs_for(framework)
    if "inferred" in kinds:
        out += inferred_specs(framework, rules_path)
    if "concrete" in kinds:
        out += concrete_specs(framework, _load(framework, str(rules_path) if rules_path else None))
    return out
