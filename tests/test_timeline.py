"""The timeline the engine records: every event, segment and state of a run,
in order, in script terms. Driven by the fake kernel of test_engine (no root)."""

from __future__ import annotations

import json
import pickle
import textwrap
from dataclasses import replace

import pytest

from test_engine import FakeKernel, _kernel, syn_ack, KERNEL_ISN
from tcptest.plan import make_plan
from tcptest import engine as e
from tcptest import timeline as tl
from tcptest import wire
from tcptest.errors import RunFailure
from tcptest.options import RunOptions
from tcptest.parser import parse_script

SCRIPT = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.1 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
+0 close(4) = 0
+0 > F. 1:1(0) ack 1
+0 < F. 1:1(0) ack 2 win 257
+0 > . 2:2(0) ack 2
"""


class ResultKernel(FakeKernel):
    """Answers calls with what they returned, as the driver does."""

    def answer(self, request):
        done = super().answer(request)
        if isinstance(request, e.StartCall):
            return replace(done, result=(4 if request.call.name == "accept" else 0, 0))
        return done


def record(text: str, kernel: FakeKernel, **options) -> tuple[tl.Timeline, RunFailure | None]:
    """Run the engine against the fake and take its timeline, as the runner does."""
    script = parse_script(textwrap.dedent(text), "t.pkt")
    engine = e.Engine(make_plan(script, replace(RunOptions(), **options)))
    try:
        return e.drive(engine.run(), kernel.answer).timeline, None
    except RunFailure as failure:
        return engine.recorder.finish(failure), failure


def close_reactions(ack_of_fin: int) -> dict:
    fin = _kernel(wire.FIN | wire.ACK, KERNEL_ISN + 1, 1)
    last_ack = _kernel(wire.ACK, KERNEL_ISN + 2, ack_of_fin)
    return {0: [(50, syn_ack(1))], "close": [(30, fin)], 2: [(40, last_ack)]}


def test_a_passing_run_records_every_event_and_segment_in_order():
    timeline, failure = record(SCRIPT, ResultKernel(close_reactions(ack_of_fin=2)))
    assert failure is None
    events = timeline.of_type(tl.ScriptEvent)
    assert [(ev.line, ev.kind) for ev in events] == [
        (1, "call"), (2, "call"), (3, "call"), (4, "inject"), (5, "expect"), (6, "inject"),
        (7, "call"), (8, "call"), (9, "expect"), (10, "inject"), (11, "expect")]
    assert events[6].result == "4" and events[6].text == "+0 accept(3, ..., ...) = 4"
    assert (events[5].scheduled, events[5].at) == (100_050, 100_050)  # +.1 after the SYN-ACK at 50 us
    wires = timeline.of_type(tl.WireSegment)
    assert [(w.segment.text, w.line, w.status) for w in wires] == [
        ("< S 0:0(0) win 65535 <mss 1000>", 4, "sent"),
        ("> S. 0:0(0) ack 1 win 65535 <mss 1460>", 5, "matched"),
        ("< . 1:1(0) ack 1 win 257", 6, "sent"),
        ("> F. 1:1(0) ack 1 win 65535", 9, "matched"),
        ("< F. 1:1(0) ack 2 win 257", 10, "sent"),
        ("> . 2:2(0) ack 2 win 65535", 11, "matched"),
        ("< R 2:2(0) win 0", None, "cleanup"),  # tcptest ends what the script left open
    ]
    assert wires[1].segment.connection == (8080, 40000) and wires[1].segment.options == "<mss 1460>"
    times = [entry.at for entry in timeline.entries]
    assert times == sorted(times)


def test_states_follow_the_handshake_and_the_close_on_both_sides():
    timeline, _ = record(SCRIPT, ResultKernel(close_reactions(ack_of_fin=2)))
    states = [(st.side, st.state) for st in timeline.of_type(tl.StateChange)]
    assert states == [
        ("peer", "SYN_SENT"), ("kernel", "SYN_RECV"), ("peer", "ESTABLISHED"),
        ("kernel", "ESTABLISHED"), ("kernel", "FIN_WAIT_1"), ("peer", "CLOSE_WAIT"),
        ("peer", "LAST_ACK"), ("kernel", "TIME_WAIT"), ("peer", "CLOSED"), ("kernel", "CLOSED")]
    # each state right after the segment that caused it
    entries = list(timeline.entries)
    fin = next(i for i, x in enumerate(entries) if isinstance(x, tl.WireSegment) and x.line == 9)
    assert entries[fin + 1] == tl.StateChange(entries[fin].at, "kernel", (8080, 40000), "FIN_WAIT_1")
    assert "derived" in timeline.states_source


def wire_segment(at: int, text: str, ack: int | None = None) -> tl.WireSegment:
    direction, flags, numbers = text.split()[:3]
    start = int(numbers.split(":")[0])
    return tl.WireSegment(at, tl.Segment(direction, text, (8080, 40000), flags, start, start, 0, ack))


def test_a_fin_that_does_not_ack_ours_is_a_simultaneous_close_for_the_kernel():
    handshake = [wire_segment(0, "< S 0:0(0)"), wire_segment(1, "> S. 0:0(0) ack 1", 1),
                 wire_segment(2, "< . 1:1(0) ack 1", 1)]
    close = [wire_segment(10, "> F. 1:1(0) ack 1", 1), wire_segment(11, "< F. 1:1(0) ack 1", 1),
             wire_segment(12, "> . 2:2(0) ack 2", 2), wire_segment(13, "< . 2:2(0) ack 2", 2)]
    states = [(st.at, st.side, st.state) for st in tl.with_states(handshake + close)
              if isinstance(st, tl.StateChange)]
    assert states == [
        (0, "peer", "SYN_SENT"), (1, "kernel", "SYN_RECV"), (1, "peer", "ESTABLISHED"),
        (2, "kernel", "ESTABLISHED"), (10, "kernel", "FIN_WAIT_1"),
        # the peer had the kernel's FIN before it sent its own: a passive close on its side
        (10, "peer", "CLOSE_WAIT"), (11, "peer", "LAST_ACK"), (11, "kernel", "CLOSING"),
        (12, "peer", "CLOSED"), (13, "kernel", "TIME_WAIT")]


def test_a_mismatch_is_the_failure_with_expected_and_actual_in_script_terms():
    timeline, failure = record(SCRIPT, ResultKernel(close_reactions(ack_of_fin=1)))
    assert failure is not None and failure.loc.line == 11
    mismatch = timeline.of_type(tl.WireSegment)[-1]
    assert (mismatch.line, mismatch.status) == (11, "mismatched")
    assert mismatch.expected == "> . 2:2(0) ack 2"
    assert mismatch.segment.text == "> . 2:2(0) ack 1 win 65535"
    assert mismatch.problems[0] == "live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)"
    end = timeline.entries[-1]
    assert end == timeline.failure
    assert (end.line, end.text) == (11, "+0 > . 2:2(0) ack 2")
    assert (end.expected, end.actual) == ("> . 2:2(0) ack 2", "> . 2:2(0) ack 1 win 65535")


def test_a_segment_no_line_expects_is_recorded_as_unexpected():
    text = SCRIPT.splitlines(keepends=True)
    stray = _kernel(wire.ACK, KERNEL_ISN + 1, 1, payload=10)
    reactions = {**close_reactions(ack_of_fin=2), 1: [(20_000, stray)]}
    timeline, _ = record("".join(text[:6]) + "+.2 accept(3, ..., ...) = 4\n", ResultKernel(reactions))
    [unexpected] = [w for w in timeline.of_type(tl.WireSegment) if w.unexpected]
    assert (unexpected.status, unexpected.segment.text) == ("unexpected", "> . 1:11(10) ack 1 win 65535")
    assert unexpected.at == 100_050 + 20_000


def test_a_failure_the_host_raises_names_the_line_that_was_running():
    script = parse_script("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, ..., ...) = 0\n", "t.pkt")
    engine = e.Engine(make_plan(script, RunOptions()))
    steps = engine.run()
    next(steps)  # WaitFor 0
    steps.send(e.Elapsed(0))
    steps.send(e.Done(0, result=(3, 0)))
    steps.send(e.Elapsed(5))  # connect() starts: the host raises instead of answering
    timeline = engine.recorder.finish(RunFailure(script.events[1].loc, "runtime error in connect call: "
                                                 "Expected result 0 but got -1 with errno 111"))
    assert timeline.failure.text == "+0 connect(3, ..., ...) = 0"
    assert timeline.failure.expected == "+0 connect(3, ..., ...) = 0"
    assert "errno 111" in timeline.failure.actual


def test_the_timeline_survives_json_and_pickle():
    timeline, _ = record(SCRIPT, ResultKernel(close_reactions(ack_of_fin=1)))
    again = tl.from_dict(json.loads(json.dumps(tl.to_dict(timeline))))
    assert again == timeline
    assert pickle.loads(pickle.dumps(timeline)) == timeline


def test_reading_something_else_says_what():
    with pytest.raises(ValueError, match="not a timeline object: 'Verdict'"):
        tl.from_dict({"type": "Verdict"})


def test_call_results_read_as_the_script_writes_them():
    assert tl.call_result(0, 0) == "0"
    assert tl.call_result(-1, 111) == "-1 ECONNREFUSED"
