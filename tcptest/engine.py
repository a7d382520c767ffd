"""The interpreter, with no I/O: a generator that walks a script's events and
yields requests (wait, inject, call, run a command...) to a driver, which answers
with what happened and when. Times are microseconds since the script started.

It never reads a clock or touches a socket, so it is tested by feeding it
answers (tests/test_engine.py) as well as by the real driver.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Generator, NamedTuple

from . import match, wire
from . import script as s
from .connections import Connection, ConnectionTable
from .errors import LateStart, RunFailure
from .inbound import InboundFrames
from .plan import Plan
from .render import render_packet, render_syscall
from .seq import SeqMap, seq_diff, u32
from .timeline import Recorder, Timeline

# ------------------------------------------------------------------ requests


@dataclass(frozen=True, slots=True)
class WaitFor:
    """Sleep until `until` (None: no deadline), returning early with the first
    captured outbound frame. A past `until` returns at once with any frame
    already captured, else `Elapsed`."""

    until: int | None


@dataclass(frozen=True, slots=True)
class Inject:
    frame: bytes
    gso_size: int = 0


@dataclass(frozen=True, slots=True)
class StartCall:
    call: s.Syscall
    loc: object
    blocking: bool


@dataclass(frozen=True, slots=True)
class AwaitCall:
    """Wait for the blocking call in flight to return, until `until` at most
    (`until` in the past: just look)."""

    until: int | None


@dataclass(frozen=True, slots=True)
class RunCommand:
    text: str
    loc: object


@dataclass(frozen=True, slots=True)
class RunCode:
    """Run a `%{ }%` block; `connection` is the (local, remote) port pair of the
    connection the script's segments last went to, for its state checks."""

    text: str
    loc: object
    connection: tuple[int, int] | None = None


Request = WaitFor | Inject | StartCall | AwaitCall | RunCommand | RunCode

# ----------------------------------------------------------------- responses


@dataclass(frozen=True, slots=True)
class Captured:
    at: int  # the kernel's capture timestamp
    frame: bytes


@dataclass(frozen=True, slots=True)
class Elapsed:
    now: int


@dataclass(frozen=True, slots=True)
class Done:
    """A request was carried out: it started `at`; a call that already
    returned says when in `returned_at`, and what it returned in `result`
    (value, errno); a command, what it printed. `ended`: when the driver was
    done with an injection or a call that did not block (the kernel's work
    for it included), which the next event may have had to wait for."""

    at: int
    returned_at: int | None = None
    output: str = ""
    result: tuple[int, int] | None = None
    ended: int | None = None


Response = Captured | Elapsed | Done

# Waiting for a segment that does not come: after the window closes we go on
# watching this long, or as long as the gap to the previous event if that is
# longer, so that a late segment is reported with its real time rather than as
# a plain time-out (a retransmission a whole backoff late, say).
LATE_GRACE_USECS = 250_000
# `*` has no deadline in packetdrill; a run must end, so we stop here.
ANY_TIME_LIMIT_USECS = 10_000_000
@dataclass(slots=True)
class _InFlight:
    event: s.Event
    expected_end: int
    tolerance: int


class Lateness(NamedTuple):
    """How late tcptest was with one of its own events (an injection, a
    call's start, a command, a Python block): after its script time or, when
    the event of tcptest's before it ended after that (a call whose kernel
    work took that long), after that end. The kernel has no part in these,
    so their lateness is tcptest's, or its machine's."""

    line: int
    kind: str  # "inbound packet", "system call", "command" or "Python code": what started late
    usecs: int


@dataclass(frozen=True, slots=True)
class Outcome:
    warnings: tuple[str, ...]
    lateness: tuple[Lateness, ...]  # of each of tcptest's own events, in order
    timeline: Timeline | None = None


def drive(steps: Generator[Request, Response, Outcome], answer: Callable[[Request], Response]) -> Outcome:
    """Run an engine's steps to the end with `answer` carrying out each request:
    the one loop the driver and the tests share."""
    response: Response | None = None
    while True:
        try:
            request = steps.send(response) if response is not None else next(steps)
        except StopIteration as stop:
            return stop.value
        response = answer(request)


def _timestamp(options) -> s.Timestamp | None:
    return next((option for option in options if isinstance(option, s.Timestamp)), None)


def _undefined_hint(body) -> str:
    """Names a script leaves for -D to define (TFO_COOKIE) reach the wire as
    they are; say so rather than leave the user puzzling over hex."""
    for option in getattr(body, "options", None) or ():
        cookie = getattr(option, "cookie", "")
        if cookie and not all(c in "0123456789abcdefABCDEF" for c in cookie):
            return f" ('{cookie}' is not hex: define it, e.g. -D {cookie}=0123456789abcdef)"
    return ""


def _sec(usecs: int) -> str:
    return f"{usecs / 1e6:.6f}"


class Engine:
    """Runs one planned script: `drive(Engine(make_plan(script, options)).run(), answer)`
    returns the `Outcome`; a failure is raised as `RunFailure`."""

    def __init__(self, plan: Plan, trace: Callable[[str], None] | None = None):
        self.plan = plan
        self.script = plan.script
        self.options = options = plan.options
        self.table = ConnectionTable(options.bind_port)
        self.frames_in = InboundFrames(options, plan.wire_version)
        self.frames: deque[Captured] = deque()
        self.reported: set[Captured] = set()  # unexpected frames already reported
        self.inflight: _InFlight | None = None
        self.warnings: list[str] = []
        self.trace = trace or (lambda line: None)
        self.tracing = trace is not None
        self.lateness: list[Lateness] = []
        self.previous_own_end: tuple[int, str, int] | None = None  # (line, kind, ended) of the last own event
        self.recorder = Recorder(options.live_local_ip, options.live_remote_ip)
        self.names_ports = plan.names_ports
        # anchors, in usecs since the start
        self.prev_live = 0
        self.prev_script = 0
        self.prev_was_inbound = False
        self.position = 0  # index of the event being run

    # ------------------------------------------------------------ the walk

    def run(self) -> Generator[Request, Response, Outcome]:
        events = self.script.events
        for index, event in enumerate(events):
            self.position = index
            self.recorder.running(event)
            yield from self._collect_returned_call()
            action = event.action
            if isinstance(action, s.Packet) and action.direction == ">":
                yield from self._expect(event)
            elif isinstance(action, s.Packet):
                yield from self._inject(event)
            elif isinstance(action, s.Syscall):
                yield from self._syscall(event)
            elif isinstance(action, s.Command):
                yield from self._timed_run(event, RunCommand(action.text, event.loc), "command")
            else:
                ports = self.table.current.ports if self.table.current else None
                yield from self._timed_run(event, RunCode(action.text, event.loc, ports), "Python code")
        if self.inflight is not None:
            yield from self._finish_inflight(must_return=True)
        if events:
            yield from self._report_leftover_frames(events[-1])
        yield from self._reset_open_connections()
        return Outcome(tuple(self.warnings), tuple(self.lateness), self.recorder.finish())

    # ---------------------------------------------------------- scheduling

    def _scheduled(self, event: s.Event, inbound: bool) -> tuple[int, int]:
        """(script time of the event, the anchor its relative offsets count from)."""
        t = event.time
        if isinstance(t, s.AbsoluteTime):
            return t.usecs, 0
        anchor = self.prev_script if (inbound and self.prev_was_inbound) else self.prev_live
        if isinstance(t, s.RelativeTime):
            return anchor + t.usecs, anchor
        if isinstance(t, s.TimeRange):
            base = anchor if t.relative else 0
            return base + t.start_usecs, base
        return anchor, anchor  # AnyTime

    def _tolerance(self, scheduled: int) -> int:
        return self.options.tolerance_usecs_for(scheduled - self.prev_script)

    def _happened(self, scheduled: int, live: int, inbound: bool) -> None:
        self.prev_script = scheduled
        self.prev_live = live
        self.prev_was_inbound = inbound

    def _own_event_done(self, event: s.Event, kind: str, shown: Callable[[], str], scheduled: int,
                        done: Done) -> None:
        """Trace one of our own events with its lateness and record it; past
        the tolerance the run fails, in words that put the delay where it
        was: on tcptest, or on the event before, which took until past this
        one's time (a call whose kernel work took that long)."""
        late = done.at - scheduled
        before, self.previous_own_end = self.previous_own_end, (
            (event.loc.line, kind, done.ended) if done.ended is not None else None)
        self.lateness.append(Lateness(event.loc.line, kind, done.at - max(scheduled, before[2] if before else 0)))
        if self.tracing:  # rendering costs microseconds that the next event would be late by
            self.trace(f"{_sec(done.at)} {shown()} ({late / 1000:.3f} ms late)")
        tolerance = self._tolerance(scheduled)
        if late <= tolerance:
            return
        if before is not None and before[2] > scheduled + tolerance:
            line, previous_kind, ended = before
            raise RunFailure(event.loc, f"timing error: expected {kind} at {_sec(scheduled)} sec but happened "
                                        f"at {_sec(done.at)} sec; tolerance {_sec(tolerance)} sec: the "
                                        f"{previous_kind} at line {line} before it took until {_sec(ended)} sec")
        verb = "left" if kind == "inbound packet" else "started"
        raise LateStart(event.loc, f"tcptest was late: the {kind} due at {_sec(scheduled)} sec {verb} "
                                   f"at {_sec(done.at)} sec, {late / 1000:.3f} ms late (tolerance "
                                   f"{tolerance / 1000:.3f} ms); not the kernel's doing: the machine "
                                   f"kept tcptest from running on time")

    def _outbound_timing_failure(self, event: s.Event, expected: int, at: int, tolerance: int) -> None:
        """The kernel sent a segment outside its time (packetdrill's words)."""
        self._fail(event, f"error handling packet: timing error: expected outbound packet at {_sec(expected)} "
                          f"sec but happened at {_sec(at)} sec; tolerance {_sec(tolerance)} sec", kind="packet")

    def _fail(self, event: s.Event, message: str, detail: str = "", kind: str = "") -> None:
        if kind == "packet" and "packet" in self.options.non_fatal:
            self.warnings.append(f"{event.loc}: {message}" + (f"\n{detail}" if detail else ""))
            return
        raise RunFailure(event.loc, message, detail)

    # ------------------------------------------------------------ waiting

    def _sleep_until(self, event: s.Event, until: int) -> Generator[Request, Response, int]:
        """Sleep until `until`, watching outbound frames; returns the time.
        A frame of ours that arrives well before this event is due can match no
        later line in time: report it now instead of at some later line."""
        while True:
            response = yield WaitFor(until)
            if isinstance(response, Elapsed):
                return response.now
            self._note_frame(event, response, until)

    def _note_frame(self, event: s.Event, captured: Captured, until: int) -> None:
        dgram = self._decode(captured)
        if dgram is None:
            return
        conn = self.table.owner(dgram.transport)
        if conn is not None and conn is not self.table.current:
            if self.names_ports:
                self.frames.append(captured)  # for a later line about that connection
            else:
                self.trace(f"ignored outbound frame of an earlier connection at {_sec(captured.at)}")
                self._record_ignored(captured, dgram)
            return
        early = until - captured.at > self._tolerance(until)
        if conn is not None and early and not self._next_outbound_is_any_time():
            self._unexpected(event, captured, dgram, conn,
                             f"while waiting to run this line at {_sec(until)} sec")
        # Kept, as packetdrill would: the next outbound line is compared with it.
        self.frames.append(captured)

    def _unexpected(self, event: s.Event, captured: Captured, dgram: wire.Datagram,
                    conn: Connection, when: str) -> None:
        """A segment no line expects: an error, a warning or nothing (--unexpected)."""
        if self.options.unexpected == "ignore" or captured in self.reported:
            return
        self.reported.add(captured)
        actual = match.actual_in_script_terms(dgram, conn.seqmap, use_ace=False)
        self.recorder.outbound(captured, actual, unexpected=True)
        message = f"unexpected outbound packet at {_sec(captured.at)} sec, {when}"
        detail = f"actual packet: {render_packet(actual)}"
        if self.options.unexpected == "fail":
            raise RunFailure(event.loc, message, detail)
        self.warnings.append(f"{event.loc}: {message}\n{detail}")

    def _report_leftover_frames(self, last: s.Event) -> Generator[Request, Response, None]:
        """Segments the kernel sent before the script ended that no line took."""
        while True:
            response = yield WaitFor(0)  # already past: only what is captured
            if isinstance(response, Elapsed):
                break
            self.frames.append(response)
        while self.frames:
            captured = self.frames.popleft()
            dgram = self._decode(captured)
            conn = self.table.owner(dgram.transport) if dgram is not None else None
            if conn is not None and (conn is self.table.current or self.names_ports):
                self._unexpected(last, captured, dgram, conn, "which no line of the script expects")
            elif dgram is not None:
                self._record_ignored(captured, dgram)

    def _record_ignored(self, captured: Captured, dgram: wire.Datagram) -> None:
        """A segment of a connection the script no longer follows, for the timeline."""
        conn = self.table.owner(dgram.transport)
        actual = match.actual_in_script_terms(dgram, conn.seqmap if conn else SeqMap(), use_ace=False)
        self.recorder.outbound(captured, actual, ignored=True)

    def _next_outbound_is_any_time(self) -> bool:
        return self.plan.next_outbound_is_flexible[self.position]

    def _next_frame(self, deadline: int | None) -> Generator[Request, Response, Captured | None]:
        if self.frames:
            return self.frames.popleft()
        response = yield WaitFor(deadline)
        return response if isinstance(response, Captured) else None

    # ---------------------------------------------------- outbound segments

    def _expect(self, event: s.Event) -> Generator[Request, Response, None]:
        packet = event.action
        assert isinstance(packet, s.Packet)
        expected = packet.body
        scheduled, anchor = self._scheduled(event, inbound=False)
        earliest, latest = self._window(event, scheduled, anchor)
        if latest is None:
            deadline = self.prev_live + ANY_TIME_LIMIT_USECS
        else:
            deadline = latest + max(LATE_GRACE_USECS, latest - self.prev_script)
        if isinstance(expected, s.TcpSegment):
            captured, actual, problems = yield from self._expect_segment(event, packet, deadline, scheduled)
        else:
            captured, actual, problems = yield from self._expect_datagram(event, packet, deadline)
        self.recorder.event(event, scheduled if earliest is not None else None, captured.at)
        self.recorder.outbound(captured, actual, event.loc.line, packet, problems)
        if problems:
            detail = "\n".join([*problems[1:], f"script packet: {render_packet(packet)}",
                                f"actual packet: {render_packet(actual)}"])
            self._fail(event, "error handling packet: " + problems[0], detail, kind="packet")
        if earliest is not None:
            tolerance = self._tolerance(scheduled)
            if captured.at < earliest - tolerance or captured.at > latest + tolerance:
                self._outbound_timing_failure(event, scheduled, captured.at, tolerance)
        if self.tracing:
            self.trace(f"{_sec(captured.at)} {render_packet(actual)}")
        self._happened(scheduled if earliest is not None else captured.at, captured.at, inbound=False)

    def _take_frame(self, event: s.Event, deadline: int, owner, tcp: bool):
        """The first captured frame that `owner(dgram)` claims (returns non-None
        for); frames of other connections the script still drives stay queued."""
        kept: list[Captured] = []
        while True:
            captured = yield from self._next_frame(deadline)
            if captured is None:
                raise RunFailure(event.loc, "Timed out waiting for packet")
            dgram = self._decode(captured, tcp_only=tcp)
            if dgram is None:
                continue
            claimed = owner(dgram)
            if claimed is not None:
                self.frames.extendleft(reversed(kept))
                return captured, dgram, claimed
            if isinstance(dgram.transport, wire.TcpHeader) and self.table.owner(dgram.transport) is not None \
                    and (self.names_ports or not tcp):
                kept.append(captured)
            else:
                self.trace(f"ignored outbound frame of another connection at {_sec(captured.at)}")
                if isinstance(dgram.transport, wire.TcpHeader):
                    self._record_ignored(captured, dgram)

    def _expect_segment(self, event: s.Event, packet: s.Packet, deadline: int, scheduled: int):
        expected = packet.body
        captured, dgram, conn = yield from self._take_frame(
            event, deadline, lambda d: self.table.owner_for_expected(d.transport, expected), tcp=True)
        if expected.flags.find("S") >= 0 and dgram.transport.flags & wire.SYN:
            conn.seqmap.local_isn_live = dgram.transport.seq
            conn.seqmap.local_isn_script = expected.seq_start
            if conn.new_remote_isn is not None:
                conn.seqmap.remote_isn, conn.new_remote_isn = conn.new_remote_isn, None
        self._learn_ts_base(conn, dgram, expected, scheduled)
        if not self.options.strict_segments:
            dgram = yield from self._join_short_segments(dgram, conn, expected.length, deadline)
        names_ports = expected.src_port is not None or expected.dst_port is not None
        actual = match.actual_in_script_terms(dgram, conn.seqmap, expected.ace is not None, packet.ip,
                                              names_ports)
        problems = match.compare(packet, actual, dgram.ip)
        problems += self._ts_val_problems(conn, expected, actual.body, scheduled)
        self._learn_from_kernel(conn, dgram, expected)
        return captured, actual, problems

    def _expect_datagram(self, event: s.Event, packet: s.Packet, deadline: int):
        """An outbound UDP datagram or ICMP message: the first of its kind."""
        kind = wire.UdpHeader if isinstance(packet.body, s.UdpDatagram) else wire.IcmpHeader
        captured, dgram, _ = yield from self._take_frame(
            event, deadline, lambda d: True if isinstance(d.transport, kind) else None, tcp=False)
        if kind is wire.UdpHeader:
            actual, problems = match.compare_udp(packet, dgram)
        else:
            actual, problems = match.compare_icmp(packet, dgram, self.plan.icmp_numbers[self.position])
        return captured, actual, problems

    def _learn_ts_base(self, conn: Connection, dgram: wire.Datagram, expected: s.TcpSegment,
                       scheduled: int) -> None:
        if conn.seqmap.ts_base is not None:
            return
        script_ts = _timestamp(expected.options or ())
        live_ts = _timestamp(dgram.transport.options)
        if script_ts is not None and live_ts is not None:
            conn.seqmap.ts_base = (script_ts.val, live_ts.val)
            conn.ts_base_at = scheduled

    def _ts_val_problems(self, conn: Connection, expected: s.TcpSegment, actual: s.TcpSegment,
                         scheduled: int) -> list[str]:
        """With --tcp_ts_tick_usecs, the kernel's TS val must have moved from
        its first one as the script's did. The slack is the timing tolerance
        over the whole time since that first one (events may each be late
        within their own tolerance, and the TS clock adds it up), and a tick."""
        tick = self.options.tcp_ts_tick_usecs
        script_ts = _timestamp(expected.options or ())
        live_ts = _timestamp(actual.options or ())
        if not tick or script_ts is None or live_ts is None:
            return []
        off_usecs = abs(seq_diff(live_ts.val, script_ts.val)) * tick
        if off_usecs <= self.options.tolerance_usecs_for(scheduled - conn.ts_base_at) + tick:
            return []
        return [match.field_mismatch("tcp_ts_val", script_ts.val, live_ts.val)]

    def _window(self, event: s.Event, scheduled: int, anchor: int) -> tuple[int | None, int | None]:
        t = event.time
        if isinstance(t, s.AnyTime):
            return None, None
        if isinstance(t, s.TimeRange):
            return anchor + t.start_usecs, anchor + t.end_usecs
        return scheduled, scheduled

    def _join_short_segments(self, dgram: wire.Datagram, conn: Connection, wanted: int,
                             deadline: int) -> Generator[Request, Response, wire.Datagram]:
        """packetdrill joins consecutive short segments of one connection to
        match a longer script line (the kernel may split what the script
        writes as one)."""
        while 0 < len(dgram.payload) < wanted:
            captured = yield from self._next_frame(deadline)
            if captured is None:
                break
            more = self._decode(captured)
            if more is None or self.table.owner(more.transport) is not conn:
                continue
            tcp, nxt = dgram.transport, more.transport
            if nxt.seq != u32(tcp.seq + len(dgram.payload)) or not more.payload:
                self.frames.appendleft(captured)
                break
            # As in packetdrill, the last segment's header (with the first's seq)
            # stands for the joined one: its flags, ack and window are the newest.
            dgram = replace(more, payload=dgram.payload + more.payload,
                            transport=replace(nxt, seq=tcp.seq))
        return dgram

    def _learn_from_kernel(self, conn: Connection, dgram: wire.Datagram, expected: s.TcpSegment) -> None:
        tcp = dgram.transport
        if tcp.flags & wire.ACK:
            conn.last_kernel_ack = tcp.ack
        if tcp.flags & wire.RST:
            conn.reset = True
        script_ts, live_ts = _timestamp(expected.options or ()), _timestamp(tcp.options)
        if script_ts is not None and live_ts is not None:
            conn.seqmap.ts_vals[script_ts.val] = live_ts.val

    # ------------------------------------------------------------ ownership

    def _decode(self, captured: Captured, tcp_only: bool = True) -> wire.Datagram | None:
        try:
            dgram = wire.decode(captured.frame)
        except wire.DecodeError:
            return None
        if tcp_only and not isinstance(dgram.transport, wire.TcpHeader):
            return None  # neighbour discovery, MLD and the like
        return dgram

    # ----------------------------------------------------- inbound segments

    def _inject(self, event: s.Event) -> Generator[Request, Response, None]:
        packet = event.action
        assert isinstance(packet, s.Packet)
        body = packet.body
        scheduled, _ = self._scheduled(event, inbound=True)
        # Built before the wait, so that it leaves the moment it is due.
        gso_size = 0
        conn = None
        try:
            if isinstance(body, s.TcpSegment):
                conn = self.table.for_inbound(body)
                frame = self.frames_in.tcp(event.loc, packet, body, conn)
                gso_size = self.frames_in.gso_size(body)
            elif isinstance(body, s.IcmpMessage):
                frame = self.frames_in.icmp(packet, body, self.plan.icmp_numbers[self.position],
                                            self.table.current)
            else:
                frame = self.frames_in.udp(packet, body)
        except wire.EncodeError as err:
            raise RunFailure(event.loc, f"cannot build this packet: {err}{_undefined_hint(body)}") from None
        yield from self._sleep_until(event, scheduled)
        done = yield Inject(frame, gso_size)
        self.recorder.event(event, scheduled, done.at)
        self.recorder.inbound(done.at, event.loc.line, packet, conn.ports if conn else None)
        self._own_event_done(event, "inbound packet", lambda: render_packet(packet), scheduled, done)
        self._happened(scheduled, done.at, inbound=True)

    # -------------------------------------------- calls, commands and code

    def _syscall(self, event: s.Event) -> Generator[Request, Response, None]:
        call = event.action
        assert isinstance(call, s.Syscall)
        scheduled, anchor = self._scheduled(event, inbound=False)
        if self.inflight is not None:
            yield from self._finish_inflight(must_return=True)
        yield from self._sleep_until(event, scheduled)
        blocking = call.end_usecs is not None
        if call.name == "socket":
            self.table.current = None  # a new socket under test: the next inbound SYN opens a new connection
        done = yield StartCall(call, event.loc, blocking)
        self.recorder.event(event, scheduled, done.at, done.returned_at, done.result)
        self._own_event_done(event, "system call", lambda: render_syscall(call), scheduled, done)
        if blocking:
            base = 0 if isinstance(event.time, s.AbsoluteTime) else anchor
            expected_end = base + call.end_usecs
            tolerance = self.options.tolerance_usecs_for(expected_end - scheduled)
            self.inflight = _InFlight(event, expected_end, tolerance)
            if done.returned_at is not None:
                self._check_return(done.returned_at)
        self._happened(scheduled, done.at, inbound=False)

    def _collect_returned_call(self) -> Generator[Request, Response, None]:
        if self.inflight is not None:
            yield from self._finish_inflight(must_return=False)

    def _finish_inflight(self, must_return: bool) -> Generator[Request, Response, None]:
        flight = self.inflight
        assert flight is not None
        until = flight.expected_end + flight.tolerance if must_return else 0
        response = yield AwaitCall(until)
        if isinstance(response, Done) and response.returned_at is not None:
            self.recorder.returned(flight.event, response.returned_at, response.result)
            self._check_return(response.returned_at)
        elif must_return:
            call = flight.event.action
            raise RunFailure(flight.event.loc, f"blocking {call.name} call did not return by "
                                               f"{_sec(until)} sec (expected at "
                                               f"{_sec(flight.expected_end)} sec)")

    def _check_return(self, returned_at: int) -> None:
        flight = self.inflight
        assert flight is not None
        self.inflight = None
        if abs(returned_at - flight.expected_end) > flight.tolerance:
            call = flight.event.action
            message = (f"timing error: expected {call.name} call to return at {_sec(flight.expected_end)} "
                       f"sec but happened at {_sec(returned_at)} sec; tolerance {_sec(flight.tolerance)} sec")
            raise RunFailure(flight.event.loc, message)

    def _timed_run(self, event: s.Event, request: Request, what: str) -> Generator[Request, Response, None]:
        scheduled, _ = self._scheduled(event, inbound=False)
        yield from self._sleep_until(event, scheduled)
        done = yield request
        self.recorder.event(event, scheduled, done.at, done.returned_at)
        if done.output:
            self.warnings.append(f"{event.loc}: command printed:\n{done.output}")
        self._own_event_done(event, what, lambda: f"{what} at line {event.loc.line}", scheduled, done)
        # A command can take many milliseconds (a fork and exec at least); what
        # follows it counts from when it finished, or every `+0` after it would be late.
        self._happened(scheduled, done.returned_at if done.returned_at is not None else done.at,
                       inbound=False)

    # ------------------------------------------------------------ the end

    def _reset_open_connections(self) -> Generator[Request, Response, None]:
        """Leave no connection for the kernel to retransmit on, as packetdrill."""
        for conn in self.table.still_open():
            done = yield Inject(self.frames_in.reset(conn))
            seq = conn.seqmap.remote_to_script(conn.last_kernel_ack, False)
            self.recorder.inbound(done.at, None, s.Packet("<", s.TcpSegment("R", seq, seq, 0, window=0)),
                                  conn.ports)
