"""C layouts (sizes and offsets as Linux LP64 C has them), bytes round trips,
TCP_INFO decoding, and script struct literals -> the bytes a call passes.
No root or kernel needed."""

from __future__ import annotations

import ctypes
import platform
import struct

import pytest

from tcptest import script as s
from tcptest.host import structs, tcpinfo
from tcptest.host.syscalls import CallEnvironment, SyscallHost, _Failure

E = s.EllipsisExpr()
I = s.Integer
S = s.Symbol


def F(name, value, arg=None):
    return s.Field(name, value, arg)


@pytest.mark.parametrize("kind, size", [
    (structs.SockaddrIn, 16), (structs.SockaddrIn6, 28), (structs.SockaddrStorage, 128),
    (structs.Iovec, 16), (structs.Msghdr, 56), (structs.Cmsghdr, 16), (structs.PollFd, 8),
    (structs.Linger, 8), (structs.SockExtendedErr, 16), (structs.ScmTimestamping, 48),
    (structs.TcpMd5Sig, 216),
    (structs.EpollEvent, 12 if platform.machine() == "x86_64" else 16),
])
def test_sizes(kind, size):
    assert ctypes.sizeof(kind) == size


@pytest.mark.parametrize("kind, name, offset", [
    (structs.Msghdr, "msg_namelen", 8), (structs.Msghdr, "msg_iov", 16),
    (structs.Msghdr, "msg_iovlen", 24), (structs.Msghdr, "msg_control", 32),
    (structs.Msghdr, "msg_controllen", 40), (structs.Msghdr, "msg_flags", 48),
    (structs.SockExtendedErr, "ee_origin", 4), (structs.SockExtendedErr, "ee_info", 8),
    (structs.SockExtendedErr, "ee_data", 12), (structs.TcpMd5Sig, "tcpm_flags", 128),
    (structs.TcpMd5Sig, "tcpm_keylen", 130), (structs.TcpMd5Sig, "tcpm_ifindex", 132),
    (structs.TcpMd5Sig, "tcpm_key", 136), (structs.PollFd, "revents", 6),
    (structs.EpollEvent, "data", 4 if platform.machine() == "x86_64" else 8),
])
def test_offsets(kind, name, offset):
    assert getattr(kind, name).offset == offset


def test_sockaddr_in_bytes_and_back():
    data = structs.pack_sockaddr("192.0.2.1", 8080, ipv6=False)
    assert data == struct.pack("=H", 2) + bytes([0x1F, 0x90, 192, 0, 2, 1]) + bytes(8)
    assert structs.unpack_sockaddr(data) == structs.SocketAddress(2, "192.0.2.1", 8080)


def test_sockaddr_in6_bytes_and_back():
    data = structs.pack_sockaddr("2001:db8::1", 443, ipv6=True)
    assert len(data) == 28 and data[2:4] == b"\x01\xbb"
    assert data[8:24] == bytes.fromhex("20010db8000000000000000000000001")
    assert structs.unpack_sockaddr(data) == structs.SocketAddress(10, "2001:db8::1", 443)


def test_ipv4_address_on_an_ipv6_socket_is_v4_mapped():
    data = structs.pack_sockaddr("192.168.0.2", 8080, ipv6=True)
    assert structs.unpack_sockaddr(data).address == "::ffff:192.168.0.2"


def test_family_only_sockaddr():
    assert structs.pack_family_only(0) == bytes(16)


def test_cmsg_layout_and_round_trip():
    assert structs.cmsg_len(4) == 20 and structs.cmsg_space(4) == 24
    assert structs.cmsg_space(48) == 64
    messages = [structs.ControlMessage(6, 36, struct.pack("=i", 9000)),
                structs.ControlMessage(1, 37, bytes(range(48)))]
    data = structs.pack_cmsgs(messages)
    assert len(data) == 24 + 64
    assert struct.unpack_from("=Qii", data) == (20, 6, 36)
    assert struct.unpack_from("=Qii", data, 24) == (64, 1, 37)
    assert structs.unpack_cmsgs(data) == messages


def test_cmsg_unpack_stops_at_a_truncated_header():
    data = structs.pack_cmsgs([structs.ControlMessage(0, 11, bytes(32))])
    assert structs.unpack_cmsgs(data + bytes(8)) == [structs.ControlMessage(0, 11, bytes(32))]


def test_from_bytes_pads_short_data():
    err = structs.from_bytes(structs.SockExtendedErr, struct.pack("=IBBBB", 42, 5, 0, 1, 0))
    assert (err.ee_errno, err.ee_origin, err.ee_code, err.ee_data) == (42, 5, 1, 0)


# ---------------------------------------------------------------- TCP_INFO

def _field(name):
    return next(f for f in tcpinfo.FIELDS if f[0] == name)


def test_tcp_info_layout_matches_linux_6_18():
    assert tcpinfo.TCP_INFO_SIZE == 280
    assert _field("tcpi_rto")[2] == 8
    assert _field("tcpi_rtt")[2] == 68
    assert _field("tcpi_snd_cwnd")[2] == 80
    assert _field("tcpi_total_retrans")[2] == 100
    assert _field("tcpi_pacing_rate")[2] == 104
    assert _field("tcpi_delivered_ce")[2] == 196
    assert _field("tcpi_snd_wnd")[2] == 228
    assert _field("tcpi_total_rto")[2] == 240
    assert _field("tcpi_total_rto_time")[2] == 244
    assert _field("tcpi_accecn_opt_seen")[2] == 278


def test_tcp_info_decodes_values_and_bitfields():
    data = bytearray(tcpinfo.TCP_INFO_SIZE)
    data[0] = 1  # ESTABLISHED
    data[6] = 0x87  # snd_wscale 7, rcv_wscale 8
    data[7] = 0x05  # app_limited 1, fastopen_client_fail 2
    struct.pack_into("=I", data, 80, 10)
    struct.pack_into("=Q", data, 104, 123456789012)
    struct.pack_into("=I", data, 256, 14600)  # tcpi_delivered_e0_bytes
    info = tcpinfo.decode_tcp_info(bytes(data))
    assert info["tcpi_state"] == 1
    assert (info["tcpi_snd_wscale"], info["tcpi_rcv_wscale"]) == (7, 8)
    assert (info["tcpi_delivery_rate_app_limited"], info["tcpi_fastopen_client_fail"]) == (1, 2)
    assert info["tcpi_snd_cwnd"] == 10
    assert info["tcpi_pacing_rate"] == 123456789012
    assert info["tcpi_delivered_e0_bytes"] == 14600
    assert not any(name.startswith("_") for name in info)


def test_tcp_info_from_an_older_kernel_lacks_newer_fields():
    info = tcpinfo.decode_tcp_info(bytes(104))
    assert "tcpi_total_retrans" in info
    assert "tcpi_pacing_rate" not in info
    assert "tcpi_delivered_ce" not in info


def test_meminfo_names():
    info = tcpinfo.decode_meminfo(struct.pack("=9I", *range(9)))
    assert info["SK_MEMINFO_RCVBUF"] == 1 and info["SK_MEMINFO_DROPS"] == 8


# ------------------------------------------------- struct literals -> bytes

@pytest.fixture
def host():
    return SyscallHost(CallEnvironment("ipv4", "192.168.0.2", "192.0.2.1", 8080, 8081))


def test_sockaddr_literal(host):
    literal = s.Struct((F("sa_family", S("AF_INET")), F("sin_port", s.Call("htons", (I(8080),))),
                        F("sin_addr", s.Call("inet_addr", (s.String("192.0.2.1"),)))))
    assert structs.unpack_sockaddr(host._sockaddr_struct(literal)) == \
        structs.SocketAddress(2, "192.0.2.1", 8080)


def test_sockaddr6_literal(host):
    literal = s.Struct((F("sa_family", S("AF_INET6")), F("sin_port", s.Call("htons", (I(80),))),
                        F("sin_addr", s.Call("inet6_addr", (s.String("2001:db8::2"),)))))
    assert structs.unpack_sockaddr(host._sockaddr_struct(literal)) == \
        structs.SocketAddress(10, "2001:db8::2", 80)


@pytest.mark.parametrize("names", [("l_onoff", "l_linger"), ("onoff", "linger")])
def test_linger_literal(host, names):
    value = host._option_struct(s.Struct((F(names[0], I(1)), F(names[1], I(30)))))
    assert bytes(value) == struct.pack("=ii", 1, 30)


def test_md5sig_literal(host):
    value = host._option_struct(s.Struct((F("tcpm_addr", E), F("tcpm_key", s.String("12345")))))
    data = bytes(value)
    assert structs.unpack_sockaddr(data[:16]) == structs.SocketAddress(2, "192.0.2.1", 0)
    assert struct.unpack_from("=BBHi", data, 128) == (0, 0, 5, 0)
    assert data[136:141] == b"12345" and data[141:] == bytes(75)


def test_timestamping_cmsg_data(host):
    data = host._cmsg_payload(s.Struct((F("scm_sec", I(1)), F("scm_nsec", I(20000000)))))
    assert data == struct.pack("=6q", 1, 20000000, 0, 0, 0, 0)


def test_sock_extended_err_cmsg_data(host):
    data = host._cmsg_payload(s.Struct((
        F("ee_errno", S("ENOMSG")), F("ee_origin", S("SO_EE_ORIGIN_TIMESTAMPING")),
        F("ee_type", I(0)), F("ee_code", I(0)), F("ee_info", S("SCM_TSTAMP_SCHED")),
        F("ee_data", I(1999)))))
    assert data == struct.pack("=IBBBBII", 42, 4, 0, 0, 0, 1, 1999)


def test_integer_cmsg_data_is_an_int(host):
    assert host._cmsg_payload(I(9000)) == struct.pack("=i", 9000)


def test_recvmsg_control_buffer_leaves_room_for_the_offender_address(host):
    items = (s.Struct((F("cmsg_level", S("SOL_SOCKET")), F("cmsg_type", S("SCM_TIMESTAMPING")),
                       F("cmsg_data", s.Struct((F("scm_sec", I(0)), F("scm_nsec", I(0))))))),
             s.Struct((F("cmsg_level", S("CMSG_LEVEL_IP")), F("cmsg_type", S("CMSG_TYPE_RECVERR")),
                       F("cmsg_data", s.Struct((F("ee_errno", I(0)),))))))
    data = host._control_messages(items, inbound=True)
    assert len(data) == structs.cmsg_space(48) + structs.cmsg_space(16 + 28)
    sent = host._control_messages(items, inbound=False)
    assert [(m.level, m.type, len(m.data)) for m in structs.unpack_cmsgs(sent)] == \
        [(1, 37, 48), (0, 11, 16)]


def test_iovec_literals_by_position_and_by_name(host):
    assert host._struct_items(s.Struct((F("", E), F("", I(10)))), ("iov_base", "iov_len"), "iovec") \
        == (E, I(10))
    assert host._struct_items(s.Struct((F("iov_len", I(3)), F("iov_base", E))),
                              ("iov_base", "iov_len"), "iovec") == (E, I(3))
    with pytest.raises(_Failure, match="iovec needs iov_len"):
        host._struct_items(s.Struct((F("", E),)), ("iov_base", "iov_len"), "iovec")


def test_msghdr_literal_layout(host):
    from tcptest.host.syscalls import _Operation

    op = _Operation(print, ())
    literal = s.Struct((
        F("msg_name", E, E),
        F("msg_iov", s.ListExpr((s.Struct((F("", E), F("", I(100)))),
                                 s.Struct((F("", E), F("", I(5)))))), I(2)),
        F("msg_flags", S("MSG_ERRQUEUE")),
        F("msg_control", s.ListExpr((s.Struct((F("cmsg_level", S("SOL_TCP")),
                                               F("cmsg_type", S("TCP_CM_INQ")),
                                               F("cmsg_data", I(0)))),))),
    ))
    address = host._msghdr(literal, op, inbound=True)
    header = structs.Msghdr.from_address(address)
    assert header.msg_namelen == 128 and header.msg_name
    assert header.msg_iovlen == 2 and header.msg_controllen == structs.cmsg_space(4)
    assert header.msg_flags == 0x2000
    iov = (structs.Iovec * 2).from_address(header.msg_iov)
    assert (iov[0].iov_len, iov[1].iov_len) == (100, 5)


def test_msg_iov_count_must_match_the_list(host):
    from tcptest.host.syscalls import _Operation

    literal = s.Struct((F("msg_iov", s.ListExpr((s.Struct((F("", E), F("", I(1)))),)), I(3)),))
    with pytest.raises(_Failure, match=r"msg_iov\(3\) lists 1 iovecs"):
        host._msghdr(literal, _Operation(print, ()), inbound=False)


def test_epoll_event_literal(host):
    from tcptest.host.syscalls import _Operation

    op = _Operation(print, ())
    call_args = (I(5), S("EPOLL_CTL_ADD"), I(4),
                 s.Struct((F("events", s.BitOr((S("EPOLLOUT"), S("EPOLLET")))), F("fd", I(4)))))
    host._prepare_epoll_ctl(call_args, op)
    event = structs.EpollEvent.from_address(op.args[3])
    assert event.events == 0x80000004 and event.data == 4
