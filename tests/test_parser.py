"""What each construct of the language reads as: lines in, trees out.

Each table row is a representative line of the corpus or of packetdrill's
documentation and the exact node it must produce. Syntax errors are checked
for their position (the real culprit) and their wording.
"""

from __future__ import annotations

import pytest

from tcptest.errors import ScriptError
from tcptest.parser import parse_script
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

PATH = "t.pkt"


def parse(text: str, defines=None):
    return parse_script(text, PATH, defines)


def second_event(line: str, defines=None) -> Event:
    """`line` as the second event of a script, after `0 `true``."""
    return parse(f"0 `true`\n{line}\n", defines).events[1]


def action(line: str, defines=None):
    return second_event(line, defines).action


def error(text: str, defines=None) -> ScriptError:
    with pytest.raises(ScriptError) as info:
        parse(text, defines)
    return info.value


def N(value: int) -> Integer:
    """A decimal integer; short, so that the tables read like the script."""
    return Integer(value)


ELLIPSIS = EllipsisExpr()


# ------------------------------------------------------------ script layout


def test_layout_options_init_events_cleanup():
    script = parse(
        "// header comment\n"
        "--tolerance_usecs=10000\n"
        "--ip_version=ipv6   // trailing comment\n"
        "--send_omit_free\t// do not reuse send buffers\n"
        "--define=X=Y\n"
        "\n"
        "`./defaults.sh\n"
        "# a shell comment inside the init command\n"
        "sysctl -q net.ipv4.tcp_ecn=3\n"
        "`\n"
        "\n"
        "    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "   +0 close(3) = 0\n"
        "`/tmp/sysctl_restore_${PPID}.sh`\n"
    )
    assert script.path == PATH
    assert script.options == (
        OptionLine(Location(PATH, 2, 1), "tolerance_usecs", "10000"),
        OptionLine(Location(PATH, 3, 1), "ip_version", "ipv6"),
        OptionLine(Location(PATH, 4, 1), "send_omit_free", None),
        OptionLine(Location(PATH, 5, 1), "define", "X=Y"),
    )
    assert script.init == UntimedCommand(
        Location(PATH, 7, 1),
        Command("./defaults.sh\n# a shell comment inside the init command\nsysctl -q net.ipv4.tcp_ecn=3\n"),
    )
    assert [event.loc for event in script.events] == [Location(PATH, 12, 5), Location(PATH, 13, 4)]
    assert script.cleanup == UntimedCommand(Location(PATH, 14, 1), Command("/tmp/sysctl_restore_${PPID}.sh"))


def test_no_init_no_cleanup():
    script = parse("0 close(3) = 0\n")
    assert script.options == () and script.init is None and script.cleanup is None
    assert len(script.events) == 1


def test_option_values_keep_quotes_and_paths():
    script = parse('--define=S="a b"\n--init_scripts=/a/b.sh\n--local_ip=fd3d:0a0b:17d6::1\n0 close(3) = 0\n')
    assert [(o.name, o.value) for o in script.options] == [
        ("define", 'S="a b"'),
        ("init_scripts", "/a/b.sh"),
        ("local_ip", "fd3d:0a0b:17d6::1"),
    ]


def test_comments_anywhere_and_tabs_or_spaces_separate():
    script = parse(
        "/* block\n comment */ 0\tsocket(..., /* inline */ SOCK_STREAM,\n"
        "\t\tIPPROTO_TCP) = 3 // end of line\n"
        "+0 close(3) = 0\n"
    )
    assert script.events[0].action.args == (ELLIPSIS, Symbol("SOCK_STREAM"), Symbol("IPPROTO_TCP"))
    assert script.events[0].loc == Location(PATH, 2, 13)


def test_crlf_line_endings():
    script = parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\r\n+0 close(3) = 0\r\n")
    assert [e.loc.line for e in script.events] == [1, 2]


# -------------------------------------------------------------------- times


@pytest.mark.parametrize(
    "text, time",
    [
        ("0.100", AbsoluteTime(100_000)),
        ("1", AbsoluteTime(1_000_000)),
        (".5", AbsoluteTime(500_000)),
        ("+0", RelativeTime(0)),
        ("+.1", RelativeTime(100_000)),
        ("+0.000001", RelativeTime(1)),
        ("+0.0000019", RelativeTime(1)),  # below a microsecond is dropped
        ("+1.25", RelativeTime(1_250_000)),
        ("*", AnyTime()),
        ("0.1~0.2", TimeRange(100_000, 200_000, relative=False)),
        ("+0~+.04", TimeRange(0, 40_000, relative=True)),
        ("+1~+1.1", TimeRange(1_000_000, 1_100_000, relative=True)),
    ],
)
def test_event_times(text, time):
    event = second_event(f"{text} > S 0:0(0)")
    assert event.time == time
    assert event.loc == Location(PATH, 2, 1)


@pytest.mark.parametrize(
    "line, time, end",
    [
        ("+0...0.200 accept(3, ..., ...) = 4", RelativeTime(0), 200_000),
        ("+.1...0.3 read(4, ..., 10) = 10", RelativeTime(100_000), 300_000),
        ("+0...0 connect(4, ..., ...) = 0", RelativeTime(0), 0),
        ("1...1.5 read(4, ..., 10) = 10", AbsoluteTime(1_000_000), 1_500_000),
    ],
)
def test_blocking_calls(line, time, end):
    event = second_event(line)
    assert event.time == time
    assert event.action.end_usecs == end


# ------------------------------------------------------------- TCP segments


def segment(**fields) -> TcpSegment:
    base = dict(flags="", seq_start=0, seq_end=0, length=0)
    base.update(fields)
    return TcpSegment(**base)


@pytest.mark.parametrize(
    "line, packet",
    [
        (
            "+0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8>",
            Packet(">", segment(flags="S", options=(Mss(1460), SackPermitted(), Timestamp(0, 0), Nop(), WindowScale(8)))),
        ),
        (
            "+0 < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>",
            Packet("<", segment(flags="S.", ack=1, window=65535,
                                options=(Mss(1460), SackPermitted(), Nop(), Nop(), Nop(), WindowScale(7)))),
        ),
        ("+0 > P. 1:1001(1000) ack 1", Packet(">", segment(flags="P.", seq_start=1, seq_end=1001, length=1000, ack=1))),
        ("+0 > F. 1001:1001(0) ack 1", Packet(">", segment(flags="F.", seq_start=1001, seq_end=1001, ack=1))),
        ("+0 > R 1:1(0)", Packet(">", segment(flags="R", seq_start=1, seq_end=1))),
        ("+0 > - 1:1(0) ack 1", Packet(">", segment(flags="", seq_start=1, seq_end=1, ack=1))),
        ("+0 > PU. 5001:5002(1) ack 1 urg 1",
         Packet(">", segment(flags="PU.", seq_start=5001, seq_end=5002, length=1, ack=1, urg=1))),
        # AccECN: flag letters in canonical order, the ACE digit apart
        ("+0 < SEWA 0:0(0) win 32767", Packet("<", segment(flags="SEWA", window=32767))),
        ("+0 < EAP. 1:1(0) ack 1 win 9", Packet("<", segment(flags="PEA.", seq_start=1, seq_end=1, ack=1, window=9))),
        ("+0 > .5 1:1(0) ack 1", Packet(">", segment(flags=".", ace=5, seq_start=1, seq_end=1, ack=1))),
        ("+0 > P.6 1:1(0) ack 1", Packet(">", segment(flags="P.", ace=6, seq_start=1, seq_end=1, ack=1))),
        ("+0 > F5. 1:1(0) ack 1", Packet(">", segment(flags="F.", ace=5, seq_start=1, seq_end=1, ack=1))),
        ("+0 > S. 0:0(0) ack 1 <...>", Packet(">", segment(flags="S.", ack=1, options=None))),
        (
            "+0 > [ect0] WA. 1:1(0) ack 1 <ECN e1b 1 ceb 1000 e0b 1,nop,nop,nop,sack 1001:2001 3001:4001>",
            Packet(">", segment(flags="WA.", seq_start=1, seq_end=1, ack=1,
                                options=(AccEcn((("e1b", 1), ("ceb", 1000), ("e0b", 1))), Nop(), Nop(), Nop(),
                                         Sack(((1001, 2001), (3001, 4001))))),
                   ip=IpInfo(ecn="ect0")),
        ),
        ("+0 > . 1:1(0) ack 1 <ECN e1b 2001 ceb 0>",
         Packet(">", segment(flags=".", seq_start=1, seq_end=1, ack=1, options=(AccEcn((("e1b", 2001), ("ceb", 0))),)))),
        ("+0 > . 1:1(0) ack 1 <ECN,nop,nop>",
         Packet(">", segment(flags=".", seq_start=1, seq_end=1, ack=1, options=(AccEcn(()), Nop(), Nop())))),
        (
            "+0 < S 0:10(10) win 32792 <mss 1460,sackOK,nop,nop,FO 3021B9D889017EEB,nop,nop>",
            Packet("<", segment(flags="S", seq_end=10, length=10, window=32792,
                                options=(Mss(1460), SackPermitted(), Nop(), Nop(), FastOpen("3021b9d889017eeb"),
                                         Nop(), Nop()))),
        ),
        ("+0 < S 0:0(0) win 1 <FO,nop,nop>", Packet("<", segment(flags="S", window=1, options=(FastOpen(""), Nop(), Nop())))),
        ("+0 < S 0:0(0) win 1 <FOEXP 12345678>",
         Packet("<", segment(flags="S", window=1, options=(FastOpen("12345678", experimental=True),)))),
        ("+0 < S 0:0(0) win 1 <FOEXP>", Packet("<", segment(flags="S", window=1, options=(FastOpen("", experimental=True),)))),
        (
            "+.01 < . 1:1(0) ack 1 win 514 <md5 000102030405060708090a0b0c0d0e0f,nop,nop>",
            Packet("<", segment(flags=".", seq_start=1, seq_end=1, ack=1, window=514,
                                options=(Md5("000102030405060708090a0b0c0d0e0f"), Nop(), Nop()))),
        ),
        ("+0 < . 1:1(0) ack 1 win 1 <nop, nop, TS val 200 ecr 700>",
         Packet("<", segment(flags=".", seq_start=1, seq_end=1, ack=1, window=1,
                             options=(Nop(), Nop(), Timestamp(200, 700))))),
        ("+0 < S 0:0(0) win 1 <eol,eol,eol,eol>", Packet("<", segment(flags="S", window=1, options=(Eol(),) * 4))),
        # sequence numbers that look like IPv6 addresses are not
        ("+0 > . 1:1001(1000) ack 1", Packet(">", segment(flags=".", seq_start=1, seq_end=1001, length=1000, ack=1))),
        ("+0 > . 4294967295:4294967295(0)", Packet(">", segment(flags=".", seq_start=4294967295, seq_end=4294967295))),
    ],
)
def test_tcp_segments(line, packet):
    assert action(line) == packet


@pytest.mark.parametrize(
    "written, ip",
    [
        ("[ect0]", IpInfo(ecn="ect0")),
        ("[ect1]", IpInfo(ecn="ect1")),
        ("[ce]", IpInfo(ecn="ce")),
        ("[noecn]", IpInfo(ecn="noecn")),
        ("(ect0)", IpInfo(ecn="ect0")),
        ("[ect01]", IpInfo(ecn="ect01")),
        ("(tos 0x4)", IpInfo(tos=4)),
        ("[tos 0xb8]", IpInfo(tos=0xB8)),
        ("(ttl 32)", IpInfo(ttl=32)),
        ("(flowlabel 0x12345)", IpInfo(flowlabel=0x12345)),
        ("[ect0] (ttl 1)", IpInfo(ecn="ect0", ttl=1)),
        ("(tos 0x10, ttl 64, flowlabel 0x1)", IpInfo(tos=0x10, ttl=64, flowlabel=1)),
    ],
)
def test_ip_info(written, ip):
    assert action(f"+0 > {written} S 0:0(0)") == Packet(">", segment(flags="S"), ip=ip)


def test_ports():
    assert action("+0 < 5555>8080 S 0:0(0) win 1") == Packet(
        "<", segment(flags="S", window=1, src_port=5555, dst_port=8080)
    )
    assert action("+0 < [ect0] 53 > 4000 udp (10)") == Packet(
        "<", UdpDatagram(10, src_port=53, dst_port=4000), ip=IpInfo(ecn="ect0")
    )


# ----------------------------------------------------------- UDP, ICMP, outer


@pytest.mark.parametrize(
    "line, body",
    [
        ("+0 < udp (1472)", UdpDatagram(1472)),
        ("+0 < icmp unreachable [5000:6000(1000)]", IcmpMessage("unreachable", quoted=(5000, 6000, 1000))),
        ("+0 < icmp unreachable host_unreachable [0:10(10)]",
         IcmpMessage("unreachable", "host_unreachable", quoted=(0, 10, 10))),
        ("+0 < icmp unreachable frag_needed mtu 800 [0:1000(1000)]",
         IcmpMessage("unreachable", "frag_needed", mtu=800, quoted=(0, 1000, 1000))),
        ("+0 < icmp packet_too_big mtu 1280 [1:1461(1460)]",
         IcmpMessage("packet_too_big", mtu=1280, quoted=(1, 1461, 1460))),
        ("+0 < icmp unreachable port_unreachable", IcmpMessage("unreachable", "port_unreachable")),
        ("+0 < icmp unreachable no_route", IcmpMessage("unreachable", "no_route")),
        ("+0 < icmp time_exceeded", IcmpMessage("time_exceeded")),
        ("+0 < icmp unreachable not_neighbour", IcmpMessage("unreachable", "not_neighbour")),
        ("+0 < icmp parameter_problem unknown_next_header", IcmpMessage("parameter_problem", "unknown_next_header")),
        ("+0 < icmp type_3 code_1", IcmpMessage("type_3", "code_1")),
    ],
)
def test_udp_and_icmp(line, body):
    assert action(line) == Packet("<", body)


@pytest.mark.parametrize(
    "prefix, outer",
    [
        ("ipv4 192.0.2.1 > 192.168.0.1:", (OuterHeader("ipv4", "192.0.2.1 > 192.168.0.1"),)),
        ("ipv6 2001:db8::1 > fd3d:fa7b:d17d::1:", (OuterHeader("ipv6", "2001:db8::1 > fd3d:fa7b:d17d::1"),)),
        ("ipv4 192.0.2.1 > 192.168.0.1: gre:",
         (OuterHeader("ipv4", "192.0.2.1 > 192.168.0.1"), OuterHeader("gre", ""))),
        ("gre flags 0x2000  key 0x1:", (OuterHeader("gre", "flags 0x2000 key 0x1"),)),
        ("mpls (label 123, tc 1, [S], ttl 255):", (OuterHeader("mpls", "(label 123, tc 1, [S], ttl 255)"),)),
    ],
)
def test_outer_headers(prefix, outer):
    assert action(f"+0 < {prefix} . 1:1(0) ack 1 win 257") == Packet(
        "<", segment(flags=".", seq_start=1, seq_end=1, ack=1, window=257), outer=outer
    )


# ------------------------------------------------------------- system calls


@pytest.mark.parametrize(
    "line, call",
    [
        ("+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3",
         Syscall("socket", (ELLIPSIS, Symbol("SOCK_STREAM"), Symbol("IPPROTO_TCP")), N(3))),
        ("+0 socket(..., SOCK_STREAM|SOCK_NONBLOCK, IPPROTO_TCP) = 3",
         Syscall("socket", (ELLIPSIS, BitOr((Symbol("SOCK_STREAM"), Symbol("SOCK_NONBLOCK"))), Symbol("IPPROTO_TCP")), N(3))),
        ("+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0",
         Syscall("setsockopt", (N(3), Symbol("SOL_SOCKET"), Symbol("SO_REUSEADDR"), ListExpr((N(1),)), N(4)), N(0))),
        ("+0 fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)",
         Syscall("fcntl", (N(3), Symbol("F_GETFL")), Integer(2, hex=True), note="flags O_RDWR")),
        ("+0 setsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, \"\", 0) = -1 (Invalid Argument)",
         Syscall("setsockopt", (N(3), Symbol("SOL_TCP"), Symbol("TCP_FASTOPEN_KEY"), String(""), N(0)), N(-1),
                 note="Invalid Argument")),
        ("+0 write(4, ..., 100) = -1 ECONNRESET(Connection reset by peer)",
         Syscall("write", (N(4), ELLIPSIS, N(100)), N(-1), errno="ECONNRESET", note="Connection reset by peer")),
        ("+0 read(4, ..., 512) = -1 EHOSTUNREACH (No route to host)",
         Syscall("read", (N(4), ELLIPSIS, N(512)), N(-1), errno="EHOSTUNREACH", note="No route to host")),
        ("+0 connect(3, ..., ...) = -1 EINPROGRESS", Syscall("connect", (N(3), ELLIPSIS, ELLIPSIS), N(-1), errno="EINPROGRESS")),
        ("+0 recv(4, NULL, 1000, 0) = -1 EFAULT (Bad address)",
         Syscall("recv", (N(4), Symbol("NULL"), N(1000), N(0)), N(-1), errno="EFAULT", note="Bad address")),
        ("+0 pipe([5, 6]) = 0", Syscall("pipe", (ListExpr((N(5), N(6))),), N(0))),
        ("+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0",
         Syscall("getsockopt", (N(3), Symbol("SOL_SOCKET"), Symbol("SO_ERROR"), ListExpr((N(0),)), ListExpr((N(4),))), N(0))),
        ("+0 open(\"/tmp/testfile\", O_RDONLY) = 5", Syscall("open", (String("/tmp/testfile"), Symbol("O_RDONLY")), N(5))),
        ("+0 epoll_create() = 5", Syscall("epoll_create", (), N(5))),
        ("+0 poll([], 0, 0) = 0", Syscall("poll", (ListExpr(()), N(0), N(0)), N(0))),
        ("+0 poll(..., 0, -1) = POLLIN|POLLOUT",
         Syscall("poll", (ELLIPSIS, N(0), N(-1)), BitOr((Symbol("POLLIN"), Symbol("POLLOUT"))))),
    ],
)
def test_syscalls(line, call):
    assert action(line) == call


@pytest.mark.parametrize(
    "written, expr",
    [
        ("...", ELLIPSIS),
        ("0", N(0)),
        ("-1", N(-1)),
        ("0xFF", Integer(255, hex=True)),
        ("SO_ZEROCOPY", Symbol("SO_ZEROCOPY")),
        ('"abc"', String("abc")),
        ('"a" "b"  "c"', String("abc")),
        (r'"\xa1\xb2\"\\\n\t\0\101"', String('\xa1\xb2"\\\n\t\x00A')),
        ('"é"', String("\xc3\xa9")),  # UTF-8 bytes, one character per byte
        ("A|B|C", BitOr((Symbol("A"), Symbol("B"), Symbol("C")))),
        ("[1, [2], []]", ListExpr((N(1), ListExpr((N(2),)), ListExpr(())))),
        ("htons(8080)", Call("htons", (N(8080),))),
        (
            '{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}',
            Struct((Field("sa_family", Symbol("AF_INET")), Field("sin_port", Call("htons", (N(8080),))),
                    Field("sin_addr", Call("inet_addr", (String("192.0.2.1"),))))),
        ),
        (
            '{sa_family=AF_INET6, sin6_addr=inet6_addr("2001:db8::1")}',
            Struct((Field("sa_family", Symbol("AF_INET6")), Field("sin6_addr", Call("inet6_addr", (String("2001:db8::1"),))))),
        ),
        ("{..., 40}", Struct((Field("iov_base", ELLIPSIS), Field("iov_len", N(40))))),
        ("{iov_base=..., iov_len=40}", Struct((Field("iov_base", ELLIPSIS), Field("iov_len", N(40))))),
        (
            "{msg_name(...)=..., msg_iov(1)=[{..., 40}], msg_flags=0}",
            Struct((Field("msg_name", ELLIPSIS, ELLIPSIS),
                    Field("msg_iov", ListExpr((Struct((Field("iov_base", ELLIPSIS), Field("iov_len", N(40)))),)), N(1)),
                    Field("msg_flags", N(0)))),
        ),
        (
            "{cmsg_level=SOL_SOCKET, cmsg_type=SCM_TIMESTAMPING, cmsg_data={scm_sec=0,scm_nsec=10000000}}",
            Struct((Field("cmsg_level", Symbol("SOL_SOCKET")), Field("cmsg_type", Symbol("SCM_TIMESTAMPING")),
                    Field("cmsg_data", Struct((Field("scm_sec", N(0)), Field("scm_nsec", N(10_000_000))))))),
        ),
        (
            "{ee_errno=ENOMSG, ee_origin=SO_EE_ORIGIN_TIMESTAMPING, ee_type=0, ee_code=0, ee_info=SCM_TSTAMP_SND, ee_data=1999}",
            Struct((Field("ee_errno", Symbol("ENOMSG")), Field("ee_origin", Symbol("SO_EE_ORIGIN_TIMESTAMPING")),
                    Field("ee_type", N(0)), Field("ee_code", N(0)), Field("ee_info", Symbol("SCM_TSTAMP_SND")),
                    Field("ee_data", N(1999)))),
        ),
        ("[{fd=4, events=POLLIN, revents=POLLOUT}]",
         ListExpr((Struct((Field("fd", N(4)), Field("events", Symbol("POLLIN")), Field("revents", Symbol("POLLOUT")))),))),
        ("{events=EPOLLOUT|EPOLLET, fd=4}",
         Struct((Field("events", BitOr((Symbol("EPOLLOUT"), Symbol("EPOLLET")))), Field("fd", N(4))))),
        ("{events=0, ptr=0}", Struct((Field("events", N(0)), Field("ptr", N(0))))),
        ("{onoff=1, linger=0}", Struct((Field("onoff", N(1)), Field("linger", N(0))))),
    ],
)
def test_expressions(written, expr):
    assert action(f"+0 f({written}) = 0").args == (expr,)


def test_a_call_spanning_lines():
    call = action(
        "+0\trecvmsg(4, {msg_name(...)=...,\n"
        "\t\t    msg_iov(1)=[{...,0}],\n"
        "                    msg_flags=MSG_ERRQUEUE|MSG_TRUNC,\n"
        "                    msg_control=[\n"
        "\t\t\t{cmsg_level=SOL_SOCKET,\n"
        "\t\t\t cmsg_type=SCM_TIMESTAMPING,\n"
        "\t\t\t cmsg_data={scm_sec=0,scm_nsec=10000000}}\n"
        "\t\t    ]}, MSG_ERRQUEUE) = 0"
    )
    assert call.name == "recvmsg"
    msghdr = call.args[1]
    assert msghdr.get("msg_flags").value == BitOr((Symbol("MSG_ERRQUEUE"), Symbol("MSG_TRUNC")))
    assert msghdr.get("msg_control").value.items[0].get("cmsg_type").value == Symbol("SCM_TIMESTAMPING")
    assert msghdr.get("nothing") is None


# --------------------------------------------------- commands and Python code


def test_timed_command_and_code_blocks():
    script = parse(
        "0 `nstat > /dev/null`\n"
        "+0 %{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%\n"
        "+0 %{\n"
        "assert tcpi_rtt > 0  # a Python comment; } and % alone are fine\n"
        "d = {1: 2}\n"
        "}%\n"
        "+0 close(3) = 0\n"
    )
    assert script.events[0].action == Command("nstat > /dev/null")
    assert script.events[1].action == Code(" assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd ")
    assert script.events[2].action == Code("\nassert tcpi_rtt > 0  # a Python comment; } and % alone are fine\nd = {1: 2}\n")
    assert script.events[3].loc == Location(PATH, 7, 1)


# ------------------------------------------------------------------ defines


KERNEL_DEFINES = {
    "TFO_COOKIE": "3021b9d889017eeb",
    "CMSG_LEVEL_IP": "SOL_IP",
    "CMSG_TYPE_RECVERR": "IP_RECVERR",
}


def test_defines_replace_words():
    assert action("+0 < S 0:0(0) win 1 <FO TFO_COOKIE,nop,nop>", KERNEL_DEFINES).body.options[0] == FastOpen(
        "3021b9d889017eeb"
    )
    call = action("+0 f({cmsg_level=CMSG_LEVEL_IP, cmsg_type=CMSG_TYPE_RECVERR}) = 0", KERNEL_DEFINES)
    assert call.args == (Struct((Field("cmsg_level", Symbol("SOL_IP")), Field("cmsg_type", Symbol("IP_RECVERR")))),)


def test_undefined_names_stay_names():
    assert action("+0 < S 0:0(0) win 1 <FO TFO_COOKIE,nop,nop>").body.options[0] == FastOpen("TFO_COOKIE")
    assert action("+0 f(CMSG_LEVEL_IP) = 0").args == (Symbol("CMSG_LEVEL_IP"),)


@pytest.mark.parametrize(
    "value, expr",
    [
        ('"a string"', String("a string")),
        ("42", N(42)),
        ("-7", N(-7)),
        ("0x10", Integer(16, hex=True)),
        ("OTHER_WORD", Symbol("OTHER_WORD")),
    ],
)
def test_define_value_kinds(value, expr):
    assert action("+0 f(X) = 0", {"X": value}).args == (expr,)


def test_backticked_define_becomes_a_command():
    assert action("+0 CMD", {"CMD": "`echo hi`"}) == Command("echo hi")


def test_defines_do_not_touch_reserved_words():
    call = action("+0 f({fd=4, events=0}) = 0", {"fd": "9", "events": "9"})
    assert call.args == (Struct((Field("fd", N(4)), Field("events", N(0)))),)


def test_script_defines_and_caller_defines():
    text = "--define=PORT=80\n--define=LEVEL=SOL_IP\n0 f(PORT, LEVEL) = 0\n"
    assert parse(text).events[0].action.args == (N(80), Symbol("SOL_IP"))
    assert parse(text, {"PORT": "8080"}).events[0].action.args == (N(8080), Symbol("SOL_IP"))


# ------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    "text, line, col, message",
    [
        # unfinished line: the error is at its end, not at the next line's start
        ("0 `true`\n+0 < S 0:0(0) ack\n+0 close(3) = 0\n", 2, 18, "expected a number after 'ack'"),
        ("0 recvmsg(4, {msg_name(...)=...\n   msg_iov(1)=[{...,0}]}, 0) = 0\n", 1, 32,
         "expected ')', ',', ']', '|' or '}' after '...'"),
        ("0 `true`\n+0 close(3) =\n+0 close(4) = 0\n", 2, 14, "expected a name or a number after '='"),
        ("0 `true`\n+0 > S 0:0(0) <mss 1460,\n+0 close(3) = 0\n", 2, 25, "expected a TCP option name (nop, eol, mss, wscale, sackOK, sack, TS, FO, FOEXP, md5, ECN) after ','"),
        ("0 `true`\n+0\n+0 close(3) = 0\n", 2, 3,
         "expected a packet ('<' or '>'), a system call, a `command` or a %{ python }% block after the event time"),
        # complete line, then a line with no time: the error is that line's
        ("0 close(3) = 0\nclose(4) = 0\n", 2, 1, "an event starts with a time (0, +0.1, *, ...), not 'close'"),
        # on the same line: at the unexpected token
        ("0 socket(..., SOCK_STREAM IPPROTO_TCP) = 3\n", 1, 27, "unexpected 'IPPROTO_TCP', expected"),
        ("0 `true`\n+0 > S 0:0(0) ack 1 win\t<mss 1>\n", 2, 25, "unexpected '<', expected a number"),
        ("0 `true`\n+0 < SX 0:0(0) win 1\n", 2, 7, "unknown TCP flag 'X'"),
        ("0 close(3) = 0 # shell style\n", 1, 16, "'#' starts a comment only inside backticks"),
        ("0 `true`\n+0 `echo\n", 2, 4, "unterminated `command`"),
        ("0 `true`\n+0 f(\"abc) = 0\n", 2, 6, "unterminated string"),
        ("0 `true`\n+0 %{ x = 1\n", 2, 4, "unterminated %{ block"),
        ("0 close(3) = 0 /* x\n", 1, 16, "unterminated /* comment"),
        ("0 close(3) = 0\n--mss=1000\n", 2, 1, "options (--name=value) go at the top"),
        ("0 `a`\n`mid`\n+0 `b`\n", 2, 1, "an untimed `command` goes only before the first event (init) or after"),
        ("`init`\n`init2`\n0 `b`\n", 2, 1, "an untimed `command` goes only before the first event (init) or after"),
        ("0 `a`\n`c1`\n`c2`\n", 3, 1, "an untimed `command` goes only before the first event (init) or after"),
        ("0 close(3) = 0\n+0 close(\x00) = 0\n", 2, 10, "unexpected '\\x00'"),
        ("", 1, 1, "the script has no events"),
        ("// only a comment\n", 1, 1, "the script has no events"),
        ("0 close(3) = ", 1, 13, "unexpected end of file, expected a name or a number after '='"),
        ("0 f(X) = 0\n", 1, 5, "unexpected 'X' (defined as `c`), expected"),
    ],
)
def test_syntax_errors_point_at_the_culprit(text, line, col, message):
    problem = error(text, {"X": "`c`"})
    assert (problem.loc.path, problem.loc.line, problem.loc.col) == (PATH, line, col)
    assert message in problem.message


def test_error_text_has_file_line_column_and_caret():
    problem = error("0 `true`\n+0 < S 0:0(0) ack\n+0 close(3) = 0\n")
    assert str(problem) == (
        "t.pkt:2:18: error: expected a number after 'ack'\n"
        "+0 < S 0:0(0) ack\n"
        "                 ^"
    )
