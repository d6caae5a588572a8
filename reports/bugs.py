"""The bug folders of a campaign: ``DIR/bugs/<signature>/``.

Each distinct bug gets one folder, written the moment it is found (atomically, file by
file, ``bug.json`` last so that a folder with a bug.json is complete): ``case.json``,
``program.py``, ``repro.py``, ``report.md`` and ``bug.json`` (signature, kind, backends,
stage, operators, message, error figures, how often it was seen). Later sightings of
the same signature only bump the count in bug.json, and add their API-level culprit to
``apis`` when it is a new one: a bug signed by its ATen operator is met through many
Python APIs (``reports.localize``), and report.md lists them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping, Sequence

from corpus.case import Case, write_atomic
from oracles.verdict import Verdict
from reports import render
from reports.localize import Culprit
from reports.repro import repro_source
from reports.signature import Signature, sign
from rules.codegen import program_source
from rules.spec import OpSpec


def as_culprit(culprit: str | Culprit | None) -> Culprit:
    """A bare operator id is an API-level culprit (what callers passed before ATen ops)."""
    return culprit if isinstance(culprit, Culprit) else Culprit(culprit)


def signature_of(case: Case, verdict: Verdict, culprit: str | Culprit | None = None) -> Signature:
    """``culprit``: where the failure is pinned (``reports.localize``): the API operator
    of a mismatch, and at both levels the ATen operators when they are known."""
    c = as_culprit(culprit)
    return sign(verdict.status, verdict.backend, verdict.where, verdict.message, case.graph.op_ids(), culprit_op=c.api,
                aten_ops=c.aten, dtype=c.dtype or verdict.dtype)


def render_report(case: Case, verdict: Verdict, sig: Signature, reference: str, repro: str, **kw) -> str:
    """report.md (``reports.render.render_report``)."""
    return render.render_report(case, verdict, sig, reference, repro, **kw)


def write_bug_files(folder: Path, case: Case, verdict: Verdict, sig: Signature, reference: str,
                    specs: Mapping[str, OpSpec], tolerance: tuple[float, float], timeout_s: float = 60.0, *,
                    verdicts: Sequence[Verdict] | None = None, reduced_from: tuple[int, int] | None = None,
                    culprit: Culprit | None = None, apis: Sequence[str] = ()) -> None:
    """case.json, program.py, repro.py and report.md of one bug (bug.json is the caller's).
    ``culprit``, ``apis``: both levels of the culprit, and every API it was met through."""
    case.save(folder / "case.json")
    write_atomic(folder / "program.py", program_source(case.graph, case.framework, case.values, specs,
                                                       f"dlfuzz bug {sig.digest}: the model alone"))
    repro = repro_source(case, specs, reference, verdict.backend, verdict.status, output=verdict.output,
                         atol=tolerance[0], rtol=tolerance[1], timeout_s=timeout_s,
                         title=f"dlfuzz bug {sig.folder_name}", check=verdict.check, message=verdict.message)
    write_atomic(folder / "repro.py", repro)
    write_atomic(folder / "report.md", render_report(case, verdict, sig, reference, repro, specs=specs, verdicts=verdicts,
                                                     folder=str(folder), reduced_from=reduced_from,
                                                     culprit=culprit, apis=apis))


def bug_culprit(bug: dict) -> Culprit:
    """The culprit a bug.json records (older ones: the API operator of a mismatch only)."""
    if "localized" in bug:
        return Culprit.from_json(bug["localized"])
    parts = bug.get("signature_parts") or {}
    api = (parts.get("operators") or [None])[0] if bug.get("kind") == "mismatch" else None
    return Culprit(bug.get("culprit") or api)


def _refresh_report(folder: Path, bug: dict, reference: str, specs: Mapping[str, OpSpec]) -> None:
    """Re-render report.md from the folder's files (a new API met the bug): best effort,
    report.md is a view of bug.json and the case, which stay right whatever happens."""
    try:
        sig = Signature.from_json(bug["signature_parts"])
        reduced = (bug["operators_before"], bug["operators_after"]) if "operators_after" in bug else None
        text = render_report(Case.load(folder / "case.json"), Verdict.from_json(bug["verdict"]), sig, reference,
                             (folder / "repro.py").read_text(), specs=specs, folder=str(folder),
                             verdicts=[Verdict.from_json(v) for v in bug.get("verdicts", [])] or None,
                             reduced_from=reduced, culprit=bug_culprit(bug), apis=bug.get("apis", []))
    except Exception:  # noqa: BLE001
        return
    write_atomic(folder / "report.md", text)


class BugStore:
    def __init__(self, root: Path, specs: Mapping[str, OpSpec], reference: str, timeout_s: float = 60.0) -> None:
        self.root = root / "bugs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.specs = specs
        self.reference = reference
        self.timeout_s = timeout_s

    def known(self) -> dict[str, dict]:
        found = {}
        for p in sorted(self.root.glob("*/bug.json")):
            try:
                found[p.parent.name] = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # a folder interrupted before bug.json: its bug will be found again
        return found

    def record(self, case: Case, verdict: Verdict, tolerance: tuple[float, float], case_index: int,
               culprit: str | None = None, verdicts: Sequence[Verdict] | None = None, *,
               signature: Signature | None = None, extra: dict | None = None) -> tuple[Signature, bool]:
        """Write the bug if new; bump its count if known. Returns (signature, is_new).
        ``verdicts``: every backend's verdict on the case, for the report; ``signature``:
        one decided by the caller (``reports.pinning``) instead of ``signature_of``;
        ``extra``: more fields for a new bug's bug.json."""
        loc = as_culprit(culprit)
        sig = signature or signature_of(case, verdict, loc)
        folder = self.root / sig.folder_name
        bug_json = folder / "bug.json"
        if bug_json.exists():
            data = json.loads(bug_json.read_text())
            data["count"] = data.get("count", 1) + 1
            new_api = loc.api is not None and loc.api not in data.setdefault("apis", [])
            if new_api:
                data["apis"].append(loc.api)
            write_atomic(bug_json, json.dumps(data, indent=1, sort_keys=True))
            if new_api:
                _refresh_report(folder, data, self.reference, self.specs)
            return sig, False
        apis = [loc.api] if loc.api else []
        write_bug_files(folder, case, verdict, sig, self.reference, self.specs, tolerance, self.timeout_s,
                        verdicts=verdicts, culprit=loc, apis=apis)
        data = {
            "signature": sig.digest, "folder": sig.folder_name, "kind": verdict.status, "stage": verdict.stage,
            "backends": [self.reference, verdict.backend], "operators": sorted(set(case.graph.op_ids())),
            "signature_parts": sig.to_json(), "verdict": verdict.to_json(), "count": 1,
            "first_seen": time.strftime("%Y-%m-%dT%H:%M:%S"), "case_index": case_index,
            "operator_nodes": len(case.graph.op_nodes()), "culprit": loc.api, "aten_ops": list(loc.aten),
            "apis": apis, "localized": loc.to_json(),
        }
        if verdicts:
            data["verdicts"] = [v.to_json() for v in verdicts]
        data.update(extra or {})
        write_atomic(bug_json, json.dumps(data, indent=1, sort_keys=True))
        return sig, True
