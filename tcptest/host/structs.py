"""C struct layouts that system calls read and write, as ctypes structures.

ctypes lays structures out exactly as the C compiler does for this machine
(x86_64 or arm64, both LP64), so the bytes the kernel sees are the bytes a C
program would pass. The one layout that differs between the two is
`struct epoll_event`, packed on x86_64 only (`EPOLL_PACKED`).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from dataclasses import dataclass

EPOLL_PACKED = os.uname().machine in ("x86_64", "i386", "i686")

AF_INET = 2
AF_INET6 = 10


class SockaddrIn(ctypes.Structure):
    _fields_ = [
        ("sin_family", ctypes.c_uint16),
        ("sin_port", ctypes.c_uint8 * 2),  # network order
        ("sin_addr", ctypes.c_uint8 * 4),
        ("sin_zero", ctypes.c_uint8 * 8),
    ]


class SockaddrIn6(ctypes.Structure):
    _fields_ = [
        ("sin6_family", ctypes.c_uint16),
        ("sin6_port", ctypes.c_uint8 * 2),  # network order
        ("sin6_flowinfo", ctypes.c_uint8 * 4),  # network order
        ("sin6_addr", ctypes.c_uint8 * 16),
        ("sin6_scope_id", ctypes.c_uint32),
    ]


class SockaddrStorage(ctypes.Structure):
    """128 bytes, 8-aligned (the u64 array gives the alignment)."""

    _fields_ = [
        ("ss_family", ctypes.c_uint16),
        ("_pad", ctypes.c_uint8 * 6),
        ("_data", ctypes.c_uint64 * 15),
    ]


SOCKADDR_STORAGE_SIZE = 128


@dataclass(frozen=True, slots=True)
class SocketAddress:
    """A decoded sockaddr: family number, printable address, host-order port."""

    family: int
    address: str
    port: int


def pack_sockaddr(address: str, port: int, ipv6: bool) -> bytes:
    """`sockaddr_in` (16 bytes) or `sockaddr_in6` (28 bytes) for an address
    written as text; an IPv4 text with `ipv6` becomes `::ffff:a.b.c.d`."""
    if ipv6:
        if ":" not in address:
            address = "::ffff:" + address
        sa6 = SockaddrIn6(sin6_family=AF_INET6)
        sa6.sin6_port[:] = list(struct.pack("!H", port))
        sa6.sin6_addr[:] = list(socket.inet_pton(socket.AF_INET6, address))
        return bytes(sa6)
    sa = SockaddrIn(sin_family=AF_INET)
    sa.sin_port[:] = list(struct.pack("!H", port))
    sa.sin_addr[:] = list(socket.inet_pton(socket.AF_INET, address))
    return bytes(sa)


def pack_family_only(family: int) -> bytes:
    """A bare `struct sockaddr` holding only a family (`connect(fd,
    AF_UNSPEC, ...)` dissolves a connection with one)."""
    return struct.pack("=H14x", family)


def unpack_sockaddr(data: bytes) -> SocketAddress:
    (family,) = struct.unpack_from("=H", data)
    if family == AF_INET and len(data) >= ctypes.sizeof(SockaddrIn):
        sa = SockaddrIn.from_buffer_copy(data[: ctypes.sizeof(SockaddrIn)])
        return SocketAddress(family, socket.inet_ntop(socket.AF_INET, bytes(sa.sin_addr)),
                             struct.unpack("!H", bytes(sa.sin_port))[0])
    if family == AF_INET6 and len(data) >= ctypes.sizeof(SockaddrIn6):
        sa6 = SockaddrIn6.from_buffer_copy(data[: ctypes.sizeof(SockaddrIn6)])
        return SocketAddress(family, socket.inet_ntop(socket.AF_INET6, bytes(sa6.sin6_addr)),
                             struct.unpack("!H", bytes(sa6.sin6_port))[0])
    return SocketAddress(family, "", 0)


class Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class Cmsghdr(ctypes.Structure):
    _fields_ = [
        ("cmsg_len", ctypes.c_size_t),
        ("cmsg_level", ctypes.c_int),
        ("cmsg_type", ctypes.c_int),
    ]


CMSG_HEADER_SIZE = ctypes.sizeof(Cmsghdr)
_CMSG_ALIGN_TO = ctypes.sizeof(ctypes.c_size_t)


def cmsg_align(length: int) -> int:
    return (length + _CMSG_ALIGN_TO - 1) & ~(_CMSG_ALIGN_TO - 1)


def cmsg_len(data_length: int) -> int:
    """CMSG_LEN: header plus data, unpadded."""
    return CMSG_HEADER_SIZE + data_length


def cmsg_space(data_length: int) -> int:
    """CMSG_SPACE: header plus data, padded to the next message."""
    return CMSG_HEADER_SIZE + cmsg_align(data_length)


@dataclass(frozen=True, slots=True)
class ControlMessage:
    level: int
    type: int
    data: bytes


def pack_cmsgs(messages: list[ControlMessage]) -> bytes:
    out = bytearray()
    for message in messages:
        header = Cmsghdr(cmsg_len(len(message.data)), message.level, message.type)
        body = bytes(header) + message.data
        out += body + bytes(cmsg_space(len(message.data)) - len(body))
    return bytes(out)


def unpack_cmsgs(control: bytes) -> list[ControlMessage]:
    """The control messages in the first `msg_controllen` bytes, as the
    kernel filled them (the last may be truncated under MSG_CTRUNC)."""
    messages = []
    offset = 0
    while offset + CMSG_HEADER_SIZE <= len(control):
        header = Cmsghdr.from_buffer_copy(control[offset: offset + CMSG_HEADER_SIZE])
        if header.cmsg_len < CMSG_HEADER_SIZE:
            break
        end = min(offset + header.cmsg_len, len(control))
        messages.append(ControlMessage(header.cmsg_level, header.cmsg_type,
                                       control[offset + CMSG_HEADER_SIZE: end]))
        offset += cmsg_align(header.cmsg_len)
    return messages


class PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


class EpollEvent(ctypes.Structure):
    """`events` then a 64-bit `data` union (fd and u32 are its low half)."""

    if EPOLL_PACKED:
        _pack_ = 1
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]


class Linger(ctypes.Structure):
    _fields_ = [("l_onoff", ctypes.c_int), ("l_linger", ctypes.c_int)]


class SockExtendedErr(ctypes.Structure):
    _fields_ = [
        ("ee_errno", ctypes.c_uint32),
        ("ee_origin", ctypes.c_uint8),
        ("ee_type", ctypes.c_uint8),
        ("ee_code", ctypes.c_uint8),
        ("ee_pad", ctypes.c_uint8),
        ("ee_info", ctypes.c_uint32),
        ("ee_data", ctypes.c_uint32),
    ]


SOCK_EXTENDED_ERR_FIELDS = ("ee_errno", "ee_origin", "ee_type", "ee_code", "ee_info", "ee_data")


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class ScmTimestamping(ctypes.Structure):
    """ts[0] software, ts[1] unused, ts[2] raw hardware."""

    _fields_ = [("ts", Timespec * 3)]


TCP_MD5SIG_MAXKEYLEN = 80


class TcpMd5Sig(ctypes.Structure):
    _fields_ = [
        ("tcpm_addr", SockaddrStorage),
        ("tcpm_flags", ctypes.c_uint8),
        ("tcpm_prefixlen", ctypes.c_uint8),
        ("tcpm_keylen", ctypes.c_uint16),
        ("tcpm_ifindex", ctypes.c_int),
        ("tcpm_key", ctypes.c_uint8 * TCP_MD5SIG_MAXKEYLEN),
    ]


def to_bytes(value: ctypes.Structure) -> bytes:
    return bytes(value)


def from_bytes(kind: type[ctypes.Structure], data: bytes) -> ctypes.Structure:
    """A structure decoded from `data`; missing trailing bytes read as zero
    (the kernel may return a shorter struct than this layout)."""
    size = ctypes.sizeof(kind)
    return kind.from_buffer_copy(data[:size].ljust(size, b"\0"))
