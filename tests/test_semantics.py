"""The checks packetdrill makes while reading a script: for each, the message
and the line and column it points at."""

from __future__ import annotations

import pytest

from tcptest.errors import ScriptError
from tcptest.parser import parse_script

START = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"


def problem(line: str) -> ScriptError:
    """The error for `line`, written as line 2 after a valid first event."""
    with pytest.raises(ScriptError) as info:
        parse_script(START + line + "\n", "s.pkt")
    assert info.value.loc.path == "s.pkt"
    return info.value


# (line 2 of the script, column, exact message)
CHECKS = [
    # times and directions
    ("* close(3) = 0", 1, "event time <star> can only be used with outbound packets"),
    ("* < . 1:1(0) ack 1 win 1", 1, "event time <star> can only be used with outbound packets"),
    ("+0~+1 close(3) = 0", 1, "event time range can only be used with outbound packets"),
    ("  0~1 < . 1:1(0) ack 1 win 1", 3, "event time range can only be used with outbound packets"),
    ("+0 < S 0:0(0) win 1 <...>", 21, "<...> for TCP options can only be used with outbound packets"),
    ("+0 < [ect01] S 0:0(0) win 1", 7, "[ect01] can only be used with outbound packets"),
    ("+0 < (ttl 1, ect01) S 0:0(0) win 1", 14, "[ect01] can only be used with outbound packets"),
    ("+0 < S. 0:0(0) ack 1 <mss 1460>", 21, "inbound TCP segments need a window: add `win N`"),
    ("+0 < S 0:0(0)", 14, "inbound TCP segments need a window: add `win N`"),
    # sequence numbers and payload
    ("+0 > . 1:1001(100) ack 1", 10, "inconsistent TCP sequence numbers and payload size: 1 + 100 is not 1001"),
    ("+0 < icmp unreachable [0:10(9)]", 26, "inconsistent TCP sequence numbers and payload size: 0 + 9 is not 10"),
    # inbound options: 32-bit padding and 40 bytes at most
    ("+0 < S 0:0(0) win 1 <mss 1460,sackOK>", 21, "TCP options are 6 bytes, not a multiple of 4: pad them with nop"),
    ("+0 < . 1:1(0) ack 1 win 1 <sack 1:2 3:4 5:6 7:8,nop,nop,TS val 1 ecr 0>", 27,
     "TCP options are 46 bytes, more than the 40 that fit in a TCP header"),
    ("+0 < S 0:0(0) win 1 <FO 0011,nop,nop>", 21, "TCP options are 6 bytes, not a multiple of 4: pad them with nop"),
    # flags
    ("+0 > SX. 0:0(0)", 7, "unknown TCP flag 'X' (flags are FSRPEWAU., an ACE digit 0-7, or - for none)"),
    ("+0 > .56 1:1(0)", 8, "more than one ACE digit in TCP flags '.56'"),
    ("+0 > .8 1:1(0)", 7, "ACE digit must be 0 to 7, not 8"),
    ("+0 > E.5 1:1(0)", 6, "TCP flags 'E.5': the ACE digit stands for the E, W and A bits; write one or the other"),
    ("+0 > A5. 1:1(0)", 6, "TCP flags 'A5.': the ACE digit stands for the E, W and A bits; write one or the other"),
    # ranges
    ("+0 > . 4294967296:4294967296(0)", 8, "TCP start sequence number out of range: 4294967296 (must be 0 to 4294967295)"),
    ("+0 > . -1:0(1)", 8, "TCP start sequence number out of range: -1 (must be 0 to 4294967295)"),
    ("+0 > . 0:70000(70000)", 16, "TCP payload size out of range: 70000 (must be 0 to 65535)"),
    ("+0 > . 1:1(0) ack 4294967296", 19, "TCP ack sequence number out of range: 4294967296 (must be 0 to 4294967295)"),
    ("+0 < . 1:1(0) ack 1 win 65536", 25, "TCP window value out of range: 65536 (must be 0 to 65535)"),
    ("+0 > . 1:1(0) urg 65536", 19, "TCP urg_ptr value out of range: 65536 (must be 0 to 65535)"),
    ("+0 > S 0:0(0) <mss 65536>", 20, "mss value out of range: 65536 (must be 0 to 65535)"),
    ("+0 > S 0:0(0) <wscale 256>", 23, "wscale value out of range: 256 (must be 0 to 255)"),
    ("+0 > S 0:0(0) <TS val 4294967296 ecr 0>", 23, "TS val out of range: 4294967296 (must be 0 to 4294967295)"),
    ("+0 > S 0:0(0) <TS val 0 ecr -1>", 29, "TS ecr out of range: -1 (must be 0 to 4294967295)"),
    ("+0 > . 1:1(0) <sack 1:4294967296>", 23, "SACK block right edge out of range: 4294967296 (must be 0 to 4294967295)"),
    ("+0 > . 1:1(0) <ECN e0b 16777216>", 24, "AccECN e0b counter out of range: 16777216 (must be 0 to 16777215)"),
    ("+0 > 65536>80 S 0:0(0)", 6, "source port out of range: 65536 (must be 0 to 65535)"),
    ("+0 > (tos 0x100) S 0:0(0)", 11, "tos out of range: 0x100 (must be 0 to 255)"),
    ("+0 > (ttl 256) S 0:0(0)", 11, "ttl out of range: 256 (must be 0 to 255)"),
    ("+0 > (flowlabel 0x100000) S 0:0(0)", 17, "flow label out of range: 0x100000 (must be 0 to 1048575)"),
    ("+0 < udp (65536)", 11, "UDP payload size out of range: 65536 (must be 0 to 65535)"),
    ("+0 < icmp packet_too_big mtu 4294967296", 30, "ICMP mtu out of range: 4294967296 (must be 0 to 4294967295)"),
    # options' contents
    ("+0 > S 0:0(0) <FO 123>", 19, "FO cookie must be whole bytes: an even number of hex digits, not 3"),
    ("+0 > S 0:0(0) <FOEXP " + "00" * 37 + ">", 22, "FOEXP cookie is 37 bytes, more than 36"),
    ("+0 > S 0:0(0) <FO " + "00" * 39 + ">", 19, "FO cookie is 39 bytes, more than 38"),
    ("+0 > S 0:0(0) <md5 0011>", 20, "md5 signature must be 16 bytes in hex (32 digits), not '0011'"),
    ("+0 > . 1:1(0) <ECN ceb 1 e0b 1>", 20, "AccECN option counters go in the order e0b ceb e1b or e1b ceb e0b"),
    ("+0 > . 1:1(0) <ECN e0b 1 e1b 1>", 20, "AccECN option counters go in the order e0b ceb e1b or e1b ceb e0b"),
    # IP fields
    ("+0 > [ect0] [ce] S 0:0(0)", 14, "IP ECN codepoint written twice"),
    ("+0 > (ttl 1, ttl 2) S 0:0(0)", 14, "IP ttl written twice"),
    ("+0 > [ect0] (tos 0x4) S 0:0(0)", 14, "write either an ECN codepoint or a tos, not both"),
    # ICMP
    ("+0 < icmp unreachble", 11, "unknown ICMP type 'unreachble' (known: address_mask_reply, address_mask_request, "
     "echo_reply, echo_request, information_reply, information_request, packet_too_big, parameter_problem, "
     "redirect, source_quench, time_exceeded, timestamp_reply, timestamp_request, unreachable, or type_N)"),
    ("+0 < icmp packet_too_big frag_needed", 26, "unknown ICMP code 'frag_needed' for type 'packet_too_big' (only code_N)"),
    ("+0 < icmp time_exceeded ttl_exceeded", 25, "unknown ICMP code 'ttl_exceeded' for type 'time_exceeded' "
     "(known: exceeded_frag_time, exceeded_hop_limit, or code_N)"),
    ("+0 < 80>90 icmp unreachable", 6, "ports are written for TCP and UDP packets, not ICMP"),
    # times
    ("-1 close(3) = 0", 1, "negative time"),
    ("+-.5 close(3) = 0", 2, "negative time"),
    ("+0x10 close(3) = 0", 2, "a time is written in decimal seconds, not 0x10"),
    ("+2~+1 > . 1:1(0)", 5, "time range is backwards: 1 is before 2"),
    ("+0.5...0.2 read(3, ..., 1) = 1", 8, "blocking call ends at 0.2 before it starts"),
    # expressions
    ("+0 f({1, 2, 3}) = 0", 6, "struct fields are written name=value; only an iovec is written by position, {base, len}"),
    ("+0 f({a=1, 2}) = 0", 6, "struct fields are written name=value; only an iovec is written by position, {base, len}"),
    ("+0 f({msg_iov(1, 2)=[]}) = 0", 7, "msg_iov(...) takes one value in the parentheses"),
    ('+0 f("\\q") = 0', 7, "unknown escape \\q in string"),
    ('+0 f("\\x") = 0', 7, "\\x in a string needs hex digits"),
    ('+0 f("\\777") = 0', 7, "octal escape \\777 is more than a byte"),
    ("+0 f(" + "9" * 5000 + ") = 0", 6, "number too long: 99999999999999999999..."),
]


@pytest.mark.parametrize("line, col, message", CHECKS, ids=[c[2][:60] for c in CHECKS])
def test_check(line, col, message):
    error = problem(line)
    assert error.message == message
    assert (error.loc.line, error.loc.col) == (2, col)
    assert error.source_line == line


def test_outbound_segments_may_use_outbound_only_forms():
    script = parse_script(
        START
        + "* > S. 0:0(0) ack 1 <...>\n"
        + "+0~+.1 > [ect01] . 1:1(0) ack 1\n"
        + "1~2 > . 1:1(0) ack 1 <mss 1460,sackOK>\n",  # no padding rule outbound, no win needed
        "s.pkt",
    )
    assert len(script.events) == 4


def test_first_event_must_be_at_zero():
    for text, col in (("+0.1 close(3) = 0\n", 1), ("  1 close(3) = 0\n", 3), ("* > . 1:1(0)\n", 1)):
        with pytest.raises(ScriptError) as info:
            parse_script(text, "s.pkt")
        assert info.value.message == "the first event must be at time 0"
        assert (info.value.loc.line, info.value.loc.col) == (1, col)
    for first in ("0", "+0", "0.000", "0...1"):
        parse_script(f"{first} close(3) = 0\n", "s.pkt")


@pytest.mark.parametrize(
    "events, line, message",
    [
        ("0 `a`\n1 `b`\n0.5 `c`\n", 3, "time goes backwards: 0.5 is before the previous event at 1"),
        ("0 `a`\n+1 `b`\n+0.5 `c`\n1.4 `d`\n", 4, "time goes backwards: 1.4 is before the previous event at 1.5"),
        ("0 `a`\n+1~+2 > . 1:1(0)\n0.5~3 > . 1:1(0)\n", 3, "time goes backwards: 0.5 is before the previous event at 1"),
    ],
)
def test_absolute_times_never_go_backwards(events, line, message):
    with pytest.raises(ScriptError) as info:
        parse_script(events, "s.pkt")
    assert info.value.message == message
    assert (info.value.loc.line, info.value.loc.col) == (line, 1)


def test_equal_absolute_times_and_any_time_are_fine():
    parse_script("0 `a`\n0 `b`\n1 `c`\n* > . 1:1(0)\n1 `d`\n", "s.pkt")


def test_define_option_needs_a_value():
    with pytest.raises(ScriptError) as info:
        parse_script("--define=X\n0 `a`\n", "s.pkt")
    assert info.value.message == "--define needs NAME=VALUE, not 'X'"
    assert (info.value.loc.line, info.value.loc.col) == (1, 1)
