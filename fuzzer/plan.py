"""Drawing a case's check plan (``corpus.plan``) from its seed.

Each check applies where the case allows it (a dynamic plan needs another shape set
the same graph admits, a backward needs a float path, layouts need PyTorch and a tensor
with more than one element, mutation needs an in-place op in the graph) and, where it
applies, is drawn with the probability in ``SHARE``: about half of the cases get each
check, so a campaign sees every check often and the checks combine (a strided input to
a dynamic compile with a backward) as compilers meet them in real programs.

The plan has its own random stream (``{seed}/{index}/{draw}/plan``): the graph and values
of a seed are the same whichever checks are asked for.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

import networkx as nx

from corpus.case import Case
from corpus.plan import CHECK_KINDS, CheckPlan
from corpus.values import has_special
from rules.solve import Bounds
from rules.spec import OpSpec

SHARE = {"dynamic": 0.5, "backward": 0.5, "layout": 0.5}
FLOATS = ("float16", "bfloat16", "float32", "float64")


def has_gradient_path(case: Case) -> bool:
    """Some float leaf reaches a float output through float values only."""
    g = case.graph
    floats = {n for n in g.nodes() if all(t.dtype in FLOATS for t in g.node(n).types)}
    sub = g.nx.subgraph(floats)
    outs = {n for n, _ in g.outputs if n in floats}
    return any(outs & (nx.descendants(sub, leaf) | {leaf}) for leaf in g.leaves() if leaf in floats)


def draw_plan(case: Case, specs: Mapping[str, OpSpec], rng: random.Random, checks: Sequence[str] = CHECK_KINDS,
              frameworks: Sequence[str] = ("torch",), kinds: random.Random | None = None) -> CheckPlan:
    """A plan for ``case`` using only ``checks``; ``frameworks``: those of the backends
    under test (layouts and mutation are PyTorch's). ``kinds``: the stream that decides
    which checks the plan has (default ``rng``); a campaign that batches cases gives the
    members of one batch the same stream, so that a batch compiled for symbolic shapes or
    with a backward holds only cases that asked for it (one such compile costs several
    plain ones)."""
    kinds = kinds or rng
    from oracles.layouts import draw_layout  # the layouts' names and rules live with the oracle
    from rules.shape_sets import dynamic_dim_candidates, other_shape_sets

    graph = case.graph
    plan = CheckPlan()
    torch_only = set(frameworks) == {"torch"}
    if "dynamic" in checks and kinds.random() < SHARE["dynamic"]:
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
    if "backward" in checks and kinds.random() < SHARE["backward"] and has_gradient_path(case) \
            and not has_special(case.values.values()):
        plan.backward_seed = rng.randrange(2**31)
    if "layout" in checks and torch_only and kinds.random() < SHARE["layout"]:
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
