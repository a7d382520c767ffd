"""Ladder (sequence) diagrams of a run, as TCP textbooks draw them: the
script's peer on the left, the kernel on the right, time going down, one arrow
per segment in script terms; calls, commands and Python blocks beside the
kernel; each side's state as it changes; the failing line marked with what was
expected and what came.

`rows` turns a `Timeline` into the diagram's rows; `text` draws them for a
terminal (colour optional), `svg` as an SVG image for the HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import timeline as tl

ARROW_STATUS_NOTE = {
    "unexpected": "unexpected: no line of the script expects it",
    "ignored": "ignored: a connection the script no longer follows",
    "cleanup": "tcptest's RST: the script left the connection open",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the diagram."""

    kind: str  # "segment", "action" (call, command, code), "state" or "failure"
    at: int | None = None
    line: int | None = None
    scheduled: int | None = None
    direction: str = ""  # a segment: "<" peer to kernel, ">" kernel to peer
    label: str = ""  # a segment without its direction, or the action as written
    status: str = ""  # a segment: WireSegment.status; an action: its kind
    notes: tuple[str, ...] = ()  # lines under it: what was expected, how it differed
    peer_state: str = ""
    kernel_state: str = ""
    failed: bool = False  # the failing line


def _strip_time(text: str) -> str:
    """The event without its time, which the diagram's columns show."""
    return text.split(None, 1)[1] if " " in text else text


def _short(text: str, limit: int = 70) -> str:
    """A Python block or command on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        lines = [lines[0], *lines[1:2]]
        joined = " ".join(lines) + (" ..." if text.count("\n") > 2 else "")
    else:
        joined = lines[0] if lines else text
    return joined if len(joined) <= limit else joined[:limit - 3] + "..."


def rows(timeline: tl.Timeline) -> list[Row]:
    """The diagram's rows, in time order."""
    entries = timeline.entries
    events = {(ev.line, ev.at): ev for ev in timeline.of_type(tl.ScriptEvent)}
    by_line = {ev.line: ev for ev in timeline.of_type(tl.ScriptEvent)}
    failure = timeline.failure
    connections = {w.segment.connection for w in timeline.of_type(tl.WireSegment) if w.segment.connection}
    several = len(connections) > 1
    out: list[tuple[int, int, Row]] = []  # (time, order, row): a blocking call's return goes in by time

    def add(at: int | None, row: Row) -> None:
        out.append((at if at is not None else (out[-1][0] if out else 0), len(out), row))

    for entry in entries:
        if isinstance(entry, tl.WireSegment):
            seg = entry.segment
            event = (events.get((entry.line, entry.at)) or by_line.get(entry.line)) if entry.line else None
            label = seg.text[2:] if seg.text[:2] in ("< ", "> ") else seg.text
            if several and seg.connection and ">" not in label.split(" ", 1)[0]:
                kernel_port, peer_port = seg.connection
                ports = f"{peer_port}>{kernel_port}" if seg.direction == "<" else f"{kernel_port}>{peer_port}"
                label = f"{ports} {label}"
            notes = []
            if entry.problems:
                notes.append(f"expected: {entry.expected}")
                notes.extend(entry.problems)
            if entry.status in ARROW_STATUS_NOTE:
                notes.append(ARROW_STATUS_NOTE[entry.status])
            add(entry.at, Row("segment", entry.at, entry.line, event.scheduled if event else None,
                              seg.direction, label, entry.status, tuple(notes)))
        elif isinstance(entry, tl.ScriptEvent) and entry.kind not in ("inject", "expect"):
            text = _strip_time(entry.text) if entry.kind == "call" else _short(_strip_time(entry.text))
            if entry.result is not None and not text.endswith(f" = {entry.result}"):
                text += f" -> {entry.result}"  # what it returned, where the script wrote otherwise
            blocking = "..." in entry.text.split(None, 1)[0]
            add(entry.at, Row("action", entry.at, entry.line, entry.scheduled, label=text, status=entry.kind))
            if blocking and entry.returned_at is not None:
                name = _strip_time(entry.text).split("(", 1)[0]
                add(entry.returned_at, Row("action", entry.returned_at, entry.line, None,
                                           label=f"{name} returned" + (f" {entry.result}" if entry.result else ""),
                                           status="return"))
        elif isinstance(entry, tl.StateChange):
            state = entry.state + (f" :{entry.connection[1]}" if several else "")
            last = out[-1][2] if out else None
            side = "peer_state" if entry.side == "peer" else "kernel_state"
            if last is not None and last.kind == "state" and not getattr(last, side):
                out[-1] = (out[-1][0], out[-1][1], _with(last, **{side: state}))
            else:
                add(entry.at, Row("state", entry.at, **{side: state}))
    out.sort(key=lambda item: (item[0], item[1]))
    result = [row for _, _, row in out]
    if failure is not None:
        marked = next((i for i in range(len(result) - 1, -1, -1)
                       if result[i].line == failure.line and result[i].kind in ("segment", "action")), None)
        if marked is not None:
            result[marked] = _with(result[marked], failed=True)
        shown = marked is not None and result[marked].status == "mismatched"  # its notes say it all
        notes = []
        if failure.expected is not None and not shown:
            notes.append(f"expected: {_short(failure.expected, 100)}")
        if failure.actual is not None and failure.actual != failure.message and not shown:
            notes.append(f"actual: {_short(failure.actual, 100)}")
        label = failure.message.splitlines()[0] if failure.message else "failed"
        result.append(Row("failure", failure.at, failure.line, label=label, notes=tuple(notes),
                          status=failure.text or "", failed=True))
    return result


def _with(row: Row, **changes) -> Row:
    return replace(row, **changes)


# ---------------------------------------------------------------- text

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36",
            "dim": "2", "bold": "1"}
STATUS_COLOUR = {"sent": "cyan", "matched": "green", "mismatched": "red", "unexpected": "yellow",
                 "ignored": "dim", "cleanup": "dim"}


def _seconds(usecs: int | None) -> str:
    return "" if usecs is None else f"{usecs / 1e6:.6f}"


def text(timeline: tl.Timeline, colour: bool = False, last: int | None = None) -> str:
    """The diagram for a terminal; `colour` adds ANSI colours; `last` keeps
    only that many rows at the end (a long run's failure is at its end)."""

    def paint(text_: str, *names: str) -> str:
        if not colour or not names or not text_.strip():
            return text_
        codes = ";".join(_COLOURS[name] for name in names)
        return f"\x1b[{codes}m{text_}\x1b[0m"

    diagram = rows(timeline)
    skipped = max(0, len(diagram) - last) if last is not None else 0
    diagram = diagram[skipped:]
    labels = [len(row.label) for row in diagram if row.kind == "segment"]
    lane = max([30, *(width + 6 for width in labels)])
    state_width = max([8, *(len(row.peer_state) for row in diagram)])
    left = f"{'':2}{'line':>5}  {'script':>9}  {'actual':>9}  "
    peer = f"peer {timeline.peer_address}".strip()
    kernel = f"kernel {timeline.kernel_address}".strip()
    head = left + " " * state_width + " " + peer.ljust(lane + 1)[: lane + 1] + " " + kernel
    out = [paint(head, "bold")]
    if skipped:
        out.append(paint(f"  ... {skipped} earlier rows (all of them: tcptest explain, or --report)", "dim"))
    bar = "│"

    def line_of(mark: str, row: Row | None, peer_state: str, middle: str, right: str,
                middle_colour: tuple[str, ...] = (), right_colour: tuple[str, ...] = ()) -> str:
        number = f"{row.line:>5}" if row is not None and row.line is not None and row.kind != "state" else " " * 5
        times = (f"{_seconds(row.scheduled):>9}  {_seconds(row.at):>9}" if row is not None and row.kind != "state"
                 else " " * 20)
        return (f"{mark:2}{number}  {times}  {paint(peer_state.rjust(state_width), 'magenta')} "
                f"{bar}{paint(middle, *middle_colour)}{bar} {paint(right, *right_colour)}").rstrip()

    for row in diagram:
        mark = ">>" if row.failed else ("? " if row.status == "unexpected" else "")
        mark = paint(mark, "red", "bold") if row.failed else paint(mark, "yellow")
        if row.kind == "segment":
            fill = lane - len(row.label) - 4
            middle = (f"─ {row.label} {'─' * fill}▶" if row.direction == "<"
                      else f"◀{'─' * fill} {row.label} ─")
            tone = ("red", "bold") if row.failed else (STATUS_COLOUR.get(row.status, ""),)
            out.append(line_of(mark, row, "", middle, "", tuple(t for t in tone if t)))
        elif row.kind == "action":
            tone = ("red", "bold") if row.failed else (("dim",) if row.status == "return" else ())
            out.append(line_of(mark, row, "", " " * lane, row.label, right_colour=tone))
        elif row.kind == "state":
            out.append(line_of("", row, row.peer_state, " " * lane, paint(row.kernel_state, "magenta")))
            continue
        else:  # the failure
            out.append(line_of(mark, row, "", " " * lane, f"error: {row.label}", right_colour=("red", "bold")))
        for note in row.notes:
            tone = ("red",) if row.failed or row.status == "mismatched" else ("dim",)
            out.append(line_of("", None, "", " " * lane, f"  {note}", right_colour=tone))
    out.append(paint(f"states: {timeline.states_source}", "dim"))
    return "\n".join(out)


# ---------------------------------------------------------------- SVG

CHAR_WIDTH = 7.3  # of the 12 px monospace font
ROW_HEIGHT = 20
FONT = "font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px"
SVG_COLOURS = {"sent": "#1f6feb", "matched": "#1a7f37", "mismatched": "#cf222e", "unexpected": "#bf8700",
               "ignored": "#8c959f", "cleanup": "#8c959f"}


def svg(timeline: tl.Timeline) -> str:
    """The diagram as a standalone SVG image (also fine inline in HTML)."""
    import html  # here, not at the top: a failure's text diagram does without (2 ms)

    diagram = rows(timeline)
    esc = html.escape
    labels = [len(row.label) for row in diagram if row.kind == "segment"]
    lane = max(260.0, max(labels, default=0) * CHAR_WIDTH + 60)
    rights = [len(row.label) + (8 if row.kind == "failure" else 0)
              for row in diagram if row.kind in ("action", "failure")]
    rights += [len(note) + 3 for row in diagram for note in row.notes]
    rights += [len(row.kernel_state) for row in diagram]
    state_width = max([8, *(len(row.peer_state) for row in diagram)]) * CHAR_WIDTH + 12
    x_line, x_script, x_actual = 34, 120, 200
    peer_x = 220 + state_width
    kernel_x = peer_x + lane
    width = kernel_x + 16 + max(rights, default=20) * CHAR_WIDTH + 20
    lines_total = sum(1 + len(row.notes) for row in diagram)
    top = 52
    height = top + lines_total * ROW_HEIGHT + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" style="{FONT}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="context-stroke"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{x_line}" y="20" text-anchor="end" font-weight="bold">line</text>',
        f'<text x="{x_script}" y="20" text-anchor="end" font-weight="bold">script</text>',
        f'<text x="{x_actual}" y="20" text-anchor="end" font-weight="bold">actual</text>',
        f'<text x="{peer_x}" y="20" text-anchor="middle" font-weight="bold" class="peer">'
        f'peer {esc(timeline.peer_address)}</text>',
        f'<text x="{kernel_x}" y="20" text-anchor="middle" font-weight="bold" class="kernel">'
        f'kernel {esc(timeline.kernel_address)}</text>',
    ]
    lifelines = [
        f'<line x1="{peer_x}" y1="30" x2="{peer_x}" y2="{height - 30}" stroke="#57606a" stroke-width="2"/>',
        f'<line x1="{kernel_x}" y1="30" x2="{kernel_x}" y2="{height - 30}" stroke="#57606a" stroke-width="2"/>',
    ]
    backgrounds: list[str] = []  # drawn under the lifelines
    y = top
    for row in diagram:
        base = y
        if row.failed:
            backgrounds.append(f'<rect class="failed" x="4" y="{base - 14}" width="{width - 8:.0f}" '
                         f'height="{ROW_HEIGHT * (1 + len(row.notes))}" fill="#ffebe9"/>')
        if row.kind != "state":
            if row.line is not None:
                parts.append(f'<text x="{x_line}" y="{base}" text-anchor="end">{row.line}</text>')
            parts.append(f'<text x="{x_script}" y="{base}" text-anchor="end" fill="#57606a">'
                         f'{_seconds(row.scheduled)}</text>')
            parts.append(f'<text x="{x_actual}" y="{base}" text-anchor="end">{_seconds(row.at)}</text>')
        title = esc("\n".join([row.label, *row.notes]))
        if row.kind == "segment":
            colour = "#cf222e" if row.failed else SVG_COLOURS.get(row.status, "#24292f")
            x1, x2 = (peer_x, kernel_x) if row.direction == "<" else (kernel_x, peer_x)
            dash = ' stroke-dasharray="5 3"' if row.status in ("unexpected", "ignored", "cleanup") else ""
            parts.append(f'<g class="segment {row.status}" data-line="{row.line or ""}"><title>{title}</title>'
                         f'<line x1="{x1}" y1="{base - 4}" x2="{x2}" y2="{base - 4}" stroke="{colour}" '
                         f'stroke-width="1.5" marker-end="url(#arrow)"{dash}/>'
                         f'<text x="{(peer_x + kernel_x) / 2}" y="{base - 8}" text-anchor="middle" '
                         f'fill="{colour}">{esc(row.label)}</text></g>')
        elif row.kind == "action":
            colour = "#cf222e" if row.failed else ("#8c959f" if row.status == "return" else "#24292f")
            parts.append(f'<g class="action {row.status}" data-line="{row.line or ""}"><title>{title}</title>'
                         f'<circle cx="{kernel_x}" cy="{base - 4}" r="3" fill="{colour}"/>'
                         f'<text x="{kernel_x + 12}" y="{base}" fill="{colour}">{esc(row.label)}</text></g>')
        elif row.kind == "state":
            for x, state, anchor, dx in ((peer_x, row.peer_state, "end", -8), (kernel_x, row.kernel_state, "start", 8)):
                if state:
                    parts.append(f'<text class="state" x="{x + dx}" y="{base}" text-anchor="{anchor}" '
                                 f'fill="#8250df" font-style="italic">{esc(state)}</text>')
        else:
            parts.append(f'<g class="failure" data-line="{row.line or ""}"><title>{title}</title>'
                         f'<text x="{kernel_x + 12}" y="{base}" fill="#cf222e" font-weight="bold">'
                         f'error: {esc(row.label)}</text></g>')
        for note in row.notes:
            y += ROW_HEIGHT
            colour = "#cf222e" if row.failed or row.status == "mismatched" else "#57606a"
            parts.append(f'<text class="note" x="{kernel_x + 24}" y="{y}" fill="{colour}">{esc(note)}</text>')
        y += ROW_HEIGHT
    parts[3:3] = backgrounds + lifelines
    parts.append(f'<text x="{x_line - 26}" y="{height - 10}" fill="#57606a">states: '
                 f'{esc(timeline.states_source)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
