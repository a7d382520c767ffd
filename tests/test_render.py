"""The renderer writes packetdrill's canonical text, and reading it back
gives the same tree (locations aside): for the whole corpus, for a script
using every construct, and for generated segments and strings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptest.parser import parse_script
from tcptest.render import render, render_event, render_expr, render_packet, render_script, render_time, seconds
from tcptest.script import (
    AbsoluteTime,
    AccEcn,
    AnyTime,
    BitOr,
    Call,
    Code,
    Command,
    EllipsisExpr,
    Eol,
    Event,
    FastOpen,
    Field,
    IcmpMessage,
    Integer,
    IpInfo,
    ListExpr,
    Md5,
    Mss,
    Nop,
    OptionLine,
    OuterHeader,
    Packet,
    RelativeTime,
    Sack,
    SackPermitted,
    String,
    Struct,
    Symbol,
    Syscall,
    TcpSegment,
    TimeRange,
    Timestamp,
    UdpDatagram,
    UntimedCommand,
    WindowScale,
)
from tcptest.source import Location

CORPUS = Path(__file__).parents[1].parent / "shared/corpus/kselftest"
SCRIPTS = sorted(CORPUS.glob("*.pkt"))
KERNEL_DEFINES = {
    "TFO_COOKIE": "3021b9d889017eeb",
    "TFO_COOKIE_ZERO": "b7c12350a90dc8f5",
    "CMSG_LEVEL_IP": "SOL_IP",
    "CMSG_TYPE_RECVERR": "IP_RECVERR",
}
NOWHERE = Location("", 0, 0)


def without_locations(node):
    """The tree with every Location replaced by one placeholder."""
    if isinstance(node, Location):
        return NOWHERE
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return type(node)(**{f.name: without_locations(getattr(node, f.name)) for f in dataclasses.fields(node)})
    if isinstance(node, tuple):
        return tuple(without_locations(item) for item in node)
    return node


def round_trip(script):
    text = render_script(script)
    again = parse_script(text, script.path)
    assert without_locations(again) == without_locations(script), text
    assert render_script(again) == text
    return text


# ------------------------------------------------------------ packets


SYN_ACK = TcpSegment(
    flags="S.", seq_start=0, seq_end=0, length=0, ack=1, window=65535,
    options=(Mss(1460), Nop(), Nop(), SackPermitted(), Nop(), WindowScale(8)),
)


@pytest.mark.parametrize(
    "packet, text",
    [
        (Packet(">", SYN_ACK), "> S. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK,nop,wscale 8>"),
        (Packet("<", TcpSegment("P.", 1, 1001, 1000, ack=1, window=257)), "< P. 1:1001(1000) ack 1 win 257"),
        (Packet(">", TcpSegment("", 1, 1, 0, ack=1)), "> - 1:1(0) ack 1"),
        (Packet(">", TcpSegment(".", 1, 1, 0, ack=1, ace=5)), "> .5 1:1(0) ack 1"),
        (Packet(">", TcpSegment("F.", 1, 1, 0, ace=0)), "> F.0 1:1(0)"),
        (Packet(">", TcpSegment("PU.", 5001, 5002, 1, ack=1, urg=1)), "> PU. 5001:5002(1) ack 1 urg 1"),
        (Packet(">", TcpSegment("S.", 0, 0, 0, ack=1, options=None)), "> S. 0:0(0) ack 1 <...>"),
        (
            Packet(">", TcpSegment("WA.", 1, 1, 0, ack=1, options=(
                AccEcn((("e1b", 1), ("ceb", 0), ("e0b", 1))), Nop(), Sack(((1001, 2001), (3001, 4001))),
                Timestamp(5, 6), FastOpen("aabb"), FastOpen("", experimental=True), Md5("00" * 16), Eol())),
                ip=IpInfo(ecn="ect0")),
            "> [ect0] WA. 1:1(0) ack 1 <ECN e1b 1 ceb 0 e0b 1,nop,sack 1001:2001 3001:4001,TS val 5 ecr 6,"
            "FO aabb,FOEXP,md5 " + "00" * 16 + ",eol>",
        ),
        (Packet("<", TcpSegment("S", 0, 0, 0, window=1, src_port=5555, dst_port=8080),
                ip=IpInfo(tos=4, ttl=64, flowlabel=0x12345)),
         "< (tos 0x04) (ttl 64) (flowlabel 0x12345) 5555>8080 S 0:0(0) win 1"),
        (Packet("<", UdpDatagram(100)), "< udp (100)"),
        (Packet("<", UdpDatagram(100, src_port=53, dst_port=4000)), "< 53>4000 udp (100)"),
        (Packet("<", IcmpMessage("unreachable", "frag_needed", mtu=800, quoted=(0, 1000, 1000))),
         "< icmp unreachable frag_needed mtu 800 [0:1000(1000)]"),
        (Packet("<", IcmpMessage("time_exceeded")), "< icmp time_exceeded"),
        (Packet("<", TcpSegment(".", 1, 1, 0, window=1), outer=(OuterHeader("ipv4", "192.0.2.1 > 192.168.0.1"),
                                                             OuterHeader("gre", ""))),
         "< ipv4 192.0.2.1 > 192.168.0.1: gre: . 1:1(0) win 1"),
    ],
)
def test_render_packet(packet, text):
    assert render_packet(packet) == text
    assert render(packet) == text
    event = parse_script(f"0 `a`\n+0 {text}\n", "r.pkt").events[1]
    assert event.action == packet


# ---------------------------------------------------------- times, calls


@pytest.mark.parametrize(
    "usecs, text",
    [(0, "0"), (1, "0.000001"), (100_000, "0.1"), (1_500_000, "1.5"), (2_000_000, "2"), (-250_000, "-0.25")],
)
def test_seconds(usecs, text):
    assert seconds(usecs) == text


@pytest.mark.parametrize(
    "time, text",
    [
        (AbsoluteTime(100_000), "0.1"),
        (RelativeTime(0), "+0"),
        (AnyTime(), "*"),
        (TimeRange(0, 40_000, relative=True), "+0~+0.04"),
        (TimeRange(100_000, 200_000, relative=False), "0.1~0.2"),
    ],
)
def test_render_time(time, text):
    assert render_time(time) == text
    assert render(time) == text


def test_render_events():
    here = Location("r.pkt", 1)
    blocking = Syscall("read", (Integer(4), EllipsisExpr(), Integer(10)), Integer(-1), "EAGAIN", "Resource busy", 300_000)
    assert render_event(Event(here, RelativeTime(100_000), blocking)) == (
        "+0.1...0.3 read(4, ..., 10) = -1 EAGAIN (Resource busy)"
    )
    assert render_event(Event(here, AbsoluteTime(0), Command("echo hi"))) == "0 `echo hi`"
    assert render_event(Event(here, RelativeTime(0), Code("\nassert x\n"))) == "+0 %{\nassert x\n}%"
    assert render(Syscall("fcntl", (Integer(3), Symbol("F_GETFL")), Integer(2, hex=True), note="flags O_RDWR")) == (
        "fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)"
    )


@pytest.mark.parametrize(
    "expr, text",
    [
        (EllipsisExpr(), "..."),
        (Integer(-1), "-1"),
        (Integer(255, hex=True), "0xff"),
        (Symbol("NULL"), "NULL"),
        (String('a"b\\c\n\t\r'), r'"a\"b\\c\n\t\r"'),
        (String("\xa1\x00z"), r'"\xa1\x00z"'),
        (String("\x01a"), r'"\001a"'),  # \x01a would read as one escape in C
        (BitOr((Symbol("A"), Symbol("B"))), "A|B"),
        (ListExpr((Integer(1), ListExpr(()))), "[1, []]"),
        (Call("htons", (Integer(8080),)), "htons(8080)"),
        (Struct((Field("iov_base", EllipsisExpr()), Field("iov_len", Integer(10)))), "{..., 10}"),
        (Struct((Field("msg_iov", ListExpr(()), Integer(1)), Field("msg_flags", Integer(0)))), "{msg_iov(1)=[], msg_flags=0}"),
        (Struct(()), "{}"),
    ],
)
def test_render_expr(expr, text):
    assert render_expr(expr) == text
    assert parse_script(f"0 f({text}) = 0\n", "r.pkt").events[0].action.args == (expr,)


def test_render_other_nodes():
    assert render(OptionLine(NOWHERE, "mss", "1000")) == "--mss=1000"
    assert render(OptionLine(NOWHERE, "send_omit_free", None)) == "--send_omit_free"
    assert render(UntimedCommand(NOWHERE, Command("./defaults.sh"))) == "`./defaults.sh`"
    assert render(IpInfo(ecn="ce")) == "[ce]"
    assert render(IpInfo()) == ""
    assert render(Mss(1460)) == "mss 1460"
    assert render(AccEcn(())) == "ECN"
    assert render(OuterHeader("mpls", "(label 1, tc 0, [S], ttl 255)")) == "mpls (label 1, tc 0, [S], ttl 255):"
    assert render(Field("fd", Integer(3))) == "fd=3"
    with pytest.raises(TypeError):
        render(object())


# --------------------------------------------------------- round trips

EVERYTHING = """--tolerance_usecs=10000
--define=X="a b"
--send_omit_free
`./defaults.sh
# comment
`
0 socket(..., SOCK_STREAM|SOCK_NONBLOCK, IPPROTO_TCP) = 3
+0...0.25 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0
+0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8>
+.1 < [ect0] (ttl 9) S. 0:0(0) ack 1 win 65535 <mss 1000,FO 0102030405060708,nop,nop,md5 000102030405060708090a0b0c0d0e0f,nop,nop>
* > P.6 1:1(0) ack 1 <...>
+0~+.04 > [ect01] F5. 1:1(0) ack 1
0.2~0.3 > - 1:1(0) urg 0
+0 < 80>8080 . 1:1(0) ack 1 win 1 <ECN e0b 1 ceb 2 e1b 3,nop,nop,nop,sack 1:2>
+0 < udp (10)
+0 < icmp unreachable port_unreachable mtu 1200 [1:11(10)]
+0 < ipv6 2001:db8::1 > 2001:db8::2: gre key 0x2: mpls (label 1, [S], ttl 1): . 1:1(0) win 1
+0 sendmsg(3, {msg_name(...)=..., msg_iov(2)=[{..., 10}, {..., 0}], msg_flags=0, msg_control=[{cmsg_level=SOL_IP, cmsg_type=IP_TOS, cmsg_data=4}]}, 0) = 10
+0 setsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, "\\xa1\\xa1" "\\x00A\\n", 5) = -1 (Invalid Argument)
+0 poll([{fd=3, events=POLLIN, revents=POLLOUT}], 1, 0) = 1
+0 f(X, -1, 0x1F, [1, 2], []) = -1 EAGAIN
+0 %{ assert tcpi_state == TCP_CLOSE, tcpi_state }%
1 `echo done`
`/tmp/sysctl_restore_${PPID}.sh`
"""


def test_round_trip_of_every_construct():
    text = round_trip(parse_script(EVERYTHING, "everything.pkt"))
    assert "+0.1 < [ect0] (ttl 9) S. 0:0(0) ack 1 win 65535" in text
    assert 'f("a b", -1, 0x1f, [1, 2], [])' in text
    assert '"\\xa1\\xa1\\000A\\n"' in text


@pytest.mark.skipif(not SCRIPTS, reason=f"no corpus at {CORPUS}")
@pytest.mark.parametrize("defines", [KERNEL_DEFINES, None], ids=["kernel-defines", "no-defines"])
def test_round_trip_of_the_corpus(defines):
    for path in SCRIPTS:
        round_trip(parse_script(path.read_text(), str(path), defines))


# ------------------------------------------------------ generated trees

u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
options = st.one_of(
    st.just(Nop()), st.just(Eol()), st.builds(Mss, u16), st.builds(WindowScale, st.integers(0, 255)),
    st.just(SackPermitted()), st.builds(Sack, st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(tuple)),
    st.builds(Timestamp, u32, u32),
    st.builds(FastOpen, st.binary(max_size=16).map(bytes.hex), st.booleans()),
    st.builds(Md5, st.binary(min_size=16, max_size=16).map(bytes.hex)),
    st.builds(AccEcn, st.sampled_from([("e0b", "ceb", "e1b"), ("e1b", "ceb", "e0b")]).flatmap(
        lambda order: st.integers(0, 3).flatmap(
            lambda n: st.tuples(*(st.tuples(st.just(name), st.integers(0, 2**24 - 1)) for name in order[:n]))))),
)


@st.composite
def outbound_segments(draw):
    flags = "".join(c for c in "FSRPEWAU." if draw(st.booleans()))
    ace = None if set(flags) & set("EWA") else draw(st.none() | st.integers(0, 7))
    start, length = draw(u32), draw(u16)
    if start + length >= 2**32:
        start = 2**32 - 1 - length
    ports = draw(st.none() | st.tuples(u16, u16))
    return TcpSegment(
        flags=flags, seq_start=start, seq_end=start + length, length=length, ace=ace,
        ack=draw(st.none() | u32), window=draw(st.none() | u16), urg=draw(st.none() | u16),
        options=draw(st.none() | st.lists(options, max_size=6).map(tuple)),
        src_port=ports[0] if ports else None, dst_port=ports[1] if ports else None,
    )


@settings(max_examples=300, deadline=None)
@given(outbound_segments(), st.builds(IpInfo, st.none() | st.sampled_from(["ect0", "ect1", "ect01", "ce", "noecn"]),
                                      st.none(), st.none() | st.integers(0, 255), st.none() | st.integers(0, 2**20 - 1)))
def test_generated_segments_round_trip(segment, ip):
    packet = Packet(">", segment, ip)
    assert parse_script(f"0 `a`\n+0 {render_packet(packet)}\n", "g.pkt").events[1].action == packet


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_generated_strings_round_trip(data):
    string = String(data.decode("latin-1"))
    assert parse_script(f"0 f({render_expr(string)}) = 0\n", "g.pkt").events[0].action.args == (string,)
