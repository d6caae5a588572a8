"""Standalone reproducers (``repro.py``): a bug a framework developer can run as is.

A reproducer imports only numpy, the frameworks (and, for a user's own torch.compile
backend, that backend's module). It rebuilds the model and its inputs from the same
source text the oracle executed, runs the reference and the failing backend, and exits
1 while the bug is present, 0 once it is gone. Aborts and hangs are observed from a
child process (``repro.py --candidate``), so the reproducer itself survives them.

A bug that only a check of the case's plan sees (``corpus.plan``: dynamic shapes,
gradients, memory layouts, mutated inputs) gets a reproducer that makes the same calls
as the oracle did: the model compiled as the plan compiles it (``dynamic=True``, or
``tf.function`` with an ``input_signature`` of unknown dims; autograd on with the float
weights as parameters), then called at the case's inputs, at the same values in other
memory layouts and at the other shape sets (``INPUTS_1()``, ``INPUTS_2()`` ...: the same
value recipes at other shapes), the backward taken with the seeded cotangents, and
every input compared after the call. It compares what the oracle saw differ (the call,
and the output, gradient or input after the call) and names the check when it fails. A
bug of the forward check keeps the plain reproducer: the checker labels a forward
failure ``forward`` only when a plain compile fails too.
"""

from __future__ import annotations

import re
from typing import Mapping

from corpus.case import Case
from corpus.tensor_type import is_float
from rules.codegen import leaf_recipes, leaves_source, module_source
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


def with_options(line: str, backend: str, options: Mapping[str, object], harness: str = "") -> str:
    """The line making ``fn`` with the plan's Inductor options and harness (``corpus.plan``),
    as the oracle compiles it: ``torch.compile(harness(model), options={...})``. Other
    backends take no options, and only torch.compile backends a harness."""
    from oracles.backends import takes_options
    from oracles.harness import applies

    if harness and applies(backend):
        line = re.sub(r"torch\.compile\((\w+)", r"torch.compile(harness(\1)", line, count=1)
    if not options or not takes_options(backend) or not line.endswith(")"):
        return line
    return line[:-1] + f", options={dict(sorted(options.items()))!r})"


def harness_source(case: Case, backends: tuple[str, ...]) -> str:
    """The plan's harness (``oracles.harness``) as it ran, for the reproducer's body; ""
    when the case has none or no backend here is compiled through it."""
    from oracles.harness import SOURCES, applies

    if not case.plan.harness or case.framework != "torch" or not any(applies(b) for b in backends):
        return ""
    return (f"\n\n# The {case.plan.harness} harness: Python around the model that torch.compile traces with it "
            f"(it returns the model's outputs as they are)\n" + SOURCES[case.plan.harness].strip("\n") + "\n")


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
    line = with_options(backend_source(backend)[1], backend, case.plan.options,
                        case.plan.harness if case.framework == "torch" else "")
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


# dlfuzz's workers run the frameworks with one thread (several times faster on few
# cores); some kernels differ with one (Inductor generates other loops), so the
# reproducer runs as the bug was seen.
ONE_THREAD = {"torch": "torch.set_num_threads(1)  # as dlfuzz ran it: some kernels differ with one thread",
              "tensorflow": "tf.config.threading.set_intra_op_parallelism_threads(1)  # as dlfuzz ran it\n"
                            "tf.config.threading.set_inter_op_parallelism_threads(1)"}


def one_thread(body: str, framework: str) -> str:
    """``body`` (a model module's source) with the framework set to one thread right
    after its imports."""
    return body.replace("\n\n\ndef to_tensor", "\n" + ONE_THREAD[framework] + "\n\n\ndef to_tensor", 1)


def repro_source(case: Case, specs: Mapping[str, OpSpec], reference: str, candidate: str, kind: str,
                 output: int | None = None, atol: float = 1e-5, rtol: float = 1e-4, timeout_s: float = 60.0,
                 title: str = "", check: str = "forward", message: str = "") -> str:
    """The source of repro.py for one bug. A backend of the other framework (torch vs
    tensorflow) runs the same model written for its framework (see ``_block``).

    ``check``: the check of ``case.plan`` that saw the bug (``Verdict.check``); any other
    than ``forward`` makes the reproducer follow the plan (see the module docstring).
    ``message``: the verdict's message, which says which call and which of its results
    differed ("shape set 2: ...", "gradient 1 ...", "input x3 after the call ...")."""
    if check != "forward":
        return _plan_repro_source(case, specs, reference, candidate, kind, output, atol, rtol, timeout_s, title, check,
                                  message)
    framework = case.framework
    extra_imports = sorted({imp for b in (reference, candidate) for imp in backend_source(b)[0]})
    header = (f'"""{title or "dlfuzz reproducer"}\n\n{kind} in {candidate} (reference: {reference}).\n'
              f'Run with: python repro.py   (exit 1 while the bug is present, 0 once it is gone)\n"""\n\n')
    body = module_source(case.graph, framework, specs)
    body = "import subprocess\nimport sys\n" + body
    if extra_imports:
        body = body.replace("\n\n\ndef to_tensor", "\n" + "\n".join(extra_imports) + "\n\n\ndef to_tensor", 1)
    body = one_thread(body, framework)
    no_grad = "torch.set_grad_enabled(False)" if framework == "torch" else "pass"
    main = _MAIN.format(reference=reference, candidate=candidate, kind=kind, output=output, atol=atol, rtol=rtol,
                        timeout=timeout_s, no_grad=no_grad,
                        reference_block=_block("reference", reference, case, specs),
                        candidate_block=_block("candidate", candidate, case, specs))
    body += harness_source(case, (reference, candidate))
    return header + body + "\n\n" + leaves_source(case.graph, case.values) + main


# ---- reproducers that follow the case's check plan ---------------------------------------------

_DYNAMIC_FAMILIES = ("torch.compile", "tf.function", "tf.xla")  # the backends that compile for symbolic shapes
# How each TensorFlow backend compiles the backward (a tape inside the function it compiles)
_TF_WRAP = {"tf.eager": "lambda f: f", "tf.function": "tf.function",
            "tf.xla": "lambda f: tf.function(f, jit_compile=True)"}

_PLAN_SETTINGS = '''

REFERENCE = {reference!r}
CANDIDATE = {candidate!r}
KIND = {kind!r}
CHECK = {check!r}  # the check of the plan that saw the bug
COMPARE = {compare!r}  # (call, what, index) that differed; None: compare everything
ATOL, RTOL = {atol!r}, {rtol!r}
TIMEOUT_S = {timeout!r}

# The check plan: {summary}
GRAD = {grad!r}  # compiled with autograd on (float weights are parameters)
GRADIENTS = {gradients!r}  # take the gradients of the forward call, with the seeded cotangents
COTANGENT_SEED = {seed!r}
DYNAMIC_DIMS = {dims!r}  # (input position, dim) compiled as dynamic
LAYOUTS = {{{layouts}}}  # input position -> the same values in another memory layout
SHAPE_SETS = {shape_sets!r}  # INPUTS_k: the other shape sets the same compiled model runs at
COMPARE_INPUTS = {compare_inputs!r}  # compare every input after the call too (the graph writes into inputs)
MUTATED = {mutated!r}  # input positions written in place: never gradient leaves
INPUT_NAMES = {input_names!r}
GRADIENT_NAMES = {gradient_names!r}  # what each gradient is of
STEP = ""  # what the backend was doing, for the message of a crash
COTS = {{}}  # the reference's cotangents, which the candidate gets too


def calls(ns, same):
    """The calls of the compiled model in the order dlfuzz made them: (label, make inputs)."""
    out = [("forward", ns["INPUTS"])]
    if LAYOUTS and same:
        out.append(("layout", lambda: [LAYOUTS[i](x) if i in LAYOUTS else x for i, x in enumerate(ns["INPUTS"]())]))
    return out + [(f"shape set {{k}}", ns[f"INPUTS_{{k}}"]) for k in SHAPE_SETS]
'''

_TORCH_CALLS = '''

def torch_calls(fn, model, ns, same):
    """Every call: (label, outputs, inputs after the call, gradients) each, as numpy."""
    global STEP
    torch, to_numpy = ns["torch"], ns["to_numpy"]
    results = []
    for label, make in calls(ns, same):
        STEP = f"at the {label} call"
        xs = make()
        grads = GRADIENTS and same and label == "forward"
        marked = [x.requires_grad_() for i, x in enumerate(xs) if grads and x.is_floating_point() and i not in MUTATED]
        outs = fn(*xs)
        got = []
        if grads:
            STEP = "in the backward"
            if "cots" not in COTS:
                rng = np.random.default_rng(COTANGENT_SEED)
                COTS["cots"] = [rng.uniform(-1.0, 1.0, size=tuple(o.shape)) if o.is_floating_point() and o.requires_grad
                                else None for o in outs]
            params = [p for p in (fn if isinstance(fn, torch.nn.Module) else model).parameters() if p.requires_grad]
            leaves = marked + params
            pairs = [(o, c) for o, c in zip(outs, COTS["cots"]) if c is not None and o.requires_grad]
            found = [None] * len(leaves)
            if leaves and pairs:
                found = torch.autograd.grad([o for o, _ in pairs], leaves,
                                            [torch.from_numpy(c).to(o.dtype) for o, c in pairs], allow_unused=True)
            got = [to_numpy(torch.zeros_like(x) if g is None else g) for g, x in zip(found, leaves)]
        after = [to_numpy(x) for x in xs] if COMPARE_INPUTS and same else []
        results.append((label, [to_numpy(o) for o in outs], after, got))
    return results
'''

_TF_CALLS = '''

def tf_calls(fn, model, ns, wrap, same):
    """Every call: (label, outputs, inputs after the call, gradients) each, as numpy.
    ``wrap`` compiles the backward as the backend compiles the forward."""
    global STEP
    tf, to_numpy = ns["tf"], ns["to_numpy"]
    results = []
    for label, make in calls(ns, same):
        STEP = f"at the {label} call"
        xs = make()
        outs = fn(*xs)
        got = []
        if GRADIENTS and same and label == "forward":
            STEP = "in the backward"
            if "cots" not in COTS:
                rng = np.random.default_rng(COTANGENT_SEED)
                COTS["cots"] = [rng.uniform(-1.0, 1.0, size=tuple(o.shape)) if o.dtype.is_floating else None
                                for o in outs]
            weights = [v for _, v in sorted(vars(model).items()) if isinstance(v, tf.Tensor) and v.dtype.is_floating]

            def vjp(xs, cots):
                with tf.GradientTape() as tape:
                    watched = [x for x in xs if x.dtype.is_floating] + weights
                    for w in watched:
                        tape.watch(w)
                    outs = model(*xs)
                pairs = [(o, c) for o, c in zip(outs, cots) if c is not None]
                return list(tape.gradient([o for o, _ in pairs], watched, output_gradients=[c for _, c in pairs],
                                          unconnected_gradients=tf.UnconnectedGradients.ZERO))

            cots = [None if c is None else tf.cast(tf.constant(c), o.dtype) for o, c in zip(outs, COTS["cots"])]
            got = [to_numpy(g) for g in wrap(vjp)(list(xs), cots)]
        results.append((label, [to_numpy(o) for o in outs], [], got))
    return results
'''

_TF_SPECS = '''

def tensor_specs(tf, inputs):
    """tf.function's input_signature: None at the dims compiled as dynamic."""
    return [tf.TensorSpec([None if (i, d) in DYNAMIC_DIMS else n for d, n in enumerate(x.shape)], x.dtype)
            for i, x in enumerate(inputs)]
'''

_PLAN_MAIN = '''

def differs(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return True
    if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
        return bool((a != b).any())
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return True
    return not np.allclose(a, b, atol=ATOL, rtol=RTOL, equal_nan=True)


def describe(what, i):
    if what == "gradient":
        return f"gradient {{i}} (of {{GRADIENT_NAMES[i]}})" if i < len(GRADIENT_NAMES) else f"gradient {{i}}"
    if what == "input":
        return f"input {{INPUT_NAMES[i]}} after the call"
    return f"output {{i}}"


def main():
    if "--candidate" in sys.argv:  # child: run the candidate alone, let it abort or hang
        run("candidate")
        return 0
    expected = run("reference")
    if KIND in ("abort", "timeout"):
        try:
            child = subprocess.run([sys.executable, __file__, "--candidate"], timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"BUG PRESENT: {{CANDIDATE}} did not finish in {{TIMEOUT_S}} s ({{CHECK}} check)")
            return 1
        if child.returncode != 0:
            print(f"BUG PRESENT: {{CANDIDATE}} died with exit code {{child.returncode}} ({{CHECK}} check)")
            return 1
        print("bug gone: the candidate finished normally")
        return 0
    try:
        actual = run("candidate")
    except Exception as e:
        print(f"BUG PRESENT: {{CANDIDATE}} raised {{type(e).__name__}} {{STEP}} ({{CHECK}} check): {{e}}")
        return 1
    for (label, *want), (_, *got) in zip(expected, actual):
        where = {{"forward": "", "layout": " on the inputs in other layouts"}}.get(label, f" at {{label}}")
        for what, e, a in zip(("output", "input", "gradient"), want, got):
            if len(e) != len(a):
                print(f"BUG PRESENT: {{len(a)}} {{what}}s, expected {{len(e)}}{{where}} ({{CHECK}} check)")
                return 1
            for i in range(len(e)):
                if COMPARE is not None and COMPARE != (label, what, i):
                    continue
                if differs(e[i], a[i]):
                    x, y = e[i].astype(np.float64), a[i].astype(np.float64)
                    err = float(np.nanmax(np.abs(x - y))) if x.shape == y.shape and x.size else float("nan")
                    print(f"BUG PRESENT: {{describe(what, i)}} of {{CANDIDATE}} differs from {{REFERENCE}}{{where}} "
                          f"({{CHECK}} check, max abs error {{err:.3g}})")
                    return 1
    print(f"bug gone: the {{CHECK}} check passes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


DYNAMO_CAPTURE = ("torch._dynamo.config.capture_scalar_outputs = True; "
                  "torch._dynamo.config.capture_dynamic_output_shape_ops = True")


def _plan_line(backend: str, dynamic: bool, options: Mapping[str, object] | None = None, harness: str = "") -> str:
    """The line making ``fn``, compiling for symbolic shapes where the plan says so (and
    under the plan's Inductor ``options``)."""
    line = with_options(backend_source(backend)[1], backend, options or {}, harness)
    if not dynamic or backend.partition(":")[0] not in _DYNAMIC_FAMILIES:
        return line
    if line.startswith("fn = torch.compile("):  # data-dependent shapes captured, as the oracle does
        return (f"{DYNAMO_CAPTURE}; " + line[:-1] + ", dynamic=True)")
    return line[:-1] + ", input_signature=tensor_specs(tf, inputs))"


def _inputs_sources(case: Case, specs: Mapping[str, OpSpec]) -> tuple[str, list[int]]:
    """``INPUTS_k()`` for each shape set of the plan the graph admits (k from 1, as the
    oracle numbers them), and the ks."""
    from rules.shape_sets import retype

    parts, ks = [], []
    for k, shapes in enumerate(case.plan.shape_sets if case.plan.dynamic else (), 1):
        derived = retype(case.graph, specs, shapes)
        if derived is None:  # not admitted: the oracle declined it too
            continue
        inputs = leaf_recipes(derived, case.values)[1]
        parts.append("\n".join([f"def INPUTS_{k}():", "    return [", *inputs, "    ]"]) + "\n")
        ks.append(k)
    return "\n\n".join(parts), ks


def failing_item(case: Case, kind: str, check: str, output: int | None, message: str) -> tuple[str, str, int] | None:
    """(call label, "output" | "input" | "gradient", index) that the verdict saw differ;
    None (compare everything) when the message does not say."""
    if kind != "mismatch" or output is None or not message:
        return None
    label, rest = "layout" if check == "layout" else "forward", message
    m = re.match(r"(shape set \d+): (.*)", message)
    if m:
        label, rest = m.group(1), m.group(2)
    if rest.startswith("gradient "):
        return label, "gradient", output
    if rest.startswith("input x"):
        return label, "input", output - len(case.graph.outputs)
    return label, "output", output


def _plan_run(which: str, backend: str, case: Case, specs: Mapping[str, OpSpec], inputs_k: str) -> str:
    """The lines of ``run`` for one backend under the plan."""
    framework = backend_framework(backend)
    line = _plan_line(backend, case.plan.dynamic, case.plan.options, case.plan.harness if case.framework == "torch" else "")
    if framework == case.framework:
        if framework == "torch":
            return f"    if which == {which!r}:\n        {line}\n        return torch_calls(fn, model, globals(), True)"
        wrap = _TF_WRAP.get(backend.partition(":")[0], "None")
        return f"    if which == {which!r}:\n        {line}\n        return tf_calls(fn, model, globals(), {wrap}, True)"
    module = "tf" if framework == "tensorflow" else "torch"
    source = (module_source(case.graph, framework, specs) + "\n\n" + leaves_source(case.graph, case.values)
              + ("\n\n" + inputs_k if inputs_k else ""))
    engine = "tf_calls(fn, model, other, None, False)" if framework == "tensorflow" else \
        "torch_calls(fn, model, other, False)"
    return (f"    if which == {which!r}:  # the same model in {framework}\n"
            f"        other = {{}}\n"
            f"        exec(compile({source!r}, '<{framework} model>', 'exec'), other)\n"
            f"        {module} = other[{module!r}]\n"
            f"        model, inputs = other['Model'](other['CONSTS']()), other['INPUTS']()\n"
            f"        {line}\n"
            f"        return {engine}")


def _plan_repro_source(case: Case, specs: Mapping[str, OpSpec], reference: str, candidate: str, kind: str,
                       output: int | None, atol: float, rtol: float, timeout_s: float, title: str, check: str,
                       message: str) -> str:
    from oracles.judge import mutated_inputs
    from oracles.layouts import layout_source

    plan, graph, framework = case.plan, case.graph, case.framework
    same = backend_framework(candidate) == framework
    torch_case = framework == "torch"
    inputs = graph.leaves("input")
    position = {n: i for i, n in enumerate(inputs)}
    grad = plan.backward and same
    mutation = plan.mutation and torch_case and same
    mutated = mutated_inputs(graph, specs) if mutation else []
    layouts = {position[n]: name for n, name in sorted(plan.layouts.items()) if n in position} \
        if torch_case and same and check in ("layout", "dynamic") else {}
    inputs_k, ks = _inputs_sources(case, specs) if check == "dynamic" else ("", [])
    consts = graph.leaves("const")
    floats = [f"x{n}" for i, n in enumerate(inputs) if is_float(graph.node(n).types[0].dtype) and i not in mutated]
    weights = [f"c{n}" for n in consts if is_float(graph.node(n).types[0].dtype)]
    gradient_names = floats + (weights if torch_case else sorted(weights))  # tf: the weights by attribute name

    frameworks = {framework, backend_framework(reference), backend_framework(candidate)}
    extra_imports = sorted({imp for b in (reference, candidate) for imp in backend_source(b)[0]})
    header = (f'"""{title or "dlfuzz reproducer"}\n\n{kind} in {candidate} (reference: {reference}), seen by the '
              f'{check} check.\nCheck plan: {plan.summary()}.\n'
              f'Run with: python repro.py   (exit 1 while the bug is present, 0 once it is gone)\n"""\n\n')
    body = "import subprocess\nimport sys\n" + module_source(graph, framework, specs)
    if extra_imports:
        body = body.replace("\n\n\ndef to_tensor", "\n" + "\n".join(extra_imports) + "\n\n\ndef to_tensor", 1)
    body = one_thread(body, framework)
    settings = _PLAN_SETTINGS.format(
        reference=reference, candidate=candidate, kind=kind, check=check,
        compare=failing_item(case, kind, check, output, message), atol=atol, rtol=rtol, timeout=timeout_s,
        summary=plan.summary(), grad=grad, gradients=grad and check == "backward",
        seed=plan.backward_seed if grad else None,
        dims=[(position[n], d) for n, d in plan.dynamic_dims if n in position] if plan.dynamic else [],
        layouts=", ".join(f"{i}: lambda x: {layout_source(name)}" for i, name in layouts.items()),
        shape_sets=ks, compare_inputs=mutation, mutated=mutated, input_names=[f"x{n}" for n in inputs],
        gradient_names=gradient_names)
    engines = (_TORCH_CALLS if "torch" in frameworks else "") + (_TF_CALLS if "tensorflow" in frameworks else "")
    if plan.dynamic and "tensorflow" in frameworks:
        engines += _TF_SPECS
    if torch_case:
        prologue = ("    consts = CONSTS()\n"
                    "    if GRAD:  # float weights become parameters\n"
                    "        consts = {k: v.requires_grad_() if v.is_floating_point() else v\n"
                    "                  for k, v in consts.items()}\n"
                    "    model = Model(consts)\n"
                    "    inputs = INPUTS()\n"
                    "    torch.set_grad_enabled(GRAD)\n")
    else:
        prologue = "    model = Model(CONSTS())\n    inputs = INPUTS()\n"
    run = ("\n\ndef run(which):\n"
           '    """Every call of the plan on one backend, compiled once as the plan compiles it."""\n'
           '    global STEP\n'
           '    STEP = "while building the model"\n'
           + prologue
           + _plan_run("reference", reference, case, specs, inputs_k) + "\n"
           + _plan_run("candidate", candidate, case, specs, inputs_k) + "\n")
    leaves = leaves_source(graph, case.values) + ("\n\n" + inputs_k if inputs_k else "")
    body += harness_source(case, (reference, candidate))
    return header + body + "\n\n" + leaves + settings + engines + run + _PLAN_MAIN.format()
