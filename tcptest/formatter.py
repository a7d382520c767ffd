"""`tcptest fmt`: a script in the canonical layout, comments kept.

Every item (option line, init command, event, cleanup command) is written
again by the renderer, an event with its time right-aligned and a long call
broken (`layout.event_line`); what lies between items keeps its comments, each where
it was (after an item on its line, or on a line of its own with its
indentation), with runs of blank lines made one. An item whose own text holds
a comment or a define's name is kept as written, since rendering it would
lose the comment or write the define's value. The result parses to the same
tree (locations aside), and formatting it again changes nothing.
"""

from __future__ import annotations

import re

from . import layout
from . import script as s
from .parser import parse_with_spans
from .render import render

_GAP = re.compile(r"(\s+)|(//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/)")


def format_text(text: str, path: str) -> str:
    """The canonical text of a script; raises ScriptError if it does not parse.
    Defines are not applied: names stay names."""
    script, spans = parse_with_spans(text, path)
    out: list[str] = []
    previous_end = 0
    for item in layout.items(script, spans, text):
        _gap(out, text[previous_end:item.start], before_item=True)
        out.append(_item_text(item, text))
        previous_end = item.end
    _gap(out, text[previous_end:], before_item=False)
    return "".join(out) + "\n"


def _item_text(item: layout.Item, text: str) -> str:
    if layout.has_inner_comment(item, text) or any(span.substituted for span in item.tokens):
        return text[item.start:item.end]
    if isinstance(item.node, s.Event):
        return layout.event_line(item.node)
    return render(item.node)


def _gap(out: list[str], gap: str, before_item: bool) -> None:
    """The comments of the text between two items (or before the first, or
    after the last), laid out; then the line break before the next item."""
    space = ""
    for match in _GAP.finditer(gap):
        if match.group(1) is not None:
            space += match.group(1)
            continue
        breaks = space.count("\n")
        if not out:
            out.append(space.rpartition("\n")[2])
        elif breaks == 0:
            out.append(space)
        else:
            out.append("\n" * min(breaks, 2) + space.rpartition("\n")[2])
        out.append(match.group(2))
        space = ""
    if before_item and out:
        out.append("\n" * max(1, min(space.count("\n"), 2)))
