"""Merging campaign folders (``dlfuzz merge OUT DIR...``, DESIGN §9): campaigns of separate
machines or nights become one campaign folder that ``dlfuzz report`` renders.

* **bugs** are deduplicated by signature: the folders of one signature become one, whose
  ``bug.json`` sums their sightings (``count``), joins their ``apis`` and records every
  origin (``origins``: campaign folder, bug folder, sightings, first seen, case index,
  operator nodes). The smallest case (fewest operator nodes, then nodes; reduced before
  unreduced) is the representative: its folder is copied whole; each other origin's
  folder is kept under ``origins/<campaign>/`` (its parked failures join the
  representative's ``parked/``). A failure pinned by reduction (``reports.pinning``) is
  one bug per family *and* pinned operators, not per folder name; afterwards reduced
  twins across the inputs merge as they do within one campaign (``Pinning.merge_twins``);
* **figures** of ``campaign.json`` that are counts are summed, whatever their name
  (numbers, and mappings of numbers such as ``skipped``, ``excused``, ``ops``,
  ``batches``, ``values_modes``, ``checks``); ``bugs``, ``bugs_by_kind`` and the distinct
  bugs per check kind (``checks``' ``bugs: KIND``) are counted from the merged folders;
  ``valid_share``, ``cases_per_minute`` and ``distinct_ops`` are recomputed; ``seconds``
  is the campaigns' time added up;
* **timelines** are not interleaved: each input's ``timeline``, seed, max nodes,
  backends and figures go under ``merged_from`` (a merged input contributes its own
  ``merged_from`` entries), and the top-level ``timeline`` starts empty. ``seed`` and
  ``max_nodes`` are the first input's, ``next_index`` the highest of the inputs with that
  seed and max nodes, so that resuming the merged folder with the first input's options
  draws fresh cases.

OUT is built in a temporary folder beside it and renamed into place: it appears whole or
not at all. Errors are :class:`MergeError`, one line each.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from corpus.case import Case, write_atomic
from reports.pinning import Pinning, pinned_ops
from reports.signature import Signature

# campaign.json keys that are not counts, and those recomputed from the merged result
NOT_ADDITIVE = frozenset({"version", "backends", "seed", "max_nodes", "next_index", "timeline", "stopped",
                          "merged_from"})
DERIVED = frozenset({"bugs", "bugs_by_kind", "valid_share", "cases_per_minute", "distinct_ops"})


class MergeError(ValueError):
    """Campaign folders that cannot be merged; the message is one line."""


@dataclass
class Source:
    """One input: its folder and its campaign.json figures (read by the caller's loader)."""

    root: Path
    state: dict[str, Any]
    label: str = ""  # unique among the inputs: the folder's name (``-2``, ``-3`` on a clash)


@dataclass
class MergeResult:
    out: Path
    state: dict[str, Any]
    bugs: int  # bug folders in OUT
    shared: int  # of them, seen in more than one input
    twins: int  # folders merged as twins after the merge (``Pinning.merge_twins``)
    unreadable: list[str] = field(default_factory=list)  # input bug folders without a readable bug.json


@dataclass
class _Found:
    source: int  # position in the inputs
    folder: Path
    bug: dict[str, Any]
    size: tuple[float, float]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _counts_of(v: Any) -> bool:
    """A count: a number, or a mapping whose values are counts."""
    return _is_number(v) or (isinstance(v, dict) and all(_counts_of(x) for x in v.values()))


def _add(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        return a + b
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return a  # a number against a mapping: not one count, the first kept
    out = dict(a)
    for k, v in b.items():
        out[k] = _add(out[k], v) if k in out else v
    return out


def _entries(src: Source) -> list[dict[str, Any]]:
    """What ``merged_from`` keeps of one input: its own timeline and figures, or, for a
    merged input, its entries (and its own timeline if it was resumed after the merge)."""
    s = src.state
    own = {"folder": str(src.root.resolve()), "label": src.label, "backends": list(s.get("backends", [])),
           "seed": s.get("seed"), "max_nodes": s.get("max_nodes"), "next_index": s.get("next_index"),
           "cases": s.get("cases", 0), "valid": s.get("valid", 0), "bugs": s.get("bugs", 0), "seconds": s.get("seconds", 0.0),
           "stopped": s.get("stopped", ""), "timeline": list(s.get("timeline") or [])}
    earlier = [dict(e) for e in s.get("merged_from") or [] if isinstance(e, dict)]
    return earlier + ([own] if own["timeline"] or not earlier else [])


def merge_figures(sources: Sequence[Source]) -> dict[str, Any]:
    """campaign.json of the merged campaign, without the bug figures (see module doc)."""
    first = sources[0].state
    keys = list(dict.fromkeys(k for src in sources for k in src.state))
    out: dict[str, Any] = {}
    for key in keys:
        if key in NOT_ADDITIVE or key in DERIVED:
            continue
        values = [src.state[key] for src in sources if key in src.state]
        if all(_counts_of(v) for v in values) and (all(_is_number(v) for v in values)
                                                    or all(isinstance(v, dict) for v in values)):
            total = values[0]
            for v in values[1:]:
                total = _add(total, v)
            out[key] = dict(sorted(total.items())) if isinstance(total, dict) else total
        elif all(v == values[0] for v in values):  # not a count: kept where the inputs agree
            out[key] = values[0]
    for key in ("seconds", "reduce_seconds"):
        if key in out:
            out[key] = round(float(out[key]), 2)
    cases, valid = int(out.get("cases", 0)), int(out.get("valid", 0))
    minutes = (float(out.get("seconds", 0.0)) - float(out.get("reduce_seconds", 0.0))) / 60
    same_seed = [s.state for s in sources
                 if s.state.get("seed") == first.get("seed") and s.state.get("max_nodes") == first.get("max_nodes")]
    stopped = [f"{s.label}: {s.state['stopped']}" for s in sources if s.state.get("stopped")]
    out.update({
        "bugs": 0, "bugs_by_kind": {},  # counted from the merged folders by the caller
        "version": first.get("version", 1), "backends": list(first.get("backends", [])), "seed": first.get("seed", 0),
        "max_nodes": first.get("max_nodes", 0), "next_index": max(int(s.get("next_index", 0)) for s in same_seed),
        "valid_share": round(valid / cases, 4) if cases else 1.0,
        "cases_per_minute": round(cases / minutes, 2) if minutes > 0 else 0.0,
        "distinct_ops": len(out.get("ops") or {}), "timeline": [], "stopped": "; ".join(stopped),
        "merged_from": _labelled([e for src in sources for e in _entries(src)]),
    })
    return {**{k: out[k] for k in keys if k in out}, **out}  # the inputs' key order


def _labelled(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``label``: unique among the entries (the folder's name, ``-2`` on a clash)."""
    used: set[str] = set()
    for e in entries:
        base = str(e.get("label") or Path(str(e.get("folder", "campaign"))).name)
        label, k = base, 1
        while label in used:
            k += 1
            label = f"{base}-{k}"
        used.add(label)
        e["label"] = label
    return entries


def _identity(e: dict[str, Any]) -> tuple:
    """One campaign run, wherever it was merged: its folder and figures (two machines may
    use the same path, not for the same run)."""
    return tuple(json.dumps(e.get(k)) for k in ("folder", "seed", "max_nodes", "next_index", "cases", "seconds"))


def check_sources(sources: Sequence[Source]) -> None:
    """The same backends everywhere, and no campaign twice (a folder given twice, or
    one already merged into another input); else MergeError naming them."""
    seen: dict[Path, Path] = {}
    for src in sources:
        real = src.root.resolve()
        if real in seen:
            also = f" (also as {seen[real]})" if str(seen[real]) != str(src.root) else ""
            raise MergeError(f"{src.root} is given twice{also}; its counts would be added twice")
        seen[real] = src.root
    runs: dict[tuple, Path] = {}
    for src in sources:
        for e in _entries(src):
            where = runs.setdefault(_identity(e), src.root)
            if where != src.root:
                raise MergeError(f"{where} and {src.root} both hold the campaign {e.get('folder')} (merged before); "
                                 f"its counts would be added twice: leave one of them out")
    ref = sources[0]
    for src in sources[1:]:
        if list(src.state.get("backends", [])) != list(ref.state.get("backends", [])):
            raise MergeError(f"{ref.root} used backends {','.join(ref.state.get('backends', []))} but {src.root} used "
                             f"{','.join(src.state.get('backends', []))}; merge only campaigns of the same backends "
                             f"(in the same order: the first is the reference)")


def _labels(sources: Sequence[Source]) -> None:
    used: set[str] = set()
    for src in sources:
        base = src.root.resolve().name or "campaign"
        label, k = base, 1
        while label in used:
            k += 1
            label = f"{base}-{k}"
        used.add(label)
        src.label = label


def _size(folder: Path, bug: dict[str, Any]) -> tuple[float, float]:
    """(operator nodes, nodes) of the folder's case; bug.json's figures if it cannot be read."""
    try:
        graph = Case.load(folder / "case.json").graph
        return float(len(graph.op_nodes())), float(len(graph))
    except Exception:  # noqa: BLE001 - a folder whose case cannot be read is the last choice
        ops = bug.get("operators_after", bug.get("operator_nodes"))
        return (float(ops) if _is_number(ops) else float("inf")), float("inf")


def _read_bugs(index: int, src: Source, unreadable: list[str]) -> list[_Found]:
    found = []
    for folder in sorted(p for p in (src.root / "bugs").glob("*") if p.is_dir()):
        try:
            bug = json.loads((folder / "bug.json").read_text())
            if not isinstance(bug, dict):
                raise ValueError
        except (OSError, ValueError):
            unreadable.append(f"{src.root / 'bugs' / folder.name}")
            continue
        found.append(_Found(index, folder, bug, _size(folder, bug)))
    return found


def _key(f: _Found) -> tuple:
    """Which bugs are one: the signature; a failure pinned by reduction, its family and
    pinned operators (its folder name is its family's until a distinct member appears)."""
    pinned = pinned_ops(f.bug)
    if "base_signature" in f.bug and pinned is not None:
        return ("pinned", f.bug["base_signature"], tuple(sorted(pinned)))
    try:
        return ("signature", Signature.from_json(f.bug["signature_parts"]).digest)
    except (KeyError, TypeError, ValueError):
        return ("signature", f.bug.get("signature") or f.folder.name)


def _first_seen(f: _Found) -> str:
    return str(f.bug.get("first_seen", "~"))


def _origins(f: _Found, sources: Sequence[Source], copy: str) -> list[dict[str, Any]]:
    """The origins one input bug folder stands for, its copy at ``copy`` ("" for the
    representative): one, or those a merged input recorded (their copies re-rooted)."""
    earlier = f.bug.get("origins")
    if isinstance(earlier, list) and earlier:
        out = []
        for e in earlier:
            e = dict(e)
            inner = e.pop("copy", "")
            if copy or inner:
                e["copy"] = "/".join(p for p in (copy, inner) if p)
            e["representative"] = bool(e.get("representative")) and not copy
            out.append(e)
        return out
    e = {"campaign": str(sources[f.source].root.resolve()), "folder": f.folder.name, "count": f.bug.get("count", 1),
         "first_seen": f.bug.get("first_seen"), "case_index": f.bug.get("case_index"),
         "operator_nodes": None if f.size[0] == float("inf") else int(f.size[0]),
         "reduced": "reduce_seconds" in f.bug, "representative": not copy}
    if copy:
        e["copy"] = copy
    return [e]


_REPLAY = re.compile(r"^dlfuzz replay .*?(?=   # re-check on every backend$)", re.M)
_ALSO = "The same fault was also met through "


def _fix_report(path: Path, folder: Path, new_apis: Sequence[str]) -> None:
    """report.md names its folder (the replay command) and the APIs met: both change in a
    merge. Only those lines are edited: a re-rendered report would name this machine's
    versions instead of the finding machine's."""
    try:
        text = path.read_text()
    except OSError:
        return
    text = _REPLAY.sub(lambda _: f"dlfuzz replay {folder}", text)
    if new_apis:
        more = ", ".join(f"`{a}`" for a in new_apis)
        lines = text.split("\n")
        at = next((i for i, line in enumerate(lines) if line.startswith(_ALSO)), None)
        if at is not None:
            lines[at] = lines[at].rstrip(".") + f", {more}."
        elif "## Backends" in lines:
            b = lines.index("## Backends")
            lines[b:b] = [f"{_ALSO}{more} (in other campaigns).", ""]
        text = "\n".join(lines)
    write_atomic(path, text)


def _unique(parent: Path, name: str) -> Path:
    path, k = parent / name, 1
    while path.exists():
        k += 1
        path = parent / f"{name}-{k}"
    return path


def _rename_pinned(bug: dict[str, Any]) -> str:
    """A pinned bug whose family's folder name is taken by another member: signed with its
    pinned operators, as a distinct member is within one campaign."""
    sig = dataclasses.replace(Signature.from_json(bug["signature_parts"]),
                              operators=tuple(sorted(pinned_ops(bug) or ())))
    bug.update(signature=sig.digest, folder=sig.folder_name, signature_parts=sig.to_json())
    return sig.folder_name


def _write_bug(group: list[_Found], sources: Sequence[Source], bugs_dir: Path, out_bugs: Path) -> None:
    """One merged bug folder in ``bugs_dir`` (being built; ``out_bugs`` is where it will be)."""
    group.sort(key=lambda f: (f.size, "reduce_seconds" not in f.bug, _first_seen(f), f.source))
    rep, others = group[0], group[1:]
    bug = json.loads(json.dumps(rep.bug))
    name = rep.folder.name
    if (bugs_dir / name).exists():
        name = _rename_pinned(bug) if "base_signature" in bug and pinned_ops(bug) is not None else name
        name = _unique(bugs_dir, name).name
    dest = bugs_dir / name
    shutil.copytree(rep.folder, dest)
    origins = _origins(rep, sources, "")
    apis = list(bug.get("apis") or [])
    for f in others:
        copy = _unique(dest / "origins", sources[f.source].label)
        shutil.copytree(f.folder, copy, ignore=shutil.ignore_patterns("parked"))
        _fix_report(copy / "report.md", out_bugs / name / "origins" / copy.name, [])
        for parked in sorted((f.folder / "parked").glob("*.json")):  # decided on resume, like the representative's
            (dest / "parked").mkdir(exist_ok=True)
            target, k = dest / "parked" / parked.name, 1
            while target.exists():  # the name is a case index of its own campaign; the index is inside too
                k += 1
                target = dest / "parked" / f"{parked.stem}-{k}.json"
            shutil.copyfile(parked, target)
        origins += _origins(f, sources, f"origins/{copy.name}")
        apis += [a for a in f.bug.get("apis") or [] if a not in apis]
    new_apis = [a for a in apis if a not in (bug.get("apis") or [])]
    bug.update(folder=name, count=sum(int(f.bug.get("count", 1)) for f in group), apis=apis,
               first_seen=min((_first_seen(f) for f in group), default=bug.get("first_seen")), origins=origins)
    if bug["first_seen"] == "~":
        bug.pop("first_seen")
    write_atomic(dest / "bug.json", json.dumps(bug, indent=1, sort_keys=True))
    _fix_report(dest / "report.md", out_bugs / name, new_apis)


def merge_campaigns(out: Path, sources: Sequence[Source]) -> MergeResult:
    """Merge ``sources`` into the new campaign folder ``out`` (absent or empty)."""
    if not sources:
        raise MergeError("no campaign folder to merge; pass at least one DIR")
    check_sources(sources)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise MergeError(f"{out} is {what}; the merged campaign needs a new (or empty) folder")
    _labels(sources)
    unreadable: list[str] = []
    groups: dict[tuple, list[_Found]] = {}
    for i, src in enumerate(sources):
        for f in _read_bugs(i, src, unreadable):
            groups.setdefault(_key(f), []).append(f)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.merge-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as e:
        raise MergeError(f"cannot write beside {out} ({e.strerror}); choose a writable place for OUT") from None
    try:
        bugs_dir = tmp / "bugs"
        bugs_dir.mkdir()
        # first found first, so that a family's folder name goes to its earliest member
        for group in sorted(groups.values(), key=lambda g: min((_first_seen(f), f.source) for f in g)):
            _write_bug(group, sources, bugs_dir, out / "bugs")
        twins = len(Pinning(bugs_dir).merge_twins())
        kept = []
        for p in sorted(bugs_dir.glob("*/bug.json")):
            kept.append(json.loads(p.read_text()))
        state = merge_figures(sources)
        by_kind: dict[str, int] = {}
        for b in kept:
            by_kind[str(b.get("kind", "?"))] = by_kind.get(str(b.get("kind", "?")), 0) + 1
        state["bugs"], state["bugs_by_kind"] = len(kept), dict(sorted(by_kind.items()))
        if isinstance(state.get("checks"), dict):  # distinct bugs per check kind: recounted too
            checks = {k: v for k, v in state["checks"].items() if not k.startswith("bugs: ")}
            for b in kept:
                key = f"bugs: {(b.get('verdict') or {}).get('check') or 'forward'}"
                checks[key] = checks.get(key, 0) + 1
            state["checks"] = dict(sorted(checks.items()))
        write_atomic(tmp / "campaign.json", json.dumps(state, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above); a folder that filled up since fails here
        os.rename(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MergeError(f"cannot write {out} ({e.strerror or e}); nothing was written") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shared = sum(len({o.get("campaign") for o in b.get("origins", [])}) > 1 for b in kept)
    return MergeResult(out, state, len(kept), shared, twins, unreadable)
