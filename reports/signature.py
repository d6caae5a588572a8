"""Bug signatures: what makes two failures the same bug.

A signature hashes (kind, backend, stage, symptom, operators):

* *symptom*: for crashes, the exception type and message with the incidental parts
  (addresses, numbers, file paths, tensor names) replaced, so that the same fault on other
  shapes is one bug; for aborts and timeouts nothing (the operators tell them apart); for
  mismatches nothing beyond the operator;
* *operators*: the operators the failure is pinned on. For a mismatch it is the operator
  where the candidate first diverges (``reports.localize``); for a crash it is the operators the message names, if
  any, else none (reduction, which shrinks a case to the few operators that matter,
  re-signs the bug with them).

For torch, failures are pinned one level lower where they can be: the ATen operator(s)
the localization finds failing alone (``oracles.aten``), since one faulty ATen operator is
reached through many Python APIs and must be one bug. A mismatch with ATen operators is
signed by them plus a coarse dtype class of the differing value (``half``, ``float``,
``int``, ``bool``: a kernel's half-precision path is not its float32 path), replacing the
API operator; a crash whose message names no operator gets its ATen operators.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

_NORMALIZERS = [
    (re.compile(r"0x[0-9a-fA-F]+"), "0x?"),
    (re.compile(r"(/[\w.\-]+)+\.(py|cpp|h|so|c)(:\d+)?"), "<file>"),
    (re.compile(r"\b(v|x|c|arg|buf|tmp|primals_|getitem_?|l_)\d+(_\d+)?\b"), r"\1?"),
    (re.compile(r"\[[\d,\s]*\]"), "[?]"),
    (re.compile(r"\(\s*\d+(\s*,\s*\d+)*\s*,?\s*\)"), "(?)"),
    (re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?"), "N"),
    (re.compile(r"\s+"), " "),
]


# C++ compiler errors name the types of the operands (``VecMask<float, 1>&``): the same
# missing overload met at other dtypes is one bug. A quoted call keeps only its function
# name; template arguments collapse innermost first, each to a mark without angle
# brackets so that the enclosing template matches next (``A<B<int>>`` -> ``A<?>``).
_CPP_CALL = re.compile(r"([‘'`])([A-Za-z_][\w:]*)\([^‘’'`]*\)([’'`])")
_INNERMOST_TEMPLATE_ARGS = re.compile(r"\b([A-Za-z_]\w*)<[^<>]*>")
_COLLAPSED = "\x00"


def _collapse_cpp_types(text: str) -> str:
    text = _CPP_CALL.sub(r"\1\2(?)\3", text)
    while (collapsed := _INNERMOST_TEMPLATE_ARGS.sub(r"\1" + _COLLAPSED, text)) != text:
        text = collapsed
    return text.replace(_COLLAPSED, "<?>")


_TRUNCATED = "..."  # how a verdict's message is cut (at a length the values before it move)
# a tensor's type in autograd's messages (``torch.DoubleTensor``): the float dtypes alike
_FLOAT_TENSOR = re.compile(r"\btorch\.(Double|Float|Half|BFloat16)Tensor\b")


def normalize_message(message: str) -> str:
    text = message.strip().splitlines()[0] if message.strip() else ""
    if text.endswith(_TRUNCATED) and ". " in text:
        # whole sentences only: a message cut at a fixed length ends in a fragment whose
        # length depends on the shapes earlier in it (two folders for one autograd error)
        text = text[:text.rindex(". ") + 1]
    text = _FLOAT_TENSOR.sub("torch.FloatingTensor", text)
    if "C++" in text or "CppCompileError" in text:
        text = _collapse_cpp_types(text)
    for pattern, repl in _NORMALIZERS:
        text = pattern.sub(repl, text)
    return text[:300]


def api_of(op: str) -> str:
    """The API an operator id stands for: an inferred or replayed operator's id carries
    its partial operator (``torch.argmin#b142``, ``...#8cfc/2``), one API under several
    call signatures; a fault of the API is one bug whichever signature met it."""
    return op.split("#", 1)[0]


def _mentioned_ops(message: str, operators: Iterable[str]) -> list[str]:
    low = message.lower()
    found = []
    for op in operators:
        name = api_of(op).split(".")[-1].lower()
        if re.search(rf"\b{re.escape(name)}\b", low):
            found.append(api_of(op))
    return sorted(set(found))


@dataclass(frozen=True)
class Signature:
    kind: str
    backend: str
    stage: str
    symptom: str
    operators: tuple[str, ...]

    @property
    def digest(self) -> str:
        text = "|".join([self.kind, self.backend, self.stage, self.symptom, ",".join(self.operators)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def folder_name(self) -> str:
        """``<kind>-<backend>-<digest>``: readable in a listing, unique by the digest."""
        backend = re.sub(r"[^A-Za-z0-9]+", "_", self.backend).strip("_")
        return f"{self.kind}-{backend}-{self.digest}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "backend": self.backend, "stage": self.stage, "symptom": self.symptom,
                "operators": list(self.operators), "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict) -> "Signature":
        """The signature a bug.json records (``signature_parts``); the digest is derived."""
        return cls(data["kind"], data["backend"], data["stage"], data["symptom"], tuple(data["operators"]))


def dtype_class(dtype: str) -> str:
    """``half``, ``float``, ``complex``, ``int`` or ``bool`` ("" when unknown)."""
    if dtype in ("float16", "bfloat16"):
        return "half"
    if dtype.startswith("float"):
        return "float"
    if dtype.startswith("complex"):
        return "complex"
    if dtype.startswith(("int", "uint")):
        return "int"
    return "bool" if dtype == "bool" else ""


def sign(kind: str, backend: str, stage: str, message: str, case_ops: Iterable[str],
         culprit_op: str | None = None, aten_ops: Iterable[str] = (), dtype: str = "") -> Signature:
    """The signature of one failing verdict on a case whose operators are ``case_ops``.
    ``aten_ops``, ``dtype``: the ATen-level culprit and the differing value's dtype."""
    case_ops = sorted(set(case_ops))
    aten = tuple(sorted(set(aten_ops)))
    if kind == "mismatch":
        if aten:
            return Signature(kind, backend, stage, dtype_class(dtype), aten)
        return Signature(kind, backend, stage, "", (api_of(culprit_op),) if culprit_op else ())
    if kind in ("crash", "eager-validation"):  # a fake-tensor/meta rejection is signed like a crash
        named = tuple(_mentioned_ops(message, case_ops))
        return Signature(kind, backend, stage, normalize_message(message), named or (aten if kind == "crash" else ()))
    return Signature(kind, backend, stage, "", ())
