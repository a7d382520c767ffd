"""The engine without a kernel: a fake answers its requests, playing the kernel
from a list of reactions, so seq/ack mapping, timing and matching are tested
without root."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field, replace

import pytest

from tcptest import engine as e
from tcptest import script as s
from tcptest import wire
from tcptest.errors import LateStart, RunFailure
from tcptest.options import RunOptions
from tcptest.parser import parse_script
from tcptest.plan import make_plan

LOCAL, REMOTE = "192.168.0.2", "192.0.2.1"
KERNEL_ISN = 1_000_000


def syn_ack(ack: int, options=(s.Mss(1460),), isn: int = KERNEL_ISN, port: int = 40000) -> bytes:
    return _kernel(wire.SYN | wire.ACK, isn, ack, options=options, port=port)


def _kernel(flags: int, seq: int, ack: int, payload: int = 0, options=(), window: int = 65535,
            port: int = 40000, local_port: int = 8080) -> bytes:
    ip = wire.IpHeader(version=4, src=LOCAL, dst=REMOTE)
    tcp = wire.TcpHeader(src_port=local_port, dst_port=port, seq=seq, ack=ack, flags=flags,
                         window=window, options=tuple(options))
    return wire.encode_tcp(ip, tcp, payload)


@dataclass
class FakeKernel:
    """Plays the kernel: `reactions` maps the index of an injected segment (or
    the name of a call) to the frames the kernel sends in answer, each after a
    delay in usecs."""

    reactions: dict = field(default_factory=dict)
    now: int = 0
    outbox: list = field(default_factory=list)  # (at, frame)
    injected: list = field(default_factory=list)  # decoded datagrams
    injected_at: list = field(default_factory=list)
    inject_cost: int = 0  # usecs an injection takes
    calls: list = field(default_factory=list)
    command_output: str = ""  # what every timed command prints
    own_delay: int = 0  # usecs late that the driver starts each of its own events
    call_cost: int = 0  # usecs a call that does not block takes in the kernel

    def _start_own_event(self) -> None:
        self.now += self.own_delay

    def _react(self, key) -> None:
        for delay, frame in self.reactions.get(key, ()):
            self.outbox.append((self.now + delay, frame))
        self.outbox.sort(key=lambda item: item[0])

    def answer(self, request):
        if isinstance(request, e.WaitFor):
            if self.outbox and (request.until is None or self.outbox[0][0] <= max(request.until, self.now)):
                at, frame = self.outbox.pop(0)
                self.now = max(self.now, at)
                return e.Captured(at, frame)
            if request.until is None:
                raise AssertionError("engine waits forever with nothing to come")
            self.now = max(self.now, request.until)
            return e.Elapsed(self.now)
        if isinstance(request, (e.Inject, e.StartCall, e.RunCommand, e.RunCode)):
            self._start_own_event()
        if isinstance(request, e.Inject):
            self.injected.append(wire.decode(request.frame))
            self.injected_at.append(self.now)
            at, self.now = self.now, self.now + self.inject_cost
            self._react(len(self.injected) - 1)
            return e.Done(at)
        if isinstance(request, e.StartCall):
            self.calls.append(request.call.name)
            self._react(request.call.name)
            at, self.now = self.now, self.now + self.call_cost
            return e.Done(at, ended=self.now)
        if isinstance(request, e.RunCommand):
            return e.Done(self.now, output=self.command_output)
        if isinstance(request, e.RunCode):
            return e.Done(self.now)
        if isinstance(request, e.AwaitCall):
            return e.Done(self.now, self.now)
        raise AssertionError(request)


def run(text: str, kernel: FakeKernel, **options) -> e.Outcome:
    script = parse_script(textwrap.dedent(text), "t.pkt")
    return e.drive(e.Engine(make_plan(script, replace(RunOptions(), **options))).run(), kernel.answer)


PASSIVE_OPEN = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.1 < . 1:1(0) ack 1 win 257
"""


def test_passive_open_maps_the_kernels_isn_into_inbound_acks():
    kernel = FakeKernel({0: [(50, syn_ack(1))]})
    run(PASSIVE_OPEN, kernel)
    syn, ack = kernel.injected[0], kernel.injected[1]
    assert (syn.transport.flags, syn.transport.seq, syn.transport.dst_port) == (wire.SYN, 0, 8080)
    assert ack.transport.ack == KERNEL_ISN + 1
    assert ack.transport.seq == 1
    assert ack.transport.src_port == syn.transport.src_port


def test_a_wrong_ack_fails_at_its_line_with_the_field_in_script_terms():
    kernel = FakeKernel({0: [(50, syn_ack(5))]})
    with pytest.raises(RunFailure) as failure:
        run(PASSIVE_OPEN, kernel)
    assert failure.value.loc.line == 5
    assert "live packet field tcp_ack_seq: expected: 1 (0x1) vs actual: 5 (0x5)" in failure.value.message
    assert "script packet: > S. 0:0(0) ack 1" in failure.value.detail
    assert "actual packet: > S. 0:0(0) ack 5" in failure.value.detail


def test_an_option_value_mismatch_names_the_option():
    kernel = FakeKernel({0: [(50, syn_ack(1, options=(s.Mss(1400),)))]})
    with pytest.raises(RunFailure, match=r"TCP option \(kind=2\): expected: mss 1460 actual: mss 1400"):
        run(PASSIVE_OPEN, kernel)


def test_a_late_segment_is_a_timing_error_with_both_times():
    kernel = FakeKernel({0: [(20_000, syn_ack(1))]})
    with pytest.raises(RunFailure, match=r"timing error: expected outbound packet at 0.000000 sec but "
                                         r"happened at 0.020000 sec; tolerance 0.004000 sec"):
        run(PASSIVE_OPEN, kernel)


def test_the_lateness_of_every_own_event_is_recorded():
    text = PASSIVE_OPEN + "+0 `true`\n+0 %{ pass }%\n"
    outcome = run(text, FakeKernel({0: [(50, syn_ack(1))]}, own_delay=300))
    assert [(late.line, late.kind) for late in outcome.lateness] == [
        (1, "system call"), (2, "system call"), (3, "system call"), (4, "inbound packet"),
        (6, "inbound packet"), (7, "command"), (8, "Python code")]
    assert all(late.usecs >= 300 for late in outcome.lateness)


def test_lateness_counts_from_the_end_of_the_call_before_when_that_ended_past_its_time():
    """Each call takes 2 ms: the call due at 0 after one is 2 ms late, none of
    it tcptest's own."""
    outcome = run(PASSIVE_OPEN, FakeKernel({0: [(50, syn_ack(1))]}, call_cost=2_000, own_delay=100))
    assert [(late.line, late.usecs) for late in outcome.lateness][:3] == [(1, 100), (2, 100), (3, 100)]


def test_an_own_event_late_past_the_tolerance_is_tcptests_lateness_not_a_kernel_timing_error():
    kernel = FakeKernel(own_delay=5_000)
    with pytest.raises(LateStart, match=r"^t.pkt:1: tcptest was late: the system call due at 0.000000 sec started at "
                                        r"0.005000 sec, 5.000 ms late \(tolerance 4.000 ms\); not the "
                                        r"kernel's doing") as failure:
        run(PASSIVE_OPEN, kernel)
    assert failure.value.loc.line == 1
    assert "timing error" not in str(failure.value)


def test_an_event_late_because_the_call_before_took_that_long_is_a_timing_error_naming_that_call():
    with pytest.raises(RunFailure, match=r"t.pkt:2: timing error: expected system call at 0.000000 sec but "
                                         r"happened at 0.005000 sec; tolerance 0.004000 sec: the system call "
                                         r"at line 1 before it took until 0.005000 sec") as failure:
        run(PASSIVE_OPEN, FakeKernel(call_cost=5_000))
    assert not isinstance(failure.value, LateStart)


def test_tolerance_grows_with_the_gap():
    script = PASSIVE_OPEN.replace("+0 > S.", "+1 > S.")
    kernel = FakeKernel({0: [(1_100_000, syn_ack(1))]})
    run(script, kernel)  # 100 ms late is within 12.5 % of 1 s
    kernel = FakeKernel({0: [(1_130_000, syn_ack(1))]})
    with pytest.raises(RunFailure, match="tolerance 0.125000 sec"):
        run(script, kernel)


def test_no_segment_times_out():
    with pytest.raises(RunFailure, match="Timed out waiting for packet") as failure:
        run(PASSIVE_OPEN, FakeKernel())
    assert failure.value.loc.line == 5


def test_an_unexpected_segment_during_a_wait_is_reported():
    text = PASSIVE_OPEN + "+0 accept(3, ..., ...) = 4\n+1 < P. 1:1001(1000) ack 1 win 257\n"
    stray = _kernel(wire.ACK | wire.PSH, KERNEL_ISN + 1, 1, payload=100)
    message = r"unexpected outbound packet at 0\.400050 sec, while waiting to run this line at 1\.100050 sec"
    kernel = FakeKernel({0: [(50, syn_ack(1))], 1: [(300_000, stray)]})
    with pytest.raises(RunFailure, match=message) as failure:
        run(text, kernel, unexpected="fail")
    assert failure.value.loc.line == 8
    assert "P. 1:101(100) ack 1" in failure.value.detail
    kernel = FakeKernel({0: [(50, syn_ack(1))], 1: [(300_000, stray)]})
    outcome = run(text, kernel)  # the default: a warning, as packetdrill's scripts run unchanged
    assert len(outcome.warnings) == 1 and re.search(message, outcome.warnings[0])
    assert outcome.warnings[0].startswith("t.pkt:8: ")
    kernel = FakeKernel({0: [(50, syn_ack(1))], 1: [(300_000, stray)]})
    assert run(text, kernel, unexpected="ignore").warnings == ()


def test_short_segments_are_joined_unless_strict():
    text = PASSIVE_OPEN + "+0 write(3, ..., 2000) = 2000\n+0 > P. 1:2001(2000) ack 1\n"
    first = _kernel(wire.ACK, KERNEL_ISN + 1, 1, payload=1000)
    second = _kernel(wire.ACK | wire.PSH, KERNEL_ISN + 1001, 1, payload=1000)
    kernel = FakeKernel({0: [(50, syn_ack(1))], "write": [(10, first), (20, second)]})
    run(text, kernel)
    kernel = FakeKernel({0: [(50, syn_ack(1))], "write": [(10, first), (20, second)]})
    with pytest.raises(RunFailure, match="expected 2000 bytes vs actual 1000 bytes"):
        run(text, kernel, strict_segments=True)


def test_inbound_ts_ecr_echoes_the_live_ts_val_of_the_line_it_names():
    text = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
    +0 < S 0:0(0) win 65535 <nop,nop,TS val 10 ecr 0>
    +0 > S. 0:0(0) ack 1 <nop,nop,TS val 700 ecr 10>
    +0 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 11 ecr 700>
    """
    live = syn_ack(1, options=(s.Nop(), s.Nop(), s.Timestamp(987654, 10)))
    kernel = FakeKernel({0: [(10, live)]})
    run(text, kernel)
    ts = [o for o in kernel.injected[1].transport.options if isinstance(o, s.Timestamp)]
    assert ts == [s.Timestamp(11, 987654)]


def test_active_open_learns_the_port_and_isn_from_the_kernels_syn():
    text = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
    +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
    +0 > S 0:0(0) <mss 1460>
    +.01 < S. 0:0(0) ack 1 win 5000 <mss 1000>
    +0 > . 1:1(0) ack 1
    """
    syn = _kernel(wire.SYN, 777, 0, options=(s.Mss(1460),), port=8080, local_port=51000)
    ack = _kernel(wire.ACK, 778, 1, port=8080, local_port=51000)
    kernel = FakeKernel({"connect": [(5, syn)], 0: [(40, ack)]})
    run(text, kernel)
    synack = kernel.injected[0].transport
    assert (synack.dst_port, synack.src_port, synack.ack) == (51000, 8080, 778)


def test_relative_inbound_runs_anchor_on_script_time():
    text = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
    +0 < S 0:0(0) win 65535
    +.1 < S 0:0(0) win 65535
    +.1 < S 0:0(0) win 65535
    """
    kernel = FakeKernel(inject_cost=300)
    run(text, kernel)
    assert kernel.injected_at == [0, 100_000, 200_000]  # the 300 usecs of each do not pile up
    kernel = FakeKernel(inject_cost=300)
    run(text.replace("+.1 < S 0:0(0) win 65535\n    +.1", "+.1 < S 0:0(0) win 65535\n    +0 listen(3, 1) = 0\n    +.1"), kernel)
    assert kernel.injected_at == [0, 100_000, 200_300]  # after a call, from when it happened


def test_non_fatal_packet_turns_a_mismatch_into_a_warning():
    kernel = FakeKernel({0: [(50, syn_ack(5))]})
    outcome = run(PASSIVE_OPEN, kernel, non_fatal=frozenset({"packet"}))
    assert any("tcp_ack_seq" in warning for warning in outcome.warnings)


TS_TICKS = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 < S 0:0(0) win 65535 <nop,nop,TS val 10 ecr 0>
+0 > S. 0:0(0) ack 1 <nop,nop,TS val 100 ecr 10>
+0 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 11 ecr 100>
+1 write(3, ..., 10) = 10
+0 > P. 1:11(10) ack 1 <nop,nop,TS val 1100 ecr 11>
"""


def _ts_run(later_live_val: int, **options):
    first = syn_ack(1, options=(s.Nop(), s.Nop(), s.Timestamp(5000, 10)))
    data = _kernel(wire.ACK | wire.PSH, KERNEL_ISN + 1, 1, payload=10,
                   options=(s.Nop(), s.Nop(), s.Timestamp(later_live_val, 11)))
    return run(TS_TICKS, FakeKernel({0: [(10, first)], "write": [(10, data)]}), **options)


def test_outbound_ts_val_moves_with_the_script_time_at_the_given_tick():
    _ts_run(6000, tcp_ts_tick_usecs=1000)  # 1000 ticks of 1 ms after the first, as written
    with pytest.raises(RunFailure, match=r"tcp_ts_val: expected: 1100 \(0x44c\) vs actual: 1300") as failure:
        _ts_run(6200, tcp_ts_tick_usecs=1000)
    assert failure.value.loc.line == 6
    assert "TS val 1300 ecr 11" in failure.value.detail  # the actual val, in the script's terms


def test_outbound_ts_val_is_not_checked_without_a_tick():
    _ts_run(6200)


def test_a_segment_after_the_last_line_that_no_line_expects_is_reported():
    text = PASSIVE_OPEN + "+0 accept(3, ..., ...) = 4\n+0 < P. 1:101(100) ack 1 win 257\n+0 read(4, ..., 100) = 100\n"
    ack = _kernel(wire.ACK, KERNEL_ISN + 1, 101)
    kernel = FakeKernel({0: [(50, syn_ack(1))], 2: [(0, ack)]})
    with pytest.raises(RunFailure, match=r"unexpected outbound packet at 0\.100\d+ sec, which no line") as failure:
        run(text, kernel, unexpected="fail")
    assert failure.value.loc.line == 9
    assert "> . 1:1(0) ack 101" in failure.value.detail


def test_what_a_timed_command_printed_is_a_warning_at_its_line():
    outcome = run("0 `tc qdisc add dev tun0 root fq`\n+0 `true`\n",
                  FakeKernel(command_output="Error: Specified qdisc kind is unknown."))
    assert outcome.warnings[0] == "t.pkt:1: command printed:\nError: Specified qdisc kind is unknown."
    assert len(outcome.warnings) == 2


def test_a_command_that_printed_nothing_leaves_no_warning():
    assert run("0 `true`\n", FakeKernel()).warnings == ()


@pytest.mark.parametrize("quote, seq", [("", KERNEL_ISN), (" [1:11(10)]", KERNEL_ISN + 1)])
def test_an_icmp_error_quotes_the_kernels_ports_and_seq_even_unwritten(quote, seq):
    kernel = FakeKernel({0: [(50, syn_ack(1))]})
    run(PASSIVE_OPEN.replace("+.1 < . 1:1(0) ack 1 win 257", f"+0 < icmp unreachable host_unreachable{quote}"),
        kernel)
    icmp = kernel.injected[1].transport
    original = wire.decode(icmp.quoted + bytes(40))  # the quote is cut short: pad it to decode
    assert (original.ip.src, original.ip.dst) == (LOCAL, REMOTE)
    assert (original.transport.src_port, original.transport.dst_port) == (8080, 40000)
    assert original.transport.seq == seq


# A connection in SYN_RECV that its lines name by ports, so that a SYN with a
# new ISN stays on it.
NAMED_SYN_RECV = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < 40000>8080 S 0:0(0) win 65535 <mss 1000>
+0 > 8080>40000 S. 0:0(0) ack 1 <mss 1460>
"""


def test_a_rst_with_seq_0_answering_a_segment_without_ack_is_written_as_0():
    # A SYN in the window of SYN_RECV, without ACK: the kernel's RST has seq
    # 0 and acknowledges it, whatever its ISN on the connection.
    text = NAMED_SYN_RECV + "+.1 < 40000>8080 S 100:100(0) win 65535\n+0 > 8080>40000 R. 0:0(0) ack 101\n"
    kernel = FakeKernel({0: [(50, syn_ack(1))], 1: [(50, _kernel(wire.RST | wire.ACK, 0, 101))]})
    run(text, kernel)


def test_a_rst_with_seq_0_is_still_compared():
    text = NAMED_SYN_RECV + "+.1 < 40000>8080 S 100:100(0) win 65535\n+0 > 8080>40000 R. 1:1(0) ack 101\n"
    kernel = FakeKernel({0: [(50, syn_ack(1))], 1: [(50, _kernel(wire.RST | wire.ACK, 0, 101))]})
    with pytest.raises(RunFailure) as failure:
        run(text, kernel)
    assert "live packet field tcp_seq: expected: 1 (0x1) vs actual: 0 (0x0)" in failure.value.message


def test_a_rst_with_the_seq_of_the_connection_keeps_its_relative_number():
    text = NAMED_SYN_RECV + "+.1 < 40000>8080 R. 5:5(0) ack 1 win 0\n+0 > 8080>40000 R. 1:1(0) ack 1\n"
    kernel = FakeKernel({0: [(50, syn_ack(1))], 1: [(50, _kernel(wire.RST | wire.ACK, KERNEL_ISN + 1, 1))]})
    run(text, kernel)
