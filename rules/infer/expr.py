"""The rule language (DESIGN §4): integer expressions and predicates over symbols.

An expression is a nested tuple: ``("s", name)`` a symbol, ``("c", value)`` an integer
constant, ``(op, left, right)`` with ``op`` one of ``+ - * // % min max``. A predicate is
``(cmp, expr, constant)`` with ``cmp`` one of ``== > >=`` or ``("or", [predicates])``.

Both have a text form that is valid Python (``(t0_2 + padding_0 * 2) // stride_0 + 1``,
``t0_1 - t1_0 == 0``, ``t0_0 == 1 or t1_0 == 1 or t0_0 - t1_0 == 0``): that is how rules
are stored, shown and read back (``parse_expr``/``parse_pred``, through :mod:`ast`).
Division and modulo have Python's floor semantics everywhere: in numpy evaluation (over
float64 value vectors, NaN where undefined) and in z3 (``floordiv``/``floormod`` below).
"""

from __future__ import annotations

import ast
from typing import Any, Callable, Mapping

import numpy as np
import z3

Expr = tuple
Pred = tuple

OPS = ("+", "-", "*", "//", "%", "min", "max")
COMMUTATIVE = frozenset({"+", "*", "min", "max"})
CMPS = ("==", ">", ">=")
LIMIT = float(2 ** 40)  # values beyond this are treated as undefined (overflow guard)

_PREC = {"+": 1, "-": 1, "*": 2, "//": 2, "%": 2}


class ExprSyntaxError(ValueError):
    """Text that is not an expression or predicate of the rule language."""


# ---- construction and inspection ----------------------------------------------------------

def sym(name: str) -> Expr:
    return ("s", name)


def const(value: int) -> Expr:
    return ("c", int(value))


def symbols_of(e: Expr) -> set[str]:
    if e[0] == "s":
        return {e[1]}
    if e[0] == "c":
        return set()
    return symbols_of(e[1]) | symbols_of(e[2])


def size(e: Expr) -> int:
    return 1 if e[0] in ("s", "c") else 1 + size(e[1]) + size(e[2])


def pred_symbols(p: Pred) -> set[str]:
    if p[0] == "or":
        out: set[str] = set()
        for q in p[1]:
            out |= pred_symbols(q)
        return out
    return symbols_of(p[1])


def divisors(e: Expr) -> list[Expr]:
    """The right operands of every ``//`` and ``%`` (they must not be zero)."""
    if e[0] in ("s", "c"):
        return []
    out = divisors(e[1]) + divisors(e[2])
    if e[0] in ("//", "%") and e[2][0] != "c":
        out.append(e[2])
    return out


# ---- text ---------------------------------------------------------------------------------

def to_str(e: Expr) -> str:
    kind = e[0]
    if kind == "s":
        return e[1]
    if kind == "c":
        return str(e[1])
    if kind in ("min", "max"):
        return f"{kind}({to_str(e[1])}, {to_str(e[2])})"
    p = _PREC[kind]
    left = to_str(e[1])
    if e[1][0] in _PREC and _PREC[e[1][0]] < p or (e[1][0] == "c" and e[1][1] < 0):
        left = f"({left})"
    right = to_str(e[2])
    # a right operand of equal precedence keeps its parentheses, so the text reads back as the same tree
    if e[2][0] in _PREC and _PREC[e[2][0]] <= p or (e[2][0] == "c" and e[2][1] < 0):
        right = f"({right})"
    return f"{left} {kind} {right}"


def pred_to_str(p: Pred) -> str:
    if p[0] == "or":
        return " or ".join(pred_to_str(q) for q in p[1])
    return f"{to_str(p[1])} {p[0]} {p[2]}"


def pretty_pred(p: Pred) -> str:
    """A reader's form: ``a - b == 0`` shown as ``a == b``, ``a - b >= 0`` as ``a >= b``."""
    if p[0] == "or":
        return " or ".join(pretty_pred(q) for q in p[1])
    e, c = p[1], p[2]
    if c == 0 and e[0] == "-":
        return f"{to_str(e[1])} {p[0]} {to_str(e[2])}"
    return pred_to_str(p)


_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%"}
_CMPOPS = {ast.Eq: "==", ast.Gt: ">", ast.GtE: ">="}


def _from_ast(node: ast.AST, text: str) -> Expr:
    if isinstance(node, ast.Name):
        return sym(node.id)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return const(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) is int:
        return const(-node.operand.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return (_BINOPS[type(node.op)], _from_ast(node.left, text), _from_ast(node.right, text))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max") \
            and len(node.args) == 2 and not node.keywords:
        return (node.func.id, _from_ast(node.args[0], text), _from_ast(node.args[1], text))
    raise ExprSyntaxError(f"{ast.dump(node)[:60]} in {text!r} is not part of the rule language "
                          f"(symbols, integers, + - * // % min max)")


def parse_expr(text: str) -> Expr:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprSyntaxError(f"{text!r} is not an expression ({e.msg})") from None
    return _from_ast(tree.body, text)


def _pred_from_ast(node: ast.AST, text: str) -> Pred:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return ("or", [_pred_from_ast(v, text) for v in node.values])
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
        right = _from_ast(node.comparators[0], text)
        left = _from_ast(node.left, text)
        if right[0] == "c":
            return (_CMPOPS[type(node.ops[0])], left, right[1])
        return (_CMPOPS[type(node.ops[0])], ("-", left, right), 0)
    raise ExprSyntaxError(f"{text!r} is not a predicate (expected 'e == c', 'e > c', 'e >= c' or 'p or q')")


def parse_pred(text: str) -> Pred:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprSyntaxError(f"{text!r} is not a predicate ({e.msg})") from None
    return _pred_from_ast(tree.body, text)


# ---- numpy evaluation (value vectors) --------------------------------------------------------

def apply_op(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a op b`` elementwise over float64 vectors; NaN where undefined or out of range."""
    with np.errstate(all="ignore"):
        if op == "+":
            r = a + b
        elif op == "-":
            r = a - b
        elif op == "*":
            r = a * b
        elif op == "//":
            r = np.floor_divide(a, b)
            r = np.where(b == 0, np.nan, r)
        elif op == "%":
            r = np.mod(a, b)
            r = np.where(b == 0, np.nan, r)
        elif op == "min":
            r = np.minimum(a, b)
        elif op == "max":
            r = np.maximum(a, b)
        else:
            raise ValueError(f"unknown op {op!r}")
        r = np.where(np.abs(r) > LIMIT, np.nan, r)
    return r + 0.0  # -0.0 -> 0.0


def evaluate(e: Expr, env: Mapping[str, Any]) -> np.ndarray:
    """Value vector of ``e``; ``env`` maps symbol names to arrays (or numbers)."""
    kind = e[0]
    if kind == "s":
        return np.asarray(env[e[1]], dtype=np.float64)
    if kind == "c":
        return np.asarray(float(e[1]))
    return apply_op(kind, evaluate(e[1], env), evaluate(e[2], env))


def eval_pred(p: Pred, env: Mapping[str, Any]) -> np.ndarray:
    """Boolean vector: where ``p`` holds (false where undefined)."""
    if p[0] == "or":
        out = None
        for q in p[1]:
            v = eval_pred(q, env)
            out = v if out is None else (out | v)
        return out
    v = evaluate(p[1], env)
    with np.errstate(invalid="ignore"):
        if p[0] == "==":
            return v == p[2]
        if p[0] == ">":
            return v > p[2]
        return v >= p[2]


def eval_int(e: Expr, env: Mapping[str, int]) -> int | None:
    """Exact Python-int evaluation; None where undefined."""
    kind = e[0]
    if kind == "s":
        return int(env[e[1]])
    if kind == "c":
        return e[1]
    a, b = eval_int(e[1], env), eval_int(e[2], env)
    if a is None or b is None:
        return None
    if kind in ("//", "%") and b == 0:
        return None
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "//": lambda: a // b, "%": lambda: a % b,
            "min": lambda: min(a, b), "max": lambda: max(a, b)}[kind]()


def holds(p: Pred, env: Mapping[str, int]) -> bool:
    if p[0] == "or":
        return any(holds(q, env) for q in p[1])
    v = eval_int(p[1], env)
    if v is None:
        return False
    return v == p[2] if p[0] == "==" else (v > p[2] if p[0] == ">" else v >= p[2])


# ---- z3 --------------------------------------------------------------------------------------

def floordiv(a: Any, b: Any) -> Any:
    """Python's ``a // b`` over z3 integers (z3's own ``/`` rounds differently for b < 0)."""
    if z3.is_int_value(b) and b.as_long() > 0:
        return a / b
    return z3.If(b > 0, a / b, (-a) / (-b))


def floormod(a: Any, b: Any) -> Any:
    if z3.is_int_value(b) and b.as_long() > 0:
        return a % b
    return a - b * floordiv(a, b)


_Z3 = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "//": floordiv, "%": floormod,
       "min": lambda a, b: z3.If(a <= b, a, b), "max": lambda a, b: z3.If(a >= b, a, b)}


def to_z3(e: Expr, env: Mapping[str, Any]) -> Any:
    kind = e[0]
    if kind == "s":
        v = env[e[1]]
        return z3.IntVal(v) if isinstance(v, int) else v
    if kind == "c":
        return z3.IntVal(e[1])
    return _Z3[kind](to_z3(e[1], env), to_z3(e[2], env))


def pred_to_z3(p: Pred, env: Mapping[str, Any]) -> Any:
    if p[0] == "or":
        return z3.Or(*[pred_to_z3(q, env) for q in p[1]])
    v = to_z3(p[1], env)
    guards = [to_z3(d, env) != 0 for d in divisors(p[1])]
    body = v == p[2] if p[0] == "==" else (v > p[2] if p[0] == ">" else v >= p[2])
    return z3.And(*guards, body) if guards else body


def side_conditions(exprs: list[Expr], env: Mapping[str, Any]) -> list[Any]:
    """``d != 0`` for every divisor in ``exprs``."""
    seen: dict[str, Any] = {}
    for e in exprs:
        for d in divisors(e):
            seen.setdefault(to_str(d), to_z3(d, env) != 0)
    return list(seen.values())


def rename(e: Expr, f: Callable[[str], str]) -> Expr:
    if e[0] == "s":
        return sym(f(e[1]))
    if e[0] == "c":
        return e
    return (e[0], rename(e[1], f), rename(e[2], f))
