"""Where each top-level item of a script is in its text, and the canonical
layout of an event line: shared by the formatter, `run --update` and
`import`, which all write script text.

An item is an option line, the init command, an event or the cleanup
command; its tokens are the `TokenSpan`s from `parser.parse_with_spans`
that start between it and the next item. What lies between two items (or
between two tokens of one item) is whitespace and comments only.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from . import script as s
from .render import render_event, render_expr, seconds
from .source import Location, TokenSpan

# The width the time of an event is right-aligned to: `   +0 bind(...)`, as
# in the kernel's selftests.
TIME_WIDTH = 5
# Times measured on a run or a capture are written to the millisecond: the
# microseconds of one run are noise to the next.
TIME_STEP_USECS = 1000
# Where the formatter breaks a long call's structs and lists.
LINE_WIDTH = 100
_COMMENT = re.compile(r"//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/")


@dataclass(frozen=True, slots=True)
class Item:
    """One top-level node of a script and the tokens it was written with."""

    node: s.OptionLine | s.UntimedCommand | s.Event
    tokens: tuple[TokenSpan, ...]

    @property
    def start(self) -> int:
        return self.tokens[0].start

    @property
    def end(self) -> int:
        return self.tokens[-1].end


def items(script: s.Script, spans: tuple[TokenSpan, ...], text: str) -> list[Item]:
    """The script's items in text order, each with its tokens."""
    nodes: list = list(script.options)
    nodes += [script.init] if script.init is not None else []
    nodes += list(script.events)
    nodes += [script.cleanup] if script.cleanup is not None else []
    starts = [offset(text, node.loc) for node in nodes]
    token_starts = [span.start for span in spans]
    out = []
    for index, node in enumerate(nodes):
        first = bisect.bisect_left(token_starts, starts[index])
        last = bisect.bisect_left(token_starts, starts[index + 1]) if index + 1 < len(nodes) else len(spans)
        out.append(Item(node, spans[first:last]))
    return out


def offset(text: str, loc: Location) -> int:
    """The offset in `text` of a 1-based line and column."""
    at = 0
    for _ in range(loc.line - 1):
        at = text.index("\n", at) + 1
    return at + loc.col - 1


def has_inner_comment(item: Item, text: str) -> bool:
    """Whether a comment sits between two tokens of the item (rendering the
    item again would lose it)."""
    return any(_COMMENT.search(text, left.end, right.start)
               for left, right in zip(item.tokens, item.tokens[1:]))


def event_line(event: s.Event) -> str:
    """`   +0 write(4, ..., 10) = 10`: the rendered event, its time (which
    holds no space) right-aligned. A call longer than LINE_WIDTH has its
    structs and lists broken one item a line, each under the first, as the
    kernel's selftests write `recvmsg` and `sendmsg`."""
    time, action = render_event(event).split(" ", 1)
    line = timed_line(time, action)
    call = event.action
    if len(line) <= LINE_WIDTH or not isinstance(call, s.Syscall):
        return line
    head = line[:len(line) - len(action)] + call.name + "("
    flat_args = ", ".join(render_expr(arg) for arg in call.args)
    return head + _flow(call.args, len(head)) + action[len(call.name) + 1 + len(flat_args):]


def _flow(exprs, column: int) -> str:
    """Expressions separated by `, ` from `column` on, each broken only if
    it does not fit."""
    out = []
    for index, expr in enumerate(exprs):
        if index:
            out.append(", ")
            column += 2
        text = _fit(expr, column)
        out.append(text)
        last = text.rpartition("\n")
        column = len(last[2]) if last[1] else column + len(text)
    return "".join(out)


def _fit(expr, column: int) -> str:
    flat = render_expr(expr)
    if column + len(flat) <= LINE_WIDTH:
        return flat
    below = ",\n" + " " * (column + 1)
    if isinstance(expr, s.ListExpr) and expr.items:
        return "[" + below.join(_fit(item, column + 1) for item in expr.items) + "]"
    if not isinstance(expr, s.Struct) or tuple(f.name for f in expr.fields) in ((), ("iov_base", "iov_len")):
        return flat  # nothing to break, or an iovec: {base, len}
    parts = []
    for f in expr.fields:
        name = f.name + (f"({render_expr(f.arg)})" if f.arg is not None else "") + "="
        parts.append(name + _fit(f.value, column + 1 + len(name)))
    return "{" + below.join(parts) + "}"


def timed_line(time: str, action: str) -> str:
    return f"{time:>{TIME_WIDTH}} {action}"


def measured(usecs: int) -> int:
    """A measured time, or time between events, as a script writes it."""
    return max(0, round(usecs / TIME_STEP_USECS) * TIME_STEP_USECS)


def after(usecs: int) -> str:
    """`+0.04`: a measured delay as a relative event time."""
    return "+" + seconds(measured(usecs))
