"""The figures of a rule store: what the generator uses, and everything inferred.

``figures(rules, framework)`` is what ``dlfuzz infer --json`` prints after writing a
store and what ``dlfuzz rules stats`` prints for a shipped one, so the two always agree:

- ``apis_with_rules``, ``with_rules`` (partial operators), ``rules`` and ``precision``
  (mean over those rules) count only the rules the generator uses: ``usable`` with a
  measured precision of at least ``MIN_PRECISION`` (``rules.inferred``);
- the ``all_`` keys count every rule in the store, ``all_precision`` being the mean over
  the rules whose precision was measured (``all_rules_measured``);
- ``heldout_accuracy`` is over the held-out records of every rule in the store (a rule
  that got a held-out valid record wrong was never written, so it is about the held-out
  invalid records those rules admit).
"""

from __future__ import annotations

from typing import Iterable


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def heldout_counts(rule: dict) -> tuple[int, int]:
    """(right, checked) held-out records of one rule."""
    ev = rule.get("evidence", {})
    total = ev.get("heldout_checked")
    if total is None:  # stores written before the count was kept
        total = ev.get("heldout_valid", 0) + ev.get("heldout_invalid", 0)
    acc = rule.get("heldout_accuracy")
    return (round(acc * total) if acc is not None else 0), (total if acc is not None else 0)


def figures(rules: Iterable[dict], framework: str) -> dict:
    from rules.inferred import MIN_PRECISION, usable

    rules = list(rules)
    used = [r for r in rules if usable(r, framework) is None]
    measured = [r["precision"] for r in rules if r.get("precision") is not None]
    right = total = 0
    for r in rules:
        a, b = heldout_counts(r)
        right, total = right + a, total + b
    return {
        "with_rules": len({(r["api"], r["signature"]) for r in used}),
        "apis_with_rules": len({r["api"] for r in used}),
        "rules": len(used),
        "precision": _mean([r["precision"] for r in used]),
        "min_precision": MIN_PRECISION,
        "heldout_accuracy": round(right / total, 4) if total else None,
        "all_with_rules": len({(r["api"], r["signature"]) for r in rules}),
        "all_apis_with_rules": len({r["api"] for r in rules}),
        "all_rules": len(rules),
        "all_rules_measured": len(measured),
        "all_precision": _mean(measured),
    }
