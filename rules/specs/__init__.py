"""The hand-written symbolic operator specs, gathered in one explicit list.

Each module exports ``SPECS``; this module concatenates them and checks the result when
it is built (unique ids, known frameworks, declared signatures), so that a broken spec
fails at import of the registry, not in the middle of a campaign.
"""

from __future__ import annotations

from rules.spec import FRAMEWORKS, OpSpec
from rules.specs import conv, elementwise, inplace, nn, reduce, shape

_MODULES = [elementwise, nn, conv, shape, reduce, inplace]


class SpecRegistryError(ValueError):
    pass


def _build() -> dict[str, OpSpec]:
    specs: dict[str, OpSpec] = {}
    for module in _MODULES:
        for spec in module.SPECS:
            if not spec.id:
                raise SpecRegistryError(f"{type(spec).__name__} in {module.__name__} has no id")
            if spec.id in specs:
                raise SpecRegistryError(f"duplicate operator id {spec.id!r} in {module.__name__}")
            unknown = set(spec.frameworks) - set(FRAMEWORKS)
            if unknown:
                raise SpecRegistryError(f"{spec.id}: unknown frameworks {sorted(unknown)}")
            if len(spec.frameworks) < len(FRAMEWORKS) and not spec.one_framework_reason:
                raise SpecRegistryError(f"{spec.id}: one-framework spec must say why in one_framework_reason")
            for fw in spec.frameworks:
                for combo in spec.dtype_options(fw):
                    if len(combo) != spec.n_inputs:
                        raise SpecRegistryError(f"{spec.id}: dtype combo {combo} does not have {spec.n_inputs} entries")
            if any(not 0 <= p < spec.n_inputs or p in spec.weight_inputs for p in spec.mutates):
                raise SpecRegistryError(f"{spec.id}: mutates {spec.mutates} must name data inputs")
            for ranks in spec.rank_options():
                if len(ranks) != spec.n_inputs:
                    raise SpecRegistryError(f"{spec.id}: rank combo {ranks} does not have {spec.n_inputs} entries")
            specs[spec.id] = spec
    return specs


SPECS: dict[str, OpSpec] = _build()


def specs_for(framework: str) -> list[OpSpec]:
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
    return [s for s in SPECS.values() if framework in s.frameworks]
