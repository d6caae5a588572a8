"""Standalone reproducers (``repro.py``): a bug a framework developer can run as is.

A reproducer imports only numpy, the frameworks (and, for a user's own torch.compile
backend, that backend's module). It rebuilds the model and its inputs from the same
source text the oracle executed, runs the reference and the failing backend, and exits
1 while the bug is present, 0 once it is gone. Aborts and hangs are observed from a
child process (``repro.py --candidate``), so the reproducer itself survives them.
"""

from __future__ import annotations

from typing import Mapping

from corpus.case import Case
from rules.codegen import leaves_source, module_source
from rules.spec import OpSpec

# How each backend turns ``model`` (and its ``inputs``) into a callable, in source form.
# Kept beside the oracle's own implementation (oracles/backends.py) in meaning: each
# line here is what that backend does, minus the bookkeeping.
_BACKEND_LINES = {
    "torch.eager": "fn = model",
    "torch.compile": "fn = torch.compile(model)",
    "torch.jit": "fn = torch.jit.trace(model, tuple(inputs), check_trace=False)",
    "torch.export": "fn = torch.export.export(model, tuple(inputs)).module()",
    "tf.eager": "fn = model",
    "tf.function": "fn = tf.function(model.__call__)",
    "tf.xla": "fn = tf.function(model.__call__, jit_compile=True)",
}


def backend_framework(name: str) -> str:
    return "tensorflow" if name.startswith("tf.") else "torch"


def backend_source(name: str) -> tuple[list[str], str]:
    """(extra import lines, the line making ``fn``) for backend ``name``."""
    if name in _BACKEND_LINES:
        return [], _BACKEND_LINES[name]
    if name.startswith("torch.compile:"):
        target = name.split(":", 1)[1]
        if ":" in target:
            module, func = target.split(":", 1)
            return [f"from {module} import {func} as user_backend"], "fn = torch.compile(model, backend=user_backend)"
        return [], f"fn = torch.compile(model, backend={target!r})"
    raise ValueError(f"no reproducer template for backend {name!r}")


_MAIN = '''

REFERENCE = {reference!r}
CANDIDATE = {candidate!r}
KIND = {kind!r}
OUTPUT = {output!r}  # the output that differed (mismatch only)
ATOL, RTOL = {atol!r}, {rtol!r}
TIMEOUT_S = {timeout!r}


def run(which):
    model = Model(CONSTS())
    inputs = INPUTS()
    {no_grad}
{reference_block}
{candidate_block}
    return [to_numpy(o) for o in fn(*inputs)]


def differs(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return True
    if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
        return bool((a != b).any())
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return True
    return not np.allclose(a, b, atol=ATOL, rtol=RTOL, equal_nan=True)


def main():
    if "--candidate" in sys.argv:  # child: run the candidate alone, let it abort or hang
        run("candidate")
        return 0
    expected = run("reference")
    if KIND in ("abort", "timeout"):
        try:
            child = subprocess.run([sys.executable, __file__, "--candidate"], timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"BUG PRESENT: {{CANDIDATE}} did not finish in {{TIMEOUT_S}} s")
            return 1
        if child.returncode != 0:
            print(f"BUG PRESENT: {{CANDIDATE}} died with exit code {{child.returncode}}")
            return 1
        print("bug gone: the candidate finished normally")
        return 0
    try:
        actual = run("candidate")
    except Exception as e:
        print(f"BUG PRESENT: {{CANDIDATE}} raised {{type(e).__name__}}: {{e}}")
        return 1
    if len(actual) != len(expected):
        print(f"BUG PRESENT: {{len(actual)}} outputs, expected {{len(expected)}}")
        return 1
    indices = [OUTPUT] if OUTPUT is not None else range(len(expected))
    for i in indices:
        if differs(expected[i], actual[i]):
            a, b = expected[i].astype(np.float64), actual[i].astype(np.float64)
            err = float(np.nanmax(np.abs(a - b))) if a.shape == b.shape and a.size else float("nan")
            print(f"BUG PRESENT: output {{i}} of {{CANDIDATE}} differs from {{REFERENCE}} (max abs error {{err:.3g}})")
            return 1
    print("bug gone: outputs agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _block(which: str, backend: str, case: Case, specs: Mapping[str, OpSpec]) -> str:
    """The lines of ``run`` that make ``fn`` for one backend. A backend of the other
    framework (torch vs tensorflow) gets the same graph and leaves in its own framework,
    built from that framework's module source in a namespace of its own."""
    _, line = backend_source(backend)
    framework = backend_framework(backend)
    if framework == case.framework:
        return f"    if which == {which!r}:\n        {line}"
    source = module_source(case.graph, framework, specs) + "\n\n" + leaves_source(case.graph, case.values)
    return (f"    if which == {which!r}:  # the same model in {framework}\n"
            f"        other = {{}}\n"
            f"        exec(compile({source!r}, '<{framework} model>', 'exec'), other)\n"
            f"        model, inputs = other['Model'](other['CONSTS']()), other['INPUTS']()\n"
            f"        {line}\n"
            f"        return [other['to_numpy'](o) for o in fn(*inputs)]")


def repro_source(case: Case, specs: Mapping[str, OpSpec], reference: str, candidate: str, kind: str,
                 output: int | None = None, atol: float = 1e-5, rtol: float = 1e-4, timeout_s: float = 60.0,
                 title: str = "") -> str:
    """The source of repro.py for one bug. A backend of the other framework (torch vs
    tensorflow) runs the same model written for its framework (see ``_block``)."""
    framework = case.framework
    extra_imports = sorted({imp for b in (reference, candidate) for imp in backend_source(b)[0]})
    header = (f'"""{title or "dlfuzz reproducer"}\n\n{kind} in {candidate} (reference: {reference}).\n'
              f'Run with: python repro.py   (exit 1 while the bug is present, 0 once it is gone)\n"""\n\n')
    body = module_source(case.graph, framework, specs)
    body = "import subprocess\nimport sys\n" + body
    if extra_imports:
        body = body.replace("\n\n\ndef to_tensor", "\n" + "\n".join(extra_imports) + "\n\n\ndef to_tensor", 1)
    no_grad = "torch.set_grad_enabled(False)" if framework == "torch" else "pass"
    main = _MAIN.format(reference=reference, candidate=candidate, kind=kind, output=output, atol=atol, rtol=rtol,
                        timeout=timeout_s, no_grad=no_grad,
                        reference_block=_block("reference", reference, case, specs),
                        candidate_block=_block("candidate", candidate, case, specs))
    return header + body + "\n\n" + leaves_source(case.graph, case.values) + main
