"""wire.py against itself (round trips) and against scapy (an independent codec)."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.packet import Raw

from tcptest import wire
from tcptest.script import (
    AccEcn,
    Eol,
    FastOpen,
    Md5,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    Timestamp,
    WindowScale,
)
from tcptest.wire import (
    ACK,
    AE,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    DecodeError,
    EncodeError,
    IcmpHeader,
    IpHeader,
    TcpHeader,
    UdpHeader,
    UnknownOption,
)

V4 = IpHeader(4, "192.0.2.1", "192.168.7.9", tos=0x02, ttl=255, ip_id=0x1234)
V6 = IpHeader(6, "2001:db8::1", "fd3d:fa7b:d17d::2", tos=0x03, ttl=255, flowlabel=0xABCDE)

# Every option kind, each list padded to 32 bits as a script author would.
OPTION_LISTS = [
    (),
    (Mss(1460), SackPermitted(), Timestamp(4294967295, 0), Nop(), WindowScale(14)),
    (Nop(), Nop(), Sack(((1, 1001), (2001, 3001), (0xFFFFFFF0, 5)))),
    (Nop(), Nop(), Sack(())),
    (Mss(1012), Nop(), Nop(), FastOpen("0123456789abcdef")),
    (Mss(1460), Nop(), Nop(), FastOpen("")),
    (FastOpen("aabbccdd", experimental=True),),
    (Nop(), Nop(), Nop(), Nop(), FastOpen("", experimental=True)),
    (Md5("000102030405060708090a0b0c0d0e0f"), Nop(), Nop()),
    (AccEcn((("e0b", 1), ("ceb", 0), ("e1b", 0xFFFFFF))), Nop()),
    (AccEcn((("e1b", 7), ("ceb", 1000), ("e0b", 977))), Nop()),
    (AccEcn((("e0b", 5), ("ceb", 6))),),
    (AccEcn((("e1b", 3),)), Nop(), Nop(), Nop()),
    (AccEcn(()), Nop(), Nop()),
    (UnknownOption(99, b"\x01\x02"), Eol(), Eol(), Eol(), Eol()),
    (Mss(536), Eol(), Eol(), Eol(), Eol()),
]

FLAG_COMBOS = [0, SYN, SYN | ACK, FIN | PSH | ACK, RST, RST | ACK, URG | ACK,
               SYN | ECE | CWR, SYN | ACK | ECE, SYN | AE | CWR | ECE, ACK | AE, 0x1FF]


def option_ids(options: tuple) -> str:
    return ",".join(type(option).__name__ for option in options) or "none"


def tcp(flags: int = ACK, options: tuple = (), **fields) -> TcpHeader:
    base = dict(src_port=8080, dst_port=45678, seq=0xDEADBEEF, ack=123456, flags=flags,
                window=65535, urg_ptr=0, options=options)
    base.update(fields)
    return TcpHeader(**base)


def scapy_parse(frame: bytes):
    return IP(frame) if frame[0] >> 4 == 4 else IPv6(frame)


def scapy_recomputed(frame: bytes):
    """scapy's own checksums for the same packet: drop ours and rebuild."""
    packet = scapy_parse(frame)
    for layer, field in ((IP, "chksum"), (TCP, "chksum"), (UDP, "chksum"), (ICMP, "chksum"),
                         (ICMPv6DestUnreach, "cksum"), (ICMPv6PacketTooBig, "cksum")):
        if layer in packet:
            delattr(packet[layer], field)
    return scapy_parse(bytes(packet))


def header_fields(header: TcpHeader) -> tuple:
    """What the caller chose (the encoder computes data_offset and checksum)."""
    return (header.src_port, header.dst_port, header.seq, header.ack, header.flags,
            header.window, header.urg_ptr, header.options)


# ------------------------------------------------------------ round trips


@pytest.mark.parametrize("ip", [V4, V6], ids=["v4", "v6"])
@pytest.mark.parametrize("options", OPTION_LISTS, ids=option_ids)
def test_tcp_round_trip_every_option(ip, options):
    sent = tcp(SYN | ACK, options, urg_ptr=7)
    frame = wire.encode_tcp(ip, sent, 100)
    got = wire.decode(frame)
    assert header_fields(got.transport) == header_fields(sent)
    assert got.transport.data_offset == 20 + len(wire.encode_options(options))
    assert got.payload == bytes(100)
    assert got.ip.version == ip.version
    assert (got.ip.src, got.ip.dst, got.ip.tos, got.ip.ttl) == (ip.src, ip.dst, ip.tos, ip.ttl)
    if ip.version == 4:
        assert (got.ip.ip_id, got.ip.total_length, got.ip.flowlabel) == (0x1234, len(frame), 0)
    else:
        assert (got.ip.flowlabel, got.ip.total_length) == (0xABCDE, len(frame) - 40)
    assert wire.encode_tcp(got.ip, got.transport, got.payload) == frame


@pytest.mark.parametrize("flags", FLAG_COMBOS)
@pytest.mark.parametrize("ip", [V4, V6], ids=["v4", "v6"])
def test_flags_round_trip_and_match_scapy(ip, flags):
    frame = wire.encode_tcp(ip, tcp(flags), b"")
    assert wire.decode(frame).transport.flags == flags
    parsed = scapy_parse(frame)[TCP]
    assert int(parsed.flags) == flags  # scapy's 9-bit flags field: AE is its bit 8


def test_payload_bytes_and_zero_count_agree():
    assert wire.encode_tcp(V4, tcp(), 37) == wire.encode_tcp(V4, tcp(), bytes(37))
    data = bytes(range(256)) * 3 + b"x"  # odd length exercises checksum padding
    frame = wire.encode_tcp(V6, tcp(PSH | ACK), data)
    assert wire.decode(frame).payload == data
    assert scapy_recomputed(frame)[TCP].chksum == wire.decode(frame).transport.checksum


def test_tso_sized_segment():
    frame = wire.encode_tcp(V4, tcp(PSH | ACK), 65535 - 40)
    assert len(frame) == 65535
    assert len(wire.decode(frame).payload) == 65535 - 40
    with pytest.raises(EncodeError, match="exceeds 65535"):
        wire.encode_tcp(V4, tcp(), 65535 - 39)
    frame6 = wire.encode_tcp(V6, tcp(PSH | ACK), 65535 - 20)
    assert wire.decode(frame6).ip.total_length == 65535


option_strategy = st.one_of(
    st.just(Nop()), st.just(Eol()), st.just(SackPermitted()),
    st.builds(Mss, st.integers(0, 0xFFFF)),
    st.builds(WindowScale, st.integers(0, 255)),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Sack, st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                             max_size=3).map(tuple)),
    st.builds(FastOpen, st.binary(max_size=16).map(bytes.hex), st.booleans()),
    st.builds(Md5, st.binary(min_size=16, max_size=16).map(bytes.hex)),
    st.sampled_from(list(wire.ACCECN_ORDERS.values())).flatmap(
        lambda order: st.integers(0, 3).flatmap(
            lambda n: st.tuples(*[st.integers(0, 0xFFFFFF) for _ in range(n)]).map(
                lambda values: AccEcn(tuple(zip(order, values)))))),
    st.builds(UnknownOption, st.sampled_from([6, 7, 30, 99, 253]), st.binary(max_size=6)),
)


@settings(max_examples=300, deadline=None)
@given(options=st.lists(option_strategy, max_size=8), flags=st.integers(0, 0x1FF),
       seq=st.integers(0, 2**32 - 1), version=st.sampled_from([4, 6]),
       payload=st.binary(max_size=64))
def test_property_round_trip(options, flags, seq, version, payload):
    encoded = wire.encode_options(options)
    padding = (-len(encoded)) % 4
    options = tuple(options) + (Nop(),) * padding
    if len(encoded) + padding > 40:
        with pytest.raises(EncodeError, match="fit in 40"):
            wire.encode_tcp(V4 if version == 4 else V6, tcp(flags, options), payload)
        return
    sent = tcp(flags, options, seq=seq)
    frame = wire.encode_tcp(V4 if version == 4 else V6, sent, payload)
    got = wire.decode(frame)
    assert header_fields(got.transport) == header_fields(sent)
    assert got.payload == payload


# ------------------------------------------------------------ checksums vs scapy


@pytest.mark.parametrize("ip", [V4, V6], ids=["v4", "v6"])
@pytest.mark.parametrize("options", OPTION_LISTS, ids=option_ids)
def test_tcp_checksums_match_scapy(ip, options):
    frame = wire.encode_tcp(ip, tcp(SYN | ACK | AE, options), 1000)
    ours = scapy_parse(frame)
    theirs = scapy_recomputed(frame)
    assert ours[TCP].chksum == theirs[TCP].chksum
    if ip.version == 4:
        assert ours[IP].chksum == theirs[IP].chksum
    assert bytes(theirs) == frame


def test_ip_and_tcp_fields_as_scapy_sees_them():
    frame = wire.encode_tcp(IpHeader(4, "10.0.0.1", "10.0.0.2", tos=0xB8 | 3, ttl=9, ip_id=77,
                                     dont_fragment=True),
                            tcp(SYN, (Mss(1400), Nop(), WindowScale(3)), seq=5, window=1234,
                                urg_ptr=9), 3)
    packet = IP(frame)
    assert (packet.src, packet.dst, packet.tos, packet.ttl, packet.id) == ("10.0.0.1", "10.0.0.2", 0xBB, 9, 77)
    assert packet.flags == "DF" and packet.len == len(frame)
    segment = packet[TCP]
    assert (segment.sport, segment.dport, segment.seq, segment.window, segment.urgptr) == (8080, 45678, 5, 1234, 9)
    assert segment.options == [("MSS", 1400), ("NOP", None), ("WScale", 3)]
    v6 = IPv6(wire.encode_tcp(V6, tcp(), 0))
    assert (v6.tc, v6.fl, v6.hlim, v6.plen) == (0x03, 0xABCDE, 255, 20)


@pytest.mark.parametrize("ip", [V4, V6], ids=["v4", "v6"])
@pytest.mark.parametrize("payload", [b"", b"odd", bytes(1000)])
def test_udp_round_trip_and_checksum(ip, payload):
    frame = wire.encode_udp(ip, UdpHeader(5353, 53), payload)
    got = wire.decode(frame)
    assert (got.transport.src_port, got.transport.dst_port, got.transport.length) == (5353, 53, 8 + len(payload))
    assert got.payload == payload
    assert scapy_recomputed(frame)[UDP].chksum == got.transport.checksum != 0
    zeros = bytes(len(payload))
    assert wire.encode_udp(ip, UdpHeader(5353, 53), len(payload)) == wire.encode_udp(ip, UdpHeader(5353, 53), zeros)


# ------------------------------------------------------------ ICMP


def test_icmpv4_frag_needed_quotes_ip_and_full_tcp_header():
    inner_ip = IpHeader(4, V4.dst, V4.src, ttl=64, dont_fragment=True)
    original = wire.encode_tcp(inner_ip, tcp(PSH | ACK, (Nop(), Nop(), Timestamp(1, 2)),
                                             src_port=45678, dst_port=8080, seq=1001), 1460)
    quoted = wire.icmp_quote(original)
    assert quoted == original[:20 + 32]
    icmp_type, code = wire.icmp_type_code(4, "unreachable", "frag_needed")
    frame = wire.encode_icmp(V4, IcmpHeader(icmp_type, code, mtu=1200, quoted=quoted))
    got = wire.decode(frame)
    assert got.transport == IcmpHeader(3, 4, 1200, quoted, got.transport.checksum)
    packet = IP(frame)
    assert (packet[ICMP].type, packet[ICMP].code, packet[ICMP].nexthopmtu) == (3, 4, 1200)
    assert packet[IPerror].len == len(original)
    assert packet[TCPerror].seq == 1001
    assert scapy_recomputed(frame)[ICMP].chksum == packet[ICMP].chksum
    assert scapy_recomputed(frame)[IP].chksum == packet[IP].chksum


def test_icmpv4_host_unreachable_without_mtu():
    original = wire.encode_tcp(IpHeader(4, V4.dst, V4.src), tcp(SYN, seq=0), 10)
    frame = wire.encode_icmp(V4, IcmpHeader(*wire.icmp_type_code(4, "unreachable", "host_unreachable"),
                                            quoted=wire.icmp_quote(original)))
    got = wire.decode(frame).transport
    assert (got.type, got.code, got.mtu) == (3, 1, 0)
    assert IP(frame)[ICMP].code == 1


def test_icmpv6_packet_too_big_fits_minimum_mtu():
    original = wire.encode_tcp(IpHeader(6, V6.dst, V6.src), tcp(PSH | ACK, seq=1), 1460)
    quoted = wire.icmp_quote(original)
    frame = wire.encode_icmp(V6, IcmpHeader(*wire.icmp_type_code(6, "packet_too_big", None),
                                            mtu=1280, quoted=quoted))
    assert len(frame) == 1280
    got = wire.decode(frame)
    assert got.transport == IcmpHeader(2, 0, 1280, original[:1232], got.transport.checksum)
    packet = IPv6(frame)
    assert packet[ICMPv6PacketTooBig].mtu == 1280
    assert packet[IPerror6].src == V6.dst
    assert scapy_recomputed(frame)[ICMPv6PacketTooBig].cksum == packet[ICMPv6PacketTooBig].cksum


def test_icmpv6_unreachable():
    original = wire.encode_tcp(IpHeader(6, V6.dst, V6.src), tcp(SYN), 0)
    frame = wire.encode_icmp(V6, IcmpHeader(*wire.icmp_type_code(6, "unreachable", "port_unreachable"),
                                            quoted=wire.icmp_quote(original)))
    got = wire.decode(frame).transport
    assert (got.type, got.code, got.mtu, got.quoted) == (1, 4, None, original)
    packet = IPv6(frame)
    assert packet[ICMPv6DestUnreach].code == 4
    assert scapy_recomputed(frame)[ICMPv6DestUnreach].cksum == packet[ICMPv6DestUnreach].cksum


@pytest.mark.parametrize("version,type_name,code_name,expected", [
    (4, "unreachable", None, (3, 0)),
    (4, "unreachable", "frag_needed", (3, 4)),
    (4, "unreachable", "precedence_cutoff", (3, 15)),
    (4, "unreachable", "source_host_isolated", (3, 8)),
    (4, "source_quench", None, (4, 0)),
    (4, "echo_request", None, (8, 0)),
    (4, "time_exceeded", "code_1", (11, 1)),
    (4, "type_42", "code_7", (42, 7)),
    # ICMPv6 as packetdrill spells it (checked on the wire of its runs)
    (6, "unreachable", "net_unreachable", (1, 0)),
    (6, "unreachable", "no_route", (1, 0)),
    (6, "unreachable", "admin_prohibited", (1, 1)),
    (6, "unreachable", "not_neighbour", (1, 2)),
    (6, "unreachable", "address_unreachable", (1, 3)),
    (6, "unreachable", "port_unreachable", (1, 4)),
    (6, "time_exceeded", "exceeded_hop_limit", (3, 0)),
    (6, "time_exceeded", "exceeded_frag_time", (3, 1)),
    (6, "parameter_problem", "header_field", (4, 0)),
    (6, "parameter_problem", "unknown_next_header", (4, 1)),
    (6, "parameter_problem", "unknown_option", (4, 2)),
    (6, "packet_too_big", None, (2, 0)),
    (6, "type_3", "code_1", (3, 1)),
])
def test_icmp_names(version, type_name, code_name, expected):
    assert wire.icmp_type_code(version, type_name, code_name) == expected


@pytest.mark.parametrize("version,type_name,code_name,message", [
    (4, "packet_too_big", None, "known types: echo_reply, unreachable"),
    (6, "source_quench", None, "unknown ICMPv6 type 'source_quench'"),
    (4, "unreachable", "no_route", "known codes: net_unreachable, host_unreachable"),
    (6, "unreachable", "frag_needed", "known codes: net_unreachable, no_route, admin_prohibited"),
    (6, "unreachable", "beyond_scope", "unknown ICMPv6 code 'beyond_scope'"),
    (4, "time_exceeded", "ttl_exceeded", "only code_N"),
    (4, "echo_request", "bogus", "only code_N"),
    (4, "type_300", None, "unknown ICMPv4 type"),
])
def test_icmp_bad_names(version, type_name, code_name, message):
    with pytest.raises(wire.UnknownIcmpName, match=message):
        wire.icmp_type_code(version, type_name, code_name)


@pytest.mark.parametrize("version,numbers,names", [
    (4, (3, 4), ("unreachable", "frag_needed")),
    (4, (3, 0), ("unreachable", "net_unreachable")),
    (4, (11, 0), ("time_exceeded", None)),
    (4, (11, 1), ("time_exceeded", "code_1")),
    (6, (1, 4), ("unreachable", "port_unreachable")),
    (6, (42, 7), ("type_42", "code_7")),
])
def test_icmp_numbers_named_as_a_script_writes_them(version, numbers, names):
    assert wire.icmp_names(version, *numbers) == names
    assert wire.icmp_type_code(version, *names) == numbers


# ------------------------------------------------------------ flags helpers


@pytest.mark.parametrize("letters,ace,flags", [
    ("S", None, SYN),
    ("S.", None, SYN | ACK),
    ("FP.", None, FIN | PSH | ACK),
    ("R.", None, RST | ACK),
    ("SEW", None, SYN | ECE | CWR),
    ("SEWA", None, SYN | ECE | CWR | AE),
    ("PEA.", None, PSH | ECE | AE | ACK),
    ("U.", None, URG | ACK),
    ("-", None, 0),
    ("", None, 0),
    (".", 0, ACK),
    (".", 1, ACK | ECE),
    (".", 2, ACK | CWR),
    (".", 4, ACK | AE),
    (".", 5, ACK | AE | ECE),
    ("P.", 6, PSH | ACK | AE | CWR),
    ("S.", 7, SYN | ACK | AE | CWR | ECE),
])
def test_flag_letters(letters, ace, flags):
    assert wire.flags_from_letters(letters, ace) == flags
    canonical = "".join(sorted(letters.strip("-"), key="FSRPEWAU.".index))
    assert wire.flags_to_letters(flags, ace=ace is not None) == (canonical, ace)
    if ace is not None:
        assert tcp(flags).ace == ace


def test_flag_letters_errors():
    with pytest.raises(ValueError, match="unknown TCP flag 'X'"):
        wire.flags_from_letters("SX")
    with pytest.raises(ValueError, match="cannot be combined"):
        wire.flags_from_letters("E.", 1)
    with pytest.raises(ValueError, match="0-7"):
        wire.flags_from_letters(".", 8)


def test_ace_digit_matches_scapy_bits():
    for ace in range(8):
        frame = wire.encode_tcp(V4, tcp(wire.flags_from_letters(".", ace)))
        flags = scapy_parse(frame)[TCP].flags  # scapy's letters: N is AE (ex-NS), C is CWR
        assert (bool(flags.N), bool(flags.C), bool(flags.E)) == (bool(ace & 4), bool(ace & 2), bool(ace & 1))


# ------------------------------------------------------------ decoding scapy packets


def test_decode_scapy_built_v4_with_options():
    packet = (IP(src="192.0.2.1", dst="192.168.0.5", tos=0x01, ttl=17, id=4242)
              / TCP(sport=1234, dport=8080, seq=1, ack=2, flags="SAE", window=29200, urgptr=3,
                    options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (700, 800)),
                             ("NOP", None), ("WScale", 7), ("SAck", (10, 20, 30, 40)),
                             ("NOP", None), ("NOP", None)])
              / Raw(b"hello"))
    got = wire.decode(bytes(packet))
    assert got.ip == IpHeader(4, "192.0.2.1", "192.168.0.5", 0x01, 17, 0, 4242, 20 + 60 + 5)
    assert got.ip.ecn == wire.ECN_ECT1
    segment = got.transport
    assert (segment.src_port, segment.dst_port, segment.seq, segment.ack) == (1234, 8080, 1, 2)
    assert (segment.flags, segment.window, segment.urg_ptr, segment.data_offset) == (SYN | ACK | ECE, 29200, 3, 60)
    assert segment.options == (Mss(1460), SackPermitted(), Timestamp(700, 800), Nop(), WindowScale(7),
                               Sack(((10, 20), (30, 40))), Nop(), Nop())
    assert segment.checksum == IP(bytes(packet))[TCP].chksum
    assert got.payload == b"hello"


def test_decode_scapy_built_exotic_options():
    first = [(34, bytes.fromhex("abcd1234")), (254, bytes.fromhex("f989cafe")),
             (19, bytes(range(16))), ("NOP", None), ("NOP", None)]
    packet = IPv6(src="2001:db8::1", dst="fd00::2", tc=0x02, fl=5, hlim=3) / TCP(options=first)
    got = wire.decode(bytes(packet))
    assert got.ip == IpHeader(6, "2001:db8::1", "fd00::2", 0x02, 3, 5, 0, 20 + 32)
    assert got.transport.options == (
        FastOpen("abcd1234"), FastOpen("cafe", experimental=True),
        Md5("000102030405060708090a0b0c0d0e0f"), Nop(), Nop())
    second = [(172, bytes.fromhex("000001000000000002")), (174, bytes.fromhex("000003")),
              (254, b"\x12\x34"), (99, b""), ("NOP", None), ("NOP", None)]
    got = wire.decode(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(options=second)))
    assert got.transport.options == (
        AccEcn((("e0b", 1), ("ceb", 0), ("e1b", 2))), AccEcn((("e1b", 3),)),
        UnknownOption(254, b"\x12\x34"), UnknownOption(99, b""), Nop(), Nop())


@pytest.mark.parametrize("raw,expected", [
    (b"\xac\x02\x00\x00", (AccEcn(()), Eol(), Eol())),
    (b"\xac\x05\x00\x00\x07\x01\x01\x01", (AccEcn((("e0b", 7),)), Nop(), Nop(), Nop())),
    (b"\xae\x08\xff\xff\xff\x00\x00\x09\x01\x01", (AccEcn((("e1b", 0xFFFFFF), ("ceb", 9))), Nop(), Nop())),
    (b"\xac\x04\x00\x01", (UnknownOption(172, b"\x00\x01"),)),  # not a whole counter
    (b"\x02\x03\x05\x01", (UnknownOption(2, b"\x05"), Nop())),  # mss of the wrong size
    (b"\x08\x06\x00\x00\x00\x01", (UnknownOption(8, b"\x00\x00\x00\x01"),)),
    (b"\x05\x06\x00\x00\x00\x01", (UnknownOption(5, b"\x00\x00\x00\x01"),)),
    (b"\x02\x04\x05\xb4\x00\x00\x00\x00", (Mss(1460), Eol(), Eol(), Eol(), Eol())),
])
def test_truncated_and_odd_options(raw, expected):
    assert wire.decode_options(raw) == expected
    assert wire.encode_options(expected) == raw


@pytest.mark.parametrize("raw,message", [
    (b"\x02\x04\x05", "has length 4, but 3 option bytes remain"),
    (b"\x01\x01\x01\x08", "no length byte"),
    (b"\x03\x01\x00\x00", "has length 1"),
    (b"\x13\x00\x00\x00", "has length 0"),
])
def test_options_running_off_the_header(raw, message):
    with pytest.raises(DecodeError, match=message):
        wire.decode_options(raw)
    frame = bytearray(wire.encode_tcp(V4, tcp(options=(Nop(),) * 4)))
    frame[40:44] = raw
    with pytest.raises(DecodeError):
        wire.decode(bytes(frame))


def test_decode_v6_extension_headers():
    hop = IPv6(src="2001:db8::1", dst="fd00::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(flags="S", seq=9)
    got = wire.decode(bytes(hop))
    assert (got.transport.flags, got.transport.seq) == (SYN, 9)
    fragment = IPv6(src="2001:db8::1", dst="fd00::2") / IPv6ExtHdrFragment() / TCP()
    with pytest.raises(DecodeError, match="fragment"):
        wire.decode(bytes(fragment))


def test_decode_ignores_bytes_beyond_ip_length():
    frame = wire.encode_tcp(V4, tcp(), b"abc")
    assert wire.decode(frame + b"\xff" * 7).payload == b"abc"


# ------------------------------------------------------------ garbage


def _v4_tcp() -> bytearray:
    return bytearray(wire.encode_tcp(V4, tcp(options=(Mss(1000),)), b"data"))


def _patched(offset: int, value: int) -> bytes:
    frame = _v4_tcp()
    frame[offset] = value
    return bytes(frame)


@pytest.mark.parametrize("frame,message", [
    (b"", "empty"),
    (b"\x45" + bytes(10), "needs 20 bytes"),
    (b"\x60" + bytes(30), "needs 40 bytes"),
    (b"\x55" + bytes(40), "IP version 5"),
    (_patched(0, 0x44), "header length 16"),
    (_patched(3, 0xFF), "total length"),
    (bytes(_v4_tcp()[:30]), "total length"),
    (_patched(6, 0x20), "fragment"),
    (_patched(7, 0x01), "fragment"),
    (_patched(32, 0x40), "data offset 16"),
    (_patched(32, 0xF0), "data offset 60 exceeds"),
    (bytes(wire.encode_tcp(V6, tcp()))[:50], "payload length 20 exceeds"),
    (bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=6) / Raw(b"\x00" * 10)), "TCP header needs 20"),
    (bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=17) / Raw(b"\x00" * 4)), "UDP header needs 8"),
    (bytes(IPv6(src="::1", dst="::2", nh=0) / Raw(b"\x06\x05")), "extension header"),
])
def test_garbage_raises_decode_error(frame, message):
    with pytest.raises(DecodeError, match=message):
        wire.decode(frame)


def test_unsupported_protocol_is_a_decode_error_with_the_number():
    with pytest.raises(wire.UnsupportedProtocol) as info:
        wire.decode(bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=2) / Raw(b"\x11" * 8)))
    assert info.value.protocol == 2 and isinstance(info.value, DecodeError)
    with pytest.raises(wire.UnsupportedProtocol):  # ICMPv4 inside IPv6 is not ICMP
        wire.decode(bytes(IPv6(src="::1", dst="::2", nh=1) / Raw(bytes(8))))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120) | st.binary(min_size=1, max_size=80).map(lambda tail: bytes(_v4_tcp()[:24]) + tail))
def test_random_bytes_decode_or_raise_decode_error(frame):
    try:
        wire.decode(frame)
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 63), st.integers(0, 255))
def test_single_byte_corruption_never_crashes(offset, value):
    frame = bytearray(wire.encode_tcp(V4, tcp(options=(Mss(1000), Nop(), Nop(), Timestamp(1, 2), Nop(), Nop(), Sack(((1, 2),)))), b"xyz"))
    frame[offset % len(frame)] = value
    try:
        wire.decode(bytes(frame))
    except DecodeError:
        pass


# ------------------------------------------------------------ encoding errors


@pytest.mark.parametrize("options,message", [
    ((Mss(1460),) * 11, "fit in 40"),
    ((WindowScale(7),), "multiple of 4"),
    ((Mss(70000),), "cannot encode TCP option"),
    ((FastOpen("xyz"),), "cannot encode TCP option"),
    ((AccEcn((("ceb", 1),)),), "follow neither"),
    ((AccEcn((("e0b", 1 << 24),)),), "24 bits"),
    (("mss 1460",), "not a TCP option"),
])
def test_encode_option_errors(options, message):
    with pytest.raises(EncodeError, match=message):
        wire.encode_tcp(V4, tcp(options=options))


@pytest.mark.parametrize("ip,header,message", [
    (IpHeader(4, "2001:db8::1", "10.0.0.1"), tcp(), "not an IPv4 address"),
    (IpHeader(6, "10.0.0.1", "::1"), tcp(), "not an IPv6 address"),
    (IpHeader(5, "10.0.0.1", "10.0.0.2"), tcp(), "IP version"),
    (IpHeader(4, "10.0.0.1", "10.0.0.2", ttl=256), tcp(), "IPv4 header field"),
    (IpHeader(6, "::1", "::2", flowlabel=1 << 20), tcp(), "flow label"),
    (V4, tcp(seq=1 << 32), "TCP header field"),
    (V4, tcp(flags=0x200), "9 bits"),
])
def test_encode_header_errors(ip, header, message):
    with pytest.raises(EncodeError, match=message):
        wire.encode_tcp(ip, header)


def test_internet_checksum_reference():
    """RFC 1071's worked example, and a word-by-word reference implementation."""
    assert wire.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2) & 0xFFFF
    data = bytes(range(1, 200))
    words = struct.unpack(f"!{len(data) // 2}H", data[:-1]) + (data[-1] << 8,)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert wire.internet_checksum(data) == (~total) & 0xFFFF
    assert wire.internet_checksum(b"") == 0xFFFF
    assert wire.internet_checksum(b"\xff\xff") == 0


def test_wire_does_not_import_scapy():
    code = "import sys, tcptest.wire, tcptest.pcap; sys.exit('scapy' in ' '.join(sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
