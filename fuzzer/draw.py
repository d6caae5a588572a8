"""Which operator the generator tries next (DESIGN §5, hybrid generation).

Three kinds of operator take part: hand-written symbolic specs (137 per framework),
inferred specs (thousands, one per rule, each with one rank signature) and concrete
replays of recorded calls. A step draws:

1. a kind, by ``GenConfig.kind_weights``;
2. an API of that kind, evenly: an API with fifty rules is no likelier than one with a
   single rule, which maximizes distinct APIs per campaign;
3. an operator of that API, evenly.

Drawn blindly, most inferred operators fit no value of the graph (wrong rank or dtype)
and the step is wasted. So a forward step first picks an *anchor*: a (rank, dtype) that
some value of the graph has, and draws among the APIs that accept it at some input; a
backward step draws among the APIs that can produce the placeholder's dtype. If no API
of the drawn kind fits, the draw falls back to every API of the kind (a replay can
always start from fresh leaves).

Coverage guidance (``fuzzer.guidance``) may set ``OperatorDraw.guide`` for one model: a
bias over kinds, APIs and anchor dtypes. Without one (the default) every draw consumes
the random stream exactly as before, so seeded generation is unchanged.
"""

from __future__ import annotations

import random
from typing import Iterable, Sequence

from rules.spec import OpSpec

TypeKey = tuple[int, str]  # (rank, dtype)


def api_of(spec: OpSpec) -> str:
    return getattr(spec, "api", spec.id)


def accepted_types(spec: OpSpec, framework: str, max_rank: int) -> set[TypeKey]:
    """Every (rank, dtype) that ``spec`` takes at some non-weight input."""
    data = [i for i in range(spec.n_inputs) if i not in spec.weight_inputs]
    out: set[TypeKey] = set()
    dtypes = spec.dtype_options(framework)
    for ranks in spec.rank_options():
        if max(ranks, default=0) > max_rank:
            continue
        for d in dtypes:
            out.update((ranks[i], d[i]) for i in data)
    return out


def produced_dtypes(spec: OpSpec) -> set[str] | None:
    """The dtypes a single-output instance of ``spec`` can have; None when unknown
    (a symbolic spec computes it per instance)."""
    outs = getattr(spec, "out_dtypes", None)
    if outs is not None:
        return set(outs[:1]) if len(outs) == 1 else set()
    table = getattr(spec, "table", None)
    if table is None:
        return None
    return {o[0] for o in table.values() if len(o) == 1}


class OperatorDraw:
    def __init__(self, framework: str, specs: Sequence[OpSpec], kind_weights: dict[str, float], max_rank: int) -> None:
        by_kind: dict[str, dict[str, list[OpSpec]]] = {}
        for s in specs:
            by_kind.setdefault(s.origin, {}).setdefault(api_of(s), []).append(s)
        unknown = set(by_kind) - set(kind_weights)
        if unknown:
            raise ValueError(f"no weight for operator kind(s) {sorted(unknown)}; set GenConfig.kind_weights")
        self.kinds = sorted(k for k in by_kind if kind_weights[k] > 0)
        if not self.kinds:
            raise ValueError(f"every operator kind present ({', '.join(sorted(by_kind))}) has weight 0 "
                             f"in GenConfig.kind_weights")
        self.weights = [kind_weights[k] for k in self.kinds]
        self.guide = None  # a fuzzer.guidance.Bias while a guided model is drawn
        # kind -> API -> its operators; kind -> type -> (API, its operators accepting it)
        self.apis = {k: [by_kind[k][a] for a in sorted(by_kind[k])] for k in self.kinds}
        self.accepting: dict[str, dict[TypeKey, list[list[OpSpec]]]] = {}
        self.producing: dict[str, dict[str, list[list[OpSpec]]]] = {}
        for k in self.kinds:
            acc: dict[TypeKey, dict[str, list[OpSpec]]] = {}
            prod: dict[str, dict[str, list[OpSpec]]] = {}
            anything: list[OpSpec] = []
            for api in sorted(by_kind[k]):
                for s in by_kind[k][api]:
                    for key in accepted_types(s, framework, max_rank):
                        acc.setdefault(key, {}).setdefault(api, []).append(s)
                    dts = produced_dtypes(s)
                    if dts is None:
                        anything.append(s)
                    for d in dts or ():
                        prod.setdefault(d, {}).setdefault(api, []).append(s)
            self.accepting[k] = {key: [apis[a] for a in sorted(apis)] for key, apis in acc.items()}
            self.producing[k] = {d: [apis[a] for a in sorted(apis)] for d, apis in prod.items()}
            if anything:
                self.producing[k]["*"] = [[s] for s in anything]

    def _kind(self, rng: random.Random) -> str:
        if self.guide is not None and len(self.kinds) > 1:
            return self.guide.kind(rng, self.kinds, self.weights)
        return rng.choices(self.kinds, weights=self.weights)[0] if len(self.kinds) > 1 else self.kinds[0]

    def _api(self, rng: random.Random, groups: list[list[OpSpec]]) -> list[OpSpec]:
        return rng.choice(groups) if self.guide is None else self.guide.api(rng, groups)

    def any(self, rng: random.Random) -> OpSpec:
        return rng.choice(self._api(rng, self.apis[self._kind(rng)]))

    def consuming(self, rng: random.Random, types: Iterable[TypeKey]) -> OpSpec:
        """An operator that takes one of ``types`` (anchored on one of them, drawn evenly)."""
        kind = self._kind(rng)
        keys = sorted(set(types))
        if keys:
            groups = self.accepting[kind].get(rng.choice(keys) if self.guide is None else self.guide.anchor(rng, keys))
            if groups:
                return rng.choice(self._api(rng, groups))
        return rng.choice(self._api(rng, self.apis[kind]))

    def producing_dtype(self, rng: random.Random, dtype: str) -> OpSpec:
        """An operator that may produce a single ``dtype`` output."""
        kind = self._kind(rng)
        groups = self.producing[kind].get(dtype, []) + self.producing[kind].get("*", [])
        if groups:
            return rng.choice(self._api(rng, groups))
        return rng.choice(self._api(rng, self.apis[kind]))
