"""The code blocks of README.md and docs/*.md, for ``tests/test_docs_snippets.py``.

The convention (README, "Set up"): every ```` ```python ```` and ```` ```bash ```` block runs as
pasted, from the project's root, against an applied and loaded repository. A block that cannot
run here (it installs, serves until Ctrl-C, lists signatures, names an example host) has the
line ``<!-- not-runnable: <reason> -->`` right above its fence; any other language (``text``,
``yaml``, ``json``, ``sql``, ``ini``) is never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCUMENTS", "NOT_RUNNABLE", "Snippet", "snippets"]

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
"""The documents whose snippets are run."""
NOT_RUNNABLE = re.compile(r"^<!-- not-runnable: (?P<reason>\S.*?) -->$")
"""The marker above a fence whose block is not run, with its reason."""
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")


@dataclass(frozen=True)
class Snippet:
    """One fenced block.

    Attributes:
        document: Its file, relative to the project's root.
        line: The line of its opening fence (1-based).
        language: ``python``, ``bash``, ... (``""`` for a bare fence).
        code: Its text.
        skip_reason: The ``not-runnable`` marker's reason, if it has one.
    """

    document: str
    line: int
    language: str
    code: str
    skip_reason: str | None

    @property
    def runnable(self) -> bool:
        """A python or bash block without a marker."""
        return self.language in ("python", "bash") and self.skip_reason is None

    @property
    def id(self) -> str:
        """``document:line`` (the test's id)."""
        return f"{self.document}:{self.line}"


def snippets(documents: tuple[Path, ...] = DOCUMENTS) -> list[Snippet]:
    """Every fenced block of ``documents``, in order.

    Raises:
        ValueError: A fence is left open, or a ``not-runnable`` marker is not right above an
            opening python/bash fence.
    """
    found: list[Snippet] = []
    for path in documents:
        lines = path.read_text().splitlines()
        name = str(path.relative_to(ROOT))
        i = 0
        while i < len(lines):
            fence = _FENCE.match(lines[i])
            marker = NOT_RUNNABLE.match(lines[i])
            if marker:
                following = _FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
                if following is None or following["lang"] not in ("python", "bash"):
                    raise ValueError(
                        f"{name}:{i + 1}: a not-runnable marker must be right above a ```python "
                        "or ```bash fence"
                    )
            if fence is None:
                i += 1
                continue
            start = i
            i += 1
            while i < len(lines) and lines[i].rstrip() != "```":
                i += 1
            if i >= len(lines):
                raise ValueError(f"{name}:{start + 1}: the fence is never closed")
            above = NOT_RUNNABLE.match(lines[start - 1]) if start else None
            found.append(
                Snippet(
                    document=name,
                    line=start + 1,
                    language=fence["lang"],
                    code="\n".join(lines[start + 1 : i]) + "\n",
                    skip_reason=above["reason"] if above else None,
                )
            )
            i += 1
    return found
