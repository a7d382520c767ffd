"""`tcptest run --update SCRIPT`: run a script and write into it what the
kernel really did, as snapshot tests do (jest's `-u`, insta).

What the kernel decides is rewritten: an outbound line that did not match
becomes the segment that came (keeping `<...>` and a missing `win` as they
were), an outbound line that came at another time gets that time, one that
never came is taken out, a call that returned something else gets that
result, and a segment no line expected (or that a line took before the event
above the line ran) is inserted after the event it followed. The next line's relative time changes with an insertion or a
removal, so that it still runs when it did. Everything else keeps its bytes: edits
replace token spans (`parser.parse_with_spans`) and nothing between them.

A run stops at its first failure, so the script is run again after each
round of edits, until it passes. A failure on the script's own side (an
inbound segment sent late, a Python check, a command, a call's output
arguments) is not the kernel's answer to write down: `UpdateError`, and the
file stays as it was. The run uses one IP version (the command line's, else
the first the script allows).
"""

from __future__ import annotations

import difflib
import errno as _errno
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from . import layout
from . import script as s
from .errors import TcptestError, UpdateError
from .options import RunOptions
from .parser import parse_script, parse_with_spans
from .render import render_packet, seconds
from .runner import RunRequest, Verdict, run as run_script, script_ip_versions
from .source import read_source
from .timeline import ScriptEvent, Timeline, WireSegment

# Each run fixes the first failure; a script needing more rounds than this
# is one whose kernel answers differ from run to run.
MAX_RUNS = 30
# A timing failure on the script's side is run again this many times before
# it is reported.
TIMING_RETRIES = 2
# A delay shorter than packetdrill's default tolerance is written +0: the
# kernel answered at once, and what it took is the machine's noise.
_AT_ONCE_USECS = RunOptions().tolerance_usecs
_GOT_RESULT = re.compile(r"but got (-?\d+)(?: with errno (\d+))?")
_GOT_ERRNO = re.compile(r"Expected errno \w+ \(\d+\) but got (\w+) \(\d+\)")
_OPEN = {"LPAR", "LSQB", "LBRACE"}
_CLOSE = {"RPAR", "RSQB", "RBRACE"}


@dataclass(frozen=True, slots=True)
class _Edit:
    """Replace text[start:end] with `text` (an insertion when start == end)."""

    start: int
    end: int
    text: str


def update_script(path: str, command_line: Sequence[tuple[str, str | None]] = (),
                  run: Callable[[RunRequest], Verdict] = run_script) -> tuple[str, str]:
    """(the script's text, the text that passes); writes nothing. Raises
    UpdateError when a failure is not the kernel's to write down."""
    try:
        original = read_source(path)
    except OSError as err:
        raise UpdateError(f"{path}: cannot read the script: {err.strerror or err}") from None
    defines = dict(value.partition("=")[::2] for name, value in command_line if name == "define" and value)
    command_line = tuple(command_line)
    if not any(name == "ip_version" for name, _ in command_line):
        version = script_ip_versions(parse_script(original, path, defines))[0]
        command_line += (("ip_version", version),)
    # The rounds take a segment no line expects as a warning: the next
    # outbound line is then compared with it, which tells an extra segment
    # (a mismatch: inserted) from the line's own segment come early (a timing
    # error: retimed). The last run is the script's own.
    named = any(name == "unexpected" for name, _ in command_line)
    lenient = command_line if named else command_line + (("unexpected", "warn"),)
    text = original
    seen = {text}
    verifying = False
    retries = TIMING_RETRIES
    for _ in range(MAX_RUNS):
        verdict = _run_text(path, text, command_line if verifying else lenient, run)
        script, spans = parse_with_spans(text, path, defines)
        try:
            edits = _edits(path, text, layout.items(script, spans, text), verdict)
        except UpdateError:
            if retries and "timing error" in (verdict.error or ""):
                retries -= 1  # on a loaded machine, a late event is often the machine's doing
                continue
            raise
        if not edits:
            if verifying or lenient == command_line:
                return original, text
            verifying = True
            continue
        verifying = False
        text = _apply(text, edits)
        if text in seen:
            raise UpdateError(f"{path}: the kernel answers differently from run to run (the same "
                              f"edits came back); {path} is unchanged")
        seen.add(text)
    raise UpdateError(f"{path}: still failing after {MAX_RUNS} runs: {verdict.error}")


def diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=path, tofile=f"{path} (updated)"))


def _run_text(path: str, text: str, command_line, run) -> Verdict:
    """Run `text` as if it were the script at `path`: from a file beside it,
    so that its commands find what they name; the messages name `path`."""
    where = Path(path)
    temporary = where.with_name(f".{where.stem}.update-{os.getpid()}{where.suffix}")
    try:
        temporary.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UpdateError(f"{path}: cannot write a trial copy beside it ({temporary.name}): "
                          f"{err.strerror or err}") from None
    try:
        verdict = run(RunRequest(str(temporary), command_line))
    finally:
        temporary.unlink(missing_ok=True)
    error = verdict.error.replace(str(temporary), path) if verdict.error else None
    return replace(verdict, path=path, error=error)


def _apply(text: str, edits: list[_Edit]) -> str:
    for edit in sorted(edits, key=lambda edit: (edit.start, edit.end), reverse=True):
        text = text[:edit.start] + edit.text + text[edit.end:]
    return text


def _edits(path: str, text: str, items: list[layout.Item], verdict: Verdict) -> list[_Edit]:
    timeline = verdict.timeline
    if timeline is None:  # it failed before anything ran
        if verdict.passed:
            return []
        raise UpdateError(f"{verdict.error}\n{path} is unchanged: nothing ran, so there is nothing to write down")
    edits = _insertions(text, items, timeline, _stray)
    if edits or verdict.passed:
        return edits
    failure = timeline.failure
    index = next((index for index, item in enumerate(items) if isinstance(item.node, s.Event)
                  and item.node.loc.line == (failure.line if failure else None)), None)
    if index is None:
        fixes = []
    else:
        early = _taken_before_its_turn(items, index, timeline)
        fixes = _insertions(text, items, timeline, lambda entry: entry is early) if early else _fix(text, items, index, timeline)
    if not fixes:
        raise UpdateError(f"{verdict.error}\n{path} is unchanged: --update writes down only what the kernel "
                          "decides (outbound segments, their times, call results); this failure is on the "
                          "script's side, fix it by hand")
    return fixes


# ---------------------------------------------------- unexpected segments


def _insertions(text: str, items: list[layout.Item], timeline: Timeline,
                inserted: Callable[[WireSegment], bool]) -> list[_Edit]:
    """A line for each segment `inserted` picks, after the event that ran
    before it came (not the line that took it, recorded at its time)."""
    groups: dict[int, list[WireSegment]] = {}
    ran: list[ScriptEvent] = []
    events: dict[int, ScriptEvent] = {}
    for entry in timeline.entries:
        if isinstance(entry, ScriptEvent):
            ran.append(entry)
            events[entry.line] = entry
        elif isinstance(entry, WireSegment) and inserted(entry):
            last = next((event for event in reversed(ran) if event.line != entry.line), None)
            if last is not None:
                groups.setdefault(last.line, []).append(entry)
    edits = []
    index_of = {item.node.loc.line: index for index, item in enumerate(items) if isinstance(item.node, s.Event)}
    for line, strays in groups.items():
        index = index_of[line]
        at, lines, written = _anchor_time(events[line]), [], 0
        for stray in strays:
            delay = _written(stray.at - at)
            lines.append(layout.timed_line(layout.after(delay), stray.segment.text) + "\n")
            at, written = stray.at, written + delay
        end_of_line = text.find("\n", items[index].end)
        where = len(text) if end_of_line < 0 else end_of_line + 1
        prefix = "\n" if where == len(text) and not text.endswith("\n") else ""
        edits.append(_Edit(where, where, prefix + "".join(lines)))
        following = items[index + 1].node if index + 1 < len(items) else None
        if isinstance(following, s.Event) and isinstance(following.time, s.RelativeTime) and written:
            edits.append(_time_edit(items[index + 1], layout.after(following.time.usecs - written)))
    return edits


def _written(usecs: int) -> int:
    """A measured delay as the script writes it: to the millisecond, and 0
    when the kernel answered at once."""
    return 0 if usecs < _AT_ONCE_USECS else layout.measured(usecs)


def _stray(entry: WireSegment) -> bool:
    """A segment no line expected, or that the next line took in place of
    its own after it was reported unexpected."""
    return entry.segment.direction == ">" and entry.unexpected and not entry.ignored and \
        (entry.line is None or bool(entry.problems))


def _taken_before_its_turn(items: list[layout.Item], index: int, timeline: Timeline) -> WireSegment | None:
    """The segment a failed outbound line took, when it came before the event
    written just above the line ran: it answered something earlier (a quick
    ACK the script did not list, say), so it is inserted, and the line keeps
    waiting for its own."""
    event = items[index].node
    previous = items[index - 1].node if index else None
    if not isinstance(event.action, s.Packet) or not isinstance(previous, s.Event):
        return None
    taken = [entry for entry in timeline.of_type(WireSegment)
             if entry.line == event.loc.line and entry.segment.direction == ">" and entry.problems]
    ran = [entry for entry in timeline.of_type(ScriptEvent) if entry.line == previous.loc.line]
    if taken and ran and taken[-1].at < ran[-1].at:
        return taken[-1]
    return None


def _anchor_time(event: ScriptEvent) -> int:
    """When the engine counts the next event's relative time from: a command
    or Python block's end, any other event's time."""
    if event.kind in ("command", "python") and event.returned_at is not None:
        return event.returned_at
    return event.at


# ---------------------------------------------------------- failed lines


def _fix(text: str, items: list[layout.Item], index: int, timeline: Timeline) -> list[_Edit]:
    """The edits that make the failed line say what the kernel did; none
    when the failure is not the kernel's answer."""
    item = items[index]
    event = item.node
    action = event.action
    failure = timeline.failure
    if isinstance(action, s.Packet) and action.direction == ">":
        taken = [entry for entry in timeline.of_type(WireSegment) if entry.line == event.loc.line
                 and entry.segment.direction == ">"]
        if not taken:
            return _removal(text, items, index) if failure.message == "Timed out waiting for packet" else []
        if taken[-1].problems:
            return [_packet_edit(item, action, taken[-1].segment.text)]
        if "timing error" in failure.message:
            retimed = _retime(item, timeline, taken[-1].at)
            return [retimed] if retimed is not None else []
        return []
    if isinstance(action, s.Syscall) and failure.message.startswith(f"runtime error in {action.name} call: "):
        result = _actual_result(failure.message)
        return [_result_edit(item, result)] if result is not None else []
    return []


def _removal(text: str, items: list[layout.Item], index: int) -> list[_Edit]:
    """An outbound line the kernel did not send, taken out with its line
    (and a comment after it); the next line's relative time grows by the
    removed line's, so that it still runs when it did."""
    item = items[index]
    line_start = text.rfind("\n", 0, item.start) + 1
    line_end = text.find("\n", item.end)
    line_end = len(text) if line_end < 0 else line_end + 1
    alone = not text[line_start:item.start].strip() and \
        (index + 1 == len(items) or items[index + 1].start >= line_end)
    edits = [_Edit(line_start, line_end, "") if alone else _Edit(item.start, item.end, "")]
    removed = item.node.time
    following = items[index + 1].node if index + 1 < len(items) else None
    if isinstance(removed, s.RelativeTime) and isinstance(following, s.Event) \
            and isinstance(following.time, s.RelativeTime) and removed.usecs:
        edits.append(_time_edit(items[index + 1], "+" + seconds(following.time.usecs + removed.usecs)))
    return edits


def _packet_edit(item: layout.Item, expected: s.Packet, actual_text: str) -> _Edit:
    """The actual segment in place of the line's, from its direction on;
    what the line left open (`<...>`, no `win`) stays open."""
    actual = parse_script(f"0 {actual_text}\n", "actual").events[0].action
    body = actual.body
    if isinstance(body, s.TcpSegment) and isinstance(expected.body, s.TcpSegment):
        body = replace(body, window=body.window if expected.body.window is not None else None,
                       options=body.options if expected.body.options is not None else None)
    direction = next(span for span in item.tokens if span.kind == "DIRECTION")
    return _Edit(direction.start, item.end, render_packet(replace(actual, body=body, outer=expected.outer)))


def _retime(item: layout.Item, timeline: Timeline, at: int) -> _Edit | None:
    event = item.node
    ran = [entry for entry in timeline.of_type(ScriptEvent) if entry.line == event.loc.line]
    match event.time:
        case s.AbsoluteTime():
            return _time_edit(item, seconds(layout.measured(at)))
        case s.RelativeTime(usecs=usecs) if ran and ran[-1].scheduled is not None:
            anchor = ran[-1].scheduled - usecs
            return _time_edit(item, layout.after(_written(at - anchor)))
    return None


def _time_edit(item: layout.Item, time: str) -> _Edit:
    """A new time for an event written `T` or `+T`."""
    tokens = item.tokens
    last = tokens[1] if tokens[0].kind == "PLUS" else tokens[0]
    return _Edit(tokens[0].start, last.end, time)


def _actual_result(message: str) -> str | None:
    """What the call returned, as the script writes it, from the error."""
    errno_only = _GOT_ERRNO.search(message)
    if errno_only:
        return f"-1 {errno_only.group(1)}"
    got = _GOT_RESULT.search(message)
    if got is None:
        return None  # the call succeeded where an errno was expected: the value is not in the message
    value, number = got.groups()
    return f"{value} {_errno.errorcode.get(int(number), number)}" if number else value


def _result_edit(item: layout.Item, result: str) -> _Edit:
    """`= RESULT [ERRNO]` of a call rewritten; its (note) stays."""
    depth = 0
    tokens = item.tokens
    for index, span in enumerate(tokens):
        depth += (span.kind in _OPEN) - (span.kind in _CLOSE)
        if span.kind == "EQUAL" and depth == 0:
            rest = [token for token in tokens[index + 1:] if token.kind != "NOTE"]
            return _Edit(rest[0].start, rest[-1].end, result)
    raise AssertionError(f"a call without its result at line {item.node.loc.line}")


def update_files(paths: Sequence[str], command_line: Sequence[tuple[str, str | None]]) -> int:
    """`tcptest run --update`: each script updated in place, its diff printed.
    Exit 0 when every script passes now, 1 when one was left unchanged."""
    failed = 0
    for path in paths:
        try:
            before, after = update_script(path, command_line)
        except TcptestError as err:  # an UpdateError, or the script does not parse
            failed += 1
            print(f"tcptest: error: {err}", file=sys.stderr)
            continue
        if before == after:
            print(f"{path}: passes as it is, unchanged")
            continue
        print(diff(path, before, after), end="")
        try:
            Path(path).write_text(after, encoding="utf-8")
        except OSError as err:
            failed += 1
            print(f"tcptest: error: {path}: cannot write the update: {err.strerror or err}", file=sys.stderr)
            continue
        print(f"{path}: updated, and it passes")
    return 1 if failed else 0
