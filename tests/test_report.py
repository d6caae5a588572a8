"""report.md (pinned by snapshots), known-issue filters and the campaign summary."""

import json
import os
import re
from pathlib import Path

import pytest

from corpus.case import Case
from corpus.graph import Graph
from corpus.tensor_type import TensorType
from corpus.values import ValueSpec
from oracles.verdict import Verdict
from reports.bugs import signature_of
from reports.known import KnownIssues, KnownIssuesError
from reports.render import render_report, title
from reports.summary import SummaryError, load_campaign, write_summary
from rules.specs import SPECS

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
VERSIONS = {"torch": "2.13.0+cpu", "numpy": "2.0.0", "python": "3.11.7", "os": "Linux-6.1-x86_64", "cpu": "Test CPU (x86_64)"}
REPRO = 'print("the reproducer goes here")'


def snapshot(name: str, text: str) -> None:
    """Compare with tests/snapshots/NAME; DLFUZZ_UPDATE_SNAPSHOTS=1 rewrites it."""
    path = SNAPSHOTS / name
    if os.environ.get("DLFUZZ_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def add_case():
    t = TensorType((2, 1), "float32")
    g = Graph()
    x, y = g.add_leaf(t), g.add_leaf(t)
    g.outputs = g.add_op("core.Add", {}, [x, y], [t])
    return Case(g, "torch", {0: ValueSpec(1, -1.0, 1.0), 1: ValueSpec(2, -1.0, 1.0)})


def cast_max_case():
    g = Graph()
    x = g.add_leaf(TensorType((1, 1, 11, 1), "int8"))
    b = g.add_op("core.Cast", {"to": "bool"}, [x], [TensorType((1, 1, 11, 1), "bool")])[0]
    g.outputs = g.add_op("core.Max", {"dims": -2, "keepdim": True}, [b], [TensorType((1, 1, 1, 1), "bool")])[:1]
    return Case(g, "torch", {0: ValueSpec(3, -8.0, 8.0)})


def test_mismatch_report_snapshot():
    case = add_case()
    bad = Verdict("torch.compile", "mismatch", "run", "output 0 (float32): 2 of 2 elements beyond tolerance", 0, 1.0, 3.25,
                  "float32", 0.5)
    verdicts = [Verdict("torch.eager", "ok"), Verdict("torch.compile:aot_eager", "ok"), bad]
    sig = signature_of(case, bad, "core.Add")
    text = render_report(case, bad, sig, "torch.eager", REPRO, specs=SPECS, verdicts=verdicts, versions_info=VERSIONS,
                         folder="out/bugs/" + sig.folder_name, reduced_from=(7, 1))
    snapshot("report_mismatch.md", text)
    assert text.splitlines()[0] == "# torch.compile returns wrong results (float32) on `torch.add`"


def test_crash_report_snapshot():
    case = cast_max_case()
    bad = Verdict("torch.compile", "crash", "compile",
                  "CppCompileError: C++ compile error: no match for 'operator|' (operand types are 'VecMask<float, 1>')")
    sig = signature_of(case, bad)
    text = render_report(case, bad, sig, "torch.eager", REPRO, specs=SPECS,
                         verdicts=[Verdict("torch.eager", "ok"), bad], versions_info=VERSIONS,
                         folder="out/bugs/" + sig.folder_name, reduced_from=(10, 2))
    snapshot("report_crash.md", text)
    assert title(case, bad, SPECS) == ("torch.compile raises CppCompileError at compile time on `Tensor.to` and "
                                       "`torch.max`")


def test_abort_and_timeout_titles():
    case = add_case()
    abort = Verdict("torch.compile:x", "abort", "compile", "killed by signal SIGABRT")
    hang = Verdict("torch.compile:x", "timeout", "run", "no result after 60s")
    assert title(case, abort, SPECS) == "torch.compile:x kills the process (SIGABRT) at compile time on `torch.add`"
    assert title(case, hang, SPECS) == "torch.compile:x hangs at run time on `torch.add`"
    report = render_report(case, hang, signature_of(case, hang), "torch.eager", REPRO, specs=SPECS)
    assert "- torch: " in report and "- python: " in report and "- cpu: " in report  # this machine's versions


# ---- known issues ------------------------------------------------------------------------------

def test_known_issues_match_digests_folder_names_and_messages():
    case = add_case()
    crash = Verdict("torch.compile", "crash", "compile", "CppCompileError: C++ compile error: no match for operator|")
    sig = signature_of(case, crash)
    known = KnownIssues.parse(f"# comments and blank lines are skipped\n\n{sig.digest}\n")
    assert len(known) == 1 and known.matches(sig, crash.message) == sig.digest
    assert KnownIssues.parse("^crash-torch_compile-").matches(sig) == "^crash-torch_compile-"
    assert KnownIssues.parse(r"no match for operator\|  # VecMask").matches(sig, crash.message)
    assert KnownIssues.parse("mismatch-\nSIGSEGV\n").matches(sig, crash.message) is None


def test_a_malformed_pattern_is_one_line_and_exit_code_2(tmp_path, capsys):
    from fuzzer.cli import main

    with pytest.raises(KnownIssuesError, match=r"known.txt:2: malformed regular expression 'bad\[' .*fix or remove"):
        KnownIssues.parse("fine\nbad[\n", "known.txt")
    ignore = tmp_path / "known.txt"
    ignore.write_text("ok\n(unclosed\n")
    code = main(["fuzz", "--backends", "torch.eager,torch.compile:aot_eager", "--out", str(tmp_path / "c"),
                 "--ignore", str(ignore), "--max-cases", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "malformed regular expression '(unclosed'" in err
    assert main(["fuzz", "--backends", "torch.eager,torch.compile:aot_eager", "--out", str(tmp_path / "c"),
                 "--ignore", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read ignore file" in capsys.readouterr().err


# ---- the campaign summary ----------------------------------------------------------------------

def fake_campaign(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    state = {"version": 1, "backends": ["torch.eager", "torch.compile"], "seed": 0, "max_nodes": 10, "next_index": 40,
             "cases": 40, "valid": 37, "bugs": 2, "sightings": 5, "bugs_by_kind": {"crash": 1, "mismatch": 1},
             "seconds": 300.0, "cases_per_minute": 8.0, "distinct_ops": 3,
             "ops": {"core.Add": 20, "core.Exp": 5, "core.Max": 11},
             "timeline": [[0.0, 0, 0], [100.0, 12, 1], [200.0, 25, 1], [300.0, 40, 2]], "ignored": 3}
    (root / "campaign.json").write_text(json.dumps(state))
    bugs = [
        {"folder": "crash-torch_compile-283b2f136dea", "kind": "crash", "stage": "compile",
         "backends": ["torch.eager", "torch.compile"], "operators": ["core.Cast", "core.Max", "core.Neg"],
         "operators_reduced": ["core.Cast", "core.Max"], "first_seen": "2026-11-22T05:32:16", "count": 4,
         "operator_nodes": 10, "operators_before": 10, "operators_after": 2},
        {"folder": "mismatch-torch_compile-0123456789ab", "kind": "mismatch", "stage": "run",
         "backends": ["torch.eager", "torch.compile"], "operators": ["core.Add", "core.Exp"],
         "first_seen": "2026-11-22T05:40:00", "count": 1, "operator_nodes": 6},
    ]
    for bug in bugs:
        (root / "bugs" / bug["folder"]).mkdir(parents=True)
        (root / "bugs" / bug["folder"] / "bug.json").write_text(json.dumps(bug))
    (root / "bugs" / "half-written").mkdir()
    (root / "bugs" / "half-written" / "bug.json").write_text("{")


def test_summary_markdown_and_a_self_contained_html_page(tmp_path, capsys):
    from fuzzer.cli import main

    fake_campaign(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    assert "summary.md" in capsys.readouterr().out
    md = (tmp_path / "summary.md").read_text()
    assert ("| 1 | crash at compile | torch.eager vs torch.compile | Cast, Max | 2026-11-22 05:32:16 | 10 → 2 | 4 | "
            "[report](bugs/crash-torch_compile-283b2f136dea/report.md) |") in md
    assert "| 2 | mismatch at run | torch.eager vs torch.compile | Add, Exp | 2026-11-22 05:40:00 | 6 | 1 |" in md
    assert "| ignored (known bugs) | 3 |" in md and "| core.Add | 20 |" in md and "| 300 | 40 | 2 |" in md
    assert "half-written" in md  # an unreadable folder is named, not fatal
    page = (tmp_path / "summary.html").read_text()
    assert page.count("<svg") == 3 and "<polyline" in page and "<rect" in page
    lowered = page.lower()
    assert "<script" not in lowered and "<link" not in lowered and "src=" not in lowered and "@import" not in lowered
    assert lowered.count("http") == lowered.count('xmlns="http://www.w3.org/2000/svg"')  # namespaces only
    assert 'href="bugs/crash-torch_compile-283b2f136dea/report.md"' in page


def test_crashes_with_one_message_through_different_operators_are_listed_as_one_root_cause(tmp_path):
    fake_campaign(tmp_path)
    msg = ("CppCompileError: C++ compile error: no matching function for call to "
           "'min_masked_reduce(at::vec::VecMask<float, {}>&, at::vec::VecMask<int, 1>&, int64_t)'")
    for name, ops, n in [("crash-a", ["core.GreaterEqual", "core.Min"], 1), ("crash-b", ["core.Less", "core.Min"], 2),
                         ("crash-c", ["core.Exp"], 3)]:
        bug = {"folder": name, "kind": "crash", "stage": "compile", "backends": ["torch.eager", "torch.compile"],
               "operators_reduced": ops, "first_seen": f"2026-11-23T00:00:0{n}",
               "verdict": {"message": msg.format(n) if name != "crash-c" else "AssertionError: vr must not be None"}}
        (tmp_path / "bugs" / name).mkdir()
        (tmp_path / "bugs" / name / "bug.json").write_text(json.dumps(bug))
    md, page, c = write_summary(tmp_path)
    text = md.read_text()
    assert "## Likely the same root cause (1 group)" in text
    assert ("- bugs #3, #4 (operators in all: Min): `CppCompileError: C++ compile error: no matching function for "
            "call to 'min_masked_reduce(?)'`") in text
    assert "#5" not in text.split("## Likely the same root cause")[1].split("##")[0]
    assert "Likely the same root cause (1 group)</h2>" in page.read_text()


def test_the_summary_shows_the_valid_share_the_skips_by_reason_and_why_a_campaign_stopped(tmp_path):
    state = {"backends": ["torch.eager", "tf.eager"], "cases": 60, "valid": 12, "bugs": 0, "seconds": 30,
             "skipped": {"reference raised": 40, "value search failed": 8}, "excused": {"near discontinuity": 5},
             "batches": {"failed": 2, "batch_only": 1, "sampled": 3, "alone_only": 0},
             "stopped": "only 12 of the first 60 cases were valid"}
    (tmp_path / "campaign.json").write_text(json.dumps(state))
    md, page, c = write_summary(tmp_path)
    text = md.read_text()
    assert "| cases | 60 (12 valid, 20%) (low: most cases test nothing; see skipped) |" in text
    assert "| skipped cases (not judged), by reason | reference raised 40, value search failed 8 |" in text
    assert "| excused output elements, by reason | near discontinuity 5 |" in text
    assert "| batches | 2 failed and split (1 batch-only: no member failed alone); 3 passing batches" in text
    assert "| stopped early | only 12 of the first 60 cases were valid |" in text
    assert "reference raised 40" in page.read_text()


def test_summary_of_an_empty_campaign(tmp_path):
    (tmp_path / "campaign.json").write_text(json.dumps({"backends": ["a", "b"], "cases": 0, "valid": 0, "bugs": 0,
                                                        "seconds": 0}))
    md, page, c = write_summary(tmp_path)
    assert "No bugs found." in md.read_text() and "no data" in page.read_text() and c.bugs == []


@pytest.mark.parametrize("content,says", [
    (None, "cannot read"),
    ("{not json", "not valid JSON (line 1"),
    ("[1, 2]", "expected a JSON object"),
    ('{"backends": []}', "missing cases, valid, bugs, seconds"),
])
def test_a_missing_or_corrupt_campaign_json_is_one_line_and_exit_code_2(tmp_path, capsys, content, says):
    from fuzzer.cli import main

    if content is not None:
        (tmp_path / "campaign.json").write_text(content)
    with pytest.raises(SummaryError, match=re.escape(says)):
        load_campaign(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err


@pytest.mark.tensorflow
def test_a_cross_framework_repro_runs_the_same_model_in_both_frameworks(tmp_path):
    """torch vs tensorflow: the candidate block builds the TensorFlow model in a namespace
    of its own; on a model both compute alike the repro says the bug is gone (exit 0)."""
    import subprocess
    import sys

    from reports.repro import repro_source

    source = repro_source(add_case(), SPECS, "torch.eager", "tf.eager", "mismatch", output=0, atol=1e-5, rtol=1e-4)
    assert "the same model in tensorflow" in source
    (tmp_path / "repro.py").write_text(source)
    done = subprocess.run([sys.executable, str(tmp_path / "repro.py")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "bug gone" in done.stdout, done.stdout + done.stderr


def test_the_minimal_reproducer_is_short_and_fails_while_the_bug_is_there(tmp_path):
    """report.md's ten-second snippet: literal inputs, the function, the compiled call, one
    assertion; run against a planted wrong backend, its assertion fails."""
    import subprocess
    import sys

    from reports.snippet import snippet

    verdict = Verdict("torch.compile:tests.planted_backends:wrong_add", "mismatch", "run", "output 0 differs", 0, 1.0,
                      1.0, "float32")
    text = snippet(add_case(), SPECS, "torch.eager", verdict)
    assert len(text.splitlines()) < 25 and "torch.tensor([[" in text
    (tmp_path / "snippet.py").write_text(text)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(tmp_path / "snippet.py")], capture_output=True, text=True, timeout=300,
                          cwd=root, env=dict(os.environ, PYTHONPATH=str(root)))
    assert done.returncode == 1 and "AssertionError" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int8", "bool"])
def test_literal_inputs_are_exactly_the_values_the_oracle_ran(dtype):
    import torch

    from corpus.values import make_value
    from reports.snippet import _literal

    t = TensorType((3, 4), dtype)
    array = make_value(t, ValueSpec(7, -3.0, 3.0))
    made = torch.from_numpy(array).to(getattr(torch, dtype))
    written = torch.tensor(eval(_literal(array, dtype)), dtype=getattr(torch, dtype))
    assert torch.equal(made, written)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_special_float_literals_are_python_that_gives_them_back(dtype):
    """nan and inf have no Python literal, and "-0" reads as the integer 0 (a snippet of
    an Inductor campaign's NaN bug raised NameError: name 'inf' is not defined)."""
    import numpy as np
    import torch

    from reports.snippet import _literal

    array = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5], dtype="float32" if dtype == "bfloat16" else dtype)
    written = torch.tensor(eval(_literal(array, dtype)), dtype=getattr(torch, dtype))
    made = torch.from_numpy(array).to(getattr(torch, dtype))
    torch.testing.assert_close(written, made, equal_nan=True, atol=0, rtol=0)
    assert torch.equal(torch.signbit(written)[1:], torch.signbit(made)[1:])  # (a NaN's sign is no value)


@pytest.mark.parametrize("message,line", [
    ("output 0: shape (1,) where the reference has ()", "assert actual[0].shape == expected[0].shape"),
    ("output 0: dtype int64 where the reference has int32", "assert actual[0].dtype == expected[0].dtype"),
])
def test_a_shape_or_dtype_mismatch_is_asserted_as_such(message, line):
    from reports.snippet import snippet

    text = snippet(add_case(), SPECS, "torch.eager", Verdict("torch.compile", "mismatch", "run", message, 0))
    assert text.splitlines()[-1].startswith(line) and message in text.splitlines()[-1]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int16", "uint8", "bool"])
def test_large_plain_inputs_are_one_seeded_numpy_line_giving_the_same_values(dtype):
    import numpy as np

    from corpus.values import make_value
    from reports.snippet import _plain_draw

    spec = ValueSpec(11, -4.0, 4.0) if dtype != "uint8" else ValueSpec(11, 0, 200)
    expr = _plain_draw([5, 7], dtype, spec)
    assert np.array_equal(eval(expr, {"np": np}), make_value(TensorType((5, 7), dtype), spec))


def test_a_snippet_of_a_model_that_writes_its_inputs_gives_each_call_copies(tmp_path):
    """Eager's call wrote the inputs the compiled call then read (the snippet of an
    aot_eager bug, mixing up the outputs of two mutated inputs, compared against an input
    eager had already changed): each call gets copies, so the snippet shows the bug."""
    from corpus.plan import CheckPlan
    from reports.snippet import snippet
    from tests.test_plan_checks import written

    case = written(False, CheckPlan())
    verdict = Verdict("torch.compile:tests.planted_backends:wrong_add", "mismatch", "run", "output 0 differs", 0,
                      1.0, 1.0, "float32")
    text = snippet(case, SPECS, "torch.eager", verdict)
    assert "expected = f(*[t.clone() for t in (x0,)])" in text, text
    plain = snippet(add_case(), SPECS, "torch.eager", verdict)
    assert "clone" not in plain
