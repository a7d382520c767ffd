"""What happened in one run, in order: the record that ladder diagrams, the
HTML report and `tcptest explain` draw.

The engine knows everything a diagram needs (each event's script time and
actual time, every segment in script terms, which line took which segment), so
it keeps a `Recorder` and hands back a frozen `Timeline`; nothing here reads a
clock. Times are microseconds since the run's start, as in the engine.

Each side's TCP state is *derived* from the segments on the wire with RFC
9293's state diagram (`with_states`), not read from the kernel: reading
sock_diag at every event would cost about 0.2 ms each, inside the script's
timing. A `%{ }%` block's `conn_state` is where the kernel's own view is read.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, fields
from typing import Iterable, Union

from . import script as s
from . import wire
from .render import render_event, render_packet
from .seq import seq_diff, u32

STATES_SOURCE = ("derived from the segments on the wire (RFC 9293's state diagram), "
                 "not read from the kernel")
KINDS = ("inject", "expect", "call", "command", "python")


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment (or UDP datagram, ICMP message) on the wire, as a script
    line would have to write it: the kernel's numbers mapped into the
    script's (`match.actual_in_script_terms`)."""

    direction: str  # "<": the script's peer sent it; ">": the kernel did
    text: str  # the whole line after the time: "> S. 0:0(0) ack 1 win 65535 <mss 1460>"
    connection: tuple[int, int] | None = None  # (kernel's port, peer's port); None: not TCP
    flags: str = ""  # packetdrill's letters: "S.", "P.", "F.", "R"
    seq_start: int = 0
    seq_end: int = 0
    length: int = 0
    ack: int | None = None
    window: int | None = None
    options: str = ""  # "<mss 1460,sackOK>" as written, "" for none


@dataclass(frozen=True, slots=True)
class ScriptEvent:
    """A line of the script that ran."""

    at: int  # when it happened (a call: started; a segment: left or arrived)
    line: int
    kind: str  # one of KINDS
    text: str  # the line as the script writes it (rendered)
    scheduled: int | None  # its script time; None for `*` (any time)
    returned_at: int | None = None  # a call, command or Python block: when it ended
    result: str | None = None  # a call: what it returned, "0" or "-1 ECONNREFUSED"


@dataclass(frozen=True, slots=True)
class WireSegment:
    """A segment that crossed tun0, and what the script made of it."""

    at: int
    segment: Segment
    line: int | None = None  # inbound: the line that sent it; outbound: the line it was matched with
    expected: str | None = None  # outbound: that line's segment
    problems: tuple[str, ...] = ()  # how it differed from `expected` (empty: it matched)
    unexpected: bool = False  # reported as a segment no line expects
    ignored: bool = False  # of a connection the script no longer follows

    @property
    def status(self) -> str:
        """sent, matched, mismatched, unexpected, ignored or cleanup (the
        RST tcptest sends to end a connection the script left open)."""
        if self.segment.direction == "<":
            return "sent" if self.line is not None else "cleanup"
        if self.problems:
            return "mismatched"
        if self.line is not None:
            return "matched"
        return "ignored" if self.ignored else "unexpected"


@dataclass(frozen=True, slots=True)
class StateChange:
    """One side of a connection moved to `state` (see STATES_SOURCE)."""

    at: int
    side: str  # "kernel" or "peer" (the script's end)
    connection: tuple[int, int]  # (kernel's port, peer's port)
    state: str  # "SYN_SENT", "ESTABLISHED", ...


@dataclass(frozen=True, slots=True)
class Failure:
    """The first error of a failed run, at its line."""

    at: int | None  # the last time the run reached (the failure came then or just after)
    line: int | None
    text: str | None  # the failing line, as the script writes it
    message: str
    expected: str | None = None
    actual: str | None = None


Entry = Union[ScriptEvent, WireSegment, StateChange, Failure]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything that happened in one run, in time order."""

    entries: tuple[Entry, ...]
    kernel_address: str = ""
    peer_address: str = ""
    states_source: str = STATES_SOURCE

    @property
    def failure(self) -> Failure | None:
        return next((entry for entry in self.entries if isinstance(entry, Failure)), None)

    def of_type(self, kind: type) -> tuple:
        return tuple(entry for entry in self.entries if isinstance(entry, kind))


# ------------------------------------------------------------------ recording


def segment_of(packet: s.Packet, connection: tuple[int, int] | None) -> Segment:
    body = packet.body
    text = render_packet(packet)
    if not isinstance(body, s.TcpSegment):
        return Segment(packet.direction, text, connection)
    options = text[text.index(" <"):].strip() if body.options else ""
    return Segment(packet.direction, text, connection, body.flags, body.seq_start, body.seq_end,
                   body.length, body.ack, body.window, options)


def call_result(value: int, err: int) -> str:
    """`0`, or `-1 ECONNREFUSED` as a script line would write it."""
    if value < 0 and err:
        return f"{value} {_errno.errorcode.get(err, err)}"
    return str(value)


def _kind_of(event: s.Event) -> str:
    action = event.action
    if isinstance(action, s.Packet):
        return "expect" if action.direction == ">" else "inject"
    if isinstance(action, s.Syscall):
        return "call"
    return "command" if isinstance(action, s.Command) else "python"


def _ports(frame: bytes) -> tuple[int, int] | None:
    try:
        transport = wire.decode(frame).transport
    except wire.DecodeError:
        return None
    if not isinstance(transport, wire.TcpHeader):
        return None
    return transport.src_port, transport.dst_port


class Recorder:
    """Kept by the engine while it runs: cheap to feed (packets are rendered
    only in `finish`), so recording costs the script's timing next to nothing."""

    def __init__(self, kernel_address: str = "", peer_address: str = ""):
        self.kernel_address = kernel_address
        self.peer_address = peer_address
        # In the order recorded, which breaks ties between equal times: an
        # event [event, scheduled, at, returned_at, result], an inbound
        # (at, line, packet, connection), or the captured frame of an
        # outbound segment (a key of _outbound).
        self._log: list = []
        self._event_index: dict[int, int] = {}  # line -> index in _log (a blocking call's return)
        self._outbound: dict[object, dict] = {}  # captured frame -> what is known of it
        self._current: s.Event | None = None
        self._last_at = 0

    def _seen(self, at: int) -> None:
        self._last_at = max(self._last_at, at)

    def running(self, event: s.Event) -> None:
        """The event the engine works on, named by a failure that comes from
        the host (a call's result, a Python assertion) rather than the engine."""
        self._current = event

    def event(self, event: s.Event, scheduled: int | None, at: int,
              returned_at: int | None = None, result: tuple[int, int] | None = None) -> None:
        self._seen(at)
        self._event_index[event.loc.line] = len(self._log)
        self._log.append([event, scheduled, at, returned_at, result])

    def returned(self, event: s.Event, returned_at: int, result: tuple[int, int] | None) -> None:
        """A blocking call that started earlier returned."""
        self._seen(returned_at)
        index = self._event_index.get(event.loc.line)
        if index is not None:
            self._log[index][3:] = [returned_at, result]

    def inbound(self, at: int, line: int | None, packet: s.Packet,
                connection: tuple[int, int] | None) -> None:
        self._seen(at)
        self._log.append((at, line, packet, connection))

    def outbound(self, captured, actual: s.Packet, line: int | None = None,
                 expected: s.Packet | None = None, problems: Iterable[str] = (),
                 unexpected: bool = False, ignored: bool = False) -> None:
        """An outbound frame (`engine.Captured`) and what the script made of
        it; a frame told about twice (reported unexpected, then taken by a
        line) keeps both."""
        self._seen(captured.at)
        if captured not in self._outbound:
            self._outbound[captured] = {"actual": actual}
            self._log.append(captured)
        known = self._outbound[captured]
        if line is not None:
            known.update(actual=actual, line=line, expected=expected, problems=tuple(problems))
        known["unexpected"] = known.get("unexpected", False) or unexpected
        known["ignored"] = known.get("ignored", False) or ignored

    def finish(self, failure=None) -> Timeline:
        """The timeline, with the states derived and the failure (a
        `RunFailure`, or any `TcptestError`) at its end."""
        entries: list[Entry] = [self._entry(item) for item in self._log]
        entries.sort(key=lambda entry: entry.at)  # stable: equal times stay as recorded
        entries = with_states(entries)
        if failure is not None:
            entries.append(self._failure(failure))
        return Timeline(tuple(entries), self.kernel_address, self.peer_address)

    def _entry(self, item) -> Entry:
        if isinstance(item, list):
            event, scheduled, at, returned_at, result = item
            return ScriptEvent(at, event.loc.line, _kind_of(event), render_event(event), scheduled,
                               returned_at, call_result(*result) if result is not None else None)
        if isinstance(item, tuple):
            at, line, packet, connection = item
            return WireSegment(at, segment_of(packet, connection), line)
        known = self._outbound[item]
        expected = known.get("expected")
        ports = _ports(item.frame)  # the kernel's (source) port first
        return WireSegment(item.at, segment_of(known["actual"], ports), known.get("line"),
                           render_packet(expected) if expected is not None else None,
                           known.get("problems", ()), known["unexpected"], known["ignored"])

    def _failure(self, error) -> Failure:
        loc = getattr(error, "loc", None)
        line = getattr(loc, "line", None)
        message = getattr(error, "message", None) or str(error)
        expected = actual = None
        for detail_line in (getattr(error, "detail", "") or "").splitlines():
            if detail_line.startswith("script packet: "):
                expected = detail_line.removeprefix("script packet: ")
            elif detail_line.startswith("actual packet: "):
                actual = detail_line.removeprefix("actual packet: ")
        text = None
        if line is not None:
            ran = [item[0] for item in self._log if isinstance(item, list) and item[0].loc.line == line]
            if ran:
                text = render_event(ran[-1])
            elif self._current is not None and self._current.loc.line == line:
                text = render_event(self._current)
        if expected is None and text is not None and actual is None:
            expected, actual = text, message  # a call, command or Python block
        return Failure(self._last_at, line, text, message, expected, actual)


# -------------------------------------------------------------- TCP states

_SYN_SIDE_STATES = ("", "CLOSED", "LISTEN", "SYN_SENT")


def with_states(entries: Iterable[Entry]) -> list[Entry]:
    """The entries (in time order) with each side's state changes after the
    segment that caused them: RFC 9293's state diagram, driven by the TCP
    segments each side sent and received. A segment the receiver would drop
    (a RST out of window, say) still moves it here: the states are labelled
    derived (STATES_SOURCE) for that reason."""
    states: dict[tuple[tuple[int, int], str], str] = {}
    fin_end: dict[tuple[tuple[int, int], str], int] = {}
    out: list[Entry] = []

    def move(at: int, key, state: str) -> None:
        if state and states.get(key) != state:
            states[key] = state
            out.append(StateChange(at, key[1], key[0], state))

    for entry in entries:
        out.append(entry)
        if not isinstance(entry, WireSegment) or entry.segment.connection is None:
            continue
        seg = entry.segment
        conn = seg.connection
        if seg.direction == "<":
            sender, receiver = (conn, "peer"), (conn, "kernel")
        else:
            sender, receiver = (conn, "kernel"), (conn, "peer")
        flags = seg.flags
        at = entry.at
        # the sender
        if "R" in flags:
            move(at, sender, "CLOSED")
        elif "S" in flags:
            if "." not in flags:
                move(at, sender, "SYN_SENT")
            elif states.get(sender, "") in _SYN_SIDE_STATES:
                move(at, sender, "SYN_RECV")
        if "F" in flags and "R" not in flags:
            fin_end[sender] = u32(seg.seq_end + 1)  # the FIN takes a sequence number
            now = states.get(sender, "")
            if now in ("ESTABLISHED", "SYN_RECV"):
                move(at, sender, "FIN_WAIT_1")
            elif now == "CLOSE_WAIT":
                move(at, sender, "LAST_ACK")
        # the receiver
        if "R" in flags:
            move(at, receiver, "CLOSED")
            continue
        move(at, receiver, _received(states.get(receiver, ""), seg, fin_end.get(receiver)))
    return out


def _received(state: str, seg: Segment, our_fin_end: int | None) -> str:
    """The receiver's state after `seg`: its ACK first, then its FIN (a FIN
    that acknowledges our FIN takes FIN_WAIT_1 straight to TIME_WAIT)."""
    flags = seg.flags
    if "." in flags:
        if state == "SYN_SENT" and "S" in flags:
            state = "ESTABLISHED"
        elif state == "SYN_RECV" and "S" not in flags:
            state = "ESTABLISHED"
        if our_fin_end is not None and seg.ack is not None and seq_diff(seg.ack, our_fin_end) >= 0:
            state = {"FIN_WAIT_1": "FIN_WAIT_2", "CLOSING": "TIME_WAIT", "LAST_ACK": "CLOSED"}.get(state, state)
    if "F" in flags:
        state = {"ESTABLISHED": "CLOSE_WAIT", "FIN_WAIT_1": "CLOSING", "FIN_WAIT_2": "TIME_WAIT"}.get(state, state)
    return state


# ------------------------------------------------------ capture comments

NOT_SEEN = "not looked at by the script"


def packet_comments(timeline: Timeline,
                    records: Iterable[tuple[int, bytes]]) -> list[tuple[tuple[str, ...], bool | None]]:
    """(comments, sent by the kernel) of each captured frame (`records`: usecs
    since the start, frame; in capture order), for a pcapng: the script line
    that sent or took it, what that line expected, and how the frame
    differed. A frame is the timeline's segment of its direction at its time
    (inbound frames are stamped a microsecond apart at most: float rounding)."""
    pending = {"<": [], ">": []}
    for entry in timeline.of_type(WireSegment):
        pending[entry.segment.direction].append(entry)
    kernel = _address(timeline.kernel_address)
    out = []
    for at, frame in records:
        try:
            source = _address(wire.decode(frame).ip.src)
        except wire.DecodeError:
            out.append(((), None))
            continue
        outbound = source == kernel
        queue = pending[">" if outbound else "<"]
        index = next((i for i, entry in enumerate(queue) if abs(entry.at - at) <= 1), None)
        if index is None:
            out.append(((NOT_SEEN,) if timeline.failure is None else
                        (f"{NOT_SEEN}: the run stopped at line {timeline.failure.line}",), outbound))
            continue
        out.append((_comments_of(queue.pop(index)), outbound))
    return out


def _address(text: str):
    import ipaddress

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return text


def _comments_of(entry: WireSegment) -> tuple[str, ...]:
    seg = entry.segment
    where = f"line {entry.line}" if entry.line is not None else ""
    status = entry.status
    if status == "sent":
        return (f"{where}: {seg.text} (sent by the script)",)
    if status == "cleanup":
        return (f"{seg.text}: tcptest's RST, the script left the connection open",)
    if status == "ignored":
        return (f"{seg.text}: ignored, of a connection the script no longer follows",)
    if status == "unexpected":
        return (f"{seg.text}: unexpected, no line of the script expects it",)
    head = f"{where}: expected {entry.expected}"
    if status == "matched":
        return (f"{head}: matched" + (" (also reported as unexpected, early)" if entry.unexpected else ""),)
    return (f"{head}: MISMATCH, actual {seg.text}", *entry.problems)


# ---------------------------------------------------------------- JSON

_TYPES = {cls.__name__: cls for cls in (ScriptEvent, WireSegment, StateChange, Failure, Segment, Timeline)}


def to_dict(value):
    """A timeline (or any part of it) as plain JSON values; each object says
    its `type`, so that `from_dict` can read it back."""
    if type(value).__name__ in _TYPES:
        return {"type": type(value).__name__,
                **{f.name: to_dict(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, (tuple, list)):
        return [to_dict(item) for item in value]
    return value


def from_dict(data):
    """The inverse of `to_dict`: a `Timeline` from the JSON `verdict_dict` wrote."""
    if isinstance(data, dict):
        cls = _TYPES.get(data.get("type"))
        if cls is None:
            raise ValueError(f"not a timeline object: {data.get('type')!r}")
        names = {f.name for f in fields(cls)}
        return cls(**{key: from_dict(value) for key, value in data.items() if key in names})
    if isinstance(data, list):
        return tuple(from_dict(item) for item in data)
    return data
