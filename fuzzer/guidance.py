"""Coverage-guided generation (DESIGN §8): steer the next models by what the last ones reached.

With ``dlfuzz fuzz --coverage`` each checked job (a case, or a batch of cases compiled
as one model) comes back with the number of arcs it added to the compiler's coverage
(``oracles.sut_coverage``). Guidance turns that into two things:

* **A bandit over generator choices**: operator kinds, APIs, the dtypes of the values an
  operator is anchored on, check kinds, and per batch the harness Dynamo traces around
  the model and the costly Inductor setting (``Guide.steer``). Each arm keeps a decayed gain (``log1p`` of
  the arcs its jobs added, shared among the job's cases) and a decayed use, counted in
  time (a job's seconds over the mean job's: a dynamic-shape compile costs ten plain
  ones, and a campaign's coverage is a race against its clock); its weight is
  ``1 + BOOST * score / best score`` with ``score = gain / (uses + 1)``, gain per second,
  so a choice that keeps reaching new code cheaply is drawn up to ``1 + BOOST`` times as
  often, and one that stopped paying falls back to the plain weight as its uses grow. Decay works
  per job (``DECAY``): the weights follow what *recently* added arcs. Arms never tried
  keep weight 1 (fresh generation explores them as before). APIs, some thousands of
  arms of which a short campaign draws a fraction, are weighed for novelty: an API never
  drawn weighs as much as the best one, every drawn one less (``Bandit.weights``).
  A batch's harness is chosen, not drawn from the plain cycle: each one not yet chosen
  comes first (in cycle order, the plain baseline of none last), then they are drawn by
  weight, so a short campaign tries every harness once and then favours those that kept
  adding arcs; the costly Inductor setting keeps the plain turns (each doubles a compile,
  and a campaign's pace is its coverage too) until every one has been fed back, then it
  is drawn by weight as well; the share of each optional check kind (dynamic shapes,
  backward, layouts) is its plain share times the arcs per second of the jobs that had it
  over those of the jobs that had not (``_check_shares``), from 0.3 to 0.9 (0.9 for one
  not yet in any checked plan).
* **Batch sizes**: while some batch-level arm (harness, costly setting, check kind) has
  not been fed back, a batch holds a quarter of the campaign's models (``batch_size``):
  what a compile adds then comes mostly from its settings, which cost a compile whatever
  it holds, so more compiles a minute meet every setting sooner (and a failed batch is
  bisected in fewer, cheaper steps). Then batches take the campaign's size.
* **A seed pool** of the cases whose jobs added arcs (the best ``POOL_SIZE`` by score).
  A share of the models (``MUTATE_SHARE``, times the bandit's weight of mutating over
  that of fresh generation: the "make" arms) are made from a seed instead of afresh: an
  operator swap (one operator node re-instantiated, with the same input and output
  types, as another operator of the same signature or as the same operator with new
  attributes; solved with z3 like any step), or a focused regeneration (a new graph,
  shapes and dtypes, whose API draws favour the seed's APIs).

Determinism: every choice guidance makes for model ``i`` flows from
``random.Random(f"{seed}/{i}/guide")`` and the bandit and pool as they are when the
model is made, so the same seed and the same feedback give the same models. (Feedback
arrives as workers finish, so two campaigns of one seed see it at different moments:
a guided case is reproduced from its ``case.json``, not regenerated from its index; its
provenance says ``guide``.) Before any feedback, and without ``--coverage``, generation
is exactly unguided: the draw consumes the model's random stream as before; only a
guided batch's harness goes through every arm in order rather than round the plain
cycle, and guided batches are cut smaller. (The feedback holds each job's time as well
as its arcs: the same seed and the same arcs and times give the same models.)
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from corpus.case import Case
from corpus.graph import Graph
from fuzzer.draw import TypeKey, api_of
from fuzzer.generate import Generator
from fuzzer.models import Model, make_model
from fuzzer.plan import HARNESS_CYCLE, HEAVY_CYCLE, SHARE as PLAIN_SHARE, Steer
from rules.solve import instantiate
from rules.spec import OpSpec
from rules.specs.inplace import alias_inputs, has_mutation

CATEGORIES = ("kind", "api", "dtype", "check", "harness", "heavy", "make")
MAKES = ("fresh", "swap", "focus")  # how a model is made (the "make" arms)
NONE = "none"  # the arm of no harness, no costly setting: the plain baseline
# the batch-level arms in the order they are first tried (the plain baseline last)
# harnesses in the order guidance first tries them: by the branches each added to one
# batch's plain compile (README, "What each adds"), so a short campaign meets the richest
# first; the plain baseline last
HARNESS_ARMS = ("containers", "objects", "modules", "python", "globals", "graph_break", "checkpoint", NONE)
assert set(HARNESS_ARMS) == {h for h in HARNESS_CYCLE if h} | {NONE}
HEAVY_ARMS = tuple(dict.fromkeys(h for h in HEAVY_CYCLE if h)) + (NONE,)
STEERED_CHECKS = ("dynamic", "backward", "layout")
BATCH_ARMS = {"harness": HARNESS_ARMS, "heavy": HEAVY_ARMS, "check": STEERED_CHECKS}
BREADTH_DIVISOR = 4  # batches are a quarter of the campaign's size while a batch-level arm is unheard
BREADTH_ROUNDS = 2  # small batches at most, per batch-level arm
COSTLY_CHECKS = {"dynamic", "layout"}  # checks whose cost grows with a batch's cases
MIN_COST, MAX_COST = 0.1, 10.0  # a job's cost in typical jobs, bounded (a first job pays for imports)


def batch_arms(checks: Sequence[str], *, harness: bool = False, options: bool = False,
               frameworks: Sequence[str] = ("torch",), **_) -> dict[str, Sequence[str]]:
    """The batch-level arms that apply to a campaign: harnesses where torch.compile is
    under test, costly settings where Inductor is, the optional check kinds it asked for
    (layouts are PyTorch's)."""
    kinds = tuple(k for k in STEERED_CHECKS if k in checks and (k != "layout" or set(frameworks) == {"torch"}))
    return {**({"harness": HARNESS_ARMS} if harness else {}), **({"heavy": HEAVY_ARMS} if options else {}),
            **({"check": kinds} if kinds else {})}
SHARE_RANGE = (0.3, 0.9)  # a check kind's share, from no gain to the best arm's
STEER_MEMORY = 256  # batches whose choices are kept (their members are made one by one)
DECAY = 0.99  # per job fed back: a job's gain halves in weight after ~70 more jobs
BOOST = 4.0  # the best arm is drawn (1 + BOOST) times as often as an untried one
POOL_SIZE = 48
MUTATE_SHARE = 0.3  # of models made once the pool holds a seed
SWAP_SHARE = 0.5  # of those: operator swap (else focused regeneration)
FOCUS_SHARE = 0.5  # in focused regeneration, API draws taken among the seed's APIs when one fits


class Bandit:
    """Decayed gain and use per arm, per category; deterministic for a feedback sequence."""

    def __init__(self, decay: float = DECAY, boost: float = BOOST) -> None:
        self.decay, self.boost = decay, boost
        self._scale = 1.0  # lazy decay: stored values are value * scale
        self._gain: dict[str, dict[str, float]] = {c: {} for c in CATEGORIES}
        self._uses: dict[str, dict[str, float]] = {c: {} for c in CATEGORIES}
        self.updates = 0

    def update(self, arms: Mapping[str, Mapping[str, float]], gain: float, cost: float = 1.0) -> None:
        """One job's feedback: ``arms[category][arm]`` is the share of the job's cases
        that had the arm; ``gain`` what the job added (0: nothing new); ``cost`` its time
        in typical jobs (``Guide.feedback``): an arm's uses count its time, so its score
        is gain per second, not per job (a campaign's coverage is a race against its clock)."""
        self.updates += 1
        self._scale /= self.decay
        s = self._scale
        for cat in CATEGORIES:
            uses, gains = self._uses[cat], self._gain[cat]
            for arm in sorted(arms.get(cat, {})):
                share = arms[cat][arm]
                uses[arm] = uses.get(arm, 0.0) + share * cost * s
                if gain > 0:
                    gains[arm] = gains.get(arm, 0.0) + gain * share * s
        if s > 1e100:  # keep the stored numbers finite
            for table in (*self._gain.values(), *self._uses.values()):
                for k in table:
                    table[k] /= s
            self._scale = 1.0

    def tried(self, category: str) -> set[str]:
        """The arms some feedback has used."""
        return {a for a, u in self._uses[category].items() if u > 0}

    def score(self, category: str, arm: str) -> float:
        g = self._gain[category].get(arm, 0.0)
        return g / (self._uses[category].get(arm, 0.0) + self._scale) if g else 0.0

    def weights(self, category: str, novelty: bool = False) -> dict[str, float]:
        """Weights of the arms that gained (others weigh 1), sorted by arm.

        ``novelty``: for a category of many arms, most never drawn (the APIs): an arm not
        yet tried weighs 1, as much as the best tried one, and every tried arm less, in
        proportion (``1 + BOOST * score / best`` over ``1 + BOOST``; one that added
        nothing ``1 / (1 + BOOST)``). The plain weights would make every API that shared
        in an early batch's gain (early, every batch gains) up to five times as likely
        as one never drawn: repetition where a short campaign gains most from breadth."""
        if novelty:
            tried = sorted(self.tried(category))
            scores = {a: self.score(category, a) for a in tried}
        else:
            scores = {a: self.score(category, a) for a in sorted(self._gain[category])}
        top = max(scores.values(), default=0.0)
        if novelty:
            return {a: (1.0 + (self.boost * v / top if top > 0 else 0.0)) / (1.0 + self.boost)
                    for a, v in scores.items()}
        if top <= 0:
            return {}
        return {a: 1.0 + self.boost * v / top for a, v in scores.items() if v > 0}


@dataclass(order=True)
class _Seed:
    score: float
    order: int
    case: Case = field(compare=False)


class SeedPool:
    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self.seeds: list[_Seed] = []
        self._order = 0

    def __len__(self) -> int:
        return len(self.seeds)

    def add(self, case: Case, score: float) -> None:
        self._order += 1
        self.seeds.append(_Seed(score, self._order, case))
        if len(self.seeds) > self.size:
            self.seeds.remove(min(self.seeds))

    def pick(self, rng: random.Random) -> Case:
        seeds = sorted(self.seeds, key=lambda s: s.order)
        return rng.choices(seeds, weights=[s.score for s in seeds])[0].case


@dataclass
class Bias:
    """What one guided model's draws see (``fuzzer.draw.OperatorDraw.guide``): weight
    tables copied from the bandit when the model is started, and a seed's APIs to focus on."""

    kinds: dict[str, float] = field(default_factory=dict)
    apis: dict[str, float] = field(default_factory=dict)
    dtypes: dict[str, float] = field(default_factory=dict)
    focus: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.kinds or self.apis or self.dtypes or self.focus)

    def kind(self, rng: random.Random, kinds: list[str], base: list[float]) -> str:
        return rng.choices(kinds, weights=[w * self.kinds.get(k, 1.0) for k, w in zip(kinds, base)])[0]

    def api(self, rng: random.Random, groups: list[list[OpSpec]]) -> list[OpSpec]:
        if self.focus and rng.random() < FOCUS_SHARE:
            near = [g for g in groups if api_of(g[0]) in self.focus]
            if near:
                return rng.choice(near)
        if not self.apis:
            return rng.choice(groups)
        return rng.choices(groups, weights=[self.apis.get(api_of(g[0]), 1.0) for g in groups])[0]

    def anchor(self, rng: random.Random, keys: list[TypeKey]) -> TypeKey:
        if not self.dtypes:
            return rng.choice(keys)
        return rng.choices(keys, weights=[self.dtypes.get(d, 1.0) for _, d in keys])[0]


def arms_of(case: Case, specs: Mapping[str, OpSpec]) -> dict[str, set[str]]:
    """The generator choices a case embodies, per category."""
    kinds, apis = set(), set()
    for op in case.graph.op_ids():
        spec = specs.get(op)
        kinds.add(spec.origin if spec is not None else "spec")
        apis.add(api_of(spec) if spec is not None else op)
    g = case.graph
    dtypes = {g.type_of(v).dtype for v in g.values()}
    heavy = next((h for h in HEAVY_ARMS if case.plan.options.get(h)), NONE)
    how = case.provenance.get("guide") or "fresh"
    return {"kind": kinds, "api": apis, "dtype": dtypes, "check": set(case.plan.kinds()),
            "harness": {case.plan.harness or NONE}, "heavy": {heavy}, "make": {how if how in MAKES else "fresh"}}


class Guide:
    """The bandit, the seed pool, and the models they make. ``feedback`` is called from
    the campaign's thread, ``make`` from the prefetch thread: a lock keeps them apart."""

    def __init__(self, seed: int, specs: Mapping[str, OpSpec], mutate_share: float = MUTATE_SHARE) -> None:
        self.seed = seed
        self.specs = specs
        self.mutate_share = mutate_share
        self.bandit = Bandit()
        self.pool = SeedPool()
        self.made: dict[str, int] = {}  # models by how they were made: fresh, swap, focus
        self._steers: dict[object, Steer] = {}  # by batch (or model, unbatched)
        self._chosen: dict[str, dict[str, int]] = {"harness": {}, "heavy": {}}
        self._group, self._group_left = -1, 0  # the batch being made, and the models it still takes
        self._group_size = 0  # the size of the batch being made
        self._seconds = (0.0, 0)  # the fed-back jobs' total time and count
        # per optional check kind: (gain, cost) of the jobs with it, and of those without
        self._rates: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        self._lock = threading.Lock()

    # -- feedback ---------------------------------------------------------------------------
    def feedback(self, members: Sequence[Case], new_arcs: int, seconds: float | None = None) -> None:
        if not members:
            return
        share: dict[str, dict[str, float]] = {c: {} for c in CATEGORIES}
        for case in members:
            for cat, arms in arms_of(case, self.specs).items():
                for a in arms:
                    share[cat][a] = share[cat].get(a, 0.0) + 1.0 / len(members)
        gain = math.log1p(max(new_arcs, 0))
        with self._lock:
            cost = 1.0
            if seconds is not None and seconds > 0:  # in typical jobs: this one's time over the mean so far
                self._seconds = (self._seconds[0] + seconds, self._seconds[1] + 1)
                cost = min(MAX_COST, max(MIN_COST, seconds * self._seconds[1] / self._seconds[0]))
            self.bandit.update(share, gain, cost)
            for kind in STEERED_CHECKS:  # with and without each kind, decayed as the bandit is
                on = share["check"].get(kind, 0.0)
                (gw, cw), (go, co) = self._rates.get(kind, ((0.0, 0.0), (0.0, 0.0)))
                self._rates[kind] = ((gw * DECAY + gain * on, cw * DECAY + cost * on),
                                     (go * DECAY + gain * (1 - on), co * DECAY + cost * (1 - on)))
            if new_arcs > 0:
                for case in members:
                    self.pool.add(case, gain / len(members))

    def bias(self) -> Bias:
        with self._lock:
            return Bias(self.bandit.weights("kind"), self.bandit.weights("api", novelty=True),
                        self.bandit.weights("dtype"))

    def steer(self, key: object) -> Steer:
        """The choices for batch ``key`` (all its members get the same): the harness and the
        costly setting (each untried one first, in order; then by weight), and the shares
        of the optional check kinds (by weight; the plain shares before any gain)."""
        with self._lock:
            if key in self._steers:
                return self._steers[key]
            rng = random.Random(f"{self.seed}/{key}/steer")
            picks = {"harness": self._choose(rng, "harness", HARNESS_ARMS)}
            # the costly settings keep the plain turns (a campaign's pace) until every one has
            # been fed back; then they are drawn by weight like the harnesses
            if set(HEAVY_ARMS) <= self.bandit.tried("heavy"):
                picks["heavy"] = self._choose(rng, "heavy", HEAVY_ARMS, explore=False)
            shares = self._check_shares()
            heavy = picks.get("heavy")
            steer = Steer(harness="" if picks["harness"] == NONE else picks["harness"],
                          heavy=None if heavy is None else ("" if heavy == NONE else heavy), shares=shares)
            self._steers[key] = steer
            while len(self._steers) > STEER_MEMORY:
                self._steers.pop(next(iter(self._steers)))
            return steer

    def _check_shares(self) -> dict[str, float] | None:
        """The share of each optional check kind: a kind never in a checked plan gets the
        most (it needs a first look); one that has been, its plain share times how many arcs
        per second the jobs that had it added against the jobs that did not (within
        ``SHARE_RANGE``). The contrast, not the kind's own score: the kinds come together
        in one plan, so each one's score would be the same mixture; and per second, since a
        dynamic-shape check costs several plain ones. None before any feedback."""
        tried = self.bandit.tried("check")
        if not tried:
            return None
        low, high = SHARE_RANGE
        shares = {}
        for kind in STEERED_CHECKS:
            (gain_with, cost_with), (gain_without, cost_without) = self._rates.get(kind, ((0.0, 0.0), (0.0, 0.0)))
            if kind not in tried:
                shares[kind] = high
            elif cost_with <= 0 or cost_without <= 0 or gain_without <= 0:
                shares[kind] = PLAIN_SHARE[kind] if gain_with <= 0 or cost_without <= 0 else high
            else:
                ratio = (gain_with / cost_with) / (gain_without / cost_without)
                shares[kind] = min(high, max(low, PLAIN_SHARE[kind] * ratio))
        return shares

    def _make_weights(self) -> list[float]:
        """Weights of fresh generation, operator swap and focused regeneration: the plain
        shares (``mutate_share``, ``SWAP_SHARE``) times each one's bandit weight, so that
        mutating the seeds takes more of the models only while its cases add more arcs
        than fresh ones (early in a campaign, when every model adds arcs, they do not)."""
        w = self.bandit.weights("make")
        plain = (1.0 - self.mutate_share, self.mutate_share * SWAP_SHARE, self.mutate_share * (1.0 - SWAP_SHARE))
        return [p * w.get(m, 1.0) for p, m in zip(plain, MAKES)]

    def _choose(self, rng: random.Random, category: str, arms: Sequence[str], explore: bool = True) -> str:
        chosen = self._chosen[category]
        fresh = [a for a in arms if a not in chosen] if explore else []
        if fresh:
            arm = fresh[0]
        else:
            w = self.bandit.weights(category)
            arm = rng.choices(list(arms), weights=[w.get(a, 1.0) for a in arms])[0]
        chosen[arm] = chosen.get(arm, 0) + 1
        return arm

    def batch_size(self, batch: int, arms: Mapping[str, Sequence[str]] | None = None) -> int:
        """How many models the next batch holds, at most ``batch`` (the campaign's).

        A compile's coverage comes from two sources: the settings it runs under (its
        harness, costly Inductor setting, check kinds), which cost the same per compile
        whatever the batch holds, and its operators, which grow with the batch. While some
        batch-level arm (``arms``: those that apply to the campaign) has not been fed back,
        what a compile adds is mostly its settings' (a first harness adds ~1,000 branches,
        a batch's eight graphs a few hundred), so batches are small (``BREADTH_DIVISOR``):
        more compiles a minute, every setting met early, and a failed batch bisected in a
        few cheap steps. Once every arm has been heard (or after ``BREADTH_ROUNDS`` batches
        per arm, for an arm no model can take), batches take the campaign's size again,
        which amortizes a compile's fixed cost over more operators; but a batch whose plan
        checks dynamic shapes or layouts (``COSTLY_CHECKS``) stays small (``make``): those
        recompile per input, so their cost grows with the batch (two cases 20 s, eight
        90-160 s, measured with coverage on) and nothing is amortized."""
        arms = BATCH_ARMS if arms is None else arms
        with self._lock:
            unheard = sum(len(set(a) - self.bandit.tried(cat)) for cat, a in arms.items())
        breadth = unheard and self._group + 1 < BREADTH_ROUNDS * sum(len(a) for a in arms.values())
        return self._small(batch) if breadth else batch

    @staticmethod
    def _small(batch: int) -> int:
        return max(min(batch, 2), batch // BREADTH_DIVISOR)

    def ahead(self, batch: int) -> int:
        """How many models to make ahead of the workers, per worker: one batch of the size
        being cut, so that the next batch's choices already hear the last one's coverage
        (``fuzzer.prefetch.Prefetcher``'s ``depth``)."""
        return self._group_size or self._small(batch)

    def _next_group(self, batch: int, arms: Mapping[str, Sequence[str]] | None = None) -> tuple[int, bool]:
        """(the batch of the model being made, whether it is the batch's last), cutting the
        models, made one by one in index order, into batches of ``batch_size``."""
        if self._group_left <= 0:
            self._group_left = self._group_size = self.batch_size(batch, arms)
            self._group += 1
        self._group_left -= 1
        return self._group, self._group_left == 0

    # -- making models ------------------------------------------------------------------------
    def make(self, index: int, generator: Generator, *, checks: Sequence[str], group: int | None = None,
             batch: int = 1, **model_kw) -> Model:
        """Model ``index``: fresh (biased) or a mutant of a pool seed, with its batch's
        steered choices (``steer``). ``batch``: the campaign's batch size; the guide cuts
        the models into batches itself (``batch_size``) and marks each batch's last
        model (``Model.ends_batch``). ``group``: a batch chosen by the caller instead."""
        ends = None
        if group is None and batch > 1:
            group, ends = self._next_group(batch, batch_arms(checks, **model_kw))
        rng = random.Random(f"{self.seed}/{index}/guide")
        bias = self.bias()
        parent = None
        how = "fresh"
        with self._lock:
            if self.pool:
                how = rng.choices(MAKES, weights=self._make_weights())[0]
                if how != "fresh":
                    parent = self.pool.pick(rng)
        case_for = None
        if parent is not None:
            if how == "swap":
                case_for = lambda draw: self._mutant(parent, generator, index, draw)  # noqa: E731
            else:
                bias.focus = frozenset(arms_of(parent, self.specs)["api"])
        steer = self.steer(f"group{group}" if group is not None else f"model{index}")
        generator.draw.guide = bias if bias.active else None
        try:
            model = make_model(generator, self.specs, self.seed, index, checks=checks, case_for=case_for,
                               group=group, steer=steer, **model_kw)
        finally:
            generator.draw.guide = None
        if ends is not None and self._group_left > 0 and model.valid and COSTLY_CHECKS & set(model.case.plan.kinds()):
            # a model of the batch drew a check whose cost grows with the batch's cases (a
            # dynamic-shape compile, layouts: each recompiles per input): no compile to
            # amortize, only a longer wait for the next feedback, so the batch stays small
            made = self._group_size - self._group_left
            self._group_left = min(self._group_left, max(0, self._small(batch) - made))
            ends = self._group_left == 0
        model.ends_batch = ends
        how = how if how != "swap" or model.case.provenance.get("mutant_of") is not None else "fresh"
        if bias.active or how != "fresh":
            model.case.provenance["guide"] = how
        self.made[how] = self.made.get(how, 0) + 1
        return model

    def _mutant(self, parent: Case, generator: Generator, index: int, draw: int) -> Case | None:
        graph = swap_operator(parent.graph, generator, random.Random(f"{self.seed}/{index}/swap/{draw}"))
        if graph is None:
            return None
        cfg = generator.config
        settings = {"max_nodes": cfg.max_nodes, "max_rank": cfg.bounds.max_rank, "max_dim": cfg.bounds.max_dim,
                    "max_elements": cfg.bounds.max_elements}
        return Case(graph, generator.framework, {}, seed=self.seed, settings=settings,
                    provenance={"generator": "dlfuzz", "index": index, "draw": draw,
                                "mutant_of": parent.provenance.get("index")})


def _swappable(spec: OpSpec | None, strict: bool) -> bool:
    """Not an in-place operator; in a graph that writes in place (``strict``) not one whose
    result may share its input's storage either: then the swap keeps the aliasing as it is."""
    return spec is not None and not getattr(spec, "mutates", ()) and not (strict and alias_inputs(spec))


def swap_operator(graph: Graph, generator: Generator, rng: random.Random, tries: int = 4) -> Graph | None:
    """A copy of ``graph`` with one operator node re-instantiated: as another operator
    taking the same input types and producing the same output types, or as the same one
    with other attributes. None if no node could be swapped in ``tries`` nodes. In-place
    operators are never swapped in or out, and in a graph that has one, neither are views
    (``rules.specs.inplace``): what aliases what stays as it was."""
    by_id = generator.by_id
    if any(op not in by_id for op in graph.op_ids()):
        return None
    strict = has_mutation(graph, by_id)
    g = graph.copy()
    nodes = [n for n in g.op_nodes() if _swappable(by_id.get(g.node(n).op), strict)]
    rng.shuffle(nodes)
    draw = generator.draw
    for nid in nodes[:tries]:
        node = g.node(nid)
        old = by_id[node.op]  # type: ignore[index]
        in_types = [g.type_of(v) for v in g.inputs_of(nid)]
        data = [i for i in range(len(in_types)) if i not in old.weight_inputs]
        key = (in_types[data[0]].rank, in_types[data[0]].dtype) if data else None
        others: list[OpSpec] = []
        for kind in draw.kinds:
            for group in draw.accepting[kind].get(key, []) if key is not None else []:
                others += [s for s in group if s.id != old.id and s.n_inputs == old.n_inputs
                           and tuple(s.weight_inputs) == tuple(old.weight_inputs) and _swappable(s, strict)]
        picks = rng.sample(others, min(len(others), 5))
        if rng.random() < 0.5 or not picks:
            picks.insert(0, old)  # the same operator, other attributes
        for spec in picks:
            inst = instantiate(spec, generator.framework, rng, generator.config.bounds, inputs=in_types)
            if inst is None or list(inst.out_types) != list(node.types):
                continue
            if spec is old and inst.attrs == node.attrs:
                continue  # the same instance: no mutation
            if not generator._trial(spec, inst, rng):
                continue
            node.op, node.attrs = spec.id, dict(inst.attrs)
            return g
    return None


def model_maker(generator: Generator, specs: Mapping[str, OpSpec], seed: int, guide: Guide | None, *,
                checks: Sequence[str], batch: int = 1, **model_kw) -> Callable[[int], Model]:
    """``make(index)`` for the campaign's prefetcher: plain ``make_model`` without a guide.
    ``batch``: the campaign's batch size; the models of one batch share the stream that
    decides which checks their plans have (``fuzzer.models.make_model``'s ``group``)."""
    def group(index: int) -> int | None:
        return index // batch if batch > 1 else None

    if guide is None:
        return lambda index: make_model(generator, specs, seed, index, checks=checks, group=group(index), **model_kw)
    return lambda index: guide.make(index, generator, checks=checks, batch=batch, **model_kw)
