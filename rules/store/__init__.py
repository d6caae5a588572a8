"""The rule store (DESIGN §4): one JSON document per framework and version.

    {"schema": 1, "framework": "torch", "framework_version": "2.13.0", "created": ..., "rules": [RULE, ...]}

A RULE (written by :mod:`rules.infer`, read by :mod:`rules.inferred`)::

    {"id": "torch.nn.functional.conv2d#3f2a", "api": ..., "signature": "T4,T4,T1;dilation=A",
     "template": {"args": [...], "kwargs": {...},        # the call, with {"$tensor": i},
                                                          # {"$sym": name}, {"$float": name}
                  "tensors": [{"label", "rank", "kind"}], # tensor i's dims are t{i}_0 ...
                  "attrs": {name: [lo, hi]},              # integer symbols, range seen valid
                  "floats": {name: [values seen valid]}},
     "dtypes": [{"in": [...], "out": [...]}],             # dtype combinations seen valid
     "outputs": {"form": "single" | "tuple", "shapes": [["t0_0", "(t0_2 + 2) // 2"], ...]},
     "constraints": ["t0_1 - t1_1 == 0", "t0_0 == 1 or t1_0 == 1 or t0_0 - t1_0 == 0"],
     "evidence": {"valid", "invalid", "heldout_valid", "heldout_invalid", "dtype_rejected", "value_dependent"},
     "heldout_accuracy": 1.0, "precision": 0.95, "precision_samples": 12,
     "samples": [{"args", "kwargs", "outputs"}]}         # at most 5 valid records

The shipped stores are package data (``torch-2.13.json``, ``tensorflow-2.21.json``);
``dlfuzz infer`` writes new ones for other versions. A malformed file is refused with one
:class:`RuleStoreError` line: which file, where in it, what is wrong, how to fix it.
"""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = 1
HERE = Path(__file__).resolve().parent
FIX = "regenerate it with 'dlfuzz infer --framework F --db CORPUS --out FILE' or fix the entry by hand"
_DIST = {"torch": "torch", "tensorflow": "tensorflow-cpu"}


class RuleStoreError(ValueError):
    """A rule file that cannot be used; the message is one line, ready for a user."""


def installed_version(framework: str) -> str | None:
    for dist in (_DIST.get(framework, framework), framework):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def shipped() -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in sorted(HERE.glob("*.json")):
        fw = p.stem.rsplit("-", 1)[0]
        out.setdefault(fw, []).append(p)
    return out


def _version_key(path: Path) -> tuple:
    return tuple(int(x) if x.isdigit() else 0 for x in path.stem.rsplit("-", 1)[-1].split("."))


def default_path(framework: str) -> Path | None:
    """The shipped store for the installed version (major.minor), else the newest shipped."""
    files = shipped().get(framework, [])
    if not files:
        return None
    version = installed_version(framework)
    if version:
        mm = ".".join(version.split("+")[0].split(".")[:2])
        for p in files:
            if p.stem.rsplit("-", 1)[-1] == mm:
                return p
    return max(files, key=_version_key)


def _err(path: Any, where: str, what: str) -> RuleStoreError:
    return RuleStoreError(f"{path}: {where}: {what}; {FIX}")


_REQUIRED = {"id": str, "api": str, "signature": str, "template": dict, "dtypes": list, "outputs": dict,
             "constraints": list, "evidence": dict}


def validate_rule(rule: Any, path: Any, index: int) -> None:
    """Check one rule's structure and that its formulas parse over its own symbols."""
    from rules.infer.expr import ExprSyntaxError, parse_expr, pred_symbols, parse_pred, symbols_of

    where = f"rule {index}"
    if not isinstance(rule, dict):
        raise _err(path, where, f"expected an object, got {type(rule).__name__}")
    where = f"rule {index} ({rule.get('id', '?')})"
    for key, typ in _REQUIRED.items():
        if key not in rule:
            raise _err(path, where, f"missing field {key!r}")
        if not isinstance(rule[key], typ):
            raise _err(path, where, f"field {key!r} should be a {typ.__name__}, got {type(rule[key]).__name__}")
    tpl = rule["template"]
    for key, typ in (("args", list), ("kwargs", dict), ("tensors", list), ("attrs", dict), ("floats", dict)):
        if not isinstance(tpl.get(key), typ):
            raise _err(path, where, f"template.{key} should be a {typ.__name__}")
    known = set()
    for i, t in enumerate(tpl["tensors"]):
        if not isinstance(t, dict) or not isinstance(t.get("rank"), int) or t["rank"] < 0:
            raise _err(path, where, f"template.tensors[{i}] needs an integer 'rank' >= 0")
        known |= {f"t{i}_{k}" for k in range(t["rank"])}
    for name, rng in tpl["attrs"].items():
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int) for v in rng) and rng[0] <= rng[1]):
            raise _err(path, where, f"template.attrs[{name!r}] should be [low, high] integers")
        known.add(name)
    for name, vals in tpl["floats"].items():
        if not (isinstance(vals, list) and vals and all(isinstance(v, (int, float)) for v in vals)):
            raise _err(path, where, f"template.floats[{name!r}] should be a non-empty list of numbers")
    n = len(tpl["tensors"])
    for i, d in enumerate(rule["dtypes"]):
        if not (isinstance(d, dict) and isinstance(d.get("in"), list) and isinstance(d.get("out"), list)
                and len(d["in"]) == n):
            raise _err(path, where, f"dtypes[{i}] should be {{'in': [{n} dtypes], 'out': [dtypes]}}")
    outs = rule["outputs"]
    if outs.get("form") not in ("single", "tuple") or not isinstance(outs.get("shapes"), list) or not outs["shapes"]:
        raise _err(path, where, "outputs should be {'form': 'single'|'tuple', 'shapes': [[expr, ...], ...]}")
    try:
        for shape in outs["shapes"]:
            if not isinstance(shape, list):
                raise _err(path, where, "each output shape should be a list of expressions")
            for text in shape:
                if not isinstance(text, str):
                    raise _err(path, where, f"output dimension {text!r} should be an expression string")
                unknown = symbols_of(parse_expr(text)) - known
                if unknown:
                    raise _err(path, where, f"output dimension {text!r} uses unknown symbols {sorted(unknown)}")
        for text in rule["constraints"]:
            if not isinstance(text, str):
                raise _err(path, where, f"constraint {text!r} should be a string")
            unknown = pred_symbols(parse_pred(text)) - known
            if unknown:
                raise _err(path, where, f"constraint {text!r} uses unknown symbols {sorted(unknown)}")
    except ExprSyntaxError as e:
        raise _err(path, where, str(e)) from None
    for key in ("heldout_accuracy", "precision"):
        v = rule.get(key)
        if v is not None and not (isinstance(v, (int, float)) and 0 <= v <= 1):
            raise _err(path, where, f"{key} should be a number in [0, 1] or null")


def validate(doc: Any, path: Any = "<rules>") -> dict:
    if not isinstance(doc, dict):
        raise RuleStoreError(f"{path}: expected a JSON object with 'schema', 'framework' and 'rules', got "
                             f"{type(doc).__name__}; {FIX}")
    schema = doc.get("schema")
    if not isinstance(schema, int):
        raise RuleStoreError(f"{path}: no integer 'schema' field, so this is not a dlfuzz rule file; {FIX}")
    if schema > SCHEMA:
        raise RuleStoreError(f"{path}: schema {schema} is newer than this dlfuzz understands ({SCHEMA}); upgrade dlfuzz")
    if doc.get("framework") not in ("torch", "tensorflow"):
        raise RuleStoreError(f"{path}: 'framework' should be 'torch' or 'tensorflow', got {doc.get('framework')!r}; {FIX}")
    if not isinstance(doc.get("rules"), list):
        raise RuleStoreError(f"{path}: 'rules' should be a list; {FIX}")
    ids = set()
    for i, rule in enumerate(doc["rules"]):
        validate_rule(rule, path, i)
        if rule["id"] in ids:
            raise _err(path, f"rule {i}", f"duplicate id {rule['id']!r}")
        ids.add(rule["id"])
    return doc


def load(path: str | os.PathLike) -> dict:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise RuleStoreError(f"{p}: no such rule file; pass a file written by 'dlfuzz infer'") from None
    except OSError as e:
        raise RuleStoreError(f"{p}: cannot read it ({e.strerror}); check the path and its permissions") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise RuleStoreError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {FIX}") from None
    return validate(doc, p)


def load_default(framework: str) -> dict | None:
    path = default_path(framework)
    return None if path is None else load(path)


def save(doc: dict, path: str | os.PathLike) -> None:
    """Write atomically, one rule per line (diffable, and small enough to ship)."""
    p = Path(path)
    head = {k: v for k, v in doc.items() if k != "rules"}
    lines = [json.dumps(r, sort_keys=True, separators=(",", ":")) for r in doc["rules"]]
    body = json.dumps(head, sort_keys=True)[:-1] + ', "rules": [\n' + ",\n".join(lines) + "\n]}\n"
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(body)
    os.replace(tmp, p)


def file_name(framework: str, version: str) -> str:
    mm = ".".join(re.split(r"[+]", version)[0].split(".")[:2])
    return f"{framework}-{mm}.json"
