"""Failures that name no operator (aborts, timeouts, bare crashes) are told apart by the
operators reduction pins them on: two different aborts are two bugs, one abort met
through many cases is one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles.verdict import Verdict
from reports.bugs import BugStore, signature_of
from reports.pinning import Pinning, needs_pin
from rules.specs import SPECS

ABORT = Verdict("torch.compile", "abort", "compile", "killed by signal SIGABRT")


def chain(*ops: str) -> Case:
    t = TensorType((3,), "float32")
    g = Graph()
    v = g.add_leaf(t)
    for op in ops:
        v = g.add_op(op, {}, [v], [t])[0]
    g.outputs = [v]
    return Case(g, "torch", {0: ValueSpec(1, 0.1, 1.0)})


def record(store: BugStore, pinning: Pinning, case: Case, verdict: Verdict = ABORT):
    sig = signature_of(case, verdict)
    assert needs_pin(sig)
    d = pinning.decide(case, sig)
    if d.action == "park":
        pinning.park(d.folder, case, verdict, 0, [verdict])
        return "park", None
    return store.record(case, verdict, (0, 0), 0, signature=d.signature, extra={"base_signature": sig.digest})


def reduced(store: BugStore, name: str, ops: list[str]) -> None:
    """What reduction leaves in bug.json."""
    path = store.root / name / "bug.json"
    bug = json.loads(path.read_text())
    bug.update(reduce_seconds=1.0, operators_reduced=ops)
    path.write_text(json.dumps(bug))


def test_two_different_aborts_are_two_bugs_and_a_third_sighting_joins_its_own(tmp_path: Path):
    store, pinning = BugStore(tmp_path, SPECS, "torch.eager"), Pinning(tmp_path / "bugs")
    sin_sig, new = record(store, pinning, chain("core.Exp", "core.Sin", "core.Abs"))
    assert new
    # before the first is reduced, a second abort cannot be told apart yet: parked
    assert record(store, pinning, chain("core.Cos", "core.Neg"))[0] == "park"
    reduced(store, sin_sig.folder_name, ["core.Sin"])
    [(path, case, verdict, _, _)] = list(pinning.parked())
    path.unlink()
    cos_sig, new = record(store, pinning, case, verdict)
    assert new and cos_sig.digest != sin_sig.digest and cos_sig.operators == ("core.Cos", "core.Neg")
    again, new = record(store, pinning, chain("core.Neg", "core.Sin"))
    assert not new and again == sin_sig  # contains the pinned Sin: a sighting
    assert json.loads((store.root / sin_sig.folder_name / "bug.json").read_text())["count"] == 2


def test_members_pinned_on_the_same_operators_merge_into_the_first(tmp_path: Path):
    store, pinning = BugStore(tmp_path, SPECS, "torch.eager"), Pinning(tmp_path / "bugs")
    first, _ = record(store, pinning, chain("core.Sin", "core.Exp"))
    reduced(store, first.folder_name, ["core.Exp", "core.Sin"])
    second, new = record(store, pinning, chain("core.Cos", "core.Abs"))  # shares nothing: a distinct bug
    assert new
    third, new = record(store, pinning, chain("core.Cos", "core.Neg"))
    assert not new or third != second  # parked or recorded; then the distinct one reduces to Cos
    reduced(store, second.folder_name, ["core.Cos"])
    for path, case, verdict, _, _ in list(pinning.parked()):
        path.unlink()
        record(store, pinning, case, verdict)
    names = sorted(p.parent.name for p in store.root.glob("*/bug.json"))
    assert second.folder_name in names and len(names) == 2
    # a later member that also reduces to Cos merges into the second; nothing is deleted
    fourth, new = record(store, pinning, chain("core.Tan", "core.Abs"))
    assert new
    reduced(store, fourth.folder_name, ["core.Cos"])
    assert pinning.merge_twins() == ["abort"]
    [kept] = [p.parent for p in store.root.glob("*/merged")]  # first found first; one second apart or less here
    [gone] = {second.folder_name, fourth.folder_name} - {kept.name}
    assert (kept / "merged" / gone / "bug.json").exists() and not (store.root / gone).exists()
    assert json.loads((kept / "bug.json").read_text())["merged"] == [gone]


def test_a_crash_that_names_an_operator_needs_no_pinning():
    case = chain("core.Exp")
    assert not needs_pin(signature_of(case, Verdict("torch.compile", "crash", "compile", "planted: exp fails")))
    assert needs_pin(signature_of(case, Verdict("torch.compile", "crash", "compile", "RuntimeError: bad")))
    assert needs_pin(signature_of(case, Verdict("torch.compile", "timeout", "run", "no result after 5s")))


@pytest.mark.slow
def test_a_campaign_reports_two_different_aborts_as_two_bugs(tmp_path: Path):
    from fuzzer.campaign import CampaignConfig, run_campaign

    # seed 2: of the first 40 models, two have sin and three cos (none both)
    cfg = CampaignConfig(["torch.eager", "torch.compile:tests.planted_backends:aborts_on_sin_or_cos"], tmp_path,
                         time_s=900, seed=2, max_nodes=6, max_cases=40, timeout_s=10, reduce_s=120, ops=("spec",))
    state = run_campaign(cfg)
    bugs = [json.loads(p.read_text()) for p in (tmp_path / "bugs").glob("*/bug.json")]
    pinned = sorted(tuple(b.get("operators_reduced", [])) for b in bugs)
    assert pinned == [("core.Cos",), ("core.Sin",)], pinned
    assert state.bugs == 2 and state.parked == 0


def test_crashes_with_one_specific_message_through_one_function_merge_after_reduction(tmp_path: Path):
    """Folders of one missing C++ overload (Inductor's ``min_masked_reduce``, met through
    ``min`` of masks from eq, xor and logical_and) are one root cause; another message
    stays apart."""
    from reports.pinning import function_name

    assert {function_name(o) for o in ("core.Min", "torch.Tensor.min#ca74", "aten.min.dim", "torch.min")} == {"min"}
    store, pinning = BugStore(tmp_path, SPECS, "torch.eager"), Pinning(tmp_path / "bugs")
    message = ("CppCompileError: C++ compile error: no matching function for call to "
               "'min_masked_reduce(at::vec::VecMask<float, 1>&, at::vec::VecMask<{}, 1>&, int64_t)'")
    # stand-ins (unary chains): "floor" plays the shared function, fed by different ops
    first, _ = record(store, pinning, chain("core.Abs", "core.Floor"),
                      Verdict("torch.compile", "crash", "compile", message.format("signed char")))
    reduced(store, first.folder_name, ["core.Abs", "core.Floor"])
    second, new = record(store, pinning, chain("core.Floor", "core.Exp"),
                         Verdict("torch.compile", "crash", "compile", message.format("int")))
    assert new and second != first  # pinned operators differ: a distinct bug at first
    reduced(store, second.folder_name, ["core.Floor", "core.Exp"])
    # one signed by its ATen ops (a localized crash) and one with another message
    aten = Verdict("torch.compile", "crash", "compile", message.format("int"))
    third, _ = store.record(chain("core.Sin"), aten, (0, 0), 3,
                            signature=dataclasses.replace(signature_of(chain("core.Sin"), aten),
                                                          operators=("aten.floor.default",)))
    reduced(store, third.folder_name, ["core.Sin"])
    other, _ = record(store, pinning, chain("core.Floor", "core.Neg"),
                      Verdict("torch.compile", "crash", "compile", "AssertionError: vr must not be None while "
                              "lowering a pad of an int64 tensor"))
    reduced(store, other.folder_name, ["core.Floor"])
    store_bug = json.loads((store.root / third.folder_name / "bug.json").read_text())
    store_bug["aten_ops"] = ["aten.floor.default"]
    (store.root / third.folder_name / "bug.json").write_text(json.dumps(store_bug))
    assert pinning.merge_twins() == ["crash", "crash"]
    left = {p.parent.name for p in store.root.glob("*/bug.json")}
    one_cause = {first.folder_name, second.folder_name, third.folder_name}
    assert other.folder_name in left and len(left & one_cause) == 1 and len(left) == 2
    [kept] = left & one_cause
    assert len(json.loads((store.root / kept / "bug.json").read_text())["merged"]) == 2


def test_a_distinct_member_keeps_its_own_name_through_reduction(tmp_path: Path):
    """Seed 33's tf.xla campaign: a parked sighting that became a distinct bug was reduced
    and rewritten under its family's base signature (repro.py and report.md named the
    first member's folder)."""
    from oracles.verdict import CheckResult
    from reports.reduce import reduce_bug_folder

    store, pinning = BugStore(tmp_path, SPECS, "torch.eager"), Pinning(tmp_path / "bugs")
    sin_sig, _ = record(store, pinning, chain("core.Exp", "core.Sin"))
    reduced(store, sin_sig.folder_name, ["core.Sin"])
    cos_sig, new = record(store, pinning, chain("core.Cos", "core.Neg"))
    assert new and cos_sig != sin_sig

    def aborts_on_cos(case: Case) -> CheckResult:
        bad = "core.Cos" in case.graph.op_ids()
        return CheckResult(True, "", (Verdict("torch.eager", "ok"), ABORT if bad else Verdict("torch.compile", "ok")))

    folder = store.root / cos_sig.folder_name
    assert reduce_bug_folder(folder, aborts_on_cos, SPECS, time_s=30) is not None
    assert Case.load(folder / "case.json").graph.op_ids() == ["core.Cos"]
    assert (folder / "repro.py").read_text().startswith(f'"""dlfuzz bug {cos_sig.folder_name}\n')
    assert f"signature `{cos_sig.digest}`" in (folder / "report.md").read_text()
