"""Inductive rule inference (DESIGN §4), one concept per module:

- ``names``: parameter names and which integers are dimensions (kept concrete);
- ``group``: records -> partial operators -> templates; symbol normalization;
- ``expr``: the rule language (expressions, predicates; text, numpy, z3);
- ``bank``: bottom-up enumeration with observational equivalence (numpy);
- ``sketch``: z3 sketches for conv/pool-like shape rules enumeration cannot reach;
- ``shapes``: the smallest expression for each output dimension;
- ``constraints``: input predicates, set cover, disjunctions, z3 implication pruning;
- ``engine``: one template's rule, held-out validation, sampling for precision;
- ``precision``: sampled calls through the sandbox workers;
- ``driver``: a whole corpus in parallel, written as a rule store (``rules.store``).
"""

from rules.infer.driver import InferOptions, infer_corpus

__all__ = ["InferOptions", "infer_corpus"]
