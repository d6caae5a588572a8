"""report.md: a bug report ready to paste into the PyTorch or TensorFlow issue tracker.

A title naming the operators (as the framework spells them: ``torch.add``, ``tf.math.exp``)
and the symptom; the minimal reproducer inline; expected vs actual (for a mismatch, the
largest absolute and relative error against the reference, which the float64
recomputation of the graph backs); which backends agree and which differ; the versions
(framework, numpy, Python, OS, CPU); and the commands that reproduce it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Mapping, Sequence

from corpus.case import Case
from corpus.tensor_type import is_float
from oracles.compare import tolerance
from oracles.verdict import Verdict
from reports.localize import Culprit
from reports.signature import Signature
from reports.snippet import snippet
from rules.spec import OpSpec

_DISTRIBUTIONS = {"torch": ("torch",), "tensorflow": ("tensorflow-cpu", "tensorflow")}
_CALLEE = re.compile(r"^\s*((?:torch|tf)\.[A-Za-z_][\w.]*)\(")
_METHOD = re.compile(r"^\s*a\d+\.([A-Za-z_]\w*)\(")


def versions(frameworks: Sequence[str]) -> dict[str, str]:
    """Framework, numpy, Python, OS and CPU, without importing any framework."""
    import importlib.metadata
    import platform
    import sys

    found: dict[str, str] = {}
    for fw in frameworks:
        for dist in _DISTRIBUTIONS.get(fw, (fw,)):
            try:
                found[fw] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    try:
        found["numpy"] = importlib.metadata.version("numpy")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        pass
    found["python"] = sys.version.split()[0]
    found["os"] = platform.platform()
    found["cpu"] = cpu_name()
    return found


def cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def api_name(op: str, framework: str, attrs: Mapping, specs: Mapping[str, OpSpec] | None) -> str:
    """The framework function an operator calls (``torch.add``), else its short name."""
    spec = specs.get(op) if specs else None
    if spec is not None:
        try:
            code = spec.code(framework, [f"a{i}" for i in range(max(spec.n_inputs, 1))], dict(attrs))
        except Exception:  # noqa: BLE001 - a name is only cosmetic
            code = ""
        m = _CALLEE.match(code)
        if m:
            return m.group(1)
        m = _METHOD.match(code)
        if m:
            return f"{'Tensor' if framework == 'torch' else 'tf.Tensor'}.{m.group(1)}"
    return op.split(".")[-1]


def operator_names(case: Case, specs: Mapping[str, OpSpec] | None) -> list[str]:
    g = case.graph
    return sorted({api_name(g.node(n).op, case.framework, g.node(n).attrs, specs) for n in g.op_nodes()})  # type: ignore[arg-type]


def _join(names: list[str], limit: int = 4) -> str:
    shown = [f"`{n}`" for n in names[:limit]]
    if len(names) > limit:
        shown.append(f"{len(names) - limit} more")
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _exception_type(message: str) -> str:
    head = message.split(":", 1)[0].strip()
    return head if re.fullmatch(r"[A-Za-z_][\w.]*", head) else "an exception"


# What each check of a case's plan (``corpus.plan``) does, for the report's reader
CHECK_MEANING = {
    "forward": "the outputs of the model on the case's inputs",
    "dynamic": "the model compiled once for symbolic shapes (`torch.compile(..., dynamic=True)`, or `tf.function` "
               "with unknown dims in its `input_signature`), then run at the case's inputs and at other input shapes",
    "backward": "a backward through the compiled model with seeded random cotangents: the gradients of every float "
                "input and weight",
    "layout": "the same input values passed as non-contiguous tensors (transposed, stepped, offset, ...)",
    "mutation": "every input compared after the call as well as the outputs (the model writes into its inputs)",
}
_CHECK_SUFFIX = {"dynamic": " with dynamic shapes", "layout": " for non-contiguous inputs",
                 "backward": " in the backward"}


def _argument_checks(verdict: Verdict) -> str:
    """What rejected the arguments: torch.compile's fake-tensor/meta checks, XLA's shape inference."""
    return "shape inference (XLA)" if verdict.backend.startswith("tf.") else "fake-tensor/meta checks"


def symptom(verdict: Verdict) -> str:
    stage = "at compile time" if verdict.stage == "compile" else "at run time"
    if verdict.check != "forward":
        return _plan_symptom(verdict, stage)
    if verdict.status == "crash":
        return f"raises {_exception_type(verdict.message)} {stage}"
    if verdict.status == "eager-validation":
        return f"rejects in its {_argument_checks(verdict)} a call eager runs ({_exception_type(verdict.message)})"
    if verdict.status == "abort":
        sig = verdict.message.removeprefix("killed by signal ").strip()
        return f"kills the process ({sig}) {stage}" if sig.startswith("SIG") else f"kills the process {stage}"
    if verdict.status == "timeout":
        return f"hangs {stage}"
    dtype = f" ({verdict.dtype})" if verdict.dtype else ""
    return f"returns wrong results{dtype}"


def _plan_symptom(verdict: Verdict, stage: str) -> str:
    """The symptom of a bug that a check of the plan saw, saying which."""
    suffix = _CHECK_SUFFIX.get(verdict.check, "")
    item = re.sub(r"^shape set \d+: ", "", verdict.message)
    if verdict.status == "mismatch":
        dtype = f" ({verdict.dtype})" if verdict.dtype else ""
        if item.startswith("gradient "):
            return f"returns wrong gradients{dtype}"
        found = re.match(r"input (x\d+) after the call", item)
        if found:
            return f"writes wrong values into its input {found.group(1)}{dtype}{suffix}"
        return f"returns wrong results{dtype}{suffix}"
    if verdict.status == "crash" and verdict.stage == "backward":
        return f"raises {_exception_type(verdict.message)} in the backward"
    plain = symptom(replace(verdict, check="forward"))
    return plain if verdict.check == "mutation" else plain + suffix


def title(case: Case, verdict: Verdict, specs: Mapping[str, OpSpec] | None = None) -> str:
    return f"{verdict.backend} {symptom(verdict)} on {_join(operator_names(case, specs))}"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _backend_rows(verdicts: Sequence[Verdict], reference: str, failing: Verdict) -> tuple[list[str], list[str], list[str]]:
    rows, agree, differ = [], [], []
    listed = list(verdicts) or [Verdict(reference, "ok"), failing]
    for v in listed:
        role = " (reference)" if v.backend == reference else ""
        if v.ok:
            what = "ok" if v.backend == reference else "agrees with the reference"
            (agree if v.backend != reference else []).append(f"`{v.backend}`")
        else:
            what = f"{v.status} at {v.stage or 'run'}" + (" (documented limitation)" if v.unsupported else "")
            what += f" ({v.check} check)" if v.check != "forward" else ""
            differ.append(f"`{v.backend}`")
        rows.append(f"| `{v.backend}`{role} | {what} |")
    return rows, agree, differ


def _user_module(backend: str) -> str:
    target = backend.split(":", 1)[1] if backend.startswith("torch.compile:") else ""
    return f" (and `{target.split(':')[0]}`, the custom backend's module)" if ":" in target else ""


def _api_label(op: str, case: Case, specs: Mapping[str, OpSpec] | None) -> str:
    """``torch.add`` (``core.Add``): the function as the user wrote it, and the op id."""
    nodes = [n for n in case.graph.op_nodes() if case.graph.node(n).op == op]
    name = api_name(op, case.framework, case.graph.node(nodes[0]).attrs if nodes else {}, specs)
    return f"`{name}` (`{op}`)" if name not in (op, op.split(".")[-1]) else f"`{op}`"


def _where(case: Case, verdict: Verdict, culprit: Culprit | None, apis: Sequence[str],
           specs: Mapping[str, OpSpec] | None) -> list[str]:
    """Both levels of the culprit: the API the model calls, the ATen operator that is wrong."""
    if culprit is None or not (culprit.api or culprit.aten):
        return []
    lines = ["## Where it goes wrong"]
    if culprit.api:
        lines.append(f"The model calls {_api_label(culprit.api, case, specs)}: its output is the first value that "
                     f"differs from the reference, while its inputs still agree.")
    if culprit.aten:
        lines.append(_lowered_level(verdict, culprit.aten))
    elif verdict.backend.startswith("torch.") and verdict.status == "mismatch":
        lines.append("No part of its ATen graph was found failing when compiled alone (a fault that needs the "
                     "surrounding graph, such as a fusion, or one the localization could not isolate): the bug is "
                     "signed by the API operator.")
    others = [a for a in apis if a != culprit.api]
    if others:
        lines.append(f"The same fault was also met through {', '.join(_api_label(a, case, specs) for a in others)}.")
    return [part for line in lines for part in (line, "")]


def _lowered_level(verdict: Verdict, found: Sequence[str]) -> str:
    """The culprit at the level the compiler works on: ATen operators (torch), or the ops
    of the graph ``tf.function`` traces (XLA, ``oracles.tf_graph``)."""
    ops = ", ".join(f"`{op}`" for op in found)
    tensorflow = verdict.backend.startswith("tf.")
    reference = "tf.function without XLA" if tensorflow else "eager"
    what = f"differs from {reference}" if verdict.status == "mismatch" else "raises the same error"
    if tensorflow:
        level, how = "TensorFlow graph op", f"traced by `tf.function`, taken out of its graph and compiled alone by " \
                                            f"`{verdict.backend}`"
    else:
        level, how = "ATen operator", f"lowered to ATen as `{verdict.backend}` lowers it and compiled alone"
    if len(found) == 1:
        wrong = "is wrong" if verdict.status == "mismatch" else "fails"
        return f"The {level} that {wrong} is {ops}: {how} on the values it receives here, it already {what}."
    graph = "graph `tf.function` traces" if tensorflow else "ATen graph"
    return f"The {level}s {ops} together are wrong: compiled as the smallest part of the {graph} that fails, on " \
           f"the values they receive here, they {what}."


def _subject(case: Case, verdict: Verdict) -> str:
    """What differs in a bug of a plan's check: "gradient 0", "input x3 after the call",
    "output 0 at shape set 1 (x0 (7, 3))", "output 0 on the non-contiguous inputs"."""
    from reports.repro import failing_item

    item = failing_item(case, verdict.status, verdict.check, verdict.output, verdict.message)
    if item is None:
        return f"output {verdict.output}"
    label, what, i = item
    if what == "gradient":
        name = f"gradient {i}"
    elif what == "input" and 0 <= i < len(case.graph.leaves("input")):
        name = f"input x{case.graph.leaves('input')[i]} after the call"
    else:
        name = f"output {i}"
    if label.startswith("shape set "):
        k = int(label.split()[-1])
        shapes = case.plan.shape_sets[k - 1] if 0 < k <= len(case.plan.shape_sets) else {}
        return f"{name} at {label} ({', '.join(f'x{n} {tuple(s)}' for n, s in sorted(shapes.items()))})"
    return name + (" on the non-contiguous inputs" if label == "layout" else "")


def render_report(case: Case, verdict: Verdict, sig: Signature, reference: str, repro: str, *,
                  specs: Mapping[str, OpSpec] | None = None, verdicts: Sequence[Verdict] | None = None,
                  versions_info: Mapping[str, str] | None = None, folder: str | None = None,
                  reduced_from: tuple[int, int] | None = None, culprit: Culprit | None = None,
                  apis: Sequence[str] = ()) -> str:
    """The Markdown report of one bug. ``versions_info`` defaults to this machine's
    (``versions``); ``folder`` is the bug folder's name for the replay command;
    ``reduced_from``: (operator nodes found with, operator nodes now); ``culprit``: where
    it is pinned, the API and the ATen level (``reports.localize``); ``apis``: every API
    operator the bug was met through."""
    frameworks = sorted({case.framework} | {"tensorflow" if b.startswith("tf.") else "torch"
                                            for b in (reference, verdict.backend)})
    info = dict(versions_info) if versions_info is not None else versions(frameworks)
    graph = case.graph
    n_ops = len(graph.op_nodes())
    names = operator_names(case, specs)
    lines = [f"# {title(case, verdict, specs)}", ""]

    size = f"{n_ops} operator{'s' if n_ops != 1 else ''}"
    if reduced_from and reduced_from[0] != reduced_from[1]:
        size += f", reduced automatically from a generated model of {reduced_from[0]}"
    inputs = ", ".join(str(graph.node(n).types[0]) for n in graph.leaves("input"))
    lines += [f"`{verdict.backend}` {symptom(verdict)} on a small model ({size}: {', '.join(f'`{n}`' for n in names)}; "
              f"inputs {inputs or 'none'}) that `{reference}` runs correctly.", ""]

    if case.plan.kinds() != ["forward"] or verdict.check != "forward" or case.plan.options or case.plan.harness:
        lines += [f"Checked: {case.plan.summary()}. The check that fails is **{verdict.check}**: "
                  f"{CHECK_MEANING.get(verdict.check, verdict.check)}.", ""]

    short = snippet(case, specs, reference, verdict, tolerance(verdict.dtype or "float32")) if specs else None
    if short is not None:
        lines += ["## Minimal reproducer", "", "```python", short, "```", ""]

    lines += ["## Reproducer", "",
              f"Standalone: it imports only numpy and the framework{_user_module(verdict.backend)}. Save as "
              "`repro.py` and run `python repro.py`; it exits 1 while the bug is present and 0 once it is fixed.", "",
              "```python", repro.rstrip(), "```", ""]

    lines += ["## Expected vs actual", ""]
    if verdict.status == "mismatch":
        out = graph.outputs[verdict.output] if verdict.output is not None and verdict.output < len(graph.outputs) else None
        shape = f" {graph.type_of(out)}" if out is not None else ""
        exact = bool(verdict.dtype) and not is_float(verdict.dtype)
        within = "exactly" if exact else f"within the {verdict.dtype or 'float32'} tolerance"
        subject = f"output {verdict.output}{shape}" if verdict.check == "forward" else _subject(case, verdict)
        lines += [f"Expected: {subject} equal to `{reference}`'s {within}.",
                  f"Actual: `{verdict.backend}` differs: {verdict.message or 'outputs differ'}.", ""]
        if verdict.max_abs is not None or verdict.max_rel is not None:
            lines += ["| | value |", "| --- | --- |",
                      f"| max absolute error | {_fmt(verdict.max_abs)} |",
                      f"| max relative error | {_fmt(verdict.max_rel)} |", ""]
        lines += ["The errors are against the reference's output." if exact else
                  "The errors are against the reference's output. Where the graph could be recomputed in float64, "
                  "the oracle also checked that the candidate is farther from that float64 result than rounding "
                  "explains, and that no discontinuous operator (rounding, comparison, cast to integer) near a jump "
                  "explains the difference.", ""]
    elif verdict.status == "crash":
        lines += [f"Expected: `{verdict.backend}` runs the model like `{reference}`.",
                  f"Actual: it raises at the {verdict.stage or 'run'} stage:", "", "```", verdict.message, "```", ""]
    elif verdict.status == "eager-validation":
        lines += [f"Expected: eager and `{verdict.backend}` agree on whether this call is valid.",
                  f"Actual: `{reference}` runs it, while `{verdict.backend}`'s {_argument_checks(verdict)} reject "
                  "it at compile time: eager's input validation is missing (or the compiler's check is too strict):",
                  "", "```", verdict.message, "```", ""]
    elif verdict.status == "abort":
        lines += [f"Expected: `{verdict.backend}` runs the model like `{reference}`.",
                  f"Actual: the process dies at the {verdict.stage or 'run'} stage ({verdict.message}).", ""]
    else:
        lines += [f"Expected: `{verdict.backend}` finishes like `{reference}` (well under a second).",
                  f"Actual: it does not finish at the {verdict.stage or 'run'} stage ({verdict.message}).", ""]

    lines += _where(case, verdict, culprit, apis, specs)

    rows, agree, differ = _backend_rows(verdicts or [], reference, verdict)
    lines += ["## Backends", "", "| backend | result |", "| --- | --- |", *rows, ""]
    lines += [f"Agree with the reference: {', '.join(agree) if agree else 'none of the others'}. "
              f"Differ: {', '.join(differ)}.", ""]

    lines += ["## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "## How to reproduce", "", "```sh", "python repro.py"]
    lines += [f"dlfuzz replay {folder or '<bug folder>'}   # re-check on every backend", "```", ""]
    lines += [f"Found by dlfuzz (signature `{sig.digest}`: {sig.kind} in {sig.backend} at {sig.stage or 'run'}"
              + (f", pinned on {', '.join(sig.operators)}" if sig.operators else "") + ")."]
    return "\n".join(lines) + "\n"

