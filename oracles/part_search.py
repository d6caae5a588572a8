"""The search for the smallest failing part of a lowered graph, shared by the ATen level
(``oracles.aten``) and TensorFlow's graph level (``oracles.tf_graph``).

A compiler works on a lowered graph (ATen operators; the ops of a traced ``tf.function``),
so the root cause of a failure is a node of that graph, reached through many Python APIs.
Both levels hand this module their nodes in topological order and a *trials* object that
compiles a part with the backend under test and says where it fails:

1. the whole graph with every value an output finds the first diverging node at once (for
   a crash, a bisection over prefixes finds the first node the message needs);
2. that node alone is tried next (first the nodes of an operator a bigger version of the
   case already named: ``hint``), then the smallest contiguous window ending at it
   (doubling, then halving back).

The failing node's operator (or the window's operators) is the answer; a fault that shows
in no part (a fusion bug) gives an empty answer, and the API-level culprit stays the
signature. Every step is bounded by the trials' compile budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

MAX_COMPILES = 8
MAX_HINTED = 2  # nodes of a hinted operator tried alone before the search


@dataclass(frozen=True)
class Localization:
    ops: tuple[str, ...]  # the culprit operator(s) of the lowered graph, sorted; () when none is to blame
    why: str  # how they were found, or why none was
    compiles: int = 0


class OutOfBudget(Exception):
    """The trials' compile budget is spent."""


class Trials(Protocol):
    compiles: int

    def first_failure(self, nodes: Sequence[Any]) -> int | None:
        """For a mismatch, the position in ``nodes`` of the first value that differs when
        the part is compiled; for a crash, 0 when the part raises the message. None when
        it passes. Raises ``OutOfBudget`` when no compile is left."""


_DIGITS = re.compile(r"\d+")


def same_message(a: str, b: str) -> bool:
    """The same error, up to the numbers in it (shapes, node ids)."""
    return _DIGITS.sub("N", a) == _DIGITS.sub("N", b)


def search(nodes: Sequence[Any], trials: Trials, name: Callable[[Any], str], crash: bool,
           hint: Sequence[str] = (), level: str = "lowered") -> Localization:
    """The operator(s) whose compiled code fails alone (see the module docstring).
    ``crash``: the trials look for a message (else for a differing value); ``level``
    names the graph in the reasons ("ATen", "TensorFlow")."""
    if not nodes:
        return Localization((), f"the {level} graph has no operator")

    def found(part: Sequence[Any], why: str) -> Localization:
        return Localization(tuple(sorted({name(n) for n in part})), why, trials.compiles)

    def fails(part: Sequence[Any]) -> bool:
        return trials.first_failure(part) is not None

    try:
        if len(hint) == 1:
            for n in [n for n in nodes if name(n) == hint[0]][:MAX_HINTED]:
                if fails([n]):
                    return found([n], "the operator found before fails alone")
        if not crash:
            first = trials.first_failure(nodes)
            if first is None:
                return Localization((), f"the {level} graph with every value an output does not fail (a fusion bug)",
                                    trials.compiles)
        else:
            if not fails(nodes):
                return Localization((), f"the {level} graph does not raise the message", trials.compiles)
            low, high = 0, len(nodes)  # the shortest failing prefix is nodes[:high]
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (low, mid) if fails(nodes[:mid]) else (mid, high)
            first = high - 1
        def window(size: int) -> Sequence[Any]:
            return nodes[first - size + 1:first + 1]

        # the smallest failing window ending at the first failing node: sizes 1, 2, 4, ...,
        # then halving between the last passing size and the first failing one (a crash that
        # needs a dynamic shape made a dozen ops earlier is found in a few compiles)
        passing, size = 0, 1
        while not fails(window(size)):
            if size == first + 1:
                return Localization((), f"no part of the {level} graph fails alone", trials.compiles)
            passing, size = size, min(2 * size, first + 1)
        while size - passing > 1:
            mid = (passing + size) // 2
            passing, size = (passing, mid) if fails(window(mid)) else (mid, size)
        return found(window(size), "fails alone" if size == 1 else f"a window of {size} operators fails")
    except OutOfBudget:
        return Localization((), "out of budget", trials.compiles)
