"""The graph generator (DESIGN §5): grow a model one operator at a time.

Each step draws an operator and a direction:

* **forward** insertion consumes values already in the graph (matching ranks and dtypes)
  and adds the operator's outputs as new values;
* **backward** insertion picks an ``input`` leaf and makes the new operator produce it,
  giving the operator fresh leaves as inputs. This grows the graph towards its inputs,
  so that an operator with a demanding input type (conv weights, bool masks) can enter
  the graph even when no existing value fits.

Shapes and attributes are solved per step with z3 (NeuRI's concolic mode): existing
tensors are concrete, the new operator's attributes and fresh inputs are symbolic
(``rules.solve.instantiate``). Every random choice flows from one ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from corpus.graph import Graph, Value
from corpus.tensor_type import TensorType
from fuzzer.draw import OperatorDraw
from rules.solve import DIM_HINTS, Bounds, Instance, instantiate
from rules.spec import OpSpec
from rules.specs.inplace import alias_inputs, family, has_mutation, spent_values, writable, writes_through

# Leaf dtypes, weighted: float32 most, but the narrow and half types that compilers get
# wrong appear in a good share of models.
DTYPE_WEIGHTS = {
    "float32": 30, "float64": 8, "float16": 8, "bfloat16": 6,
    "int32": 7, "int64": 7, "int8": 3, "int16": 3, "uint8": 3, "bool": 5,
}


# A draw whose operator fits no value of the graph costs no solving; with thousands of
# single-signature inferred operators most draws are such misses, so they are budgeted
# apart from real attempts.
MISSES_PER_ATTEMPT = 20
DEFAULT_KIND_WEIGHTS = {"spec": 0.3, "inferred": 0.4, "concrete": 0.3}


@dataclass
class GenConfig:
    max_nodes: int = 10
    bounds: Bounds = field(default_factory=Bounds)
    forward_prob: float = 0.7
    fresh_input_prob: float = 0.15  # a forward step may take a fresh leaf for an input
    attempts_per_node: int = 12
    # How often each kind of operator is drawn (DESIGN §5; see ``fuzzer.draw``).
    kind_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    # Run each instance of a ``needs_trial`` spec once before it enters the graph.
    trial_runs: bool = True
    # Trial runs of TensorFlow instances also inside tf.function: set when a graph backend
    # (tf.function, tf.xla) is tested, so that graph-mode contracts never enter a model.
    graph_mode_trials: bool = False
    # Draw in-place operators (``OpSpec.mutates``: the mutation and aliasing check); off,
    # the generator draws exactly what it drew before they existed.
    mutation: bool = False
    # Of the draws that pick an in-place operator, the share inserted (the rest are
    # misses): every operator list holds many in-place variants, and without this about
    # nine graphs in ten would write in place, crowding out what the other checks need
    # (a written input is no gradient leaf; a stride-0 input cannot be written).
    mutation_share: float = 0.35


def random_leaf_type(rng: random.Random, bounds: Bounds, dtype: str | None = None) -> TensorType:
    rank = rng.choice([r for r in (0, 1, 2, 2, 3, 3, 4, 4, 5) if r <= bounds.max_rank])
    shape: list[int] = []
    budget = bounds.max_elements
    for _ in range(rank):
        d = rng.choice([h for h in DIM_HINTS if h <= min(bounds.max_dim, budget)] or [1])
        shape.append(d)
        budget //= d
    if dtype is None:
        dtype = rng.choices(list(DTYPE_WEIGHTS), weights=list(DTYPE_WEIGHTS.values()))[0]
    return TensorType(tuple(shape), dtype)


class GenerationError(RuntimeError):
    """The operator set and bounds admit no model; the message says which knob to turn."""


class Generator:
    def __init__(self, framework: str, specs: Sequence[OpSpec], config: GenConfig = GenConfig()) -> None:
        self.framework = framework
        self.specs = sorted((s for s in specs if framework in s.frameworks
                             and (config.mutation or not getattr(s, "mutates", ()))), key=lambda s: s.id)
        if not self.specs:
            raise ValueError(f"no operator specs for framework {framework!r}")
        self.by_id = {s.id: s for s in self.specs}
        self.config = config
        self.draw = OperatorDraw(framework, self.specs, config.kind_weights, config.bounds.max_rank)

    def generate(self, rng: random.Random) -> Graph:
        """A graph with up to ``max_nodes`` operator nodes (at least one).

        An ``rng`` with a ``keep_growing()`` method decides after each operator whether
        the graph grows on: Hypothesis's draws do (``fuzzer.strategies.DrawRandom``), so
        that a failing model shrinks to fewer operators by deleting whole steps; a plain
        ``random.Random`` has none and grows to ``max_nodes``, as it always did."""
        cfg = self.config
        keep_growing = getattr(rng, "keep_growing", None)
        g = Graph()
        g.add_leaf(random_leaf_type(rng, cfg.bounds))
        ops = 0
        budget = cfg.max_nodes * cfg.attempts_per_node
        attempts = misses = 0
        restarted = False
        while ops < cfg.max_nodes and attempts < budget and misses < budget * MISSES_PER_ATTEMPT:
            if ops == 0 and not restarted and attempts + misses >= cfg.attempts_per_node:
                # Nothing fits the first leaf (a rank-5 int16, say): start over from an
                # operator on fresh leaves, whose outputs the others can then consume.
                restarted = True
                g = Graph()
                for _ in range(budget):
                    if self._forward(g, self.draw.any(rng), rng, fresh=True):
                        ops = 1
                        break
                else:
                    raise GenerationError(f"no operator could be instantiated in {budget} tries; the bounds "
                                          f"{cfg.bounds} may be too tight for the operator set")
                continue
            if rng.random() < cfg.forward_prob:
                types = {(t.rank, t.dtype) for t in map(g.type_of, g.values())}
                ok = self._forward(g, self.draw.consuming(rng, types), rng)
            else:
                leaves = g.leaves("input")
                leaf = rng.choice(leaves) if leaves else None
                ok = None if leaf is None else \
                    self._backward(g, self.draw.producing_dtype(rng, g.node(leaf).types[0].dtype), leaf, rng)
            if ok is None:
                misses += 1  # nothing in the graph fits: cheap, and no real attempt
            else:
                attempts += 1
                ops += ok
                if ok and keep_growing is not None and ops < cfg.max_nodes and not keep_growing():
                    break
        g.outputs = g.unused_values()
        return g

    # -- insertion ----------------------------------------------------------------------
    def _forward(self, g: Graph, spec: OpSpec, rng: random.Random, fresh: bool = False) -> bool | None:
        """Insert ``spec`` consuming existing values; with ``fresh`` (or for a replay that
        fits nothing in the graph), on fresh leaves only. None: no value fits (a miss)."""
        if getattr(spec, "mutates", ()) and rng.random() >= self.config.mutation_share:
            return None
        # The mutation rule (rules.specs.inplace): a value written in place, and all that
        # may share its storage, is spent: no op reads it any more. A written position
        # takes only a value that nothing reads (``writable``), or a fresh leaf.
        spent = spent_values(g, self.by_id) if has_mutation(g, self.by_id) else set()
        by_type: dict[tuple[int, str], list[Value]] = {}
        if not fresh:
            for v in g.values():
                if v in spent:
                    continue
                t = g.type_of(v)
                by_type.setdefault((t.rank, t.dtype), []).append(v)
        written = set(getattr(spec, "mutates", ()))
        by_type_w: dict[tuple[int, str], list[Value]] = {}
        for key, vals in by_type.items() if written else ():
            ok = [v for v in vals if writable(g, self.by_id, v, spent)]
            if ok:
                by_type_w[key] = ok

        def options(i: int, ranks: tuple[int, ...], dtypes: tuple[str, ...]) -> list[Value] | None:
            return (by_type_w if i in written else by_type).get((ranks[i], dtypes[i]))

        data_positions = [i for i in range(spec.n_inputs) if i not in spec.weight_inputs]
        all_combos = [(r, d) for r in spec.rank_options() if max(r, default=0) <= self.config.bounds.max_rank
                      for d in spec.dtype_options(self.framework)]
        combos = [(r, d) for r, d in all_combos if any(options(i, r, d) for i in data_positions)]
        chosen: list[Value | None] = [None] * spec.n_inputs
        if combos:
            ranks, dtypes = rng.choice(combos)
            connected = [i for i in data_positions if options(i, ranks, dtypes)]
            anchor = rng.choice(connected)
            for i in data_positions:
                opts = options(i, ranks, dtypes)
                if opts and (i == anchor or rng.random() >= self.config.fresh_input_prob):
                    chosen[i] = rng.choice(opts)
            # the op reads nothing that shares storage with what it writes
            shared = {w for i in written if chosen[i] is not None for w in family(g, self.by_id, chosen[i])}
            for i in data_positions:
                if i not in written and chosen[i] in shared:
                    chosen[i] = None
        elif all_combos and (fresh or spec.fresh_inputs_ok):
            ranks, dtypes = rng.choice(all_combos)
        else:
            return None
        inst = instantiate(spec, self.framework, rng, self.config.bounds,
                           inputs=[g.type_of(v) if v is not None else None for v in chosen],
                           ranks=ranks, dtypes=dtypes)
        if inst is None and any(v is not None for v in chosen) and spec.fresh_inputs_ok:
            # A replay needs its recorded shapes: an existing tensor of the right rank
            # and dtype but another shape cannot feed it; fresh leaves can.
            chosen = [None] * spec.n_inputs
            inst = instantiate(spec, self.framework, rng, self.config.bounds, inputs=chosen, ranks=ranks, dtypes=dtypes)
        if inst is None or not self._trial(spec, inst, rng):
            return False
        args = [v if v is not None else self._leaf(g, spec, i, inst) for i, v in enumerate(chosen)]
        g.add_op(spec.id, inst.attrs, args, inst.out_types)
        return True

    def _backward(self, g: Graph, spec: OpSpec, leaf: int, rng: random.Random) -> bool | None:
        target = g.node(leaf).types[0]
        if not self._may_produce(spec, target):
            return None
        if alias_inputs(spec) and not writes_through(spec, 1) and has_mutation(g, self.by_id) \
                and (leaf, 0) in spent_values(g, self.by_id):
            return None  # the leaf is written in place: it cannot become a self-overlapping view
        inst = instantiate(spec, self.framework, rng, self.config.bounds, target=target)
        if inst is None or len(inst.out_types) != 1:
            # Multi-output ops would leave their other outputs dangling before the leaf;
            # they enter the graph forward only.
            return False
        if not self._trial(spec, inst, rng):
            return False
        args = [self._leaf(g, spec, i, inst) for i in range(spec.n_inputs)]
        g.produce_leaf_by_op(leaf, spec.id, inst.attrs, args)
        return True

    def _may_produce(self, spec: OpSpec, target: TensorType) -> bool:
        """A cheap necessary condition for backward insertion: some dtype combination of
        ``spec`` yields ``target``'s dtype (only replays know their output rank too)."""
        if spec.fresh_inputs_ok:
            outs = getattr(spec, "out_shapes", None)
            return outs is not None and len(outs) == 1 and tuple(outs[0]) == tuple(target.shape) \
                and spec.out_dtypes[0] == target.dtype
        table = getattr(spec, "table", None)
        if table is None:
            return True
        return any(len(outs) == 1 and outs[0] == target.dtype for outs in table.values())

    def _trial(self, spec: OpSpec, inst: Instance, rng: random.Random) -> bool:
        if not (spec.needs_trial and self.config.trial_runs):
            return True
        from rules.trial import trial_run

        return trial_run(spec, self.framework, inst.in_types, inst.attrs, inst.out_types, rng.randrange(2**31),
                         graph_mode=self.config.graph_mode_trials)

    @staticmethod
    def _leaf(g: Graph, spec: OpSpec, position: int, inst: Instance) -> Value:
        kind = "const" if position in spec.weight_inputs else "input"
        return g.add_leaf(inst.in_types[position], kind)


class _CommonDtypes:
    """An OpSpec seen through the dtypes that every one of ``frameworks`` accepts."""

    def __init__(self, spec: OpSpec, frameworks: Sequence[str]) -> None:
        self._spec = spec
        self._frameworks = tuple(frameworks)

    def __getattr__(self, name: str):
        # Only called for names the wrapper lacks. While unpickling (in a sandbox worker)
        # ``_spec`` itself is not set yet: looking it up here would recurse forever.
        if name.startswith("__") or name in ("_spec", "_frameworks"):
            raise AttributeError(name)
        return getattr(self._spec, name)

    def __reduce__(self):
        return _CommonDtypes, (self._spec, self._frameworks)

    def dtype_options(self, framework: str) -> list[tuple[str, ...]]:
        common = set(self._spec.dtype_options(self._frameworks[0]))
        for fw in self._frameworks[1:]:
            common &= set(self._spec.dtype_options(fw))
        return [d for d in self._spec.dtype_options(framework) if d in common]


def common_dtype_specs(specs: Sequence[OpSpec], frameworks: Sequence[str]) -> list[OpSpec]:
    """The specs that exist in all ``frameworks``, restricted to the dtypes all of them
    accept: what a cross-framework campaign (torch vs tensorflow) may generate."""
    out: list[OpSpec] = []
    for s in specs:
        if all(fw in s.frameworks for fw in frameworks):
            wrapped = _CommonDtypes(s, frameworks)
            if wrapped.dtype_options(frameworks[0]):
                out.append(wrapped)  # type: ignore[arg-type]
    return out
