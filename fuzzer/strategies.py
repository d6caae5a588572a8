"""Hypothesis strategies: ``models(...)`` draws generated models (DESIGN §7).

The generator takes every decision from a ``random.Random`` (``fuzzer.generate``,
``fuzzer.draw``, ``rules.solve.instantiate``, the specs' ``sample_attrs``,
``fuzzer.values``). ``DrawRandom`` is a ``random.Random`` whose primitives draw from
Hypothesis instead of a Mersenne Twister, so the same code serves both: a seeded
``random.Random`` for campaigns (unchanged models for a seed), Hypothesis's data here.
Hypothesis then shrinks a failing model the way it shrinks anything: every choice is an
integer or a float in the choice sequence, and each primitive is written so that a
smaller draw means an earlier option (the first of ``choice``, the lightest-indexed of
``choices``, the identity for ``shuffle``, a prefix for ``sample``, the lower bound of
``randint``). The generator lists its options simplest first (rank 0 before 5, small
dimensions first, float32 the first dtype), so shrinking gives fewer operators (a draw
after each operator says whether another follows), smaller shapes and simpler dtypes. Hypothesis's example database
stores the choice sequence, so a failure replays on the next run.

The methods the generator calls (grep ``rng\\.``): random, randint, randrange, choice,
choices, shuffle, sample; trial runs and value search take ``randrange(2**31)`` seeds.
``getrandbits`` and ``uniform`` complete the set; anything else a future caller uses
(``gauss``...) goes through ``random()``, as in the standard library.
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Any, Callable, Sequence

import hypothesis.strategies as st
from hypothesis import reject

Draw = Callable[[st.SearchStrategy], Any]

# Value modes, simplest first: shrinking prefers plain finite values.
VALUE_MODES = ("", "limits", "special")


class DrawRandom(random.Random):
    """A ``random.Random`` backed by Hypothesis draws (``draw`` of ``st.composite`` or
    ``st.data().draw``). It has no state to seed: the draws are the state."""

    def __init__(self, draw: Draw) -> None:
        self._draw = draw
        super().__init__(0)

    def seed(self, a: Any = None, version: int = 2) -> None:  # random.Random.__init__ calls it
        pass

    def getstate(self):  # pragma: no cover - nothing to save: the draws are the state
        raise NotImplementedError("a DrawRandom replays from Hypothesis's choice sequence, not a state")

    setstate = getstate

    # -- primitives ----------------------------------------------------------------------
    def _int(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi))

    def random(self) -> float:
        return self._draw(st.floats(0.0, 1.0, exclude_max=True))

    def getrandbits(self, k: int) -> int:
        return self._int(0, 2**k - 1) if k else 0

    def _randbelow(self, n: int) -> int:
        return self._int(0, n - 1)

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        n = len(range(start, stop, step))
        if n <= 0:
            raise ValueError(f"empty range for randrange({start}, {stop}, {step})")
        return start + step * self._int(0, n - 1)

    def randint(self, a: int, b: int) -> int:
        return self.randrange(a, b + 1)

    def choice(self, seq: Sequence):
        if not len(seq):
            raise IndexError("cannot choose from an empty sequence")
        return seq[self._int(0, len(seq) - 1)]

    def choices(self, population: Sequence, weights=None, *, cum_weights=None, k: int = 1) -> list:
        """Weighted like the standard library (a float in [0, total) bisected into the
        cumulative weights), so drawing 0.0 picks the first option."""
        n = len(population)
        if cum_weights is None:
            if weights is None:
                return [population[self._int(0, n - 1)] for _ in range(k)]
            cum_weights = list(itertools.accumulate(weights))
        total = cum_weights[-1]
        return [population[min(bisect.bisect(cum_weights, self.random() * total), n - 1)] for _ in range(k)]

    def shuffle(self, x: list) -> None:
        """Fisher-Yates from the front: each slot takes one of the remaining items, so
        all-zero draws leave ``x`` as it was."""
        for i in range(len(x) - 1):
            j = i + self._int(0, len(x) - 1 - i)
            x[i], x[j] = x[j], x[i]

    def sample(self, population: Sequence, k: int, *, counts=None) -> list:
        """``k`` distinct items, each picked from those left; all-zero draws give the
        first ``k`` in order."""
        pool = list(population) if counts is None else \
            [p for p, c in zip(population, counts) for _ in range(c)]
        if not 0 <= k <= len(pool):
            raise ValueError("sample larger than population or is negative")
        return [pool.pop(self._int(0, len(pool) - 1)) for _ in range(k)]

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def keep_growing(self) -> bool:
        """Whether the graph gets another operator (``Generator.generate`` asks after each
        one): 0 stops, so a shrunk model stops early; while generating, nine in ten go on."""
        return self._draw(st.integers(0, 9)) != 0


@st.composite
def models(draw: Draw, framework: str = "torch", max_nodes: int = 5, ops: Sequence[str] = ("spec",),
           dtypes: Sequence[str] | None = None, backends: Sequence[str] | None = None,
           special_values: bool = True, checks: Sequence[str] = ("forward",)):
    """A generated, valid ``Case`` (values on which eager computes only finite values).

    ``max_nodes``: at most this many operators (after each one a draw decides whether
    the model grows on, so a failure shrinks to fewer); ``ops``: the operator kinds (spec, inferred, concrete); ``dtypes``: the
    dtypes operators may take as inputs; ``backends``: the backends the models are for
    (torch and tensorflow together keep the operators both have); ``special_values``:
    allow the value modes with integer limits and special floats (NaN, inf, -0.0);
    ``checks``: what the case's check plan may use (forward, dynamic, backward, layout,
    mutation, or "all"): the plan is drawn by Hypothesis too, so a failure shrinks to the
    checks it needs; with an Inductor backend among ``backends`` the plan's Inductor
    settings and harness too (none when shrunk), as campaigns draw them."""
    from fuzzer import api
    from fuzzer.generate import GenerationError
    from fuzzer.values import choose_mode, search_values

    source = api.model_source(framework, max_nodes, tuple(ops), tuple(dtypes) if dtypes is not None else None,
                              tuple(backends) if backends else None,
                              (checks,) if isinstance(checks, str) else tuple(checks))
    rng = DrawRandom(draw)
    try:
        graph = source.generator.generate(rng)  # it asks rng.keep_growing() after each operator
    except GenerationError:
        reject()
    mode = draw(st.sampled_from(VALUE_MODES if special_values and source.special_values else ("", "limits")),
                label="value mode")
    case = api.Case(graph, framework, {}, seed=0, settings={"max_nodes": max_nodes},
                    provenance={"generator": "dlfuzz.strategies.models"})
    # the mode applies where the graph has leaves for it (``choose_mode`` with a share of 1)
    if mode:
        shares = {"limits_share": 1.0, "special_share": 0.0} if mode == "limits" else \
            {"limits_share": 0.0, "special_share": 1.0}
        mode = choose_mode(graph, source.specs, random.Random(0), **shares)
    search = search_values(graph, framework, source.specs, rng, mode=mode)
    if not search.ok:
        reject()  # NaN/Inf in the reference: never a test input, as in campaigns
    case.values = search.values
    case.provenance["values_mode"] = search.mode or "plain"
    if set(source.checks) - {"forward"}:
        from fuzzer.plan import draw_plan

        case.plan = draw_plan(case, source.specs, rng, source.checks, source.frameworks)
    if source.options:  # Inductor settings: each off when shrunk
        from fuzzer.plan import HEAVY, OPTIONS

        heavy = draw(st.sampled_from(("", *HEAVY)), label="costly Inductor setting")
        case.plan.options = {heavy: HEAVY[heavy]} if heavy else {}
        case.plan.options.update({name: (dict(value) if isinstance(value, dict) else value)
                                  for name, value, _ in OPTIONS if draw(st.booleans(), label=name)})
    if source.harness:  # a harness Dynamo traces around the model: none when shrunk
        from corpus.plan import HARNESSES

        name = draw(st.sampled_from(("", *HARNESSES)), label="harness")
        case.plan.harness = "" if name == "checkpoint" and case.plan.mutation else name
    return case

