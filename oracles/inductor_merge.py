"""Compile all C++ kernels of one Inductor graph with a single g++ call.

Why: on CPU, Inductor compiles every fused kernel as its own shared library. Each g++
call loads the precompiled ``cpp_prefix.h`` (a 150 MB PCH: about 0.5 s here) before it
compiles the ~0.25 s of kernel code, so a batch of eight generated graphs with twenty
kernels pays ten seconds, mostly for loading the same header twenty times.

How: while this hook is installed, ``AsyncCompile.cpp_pybinding`` only records each
kernel's source and argument types and hands back a placeholder. ``AsyncCompile.wait``
(which Inductor's wrapper module calls right after declaring its kernels and before
running anything) then builds one extension module: every kernel source in its own C++
namespace (so their names cannot clash), with one Python binding per kernel, compiled
by Inductor's own ``CppPythonBindingsCodeCache`` with Inductor's own flags and header.
The kernel code is byte for byte what Inductor generated; only the packaging differs.

If the merged module fails to compile, every kernel is compiled again on its own by the
stock path, so any compile error a campaign reports is one stock Inductor raises too.
Reproducers never install the hook. Tested against torch 2.13; ``install`` returns
False (and changes nothing) where the private interfaces it needs are missing.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

_INCLUDE = re.compile(r"^\s*#\s*include\b.*$", re.MULTILINE)
_EXTERN_C = re.compile(r'extern\s+"C"\s*')
_installed = False


class PendingKernel:
    """A kernel whose compilation waits for the rest of its graph's kernels."""

    def __init__(self, compile_alone: Callable[[], Callable[..., Any]], argtypes: Sequence[str], source: str) -> None:
        self.argtypes = list(argtypes)
        self.source = source
        self._compile_alone = compile_alone
        self.resolved: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        if self.resolved is None:  # called before wait(): compile this one alone
            self.resolved = self._compile_alone()
        return self.resolved(*args)


def _binding(i: int, argtypes: Sequence[str]) -> str:
    parse = ", ".join(f"parse_arg<{t.replace('const ', '')}>(args, {n})" for n, t in enumerate(argtypes))
    return f'''
static PyObject* kernel_{i}_py(PyObject* self, PyObject* args) {{
    try {{
        if(!PyTuple_CheckExact(args)) [[unlikely]]
            throw std::runtime_error("tuple args required");
        if(PyTuple_GET_SIZE(args) != {len(argtypes)}) [[unlikely]]
            throw std::runtime_error("requires {len(argtypes)} args");
        dlfuzz_k{i}::kernel({parse}); Py_RETURN_NONE;
    }} catch(std::exception const& e) {{
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return nullptr;
    }} catch(...) {{
        PyErr_SetString(PyExc_RuntimeError, "unhandled error");
        return nullptr;
    }}
}}
'''


def merged_source(kernels: Sequence[PendingKernel], suffix_template: str) -> str:
    """One translation unit holding every kernel and a binding ``kernel_<i>`` for each."""
    includes: list[str] = []
    bodies: list[str] = []
    for i, k in enumerate(kernels):
        for inc in _INCLUDE.findall(k.source):
            if inc.strip() not in includes:
                includes.append(inc.strip())
        body = _EXTERN_C.sub("", _INCLUDE.sub("", k.source))
        bodies.append(f"namespace dlfuzz_k{i} {{\n{body}\n}}  // namespace dlfuzz_k{i}\n")
    # Inductor's own binding boilerplate (arg parsing, module init), for a dummy entry;
    # our per-kernel bindings go into its method table.
    suffix = suffix_template.format(arg_len=0, call_entry_func="Py_RETURN_NONE;", entry_func="kernel", extra_parse_arg="")
    table = '{"kernel", kernel_py, METH_VARARGS, ""},'
    if table not in suffix:
        raise RuntimeError("Inductor's binding template changed; the kernel merge hook needs updating")
    entries = "".join(f'{{"kernel_{i}", kernel_{i}_py, METH_VARARGS, ""}},' for i in range(len(kernels)))
    suffix = suffix.replace("static PyMethodDef py_methods[]",
                            "".join(_binding(i, k.argtypes) for i, k in enumerate(kernels)) +
                            "\nstatic PyMethodDef py_methods[]", 1).replace(table, table + entries, 1)
    return "\n".join(includes) + "\n\n" + "\n".join(bodies) + suffix


def install() -> bool:
    """Patch Inductor's AsyncCompile in this process; True when the hook is active."""
    global _installed
    if _installed:
        return True
    try:
        from torch._inductor.async_compile import AsyncCompile
        from torch._inductor.codecache import CppPythonBindingsCodeCache
    except ImportError:
        return False
    if not all(hasattr(x, n) for x, n in ((AsyncCompile, "cpp_pybinding"), (AsyncCompile, "wait"),
                                          (CppPythonBindingsCodeCache, "suffix_template"),
                                          (CppPythonBindingsCodeCache, "load_async"))):
        return False
    stock_pybinding = AsyncCompile.cpp_pybinding
    stock_wait = AsyncCompile.wait

    def cpp_pybinding(self: Any, argtypes: list[str], source_code: str) -> Any:
        kernel = PendingKernel(lambda: CppPythonBindingsCodeCache.load_pybinding(argtypes, source_code),
                               argtypes, source_code)
        self.__dict__.setdefault("_dlfuzz_pending", []).append(kernel)
        return kernel

    def wait(self: Any, scope: dict[str, Any]) -> None:
        pending = [k for k in self.__dict__.pop("_dlfuzz_pending", []) if k.resolved is None]
        if len(pending) == 1:
            pending[0].resolved = pending[0]._compile_alone()
        elif pending:
            try:
                source = merged_source(pending, CppPythonBindingsCodeCache.suffix_template)
                module = CppPythonBindingsCodeCache.load_async(source, "cpu")()
                for i, k in enumerate(pending):
                    k.resolved = getattr(module, f"kernel_{i}")
            except Exception:  # noqa: BLE001 - fall back to the stock path, kernel by kernel
                for k in pending:
                    k.resolved = k._compile_alone()
        for key, value in list(scope.items()):
            if isinstance(value, PendingKernel) and value.resolved is not None:
                scope[key] = value.resolved
        return stock_wait(self, scope)

    AsyncCompile.cpp_pybinding = cpp_pybinding  # type: ignore[method-assign]
    AsyncCompile.wait = wait  # type: ignore[method-assign]
    AsyncCompile._dlfuzz_stock = (stock_pybinding, stock_wait)  # type: ignore[attr-defined]
    _installed = True
    return True
