"""Failures that name no operator get the operators reduction pins them on.

An abort, a timeout, or a crash whose message names no operator of the case signs as
(kind, backend, stage, message) alone: two different segfaults of one backend would be
one bug, and a second, distinct fault a mere sighting of the first. Their operators come
from reduction instead, which shrinks a case to the few operators the failure needs:

* the first such failure of a *family* (its operator-less signature) becomes a bug as
  before; once reduced, its **pinned operators** are its reduced case's;
* a later failure of the family whose case contains a member's pinned operators is a
  sighting of that member; one that contains none of them is a distinct bug, signed
  with its own operators until its reduction pins it (and merged into a member that
  turns out to pin the same operators);
* while a member is not reduced yet (reduction runs after the campaign loop), a later
  failure cannot be decided: its case is *parked* in the family's folder and decided
  after the reductions (``parked/<case index>.json``, at most ``MAX_PARKED`` a family;
  beyond that a failure counts as a sighting of the family's first bug).

Nothing is deleted: a merged folder moves under its twin's ``merged/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterator

from corpus.case import Case, write_atomic
from oracles.verdict import Verdict
from reports.signature import Signature, api_of

MAX_PARKED = 10


def needs_pin(sig: Signature) -> bool:
    """Failures that name no operator (aborts, hangs, op-less crashes, gradient mismatches)."""
    return sig.kind in ("abort", "timeout") or (sig.kind in ("crash", "mismatch") and not sig.operators)


def pinned_ops(bug: dict) -> frozenset[str] | None:
    """The APIs of the operators a reduced bug needs (``tf.transpose``, whatever partial
    operator met it); None while it is not reduced."""
    if "reduce_seconds" not in bug:
        return None
    return frozenset(map(api_of, bug.get("operators_reduced") or bug.get("operators") or ()))


@dataclasses.dataclass
class Decision:
    action: str  # "record" (with ``signature``) or "park" (in ``folder``)
    signature: Signature | None = None
    folder: Path | None = None


class Pinning:
    """The families of operator-less failures in one campaign's ``bugs/`` folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def family(self, base: Signature) -> list[tuple[str, dict]]:
        """The bugs of ``base``'s family, first found first."""
        members = []
        for p in sorted(self.root.glob("*/bug.json")):
            try:
                bug = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if bug.get("base_signature") == base.digest or p.parent.name == base.folder_name:
                members.append((p.parent.name, bug))
        return sorted(members, key=lambda nb: (nb[0] != base.folder_name, nb[1].get("first_seen", "")))

    def decide(self, case: Case, base: Signature) -> Decision:
        family = self.family(base)
        if not family:
            return Decision("record", base)
        ops = frozenset(map(api_of, case.graph.op_ids()))
        for _, bug in family:
            pinned = pinned_ops(bug)
            if pinned is not None and pinned <= ops:
                return Decision("record", Signature.from_json(bug["signature_parts"]))
        if any(pinned_ops(bug) is None for _, bug in family):
            folder = self.root / family[0][0]
            if len(list((folder / "parked").glob("*.json"))) < MAX_PARKED:
                return Decision("park", folder=folder)
            return Decision("record", Signature.from_json(family[0][1]["signature_parts"]))
        return Decision("record", dataclasses.replace(base, operators=tuple(sorted(ops))))

    @staticmethod
    def park(folder: Path, case: Case, verdict: Verdict, index: int, verdicts: list[Verdict]) -> None:
        write_atomic(folder / "parked" / f"{index}.json", json.dumps(
            {"case": case.to_json(), "verdict": verdict.to_json(), "index": index,
             "verdicts": [v.to_json() for v in verdicts]}))

    def parked(self) -> Iterator[tuple[Path, Case, Verdict, int, list[Verdict]]]:
        """Every parked failure, oldest family first; the caller removes each it decides."""
        for path in sorted(self.root.glob("*/parked/*.json")):
            d = json.loads(path.read_text())
            yield (path, Case.from_json(d["case"]), Verdict.from_json(d["verdict"]), int(d["index"]),
                   [Verdict.from_json(v) for v in d.get("verdicts", [])])

    def merge_twins(self) -> list[str]:
        """Reduced bugs that are one root cause become one folder: the later moves under
        the earlier's ``merged/``, its sightings added. Returns the kinds merged away.

        * members of an operator-less family (an abort, a timeout) that reduction pinned
          on the same operators;
        * crashes with one specific normalized message (a C++ compile error naming one
          missing overload, say) whose reduced cases share an operator function, however
          spelled (``core.Min``, ``torch.Tensor.min``, ``aten.min.dim``) and whatever feeds
          it: ``min`` of an ``eq``, of a ``logical_xor`` and of a ``logical_and`` mask are
          one missing ``min_masked_reduce``.
        """
        merged: list[str] = []
        groups: dict[tuple, list[tuple[str, dict]]] = {}
        for p in sorted(self.root.glob("*/bug.json")):
            bug = json.loads(p.read_text())
            pinned = pinned_ops(bug)
            if pinned is None:
                continue
            parts = bug.get("signature_parts") or {}
            if parts.get("kind") == "crash" and _specific(parts.get("symptom", "")):
                key: tuple = ("crash", parts.get("backend"), parts.get("stage"), parts.get("symptom"))
            elif "base_signature" in bug:
                key = ("family", bug["base_signature"])
            else:
                continue
            groups.setdefault(key, []).append((p.parent.name, bug))
        for key, members in groups.items():
            members.sort(key=lambda nb: (nb[1].get("first_seen", ""), nb[1].get("case_index", 0)))
            kept: list[tuple[str, dict]] = []
            for name, bug in members:
                twin = next((k for k in kept if _same_cause(key[0], k[1], bug)), None)
                if twin is None:
                    kept.append((name, bug))
                    continue
                twin_name, twin_bug = twin
                twin_bug["count"] = twin_bug.get("count", 1) + bug.get("count", 1)
                twin_bug.setdefault("merged", []).append(name)
                write_atomic(self.root / twin_name / "bug.json", json.dumps(twin_bug, indent=1, sort_keys=True))
                (self.root / twin_name / "merged").mkdir(exist_ok=True)
                os.replace(self.root / name, self.root / twin_name / "merged" / name)
                merged.append(bug.get("kind", ""))
        return merged


def function_name(op: str) -> str:
    """``core.Min``, ``torch.Tensor.min``, ``torch.min#ca74``, ``aten.min.dim`` -> ``min``."""
    parts = api_of(op).split(".")
    name = parts[1] if parts[0] == "aten" and len(parts) > 1 else parts[-1]
    return name.lower()


def _specific(symptom: str) -> bool:
    """A message that says more than its exception type (``RuntimeError: N``)."""
    return len(symptom.split(":", 1)[-1].strip()) >= 20


def _same_cause(group: str, kept: dict, bug: dict) -> bool:
    if group == "family":
        return pinned_ops(kept) == pinned_ops(bug)

    def functions(b: dict) -> set[str]:
        return {function_name(op) for op in (pinned_ops(b) or set()) | set(b.get("aten_ops") or ())}

    return bool(functions(kept) & functions(bug))
