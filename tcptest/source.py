"""Where things are in a script, and numbered excerpts of it for reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Location:
    """A position in a script: 1-based line and column."""

    path: str
    line: int
    col: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class TokenSpan:
    """Where one token of a script is in its text: offsets [start, end) and
    the grammar's terminal name. `substituted`: a define replaced what is
    written there, so the tree does not say what the text says."""

    kind: str
    start: int
    end: int
    substituted: bool = False


def excerpt(text: str, line: int, context: int = 2, col: int | None = None) -> str:
    """Lines around `line` of `text`, numbered, the line itself marked with `>`,
    and a caret under `col` when it is given."""
    lines = text.splitlines()
    first = max(1, line - context)
    last = min(len(lines), line + context)
    width = len(str(last))
    out = []
    for number in range(first, last + 1):
        mark = ">" if number == line else " "
        body = lines[number - 1].expandtabs(8)
        out.append(f"{mark} {number:>{width}} | {body}")
        if number == line and col is not None:
            raw = lines[number - 1][: max(col - 1, 0)]
            out.append(f"  {' ' * width} | {' ' * len(raw.expandtabs(8))}^")
    return "\n".join(out)


def read_source(path: str | Path) -> str:
    """A script's text; undecodable bytes become U+FFFD so that errors can still
    point at them instead of failing to read the file at all."""
    return Path(path).read_bytes().decode("utf-8", errors="replace")
