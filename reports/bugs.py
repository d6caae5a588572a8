"""The bug folders of a campaign: ``DIR/bugs/<signature>/``.

Each distinct bug gets one folder, written the moment it is found (atomically, file by
file, ``bug.json`` last so that a folder with a bug.json is complete): ``case.json``,
``program.py``, ``repro.py``, ``report.md`` and ``bug.json`` (signature, kind, backends,
stage, operators, message, error figures, how often it was seen). Later sightings of
the same signature only bump the count in bug.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping, Sequence

from corpus.case import Case, write_atomic
from oracles.verdict import Verdict
from reports import render
from reports.repro import repro_source
from reports.signature import Signature, sign
from rules.codegen import program_source
from rules.spec import OpSpec


def signature_of(case: Case, verdict: Verdict, culprit: str | None = None) -> Signature:
    """``culprit``: for a mismatch, the operator it is pinned on (``reports.localize``)."""
    return sign(verdict.status, verdict.backend, verdict.stage, verdict.message, case.graph.op_ids(), culprit_op=culprit)


def render_report(case: Case, verdict: Verdict, sig: Signature, reference: str, repro: str, **kw) -> str:
    """report.md (``reports.render.render_report``)."""
    return render.render_report(case, verdict, sig, reference, repro, **kw)


def write_bug_files(folder: Path, case: Case, verdict: Verdict, sig: Signature, reference: str,
                    specs: Mapping[str, OpSpec], tolerance: tuple[float, float], timeout_s: float = 60.0, *,
                    verdicts: Sequence[Verdict] | None = None, reduced_from: tuple[int, int] | None = None) -> None:
    """case.json, program.py, repro.py and report.md of one bug (bug.json is the caller's)."""
    case.save(folder / "case.json")
    write_atomic(folder / "program.py", program_source(case.graph, case.framework, case.values, specs,
                                                       f"dlfuzz bug {sig.digest}: the model alone"))
    repro = repro_source(case, specs, reference, verdict.backend, verdict.status, output=verdict.output,
                         atol=tolerance[0], rtol=tolerance[1], timeout_s=timeout_s,
                         title=f"dlfuzz bug {sig.folder_name}")
    write_atomic(folder / "repro.py", repro)
    write_atomic(folder / "report.md", render_report(case, verdict, sig, reference, repro, specs=specs, verdicts=verdicts,
                                                     folder=str(folder), reduced_from=reduced_from))


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
               culprit: str | None = None, verdicts: Sequence[Verdict] | None = None) -> tuple[Signature, bool]:
        """Write the bug if new; bump its count if known. Returns (signature, is_new).
        ``verdicts``: every backend's verdict on the case, for the report."""
        sig = signature_of(case, verdict, culprit)
        folder = self.root / sig.folder_name
        bug_json = folder / "bug.json"
        if bug_json.exists():
            data = json.loads(bug_json.read_text())
            data["count"] = data.get("count", 1) + 1
            write_atomic(bug_json, json.dumps(data, indent=1, sort_keys=True))
            return sig, False
        write_bug_files(folder, case, verdict, sig, self.reference, self.specs, tolerance, self.timeout_s,
                        verdicts=verdicts)
        data = {
            "signature": sig.digest, "folder": sig.folder_name, "kind": verdict.status, "stage": verdict.stage,
            "backends": [self.reference, verdict.backend], "operators": sorted(set(case.graph.op_ids())),
            "signature_parts": sig.to_json(), "verdict": verdict.to_json(), "count": 1,
            "first_seen": time.strftime("%Y-%m-%dT%H:%M:%S"), "case_index": case_index,
            "operator_nodes": len(case.graph.op_nodes()), "culprit": culprit,
        }
        if verdicts:
            data["verdicts"] = [v.to_json() for v in verdicts]
        write_atomic(bug_json, json.dumps(data, indent=1, sort_keys=True))
        return sig, True
