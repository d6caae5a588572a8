"""The bug folders of a campaign: ``DIR/bugs/<signature>/``.

Each distinct bug gets one folder, written the moment it is found (atomically, file by
file, ``bug.json`` last so that a folder with a bug.json is complete): ``case.json``,
``program.py``, ``repro.py``, ``report.md`` and ``bug.json`` (signature, kind, backends,
stage, operators, message, error figures, how often it was seen). Later sightings of
the same signature only bump the count in bug.json.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Mapping

from corpus.case import Case, write_atomic
from oracles.verdict import Verdict
from reports.repro import repro_source
from reports.signature import Signature, sign
from rules.codegen import program_source
from rules.spec import OpSpec


def signature_of(case: Case, verdict: Verdict, culprit: str | None = None) -> Signature:
    """``culprit``: for a mismatch, the operator it is pinned on (``reports.localize``)."""
    return sign(verdict.status, verdict.backend, verdict.stage, verdict.message, case.graph.op_ids(), culprit_op=culprit)


def _versions() -> dict:
    import sys

    versions = {"python": sys.version.split()[0], "os": platform.platform(), "cpu": platform.processor() or platform.machine()}
    for mod in ("torch", "tensorflow"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    return versions


def render_report(case: Case, verdict: Verdict, sig: Signature, reference: str, repro: str) -> str:
    ops = ", ".join(sorted(set(case.graph.op_ids())))
    symptom = {"crash": "raises", "abort": "aborts", "timeout": "hangs", "mismatch": "gives a wrong result"}[verdict.status]
    lines = [
        f"# {verdict.backend} {symptom} at {verdict.stage or 'run'} on a model with {ops}",
        "",
        f"**Kind**: {verdict.status} · **stage**: {verdict.stage} · **reference**: {reference} · **signature**: `{sig.digest}`",
        "",
    ]
    if verdict.status == "mismatch":
        lines += [f"Output {verdict.output} ({verdict.dtype}) differs from the reference: "
                  f"max abs error {verdict.max_abs:.3g}, max rel error {verdict.max_rel:.3g}." if verdict.max_abs is not None
                  else f"Output {verdict.output} differs from the reference: {verdict.message}", ""]
    elif verdict.message:
        lines += ["```", verdict.message, "```", ""]
    lines += ["## Reproducer", "", "Save as `repro.py` and run `python repro.py` (exit 1 while the bug is present).", "",
              "```python", repro.rstrip(), "```", "", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in _versions().items()]
    return "\n".join(lines) + "\n"


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
               culprit: str | None = None) -> tuple[Signature, bool]:
        """Write the bug if new; bump its count if known. Returns (signature, is_new)."""
        sig = signature_of(case, verdict, culprit)
        folder = self.root / sig.folder_name
        bug_json = folder / "bug.json"
        if bug_json.exists():
            data = json.loads(bug_json.read_text())
            data["count"] = data.get("count", 1) + 1
            write_atomic(bug_json, json.dumps(data, indent=1, sort_keys=True))
            return sig, False
        case.save(folder / "case.json")
        write_atomic(folder / "program.py", program_source(case.graph, case.framework, case.values, self.specs,
                                                           f"dlfuzz bug {sig.digest}: the model alone"))
        repro = repro_source(case, self.specs, self.reference, verdict.backend, verdict.status, output=verdict.output,
                             atol=tolerance[0], rtol=tolerance[1], timeout_s=self.timeout_s,
                             title=f"dlfuzz bug {sig.folder_name}")
        write_atomic(folder / "repro.py", repro)
        write_atomic(folder / "report.md", render_report(case, verdict, sig, self.reference, repro))
        data = {
            "signature": sig.digest, "folder": sig.folder_name, "kind": verdict.status, "stage": verdict.stage,
            "backends": [self.reference, verdict.backend], "operators": sorted(set(case.graph.op_ids())),
            "signature_parts": sig.to_json(), "verdict": verdict.to_json(), "count": 1,
            "first_seen": time.strftime("%Y-%m-%dT%H:%M:%S"), "case_index": case_index,
            "operator_nodes": len(case.graph.op_nodes()),
        }
        write_atomic(bug_json, json.dumps(data, indent=1, sort_keys=True))
        return sig, True
