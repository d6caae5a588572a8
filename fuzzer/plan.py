"""Drawing a case's check plan (``corpus.plan``) from its seed.

Each check applies where the case allows it (a dynamic plan needs another shape set
the same graph admits, a backward needs a float path, layouts need PyTorch and a tensor
with more than one element, mutation needs an in-place op in the graph) and, where it
applies, is drawn with the probability in ``SHARE``: about half of the cases get each
check, so a campaign sees every check often and the checks combine (a strided input to
a dynamic compile with a backward) as compilers meet them in real programs.

The plan has its own random stream (``{seed}/{index}/{draw}/plan``): the graph and values
of a seed are the same whichever checks are asked for.

Compiler options (``draw_options``): where Inductor is under test, cases are compiled
under some of Inductor's own settings: the C++ wrapper, freezing or max-autotune's C++
GEMM templates in turn (``HEAVY_CYCLE``), and cheaper ones drawn per batch (``OPTIONS``:
the batch fusions, scalar or OpenMP kernels, other fusion and memory-planning choices).
Each reaches code a default compile never runs, and each is a setting users turn on;
none changes what the model computes (settings that trade accuracy for speed,
``use_fast_math`` and the like, are left out), so a difference under one is a bug.

Harnesses (``draw_harness``): where torch.compile is under test, most cases are compiled
through Python code around the model (``oracles.harness``), which exercises Dynamo
beyond a straight-line ``forward``, in turn (``HARNESS_CYCLE``).

Both have streams of their own (``{seed}/group{g}/options``, ``{seed}/cycle``), shared
by the models of a campaign batch (which compile as one): the graphs, values and checks
of a seed are the same with or without them. Taking turns rather than drawing makes a
short campaign meet each of them: each adds most of its coverage the first time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import networkx as nx

from corpus.case import Case
from corpus.plan import CHECK_KINDS, HARNESSES, CheckPlan
from corpus.values import has_special
from rules.solve import Bounds
from rules.spec import OpSpec

SHARE = {"dynamic": 0.5, "backward": 0.5, "layout": 0.5}

# Batch fusions of Inductor's FX passes (torch/_inductor/fx_passes/group_batch_fusion.py,
# split_cat.py) that run on CPU graphs; a batch of generated models holds many independent
# ops of one kind side by side, which they fuse.
PRE_GRAD_FUSIONS = ("normalization_pass", "merge_splits_pass", "split_cat_pass", "unbind_stack_pass",
                    "merge_getitem_cat_pass", "mutate_cat_pass", "batch_tanh", "batch_relu", "batch_sigmoid",
                    "batch_clamp", "batch_nan_to_num", "batch_detach")
POST_GRAD_FUSIONS = ("batch_aten_add", "batch_aten_mul", "batch_aten_sub", "batch_aten_div", "batch_aten_tanh",
                     "batch_aten_relu", "batch_aten_sigmoid")

# Inductor config settings a case may be compiled under. The costly ones (each makes a
# compile slower, up to twice) take turns: a campaign's batches go round HEAVY_CYCLE, so
# that each comes within six batches and a sixth of them at most; the cheap ones are
# drawn for each batch with their share. Names as torch.compile(options=...) takes them
# (torch 2.13).
HEAVY_CYCLE: tuple[str, ...] = ("cpp_wrapper", "", "freezing", "", "max_autotune", "")
HEAVY: dict[str, Any] = {
    "cpp_wrapper": True,  # the wrapper in C++ (codegen/cpp_wrapper_cpu.py)
    "freezing": True,  # weights folded as constants (inference: freezing.py, mkldnn fusions)
    "max_autotune": True,  # GEMM templates benchmarked against ATen (select_algorithm.py, C++ GEMM)
}
OPTIONS: tuple[tuple[str, Any, float], ...] = (  # (name, value, share of the batches)
    ("pre_grad_fusion_options", {k: {} for k in PRE_GRAD_FUSIONS}, 0.3),
    ("post_grad_fusion_options", {k: {} for k in POST_GRAD_FUSIONS}, 0.3),
    ("cpp.simdlen", 0, 0.2),  # scalar C++ kernels, no vectorization
    ("cpp.threads", 2, 0.3),  # OpenMP-parallel kernels (a 1-thread worker never gets them)
    ("cpp.dynamic_threads", True, 0.15),
    ("cpp.enable_tiling_heuristics", False, 0.15),
    ("cpp.enable_loop_tail_vec", False, 0.15),
    ("aggressive_fusion", True, 0.25),
    ("loop_ordering_after_fusion", False, 0.2),
    ("epilogue_fusion", False, 0.2),
    ("memory_planning", True, 0.3),
    ("emulate_precision_casts", True, 0.2),
    ("debug_index_asserts", True, 0.2),
    ("size_asserts", False, 0.15),
)
# The harnesses (oracles.harness) take turns too; a cycle of another length than
# HEAVY_CYCLE's, so that every harness meets every costly option. "checkpoint" is left
# out of a model that writes in place (a recomputation would write twice).
HARNESS_CYCLE: tuple[str, ...] = ("objects", "graph_break", "containers", "", "python", "globals", "modules",
                                  "checkpoint", "")
assert set(HARNESS_CYCLE) - {""} == set(HARNESSES)


def cycle_slot(seed: int, group: int | None) -> int | None:
    """Where batch ``group`` of a campaign with ``seed`` is in the cycles: the group plus
    an offset drawn from the seed (None for a model outside any group)."""
    if group is None:
        return None
    return random.Random(f"{seed}/cycle").randrange(len(HARNESS_CYCLE) * len(HEAVY_CYCLE)) + group


@dataclass(frozen=True)
class Steer:
    """Coverage guidance's choices for one batch (``fuzzer.guidance.Guide.steer``): the
    harness, the costly Inductor setting, and the share of each optional check kind. None
    keeps the plain draw (the cycles, ``SHARE``)."""

    harness: str | None = None
    heavy: str | None = None
    shares: Mapping[str, float] | None = None


def draw_harness(rng: random.Random, mutation: bool = False, slot: int | None = None, name: str | None = None) -> str:
    """The harness (``corpus.plan.HARNESSES``, or "") at ``slot`` of ``HARNESS_CYCLE``, or
    drawn from it by ``rng`` where there is no slot, or ``name`` where guidance chose.
    ``mutation``: the model writes into tensors in place, which rules out ``checkpoint``."""
    if name is None:
        name = HARNESS_CYCLE[slot % len(HARNESS_CYCLE)] if slot is not None else rng.choice(HARNESS_CYCLE)
    return "" if name == "checkpoint" and mutation else name


def draw_options(rng: random.Random, slot: int | None = None, heavy: str | None = None) -> dict[str, Any]:
    """Inductor settings to compile a case under: the costly one at ``slot`` of
    ``HEAVY_CYCLE`` (drawn by ``rng`` where there is no slot; ``heavy`` where guidance
    chose), and each of ``OPTIONS`` with its share."""
    if heavy is None:
        heavy = HEAVY_CYCLE[slot % len(HEAVY_CYCLE)] if slot is not None else rng.choice(HEAVY_CYCLE)
    picked = {heavy: HEAVY[heavy]} if heavy else {}
    picked.update({name: value for name, value, share in OPTIONS if rng.random() < share})
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in picked.items()}


FLOATS = ("float16", "bfloat16", "float32", "float64")


def has_gradient_path(case: Case) -> bool:
    """Some float leaf reaches a float output through float values only."""
    g = case.graph
    floats = {n for n in g.nodes() if all(t.dtype in FLOATS for t in g.node(n).types)}
    sub = g.nx.subgraph(floats)
    outs = {n for n, _ in g.outputs if n in floats}
    return any(outs & (nx.descendants(sub, leaf) | {leaf}) for leaf in g.leaves() if leaf in floats)


def draw_plan(case: Case, specs: Mapping[str, OpSpec], rng: random.Random, checks: Sequence[str] = CHECK_KINDS,
              frameworks: Sequence[str] = ("torch",), kinds: random.Random | None = None,
              shares: Mapping[str, float] | None = None) -> CheckPlan:
    """A plan for ``case`` using only ``checks``; ``frameworks``: those of the backends
    under test (layouts and mutation are PyTorch's). ``kinds``: the stream that decides
    which checks the plan has (default ``rng``); a campaign that batches cases gives the
    members of one batch the same stream, so that a batch compiled for symbolic shapes or
    with a backward holds only cases that asked for it (one such compile costs several
    plain ones)."""
    kinds = kinds or rng
    share = dict(SHARE, **(shares or {}))  # guidance's shares (fuzzer.guidance), else the plain ones
    from oracles.layouts import draw_layout  # the layouts' names and rules live with the oracle
    from rules.shape_sets import dynamic_dim_candidates, other_shape_sets

    graph = case.graph
    plan = CheckPlan()
    torch_only = set(frameworks) == {"torch"}
    if "dynamic" in checks and kinds.random() < share["dynamic"]:
        candidates = dynamic_dim_candidates(graph)
        if candidates:
            dims = sorted(rng.sample(candidates, min(len(candidates), rng.choice((1, 2, 2, 3)))))
            bounds = Bounds(int(case.settings.get("max_rank", 4)), int(case.settings.get("max_dim", 64)),
                            int(case.settings.get("max_elements", 4096)))
            sets = other_shape_sets(graph, specs, rng, dims, count=2, bounds=bounds)
            if sets:
                plan.dynamic_dims, plan.shape_sets = dims, sets
    # (no gradients through deliberate NaN, infinity or subnormal inputs: their
    # derivatives are undefined or overflow, and frameworks differ there by design)
    if "backward" in checks and kinds.random() < share["backward"] and has_gradient_path(case) \
            and not has_special(case.values.values()):
        plan.backward_seed = rng.randrange(2**31)
    if "layout" in checks and torch_only and kinds.random() < share["layout"]:
        from rules.specs.inplace import written_inputs

        # never a stride-0 tensor where the model writes: writing into one is a user
        # error PyTorch documents (eager does not always check it; compilers do)
        written = set(written_inputs(graph, specs))
        for n in graph.leaves("input"):
            name = draw_layout(graph.node(n).types[0].shape, rng, expanded=n not in written)
            if name is not None and rng.random() < 0.7:
                plan.layouts[n] = name
    if "mutation" in checks and torch_only:
        plan.mutation = any(getattr(specs.get(op), "mutates", ()) for op in graph.op_ids())
    return plan
