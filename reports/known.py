"""Known-issue filters (``dlfuzz fuzz --ignore FILE``).

The file holds one pattern per line; ``#`` starts a comment, blank lines are skipped. A
pattern is a bug signature digest (``283b2f136dea``) or a Python regular expression; a
bug is known when any pattern is found (``re.search``) in its signature digest, its
folder name (``crash-torch_compile-283b2f136dea``) or its verdict's message. Known bugs
are counted in campaign.json (``ignored``) and get no bug folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reports.signature import Signature


class KnownIssuesError(ValueError):
    """An unreadable file or a malformed pattern; the message is one line."""


@dataclass(frozen=True)
class KnownIssues:
    patterns: tuple[re.Pattern, ...]

    @classmethod
    def parse(cls, text: str, where: str = "ignore file") -> "KnownIssues":
        patterns = []
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("\\#") else line.strip()
            if not line:
                continue
            try:
                patterns.append(re.compile(line))
            except re.error as e:
                raise KnownIssuesError(f"{where}:{lineno}: malformed regular expression {line!r} ({e}); "
                                       f"fix or remove the line") from None
        return cls(tuple(patterns))

    @classmethod
    def load(cls, path: str | Path) -> "KnownIssues":
        p = Path(path)
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise KnownIssuesError(f"cannot read ignore file {str(p)!r} ({reason}); pass a text file of "
                                   f"signatures or regular expressions, one per line") from None
        return cls.parse(text, str(p))

    def matches(self, sig: Signature, message: str = "") -> str | None:
        """The first pattern that matches the bug, or None."""
        for pattern in self.patterns:
            for text in (sig.digest, sig.folder_name, message):
                if text and pattern.search(text):
                    return pattern.pattern
        return None

    def __len__(self) -> int:
        return len(self.patterns)
