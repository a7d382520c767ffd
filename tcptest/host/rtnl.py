"""The few rtnetlink requests a run makes: a link up and its MTU, an address,
a route, a route lookup. Packed with `struct` from linux/rtnetlink.h,
linux/if_link.h and linux/if_addr.h, as host/diag.py packs sock_diag.

pyroute2 did this before; importing it took 70 ms of every `tcptest run`
(it pulls in its whole stack: ndb, ipdb, conntrack, asyncio), more than a
run of a short script itself.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
IFF_UP = 0x1
IFLA_MTU = 4
IFA_LOCAL = 2
IFA_ADDRESS = 1
IFA_FLAGS = 8
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1
RTN_LOCAL = 2

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")


class RtnetlinkError(OSError):
    """The kernel refused a request; `errno` says why."""


def _attribute(kind: int, value: bytes) -> bytes:
    length = _RTATTR.size + len(value)
    return _RTATTR.pack(length, kind) + value + bytes(-length % 4)


def _packed_address(address: str) -> tuple[int, bytes]:
    parsed = ipaddress.ip_address(address)
    return (socket.AF_INET6 if parsed.version == 6 else socket.AF_INET), parsed.packed


class Rtnetlink:
    """One rtnetlink socket of the calling thread's network namespace."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   socket.NETLINK_ROUTE)
        self._sequence = 0

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()

    def set_link(self, index: int, *, up: bool = False, mtu: int | None = None) -> None:
        """Bring link `index` up and/or set its MTU."""
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)
        if mtu is not None:
            body += _attribute(IFLA_MTU, struct.pack("=I", mtu))
        self._request(RTM_NEWLINK, 0, body)

    def add_address(self, index: int, address: str, prefix_len: int, flags: int = 0) -> None:
        family, packed = _packed_address(address)
        body = (_IFADDRMSG.pack(family, prefix_len, flags & 0xFF, RT_SCOPE_UNIVERSE, index)
                + _attribute(IFA_LOCAL, packed) + _attribute(IFA_ADDRESS, packed)
                + _attribute(IFA_FLAGS, struct.pack("=I", flags)))
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_route(self, destination: str, prefix_len: int, gateway: str, index: int) -> None:
        """`ip route add destination/prefix_len via gateway dev index`."""
        family, packed = _packed_address(destination)
        body = (_RTMSG.pack(family, prefix_len, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                            RTN_UNICAST, 0)
                + _attribute(RTA_DST, packed) + _attribute(RTA_GATEWAY, _packed_address(gateway)[1])
                + _attribute(RTA_OIF, struct.pack("=i", index)))
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)

    def route_type(self, destination: str) -> int:
        """The type (RTN_LOCAL, RTN_UNICAST...) of the route the kernel would
        take to `destination`: `ip route get`."""
        family, packed = _packed_address(destination)
        body = (_RTMSG.pack(family, len(packed) * 8, 0, 0, 0, 0, 0, 0, 0) + _attribute(RTA_DST, packed))
        answer = self._request(RTM_GETROUTE, 0, body, ack=False)
        return _RTMSG.unpack_from(answer)[7]

    def _request(self, kind: int, flags: int, body: bytes, ack: bool = True) -> bytes:
        """Send one request; return the body of the answer (empty for an ack),
        or raise RtnetlinkError with the kernel's errno."""
        self._sequence += 1
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind,
                                NLM_F_REQUEST | flags | (NLM_F_ACK if ack else 0), self._sequence, 0)
        self._sock.send(header + body)
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, message_type, _flags, sequence, _pid = _NLMSGHDR.unpack_from(data, offset)
                answer = data[offset + _NLMSGHDR.size: offset + length]
                offset += (length + 3) & ~3
                if sequence != self._sequence:
                    continue
                if message_type == NLMSG_ERROR:
                    code = -_ERRNO.unpack_from(answer)[0]
                    if code:
                        raise RtnetlinkError(code, os.strerror(code))
                    return b""
                return answer
