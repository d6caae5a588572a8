"""Models whose eager run kills the campaign's own process.

Generation runs each new model in eager mode in the campaign's process (value search,
``fuzzer.values``): the reference framework's kernels run there, outside the sandbox.
A kernel that corrupts memory (seen: a TensorFlow model dying with "corrupted
double-linked list" on seed 25) then aborts the whole campaign, and a plain resume would
regenerate the same model and die again, for ever.

So the model being generated is written down first (``generating.json``, atomically)
and crossed off when it is made. A campaign that finds the note on start knows which
model killed its predecessor: it keeps that index in ``campaign.json``
(``crashed_generation``) and skips it from then on, counted as
``skipped: generation killed the campaign process``. ``fuzzer.supervisor`` restarts
the campaign after such a death, so a nightly run goes on by itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # (the supervisor reads the note without importing generation)
    from fuzzer.models import Model

MARKER = "generating.json"
CRASHED = "generation killed the campaign process"


def pending(out: Path) -> int | None:
    """The index a dead campaign was generating, if its note is there."""
    try:
        return int(json.loads((Path(out) / MARKER).read_text())["index"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recover(out: Path, crashed: list[int]) -> int | None:
    """Take a dead campaign's note: its index joins ``crashed`` (returned, None if none)."""
    index = pending(out)
    (Path(out) / MARKER).unlink(missing_ok=True)
    if index is not None and index not in crashed:
        crashed.append(index)
    return index


def guarded(make: Callable[[int], "Model"], out: Path, crashed: list[int]) -> Callable[[int], "Model"]:
    """``make`` that notes each index before making it and skips ``crashed`` ones (an
    invalid model whose search error says why)."""
    marker, scratch = Path(out) / MARKER, Path(out) / (MARKER + ".tmp")

    from fuzzer.models import Model
    from fuzzer.values import SearchResult

    def make_noted(index: int) -> Model:
        if index in crashed:
            return Model(None, SearchResult({}, None, f"{CRASHED} (case {index}); skipped"))  # type: ignore[arg-type]
        scratch.write_text(json.dumps({"index": index}))
        os.replace(scratch, marker)
        model = make(index)
        marker.unlink(missing_ok=True)
        return model

    return make_noted
