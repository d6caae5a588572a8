"""Parameter names, and which integer arguments count as dimensions (DESIGN §4).

NeuRI keeps integers that *select* dimensions (``dim``, ``axis``, ``dims``, a permutation)
concrete: a rule over them would need case analysis, not arithmetic. Keyword arguments
carry their names; positional ones get theirs from the API's signature, looked up once
per API in the parent process (``torch.overrides.get_testing_overrides`` gives
signatures for PyTorch's builtins, ``inspect.signature`` the rest). An API whose
signature cannot be found names its positional arguments ``arg0``, ``arg1`` ...
"""

from __future__ import annotations

import inspect
import re
from typing import Iterable

DIM_NAMES = frozenset({"dim", "dims", "axis", "axes", "dim0", "dim1", "dim2", "start_dim", "end_dim", "source",
                       "destination", "perm", "batch_dims", "keepdim", "keepdims"})
_DIM_RE = re.compile(r"(^|_)(dim|dims|axis|axes)(_|$|\d)")

# (positional parameter names, the *varargs name or None)
Params = tuple[list[str], "str | None"]


def is_dim_name(name: str | None) -> bool:
    if not name:
        return False
    n = name.lower()
    return n in DIM_NAMES or bool(_DIM_RE.search(n))


def _signature_params(fn) -> Params | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names: list[str] = []
    var = None
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            var = p.name
            break
    return names, var


def positional_params(framework: str, apis: Iterable[str]) -> dict[str, Params]:
    """API -> its positional parameter names (imports the framework)."""
    apis = sorted(set(apis))
    out: dict[str, Params] = {}
    if framework == "torch":
        from corpus.collect.torch import resolve

        try:
            from torch.overrides import get_testing_overrides

            overrides = get_testing_overrides()
        except Exception:  # pragma: no cover - older torch
            overrides = {}
    else:
        from corpus.collect.tensorflow import resolve

        overrides = {}
    for api in apis:
        try:
            fn = resolve(api)
        except Exception:
            continue
        got = None
        try:
            proxy = overrides.get(fn)
        except TypeError:
            proxy = None
        if proxy is not None:
            got = _signature_params(proxy)
        if got is None:
            got = _signature_params(fn)
        if got is not None:
            out[api] = got
    return out


def param_name(params: Params | None, index: int) -> tuple[str, bool]:
    """(name of positional argument ``index``, whether the name is known)."""
    if params is None:
        return f"arg{index}", False
    names, var = params
    if index < len(names):
        return names[index], True
    if var:
        return var, True
    return f"arg{index}", False
