"""Bytes ⇄ decoded IPv4/IPv6 packets carrying TCP, UDP or ICMP, with `struct`.

Every captured and every injected packet goes through this module, so it stays
on the standard library: scapy does the same job two orders of magnitude slower
(`benchmarks/bench_wire.py`). TCP options decode into the option classes of
`script.py`, so the runner compares what a script wrote with what the kernel
sent without a translation step.

Decoding never verifies checksums: with TUN checksum offload the kernel hands
out packets whose TCP checksum holds only the pseudo-header sum. Encoding always
computes lengths and checksums itself; the `total_length`, `data_offset`,
`length` and `checksum` fields of the headers it is given are ignored.

Encoding API (all return a complete IP packet):
    encode_tcp(ip: IpHeader, tcp: TcpHeader, payload: bytes | int = b"")
    encode_udp(ip: IpHeader, udp: UdpHeader, payload: bytes | int = b"")
    encode_icmp(ip: IpHeader, icmp: IcmpHeader)
An int payload means that many zero bytes, packetdrill's payload.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Sequence, Union

from .script import (
    AccEcn,
    Eol,
    FastOpen,
    Md5,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamp,
    WindowScale,
)

# ------------------------------------------------------------------ constants

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

# The two low bits of the v4 TOS byte / v6 traffic class (RFC 3168).
ECN_MASK = 0x03
ECN_NOT_ECT = 0x00
ECN_ECT1 = 0x01
ECN_ECT0 = 0x02
ECN_CE = 0x03

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
AE = 0x100
# AccECN's ACE counter is the three bits AE|CWR|ECE read as one number: ECE is
# its bit 0, CWR bit 1, AE bit 2, which is exactly `(flags >> 6) & 7`.
ACE_SHIFT = 6
ACE_MASK = AE | CWR | ECE

TCPOPT_EOL = 0
TCPOPT_NOP = 1
TCPOPT_MSS = 2
TCPOPT_WINDOW = 3
TCPOPT_SACK_PERMITTED = 4
TCPOPT_SACK = 5
TCPOPT_TIMESTAMP = 8
TCPOPT_MD5 = 19
TCPOPT_FASTOPEN = 34
TCPOPT_ACCECN0 = 172  # counters in the order e0b, ceb, e1b
TCPOPT_ACCECN1 = 174  # counters in the order e1b, ceb, e0b
TCPOPT_EXP = 254  # experimental; Fast Open before kind 34 used magic 0xF989
TCPOPT_FASTOPEN_MAGIC = 0xF989
MAX_TCP_OPTIONS_LEN = 40

ACCECN_ORDERS = {
    TCPOPT_ACCECN0: ("e0b", "ceb", "e1b"),
    TCPOPT_ACCECN1: ("e1b", "ceb", "e0b"),
}
_ACCECN_MAX = 0xFFFFFF

# Letters of `script.TcpSegment.flags` in their canonical order ("." = ACK last).
_FLAG_LETTERS = (("F", FIN), ("S", SYN), ("R", RST), ("P", PSH),
                 ("E", ECE), ("W", CWR), ("A", AE), ("U", URG), (".", ACK))
_FLAG_BY_LETTER = dict(_FLAG_LETTERS)

# ------------------------------------------------------------------ ICMP names
# packetdrill's names after `icmp` (icmp_packet.c), per IP version:
# type name -> (number, {code name: number}). A missing code means 0; `type_N`
# and `code_N` give a number directly. The parser checks names against both
# versions (a script is read before its run's version is known); a run maps
# them with its own.

ICMPV4_UNREACHABLE = 3
ICMPV4_FRAG_NEEDED = 4
ICMPV6_UNREACHABLE = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMP_NAMES: dict[int, dict[str, tuple[int, dict[str, int]]]] = {
    4: {
        "echo_reply": (0, {}),
        "unreachable": (ICMPV4_UNREACHABLE, {
            "net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2,
            "port_unreachable": 3, "frag_needed": ICMPV4_FRAG_NEEDED, "source_route_failed": 5,
            "net_unknown": 6, "host_unknown": 7, "source_host_isolated": 8,
            "net_prohibited": 9, "host_prohibited": 10, "net_unreachable_for_tos": 11,
            "host_unreachable_for_tos": 12, "packet_filtered": 13,
            "precedence_violation": 14, "precedence_cutoff": 15,
        }),
        "source_quench": (4, {}),
        "redirect": (5, {}),
        "echo_request": (8, {}),
        "time_exceeded": (11, {}),
        "parameter_problem": (12, {}),
        "timestamp_request": (13, {}),
        "timestamp_reply": (14, {}),
        "information_request": (15, {}),
        "information_reply": (16, {}),
        "address_mask_request": (17, {}),
        "address_mask_reply": (18, {}),
    },
    6: {
        "unreachable": (ICMPV6_UNREACHABLE, {
            "net_unreachable": 0, "no_route": 0, "admin_prohibited": 1, "not_neighbour": 2,
            "address_unreachable": 3, "port_unreachable": 4,
        }),
        "packet_too_big": (ICMPV6_PACKET_TOO_BIG, {}),
        "time_exceeded": (3, {"exceeded_hop_limit": 0, "exceeded_frag_time": 1}),
        "parameter_problem": (4, {"header_field": 0, "unknown_next_header": 1, "unknown_option": 2}),
        "echo_request": (128, {}),
        "echo_reply": (129, {}),
    },
}


class UnknownIcmpName(ValueError):
    """A name `icmp_type_code` does not know; `field` is "type" or "code"."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def icmp_type_code(ip_version: int, type_name: str, code_name: str | None) -> tuple[int, int]:
    """Map packetdrill's `icmp TYPE [CODE]` names to numbers, for one IP
    version. Raises UnknownIcmpName naming the known names."""
    if ip_version not in ICMP_NAMES:
        raise ValueError(f"IP version must be 4 or 6, not {ip_version}")
    types, family = ICMP_NAMES[ip_version], f"ICMPv{ip_version}"
    icmp_type, codes = types.get(type_name, (_numbered_name(type_name, "type_"), {}))
    if icmp_type is None:
        raise UnknownIcmpName(f"unknown {family} type {type_name!r}; known types: "
                              f"{', '.join(types)} (or type_N)", "type")
    if code_name is None:
        return icmp_type, 0
    code = codes.get(code_name, _numbered_name(code_name, "code_"))
    if code is None:
        names = f"{', '.join(codes)} (or code_N)" if codes else "only code_N"
        raise UnknownIcmpName(f"unknown {family} code {code_name!r} for type {type_name!r}; "
                              f"known codes: {names}", "code")
    return icmp_type, code


def icmp_names(ip_version: int, icmp_type: int, code: int) -> tuple[str, str | None]:
    """The script's words for a (type, code) of this IP version: the first
    name the table gives each, else `type_N` / `code_N` (none for an unnamed 0)."""
    type_name, codes = next(((name, codes) for name, (number, codes) in ICMP_NAMES[ip_version].items()
                             if number == icmp_type), (f"type_{icmp_type}", {}))
    unnamed = None if code == 0 else f"code_{code}"
    return type_name, next((name for name, number in codes.items() if number == code), unnamed)


# RFC 4443 2.4(c): an ICMPv6 error must fit in the minimum MTU.
IPV6_MIN_MTU = 1280


def _numbered_name(name: str, prefix: str) -> int | None:
    """`type_3` -> 3 (for prefix "type_"), None if `name` is not of that form."""
    digits = name[len(prefix):]
    if name.startswith(prefix) and digits.isdigit() and int(digits) <= 255:
        return int(digits)
    return None


# ------------------------------------------------------------------ flags


def flags_from_letters(letters: str, ace: int | None = None) -> int:
    """`script.TcpSegment` flags (`"S."`, `"FP."`, `"-"` or `""`) and ACE digit
    to the flag bits. Raises ValueError on a foreign letter or on an ACE digit
    given together with E, W or A (they are the same bits)."""
    flags = 0
    for letter in "" if letters == "-" else letters:
        bit = _FLAG_BY_LETTER.get(letter)
        if bit is None:
            raise ValueError(f"unknown TCP flag {letter!r} in {letters!r}; known: FSRPEWAU.")
        flags |= bit
    if ace is not None:
        if not 0 <= ace <= 7:
            raise ValueError(f"ACE value must be 0-7, not {ace}")
        if flags & ACE_MASK:
            raise ValueError(f"ACE value {ace} cannot be combined with E, W or A in {letters!r}")
        flags |= ace << ACE_SHIFT
    return flags


def flags_to_letters(flags: int, *, ace: bool = False) -> tuple[str, int | None]:
    """Flag bits to (letters in canonical order, ACE digit or None).

    With `ace` the AE/CWR/ECE bits come back as the ACE digit (AccECN
    connections), otherwise as the letters A, W, E. No flags give ""."""
    skip = ACE_MASK if ace else 0
    letters = "".join(letter for letter, bit in _FLAG_LETTERS if flags & bit & ~skip)
    return letters, ((flags & ACE_MASK) >> ACE_SHIFT) if ace else None


# ------------------------------------------------------------------ headers


class DecodeError(ValueError):
    """The bytes are not a well-formed IPv4/IPv6 packet of a kind we decode."""


class UnsupportedProtocol(DecodeError):
    """A well-formed IP packet whose payload is not TCP, UDP or ICMP (e.g. IGMP):
    callers usually skip these rather than report them."""

    def __init__(self, protocol: int):
        super().__init__(f"unsupported IP protocol {protocol}")
        self.protocol = protocol


class EncodeError(ValueError):
    """A header or option cannot be put on the wire as given."""


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """A TCP option of a kind we do not decode, or of a known kind with a
    length that does not fit it: kept raw so nothing the kernel sent is lost."""

    kind: int
    data: bytes  # the bytes after kind and length


AnyTcpOption = Union[TcpOption, UnknownOption]


@dataclass(frozen=True, slots=True)
class IpHeader:
    """IPv4 or IPv6 header fields. `tos` is the v4 TOS byte or the v6 traffic
    class, ECN bits included; `ttl` is the v4 TTL or v6 hop limit;
    `total_length` is the v4 total length or v6 payload length as on the wire."""

    version: int
    src: str
    dst: str
    tos: int = 0
    ttl: int = 64
    flowlabel: int = 0
    ip_id: int = 0
    total_length: int = 0
    dont_fragment: bool = False  # v4 DF bit

    @property
    def ecn(self) -> int:
        return self.tos & ECN_MASK


@dataclass(frozen=True, slots=True)
class TcpHeader:
    """A TCP header; `flags` uses the FIN..AE bits above, `data_offset` is the
    header length in bytes."""

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urg_ptr: int = 0
    options: tuple[AnyTcpOption, ...] = ()
    data_offset: int = 0
    checksum: int = 0

    @property
    def ace(self) -> int:
        """The AccECN ACE counter held in AE|CWR|ECE."""
        return (self.flags & ACE_MASK) >> ACE_SHIFT


@dataclass(frozen=True, slots=True)
class UdpHeader:
    src_port: int
    dst_port: int
    length: int = 0
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class IcmpHeader:
    """An ICMPv4/v6 message. `mtu` is the next-hop MTU of a v4 unreachable
    (0 when unused) or the MTU of a v6 packet-too-big, None for other types.
    `quoted` is everything after the 8-byte header: for errors, the start of
    the original datagram."""

    type: int
    code: int
    mtu: int | None = None
    quoted: bytes = b""
    checksum: int = 0


Transport = Union[TcpHeader, UdpHeader, IcmpHeader]


@dataclass(frozen=True, slots=True)
class Datagram:
    ip: IpHeader
    transport: Transport
    payload: bytes  # TCP/UDP data; empty for ICMP (see IcmpHeader.quoted)


# ------------------------------------------------------------------ decoding

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIHHHH")
_UDP = struct.Struct("!HHHH")
_ICMP = struct.Struct("!BBHI")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TS = struct.Struct("!II")

_NOP = Nop()
_EOL = Eol()
_SACK_PERMITTED = SackPermitted()
_IPV6_SKIPPED_HEADERS = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS))
_ntop = socket.inet_ntop
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6


def decode(frame: bytes) -> Datagram:
    """Decode one IPv4 or IPv6 packet (no link-layer header).

    Bytes beyond the IP length are ignored; a frame shorter than its IP length,
    a fragment, or a malformed header raises DecodeError."""
    size = len(frame)
    if size == 0:
        raise DecodeError("empty frame")
    version = frame[0] >> 4
    if version == 4:
        if size < 20:
            raise DecodeError(f"IPv4 header needs 20 bytes, frame has {size}")
        (ver_ihl, tos, total, ip_id, frag, ttl, protocol, _, src, dst) = _IPV4.unpack_from(frame)
        start = (ver_ihl & 0x0F) * 4
        if start < 20:
            raise DecodeError(f"IPv4 header length {start} is below 20")
        if total < start or total > size:
            raise DecodeError(f"IPv4 total length {total} does not fit header length "
                              f"{start} and frame length {size}")
        if frag & 0x3FFF:
            raise DecodeError(f"IPv4 fragment (offset {(frag & 0x1FFF) * 8}, "
                              f"more fragments {bool(frag & 0x2000)}) cannot be decoded")
        ip = IpHeader(4, _ntop(_AF_INET, src), _ntop(_AF_INET, dst), tos, ttl, 0, ip_id,
                      total, bool(frag & 0x4000))
        end = total
        icmp_protocol = IPPROTO_ICMP
    elif version == 6:
        if size < 40:
            raise DecodeError(f"IPv6 header needs 40 bytes, frame has {size}")
        first, payload_length, protocol, hop_limit, src, dst = _IPV6.unpack_from(frame)
        end = 40 + payload_length
        if end > size:
            raise DecodeError(f"IPv6 payload length {payload_length} exceeds the "
                              f"{size - 40} bytes after the header")
        start = 40
        while protocol in _IPV6_SKIPPED_HEADERS:
            if start + 8 > end:
                raise DecodeError(f"IPv6 extension header {protocol} truncated")
            protocol, units = frame[start], frame[start + 1]
            start += (units + 1) * 8
            if start > end:
                raise DecodeError("IPv6 extension header runs past the payload")
        if protocol == IPPROTO_FRAGMENT:
            raise DecodeError("IPv6 fragment cannot be decoded")
        ip = IpHeader(6, _ntop(_AF_INET6, src), _ntop(_AF_INET6, dst), (first >> 20) & 0xFF,
                      hop_limit, first & 0xFFFFF, 0, payload_length)
        icmp_protocol = IPPROTO_ICMPV6
    else:
        raise DecodeError(f"IP version {version} is neither 4 nor 6")

    if protocol == IPPROTO_TCP:
        return _decode_tcp(ip, frame, start, end)
    if protocol == IPPROTO_UDP:
        if end - start < 8:
            raise DecodeError(f"UDP header needs 8 bytes, {end - start} left")
        src_port, dst_port, length, checksum = _UDP.unpack_from(frame, start)
        return Datagram(ip, UdpHeader(src_port, dst_port, length, checksum), frame[start + 8:end])
    if protocol == icmp_protocol:
        if end - start < 8:
            raise DecodeError(f"ICMP header needs 8 bytes, {end - start} left")
        icmp_type, code, checksum, rest = _ICMP.unpack_from(frame, start)
        mtu = None
        if version == 4 and icmp_type == ICMPV4_UNREACHABLE:
            mtu = rest & 0xFFFF
        elif version == 6 and icmp_type == ICMPV6_PACKET_TOO_BIG:
            mtu = rest
        return Datagram(ip, IcmpHeader(icmp_type, code, mtu, frame[start + 8:end], checksum), b"")
    raise UnsupportedProtocol(protocol)


def _decode_tcp(ip: IpHeader, frame: bytes, start: int, end: int) -> Datagram:
    if end - start < 20:
        raise DecodeError(f"TCP header needs 20 bytes, {end - start} left")
    (src_port, dst_port, seq, ack, offset_flags, window, checksum,
     urg_ptr) = _TCP.unpack_from(frame, start)
    header_length = (offset_flags >> 12) * 4
    if header_length < 20:
        raise DecodeError(f"TCP data offset {header_length} is below 20")
    if start + header_length > end:
        raise DecodeError(f"TCP data offset {header_length} exceeds the "
                          f"{end - start} bytes of the segment")
    options = decode_options(frame[start + 20:start + header_length]) if header_length > 20 else ()
    tcp = TcpHeader(src_port, dst_port, seq, ack, offset_flags & 0x1FF, window, urg_ptr,
                    options, header_length, checksum)
    return Datagram(ip, tcp, frame[start + header_length:end])


def decode_options(data: bytes) -> tuple[AnyTcpOption, ...]:
    """Decode the TCP option bytes, every byte accounted for: each zero byte is
    an `Eol` (so re-encoding gives the same bytes), an option of known kind but
    unexpected length an `UnknownOption`. An option running past the end, or
    with a length below 2, raises DecodeError."""
    options: list[AnyTcpOption] = []
    append = options.append
    pos, size = 0, len(data)
    while pos < size:
        kind = data[pos]
        if kind == TCPOPT_NOP:
            append(_NOP)
            pos += 1
            continue
        if kind == TCPOPT_EOL:
            append(_EOL)
            pos += 1
            continue
        if pos + 1 >= size:
            raise DecodeError(f"TCP option kind {kind} at option byte {pos} has no length byte")
        length = data[pos + 1]
        if length < 2 or pos + length > size:
            raise DecodeError(f"TCP option kind {kind} at option byte {pos} has length "
                              f"{length}, but {size - pos} option bytes remain")
        append(_decode_option(kind, data[pos + 2:pos + length]))
        pos += length
    return tuple(options)


def _decode_option(kind: int, body: bytes) -> AnyTcpOption:
    size = len(body)
    if kind == TCPOPT_TIMESTAMP and size == 8:
        return Timestamp(*_TS.unpack(body))
    if kind == TCPOPT_SACK and size % 8 == 0:
        words = struct.unpack(f"!{size // 4}I", body)
        return Sack(tuple(zip(words[0::2], words[1::2])))
    if kind == TCPOPT_MSS and size == 2:
        return Mss(_U16.unpack(body)[0])
    if kind == TCPOPT_WINDOW and size == 1:
        return WindowScale(body[0])
    if kind == TCPOPT_SACK_PERMITTED and size == 0:
        return _SACK_PERMITTED
    if kind in ACCECN_ORDERS and size % 3 == 0 and size <= 9:
        names = ACCECN_ORDERS[kind]
        return AccEcn(tuple((names[i], int.from_bytes(body[3 * i:3 * i + 3], "big"))
                            for i in range(size // 3)))
    if kind == TCPOPT_FASTOPEN:
        return FastOpen(body.hex())
    if kind == TCPOPT_EXP and size >= 2 and _U16.unpack_from(body)[0] == TCPOPT_FASTOPEN_MAGIC:
        return FastOpen(body[2:].hex(), experimental=True)
    if kind == TCPOPT_MD5 and size == 16:
        return Md5(body.hex())
    return UnknownOption(kind, body)


# ------------------------------------------------------------------ encoding


def _encode_accecn(option: AccEcn) -> bytes:
    names = tuple(name for name, _ in option.counters)
    for kind, order in ACCECN_ORDERS.items():
        if order[:len(names)] == names:
            break
    else:
        raise EncodeError(f"AccECN counters {names} follow neither e0b,ceb,e1b nor e1b,ceb,e0b")
    out = bytearray((kind, 2 + 3 * len(names)))
    for name, value in option.counters:
        if not 0 <= value <= _ACCECN_MAX:
            raise EncodeError(f"AccECN counter {name} {value} does not fit in 24 bits")
        out += value.to_bytes(3, "big")
    return bytes(out)


def _encode_fastopen(option: FastOpen) -> bytes:
    cookie = bytes.fromhex(option.cookie)
    if option.experimental:
        return bytes((TCPOPT_EXP, 4 + len(cookie))) + _U16.pack(TCPOPT_FASTOPEN_MAGIC) + cookie
    return bytes((TCPOPT_FASTOPEN, 2 + len(cookie))) + cookie


def _encode_sack(option: Sack) -> bytes:
    words = [edge for block in option.blocks for edge in block]
    return bytes((TCPOPT_SACK, 2 + 4 * len(words))) + struct.pack(f"!{len(words)}I", *words)


def _encode_md5(option: Md5) -> bytes:
    digest = bytes.fromhex(option.digest)
    return bytes((TCPOPT_MD5, 2 + len(digest))) + digest


_OPTION_ENCODERS = {
    Nop: lambda o: b"\x01",
    Eol: lambda o: b"\x00",
    Mss: lambda o: b"\x02\x04" + _U16.pack(o.value),
    WindowScale: lambda o: bytes((TCPOPT_WINDOW, 3, o.shift)),
    SackPermitted: lambda o: b"\x04\x02",
    Timestamp: lambda o: b"\x08\x0a" + _TS.pack(o.val, o.ecr),
    Sack: _encode_sack,
    FastOpen: _encode_fastopen,
    Md5: _encode_md5,
    AccEcn: _encode_accecn,
    UnknownOption: lambda o: bytes((o.kind, 2 + len(o.data))) + o.data,
}


def encode_options(options: Sequence[AnyTcpOption]) -> bytes:
    """The option bytes exactly as listed: no padding added, no length check
    (encode_tcp checks the total)."""
    parts = []
    for option in options:
        encoder = _OPTION_ENCODERS.get(type(option))
        if encoder is None:
            raise EncodeError(f"not a TCP option: {option!r}")
        try:
            parts.append(encoder(option))
        except EncodeError:
            raise
        except (struct.error, ValueError, OverflowError) as exc:
            raise EncodeError(f"cannot encode TCP option {option!r}: {exc}") from None
    return b"".join(parts)


def internet_checksum(*parts: bytes) -> int:
    """RFC 1071 checksum of the concatenated parts; each part but the last must
    have an even length.

    Reading the bytes as one big-endian integer and reducing it modulo 0xFFFF
    gives the ones'-complement sum of its 16-bit words (2**16 ≡ 1), in C."""
    total = 0
    for part in parts:
        if len(part) & 1:
            part = part + b"\0"
        total += int.from_bytes(part, "big")
    folded = total % 0xFFFF
    if folded == 0 and total:
        folded = 0xFFFF
    return 0xFFFF - folded


def _packed_address(version: int, text: str) -> bytes:
    if version not in (4, 6):
        raise EncodeError(f"IP version must be 4 or 6, not {version}")
    try:
        return socket.inet_pton(_AF_INET if version == 4 else _AF_INET6, text)
    except (OSError, TypeError):
        raise EncodeError(f"{text!r} is not an IPv{version} address") from None


def _ip_header(ip: IpHeader, protocol: int, transport_length: int) -> tuple[bytes, bytes]:
    """The IP header and the transport checksum's pseudo-header."""
    src = _packed_address(ip.version, ip.src)
    dst = _packed_address(ip.version, ip.dst)
    if ip.version == 4:
        total = 20 + transport_length
        if total > 0xFFFF:
            raise EncodeError(f"IPv4 packet of {total} bytes exceeds 65535")
        try:
            header = bytearray(_IPV4.pack(0x45, ip.tos, total, ip.ip_id,
                                          0x4000 if ip.dont_fragment else 0,
                                          ip.ttl, protocol, 0, src, dst))
        except struct.error as exc:
            raise EncodeError(f"bad IPv4 header field in {ip}: {exc}") from None
        header[10:12] = _U16.pack(internet_checksum(header))
        pseudo = src + dst + bytes((0, protocol)) + _U16.pack(transport_length)
        return bytes(header), pseudo
    if transport_length > 0xFFFF:
        raise EncodeError(f"IPv6 payload of {transport_length} bytes exceeds 65535")
    if not (0 <= ip.tos <= 0xFF and 0 <= ip.flowlabel <= 0xFFFFF):
        raise EncodeError(f"bad IPv6 traffic class or flow label in {ip}")
    try:
        header = _IPV6.pack(0x60000000 | ip.tos << 20 | ip.flowlabel, transport_length,
                            protocol, ip.ttl, src, dst)
    except struct.error as exc:
        raise EncodeError(f"bad IPv6 header field in {ip}: {exc}") from None
    pseudo = src + dst + _U32.pack(transport_length) + bytes((0, 0, 0, protocol))
    return header, pseudo


def encode_tcp(ip: IpHeader, tcp: TcpHeader, payload: bytes | int = b"") -> bytes:
    """A full IPv4/IPv6 packet holding `tcp` with its options exactly as listed
    (they must add up to a multiple of 4 bytes, at most 40) and `payload`."""
    options = encode_options(tcp.options)
    if len(options) % 4 or len(options) > MAX_TCP_OPTIONS_LEN:
        raise EncodeError(f"TCP options take {len(options)} bytes; they must be padded to a "
                          f"multiple of 4 and fit in {MAX_TCP_OPTIONS_LEN}")
    if not 0 <= tcp.flags <= 0x1FF:
        raise EncodeError(f"TCP flags {tcp.flags:#x} do not fit in 9 bits")
    header_length = 20 + len(options)
    data = bytes(payload) if isinstance(payload, int) else payload
    ip_header, pseudo = _ip_header(ip, IPPROTO_TCP, header_length + len(data))
    try:
        header = _TCP.pack(tcp.src_port, tcp.dst_port, tcp.seq, tcp.ack,
                           (header_length << 10) | tcp.flags, tcp.window, 0, tcp.urg_ptr)
    except struct.error as exc:
        raise EncodeError(f"bad TCP header field in {tcp}: {exc}") from None
    header += options
    if isinstance(payload, int):  # zero bytes add nothing to the sum
        checksum = internet_checksum(pseudo, header)
    else:
        checksum = internet_checksum(pseudo, header, data)
    return b"".join((ip_header, header[:16], _U16.pack(checksum), header[18:], data))


def encode_udp(ip: IpHeader, udp: UdpHeader, payload: bytes | int = b"") -> bytes:
    """A full IPv4/IPv6 packet holding a UDP datagram with `payload`."""
    data = bytes(payload) if isinstance(payload, int) else payload
    length = 8 + len(data)
    ip_header, pseudo = _ip_header(ip, IPPROTO_UDP, length)
    try:
        header = _UDP.pack(udp.src_port, udp.dst_port, length, 0)
    except struct.error as exc:
        raise EncodeError(f"bad UDP header field in {udp}: {exc}") from None
    checksum = internet_checksum(pseudo, header, data) or 0xFFFF  # 0 means "no checksum"
    return b"".join((ip_header, header[:6], _U16.pack(checksum), data))


def encode_icmp(ip: IpHeader, icmp: IcmpHeader) -> bytes:
    """A full ICMPv4 (IPv4) or ICMPv6 (IPv6) packet. `mtu`, if given, goes in
    the low 16 bits of the v4 rest-of-header (next-hop MTU) or the whole v6
    one; `quoted` follows the header as is (see `icmp_quote`)."""
    mtu = icmp.mtu or 0
    if not 0 <= mtu <= (0xFFFF if ip.version == 4 else 0xFFFFFFFF):
        raise EncodeError(f"ICMP MTU {mtu} does not fit its field")
    protocol = IPPROTO_ICMP if ip.version == 4 else IPPROTO_ICMPV6
    length = 8 + len(icmp.quoted)
    ip_header, pseudo = _ip_header(ip, protocol, length)
    try:
        header = _ICMP.pack(icmp.type, icmp.code, 0, mtu)
    except struct.error as exc:
        raise EncodeError(f"bad ICMP header field in {icmp}: {exc}") from None
    if ip.version == 4:
        checksum = internet_checksum(header, icmp.quoted)  # ICMPv4 has no pseudo-header
    else:
        checksum = internet_checksum(pseudo, header, icmp.quoted)
    return b"".join((ip_header, header[:2], _U16.pack(checksum), header[4:], icmp.quoted))


def icmp_quote(packet: bytes) -> bytes:
    """The part of `packet` an ICMP error quotes, as packetdrill sends it:
    IPv4 quotes the IP header and the whole TCP header (8 transport bytes for
    anything else); IPv6 quotes as much as keeps the error within 1280 bytes."""
    if not packet:
        raise EncodeError("nothing to quote")
    if packet[0] >> 4 == 6:
        return packet[:IPV6_MIN_MTU - 40 - 8]
    start = (packet[0] & 0x0F) * 4
    if len(packet) >= start + 20 and packet[9] == IPPROTO_TCP:
        return packet[:start + (packet[start + 12] >> 4) * 4]
    return packet[:start + 8]
