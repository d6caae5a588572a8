"""What a check says (DESIGN §1): one Verdict per backend, gathered in a CheckResult.

A Verdict records what one backend did with one Case: ``ok``, ``crash`` (an exception),
``abort`` (the process died by a signal), ``timeout`` or ``mismatch`` (outputs that differ
from the reference beyond what the comparison policy accepts), the stage it happened in
(``compile``: building the backend's callable; ``run``: calling it), a normalized message
and, for mismatches, which output and how far off.

Messages are normalized so that two occurrences of one bug read alike: the exception type
and the first meaningful line of its message, with addresses and object ids masked.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

# "eager-validation": a compiler's fake-tensor/meta check (XLA: its shape inference)
# rejects, at compile time, a call that eager ran: eager's validation is missing (or the
# compiler's check is too strict); a bug of its own kind, signed like a crash and listed
# apart in the summary
STATUSES = ("ok", "crash", "abort", "timeout", "mismatch", "eager-validation")
STAGES = ("compile", "run", "backward", "")
# the check of a case's plan that saw a failure (``corpus.plan``)
CHECKS = ("forward", "dynamic", "backward", "layout", "mutation")

MAX_MESSAGE = 300
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")
_OBJECT_ID = re.compile(r"\b(at|id=?)\s*\d{6,}\b")
_NUMBERED_NAME = re.compile(r"(?<=[A-Za-z_])_\d{3,}\b")  # __inference___call___5370
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """One line: addresses (``0x7f3a...``) masked, whitespace collapsed, length capped."""
    text = _ADDRESS.sub("0x?", text)
    text = _OBJECT_ID.sub(r"\1 ?", text)
    text = _NUMBERED_NAME.sub("_?", text)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _unwrap(exc: BaseException) -> BaseException:
    """The exception a framework wrapper hides: torch.compile reports a backend's own
    exception as ``BackendCompilerFailed: backend='x' raised: ...``; the inner one is what
    identifies the bug."""
    seen = 0
    while seen < 5:
        inner = getattr(exc, "inner_exception", None)
        if not isinstance(inner, BaseException):
            break
        exc = inner
        seen += 1
    return exc


def _first_line(message: str) -> str:
    for line in message.splitlines():
        line = line.strip()
        # wrappers' headers ("backend='x' raised:") carry nothing the type does not
        if line and not (line.endswith("raised:") and line.startswith("backend=")):
            return line
    return ""


_COMPILER_ERROR = re.compile(r"^\S+:\d+:\d+: error: (.*)$", re.MULTILINE)  # file.cpp:66:69: error: ...


def exception_message(exc: BaseException) -> str:
    """``Type: first line`` of the (unwrapped) exception, normalized. A C++ compiler's
    failure (Inductor's ``CppCompileError: C++ compile error``) also gets its first
    ``error:`` line, which is what tells two such bugs apart."""
    exc = _unwrap(exc)
    text = str(exc)
    line = _first_line(text)
    compiler = _COMPILER_ERROR.search(text)
    if compiler:
        line = f"{line}: {compiler.group(1)}" if line else compiler.group(1)
    name = type(exc).__name__
    return normalize_text(f"{name}: {line}" if line else name)


# A compile-time rejection by fake-tensor propagation or a meta function: Dynamo's wrapper
# says so in its message; AOT tracing raises the meta function's own error, recognized by
# where it was raised (a meta registration, a reference implementation; a decomposition
# only through an explicit ``torch._check``, as a decomposition's own crash is a bug).
_FAKE_MESSAGES = ("when making fake tensor call", "failed to run FX node with fake tensors")
_META_FILES = re.compile(r"torch[/\\](_meta_registrations\.py|_refs[/\\]|_prims_common[/\\]|_prims[/\\])")
_DECOMP_FILES = re.compile(r"torch[/\\]_decomp[/\\]")


# XLA's shape inference rejecting an attribute value at compile time (a negative stride,
# a permutation index out of range, a negative k): where eager ran the same call, eager's
# validation is missing, the TensorFlow analogue of a fake-tensor rejection
_XLA_ARGUMENT_CHECKS = re.compile(
    r"Failed getting HLO text: '?(?:[^']*?)(?:must be (?:positive|non-?negative|greater than|at least|>=)"
    r"|-?\d+ is out of range \[|must be in the range|Need \w+ >= 0, got -)")


def is_argument_rejection(message: str) -> bool:
    """Whether an XLA compile error is its shape inference rejecting an argument value
    (``tf.xla``'s analogue of ``is_meta_rejection``)."""
    return bool(_XLA_ARGUMENT_CHECKS.search(message))


def is_meta_rejection(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is a fake-tensor or meta-function check
    rejecting a call: raised from the meta side, not from the compiler's own code."""
    seen = 0
    while isinstance(exc, BaseException) and seen < 6:
        if any(m in str(exc) for m in _FAKE_MESSAGES):
            return True
        tb, files, last = exc.__traceback__, [], ""
        while tb is not None:
            files.append(tb.tb_frame.f_code.co_filename)
            last = tb.tb_frame.f_code.co_name
            tb = tb.tb_next
        # the innermost frames: where the check fired (torch._check adds two of its own)
        if any(_META_FILES.search(f) for f in files[-4:]):
            return True
        if last.startswith("_check") and any(_DECOMP_FILES.search(f) for f in files[-4:]):
            return True
        exc = getattr(exc, "inner_exception", None) or exc.__cause__  # type: ignore[assignment]
        seen += 1
    return False


_FAKE_CALL = re.compile(r"call_function (?:<built-in method |<function |<OpOverload\(op=')?([\w.]+).*?\): got (\w+)\((.*?)\)\s*$",
                        re.MULTILINE)


def meta_rejection_message(exc: BaseException) -> str:
    """``exception_message`` of a fake-tensor rejection, with what Dynamo's wrapper hides
    after its first line: the call it rejected and the inner error (``... fake tensor
    call: grid_sampler_2d: RuntimeError: Invalid interpolation mode 5``), so that two
    different rejections read, and sign, apart."""
    message = exception_message(exc)
    found = _FAKE_CALL.search(str(_unwrap(exc)))
    if found is None:
        return message
    api, kind, inner = found.group(1).split(".")[-1], found.group(2), found.group(3).strip("'\"")
    return normalize_text(f"{message}: {api}: {kind}: {inner}")


@dataclass(frozen=True)
class Verdict:
    backend: str
    status: str  # one of STATUSES
    stage: str = ""  # one of STAGES; "" for ok
    message: str = ""
    output: int | None = None  # index of the mismatching output
    max_abs: float | None = None
    max_rel: float | None = None
    dtype: str = ""  # dtype of the mismatching output
    seconds: float = 0.0
    # a crash the backend documents as a limitation (XLA has no kernel for an op): the
    # backend declined the model; kept for the record, never counted as a bug
    unsupported: bool = False
    # why a failure is not the backend's bug although it is not a documented limitation
    # either ("graph-mode contract": tf.function without XLA fails alike); counted as
    # skipped by this reason. Set together with ``unsupported``.
    declined: str = ""
    # the ATen operator(s) the failure is pinned on (``oracles.aten``, on probe cases):
    # many Python APIs lower to one faulty ATen op, and the signature names it
    aten_ops: tuple[str, ...] = ()
    check: str = "forward"  # which check of the plan saw it (one of CHECKS)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status must be one of {', '.join(STATUSES)}, not {self.status!r}")
        if self.stage not in STAGES:
            raise ValueError(f"verdict stage must be one of compile, run, backward or '', not {self.stage!r}")
        if self.check not in CHECKS:
            raise ValueError(f"verdict check must be one of {', '.join(CHECKS)}, not {self.check!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Verdict":
        return cls(
            backend=str(data["backend"]), status=str(data["status"]), stage=str(data.get("stage", "")),
            message=str(data.get("message", "")),
            output=None if data.get("output") is None else int(data["output"]),
            max_abs=None if data.get("max_abs") is None else float(data["max_abs"]),
            max_rel=None if data.get("max_rel") is None else float(data["max_rel"]),
            dtype=str(data.get("dtype", "")), seconds=float(data.get("seconds", 0.0)),
            unsupported=bool(data.get("unsupported", False)), declined=str(data.get("declined", "")),
            aten_ops=tuple(str(op) for op in data.get("aten_ops", ()) or ()),
            check=str(data.get("check") or "forward"),
        )

    @property
    def where(self) -> str:
        """The stage, prefixed by the check when it is not the forward one ("dynamic/run"):
        what a signature tells apart."""
        return self.stage if self.check == "forward" else f"{self.check}/{self.stage}"

    def summary(self) -> str:
        """One line for logs and reports."""
        where = f" at {self.stage}" if self.stage else ""
        where += f" (check {self.check})" if self.check != "forward" else ""
        status = f"{self.status} ({self.declined or 'unsupported'})" if self.unsupported else self.status
        return f"{self.backend}: {status}{where}" + (f": {self.message}" if self.message else "")


@dataclass(frozen=True)
class CheckResult:
    """The verdicts of every backend on one Case.

    ``valid`` is False when the reference could not produce clean outputs (it raised, died,
    or gave NaN/Inf) or the case cannot run on the requested backends at all; such a case
    says nothing about the other backends and has no bugs. The reference's own verdict is
    the first of ``verdicts``.
    """

    valid: bool
    invalid_reason: str = ""
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)
    # output elements the comparison did not judge, by reason (near a discontinuity, a
    # near-tie index, ...): counted into campaign.json's ``excused``, never silent
    excused: dict[str, int] = field(default_factory=dict)
    # what the case's check plan did: "case: KIND" (the kinds it applied), "calls: KIND"
    # (calls of compiled models), "compiles", "bugs: KIND", "declined: WHY" (a planned
    # call the reference could not make), "dynamic: unexpected recompile"
    checks: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdicts", tuple(self.verdicts))

    @property
    def bugs(self) -> list[Verdict]:
        """Verdicts that are not ``ok`` (nor a documented limitation), on a valid case."""
        if not self.valid:
            return []
        return [v for v in self.verdicts if v.status != "ok" and not v.unsupported]

    def verdict(self, backend: str) -> Verdict | None:
        for v in self.verdicts:
            if v.backend == backend:
                return v
        return None

    def to_json(self) -> dict:
        return {"valid": self.valid, "invalid_reason": self.invalid_reason,
                "verdicts": [v.to_json() for v in self.verdicts], "excused": dict(self.excused),
                "checks": dict(self.checks)}

    @classmethod
    def from_json(cls, data: Any) -> "CheckResult":
        return cls(bool(data["valid"]), str(data.get("invalid_reason", "")),
                   tuple(Verdict.from_json(v) for v in data.get("verdicts", [])),
                   {str(k): int(v) for k, v in (data.get("excused") or {}).items()},
                   {str(k): int(v) for k, v in (data.get("checks") or {}).items()})

    @property
    def skip_reason(self) -> str:
        """Why an invalid case was not judged, as one of a few counted reasons
        (``campaign.json``'s ``skipped``); "" for a valid case."""
        return "" if self.valid else skip_reason(self.invalid_reason)

    def summary(self) -> str:
        if not self.valid:
            return f"invalid: {self.invalid_reason}"
        bugs = self.bugs
        return "ok" if not bugs else "; ".join(v.summary() for v in bugs)


# The invalid reasons the checker and the sandbox write, by their opening words, each a
# reason a case is counted as skipped; the first match wins.
_SKIP_REASONS = (
    ("ops not available", "unsupported by a backend"),
    ("cannot materialize", "cannot materialize"),
    ("sandbox worker failed", "worker failed to start"),
    ("internal error", "internal error"),
)


def skip_reason(invalid_reason: str) -> str:
    for prefix, reason in _SKIP_REASONS:
        if invalid_reason.startswith(prefix):
            return reason
    if invalid_reason.startswith("reference"):
        if "NaN/Inf" in invalid_reason:
            return "reference non-finite"
        if " aborted " in invalid_reason or " timed out " in invalid_reason:
            return "reference aborted or hung"
        return "reference raised"
    return "other"
