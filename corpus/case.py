"""A Case: what is executed, saved, replayed and reduced.

The JSON form carries ``schema``; a file that is not JSON, lacks fields, or was written
by a newer dlfuzz raises :class:`CaseFormatError` with one line that says what is wrong
and how to fix it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpus.graph import Graph
from corpus.plan import CheckPlan, PlanFormatError
from corpus.values import ValueSpec

SCHEMA_VERSION = 1


class CaseFormatError(ValueError):
    """A case.json that cannot be read; the message is one line, ready for a user."""


@dataclass
class Case:
    graph: Graph
    framework: str  # "torch" | "tensorflow": the framework whose ops the graph uses
    values: dict[int, ValueSpec]  # leaf node id -> how to make its value
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    plan: CheckPlan = field(default_factory=CheckPlan)  # checks beyond the forward outputs

    def to_json(self) -> dict:
        data = {
            "schema": SCHEMA_VERSION,
            "framework": self.framework,
            "seed": self.seed,
            "settings": self.settings,
            "provenance": self.provenance,
            "graph": self.graph.to_json(),
            "values": {str(k): v.to_json() for k, v in sorted(self.values.items())},
        }
        plan = self.plan.to_json()
        if plan:  # a plain forward case reads as it did before plans existed
            data["plan"] = plan
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "case") -> "Case":
        if not isinstance(data, dict):
            raise CaseFormatError(f"{where}: expected a JSON object, got {type(data).__name__}; is this a dlfuzz case.json?")
        version = data.get("schema")
        if not isinstance(version, int):
            raise CaseFormatError(f"{where}: no integer 'schema' field; is this a dlfuzz case.json?")
        if version > SCHEMA_VERSION:
            raise CaseFormatError(
                f"{where}: schema version {version} is newer than this dlfuzz understands ({SCHEMA_VERSION}); upgrade dlfuzz to read it"
            )
        try:
            graph = Graph.from_json(data["graph"])
            values = {int(k): ValueSpec.from_json(v) for k, v in data["values"].items()}
            case = cls(graph, str(data["framework"]), values, int(data.get("seed", 0)),
                       dict(data.get("settings", {})), dict(data.get("provenance", {})),
                       CheckPlan.from_json(data.get("plan")))
        except PlanFormatError as e:
            raise CaseFormatError(f"{where}: {e}; regenerate it with 'dlfuzz gen' or remove the plan") from None
        except CaseFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CaseFormatError(f"{where}: malformed case ({type(e).__name__}: {e}); regenerate it with 'dlfuzz gen'") from None
        missing = [n for n in graph.leaves() if n not in values]
        if missing:
            raise CaseFormatError(f"{where}: leaves {missing} have no value recipe; regenerate it with 'dlfuzz gen'")
        return case

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)

    def save(self, path: str | os.PathLike) -> None:
        write_atomic(Path(path), self.dumps())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Case":
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise CaseFormatError(f"{p}: cannot read ({e.strerror}); check the path") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CaseFormatError(f"{p}: not valid JSON (line {e.lineno}: {e.msg}); the file is corrupt, regenerate it") from None
        return cls.from_json(data, where=str(p))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
