"""The state of every TCP socket in the run's namespace, for `%{ }%` blocks.

TCP_INFO only reaches a socket through a descriptor, and many states of a
connection have none: TIME_WAIT and FIN_WAIT2 after close() live in timewait
minisocks, a half-open passive connection is a request socket (NEW_SYN_RECV)
until the handshake ends, LAST_ACK follows an orphaning close(). The kernel's
socket diagnostics (sock_diag, what `ss` reads) list them all. The run is a
process inside its own network namespace, so a dump sees the script's sockets
and nothing else.

One dump request, on a netlink socket opened for the block and closed after
it: the cost (a walk of the namespace's own socket table, which
host/namespace.py keeps small: about 0.02 ms) is paid only when a block runs. The messages are the kernel's (linux/inet_diag.h)
packed with `struct`; pyroute2's DiagSocket reads the same dump, one address
family at a time, but costs milliseconds per call, which a timed script would
feel.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import SetupError
from ..symbols import TcpState

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18  # the original inet_diag request: both address families at once
SOCK_DIAG_BY_FAMILY = 20  # inet_diag_req_v2: one address family per request
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3

# TCP_ESTABLISHED .. TCP_CLOSING and TCP_NEW_SYN_RECV (1 << 1 .. 1 << 12):
# the kernel's half-open request sockets come with TCP_SYN_RECV's bit and are
# reported as SYN_RECV, timewait minisocks as TIME_WAIT or FIN_WAIT2.
ALL_STATES = 0x1FFE

_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req: family, src_len, dst_len, ext, inet_diag_sockid, states, dbs.
_REQUEST_COMPAT = struct.Struct("=BBBB48xII")
# inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid.
_REQUEST_V2 = struct.Struct("=BBBxI48x")
# inet_diag_msg: family, state, timer, retrans, inet_diag_sockid (sport,
# dport, src, dst, if, cookie), expires, rqueue, wqueue, uid, inode.
_MESSAGE = struct.Struct("=BBBB4x16s16s4x8xIIIII")
_PORTS = struct.Struct(">HH")
# What a kernel that has dropped the original request answers to it.
_REQUEST_REFUSED = {errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP}

# idiag_timer: which timer runs (net/ipv4/inet_diag.c, tcp_diag.c).
TIMERS = {0: "none", 1: "retransmit", 2: "keepalive", 3: "time_wait", 4: "probe"}


@dataclass(frozen=True, slots=True)
class SocketEntry:
    """One TCP socket as sock_diag reports it. For a listener, `rqueue` is the
    accept queue's length and `wqueue` its limit (the listen() backlog); for
    a connection, the bytes not yet read and not yet acknowledged."""

    state: TcpState
    family: socket.AddressFamily
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    rqueue: int
    wqueue: int
    timer: str  # one of TIMERS' values
    expires_ms: int  # until that timer fires
    retransmits: int  # of the running timer (SYN-ACKs sent again, for a request socket)

    def __str__(self) -> str:
        local = _endpoint(self.local_address, self.local_port)
        remote = _endpoint(self.remote_address, self.remote_port)
        timer = f" timer {self.timer} {self.expires_ms} ms" if self.timer != "none" else ""
        return f"{self.state} {local} {remote} rqueue {self.rqueue} wqueue {self.wqueue}{timer}"


class ListenQueue(NamedTuple):
    """A listener's queues: connections waiting for accept() (`accepted`),
    the limit the kernel compares it with (`limit`, the listen() backlog;
    Linux counts the queue full only once `accepted` exceeds it), and the
    handshakes under way (`syn_recv`, its request sockets). A tuple, so that
    `listen_queue() == (1, 1, 0)` reads as a script would write it."""

    accepted: int
    limit: int
    syn_recv: int

    @property
    def full(self) -> bool:
        return self.accepted > self.limit


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    address = ipaddress.IPv6Address(raw)
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else str(address)


def _state(number: int) -> TcpState | int:
    if number == TcpState.TCP_NEW_SYN_RECV:  # inet_diag says SYN_RECV itself; make sure
        return TcpState.TCP_SYN_RECV
    try:
        return TcpState(number)
    except ValueError:  # a state newer than this table: show the number
        return number


def _decode(payload: bytes) -> SocketEntry:
    (msg_family, state, timer, retrans, src, dst, expires, rqueue, wqueue,
     _uid, _inode) = _MESSAGE.unpack_from(payload)
    sport, dport = _PORTS.unpack_from(payload, 4)
    return SocketEntry(
        state=_state(state), family=socket.AddressFamily(msg_family),
        local_address=_address(msg_family, src), local_port=sport,
        remote_address=_address(msg_family, dst), remote_port=dport,
        rqueue=rqueue, wqueue=wqueue, timer=TIMERS.get(timer, str(timer)),
        expires_ms=expires, retransmits=retrans)


def _dump(sock: socket.socket, kind: int, request: bytes, sequence: int) -> list[SocketEntry]:
    """Send one dump request and collect its answer up to NLMSG_DONE."""
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(request), kind, NLM_F_REQUEST | NLM_F_DUMP, sequence, 0)
    sock.send(header + request)
    entries: list[SocketEntry] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, message_type, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            body = data[offset + _NLMSGHDR.size: offset + length]
            offset += (length + 3) & ~3
            if seq != sequence:
                continue
            if message_type == NLMSG_DONE:
                return entries
            if message_type == NLMSG_ERROR:
                code = -struct.unpack_from("=i", body)[0]
                if code == 0:  # an acknowledgement, not an error
                    continue
                raise OSError(code, f"sock_diag: {os.strerror(code)}")
            entries.append(_decode(body))


def dump_both_families(sock: socket.socket) -> list[SocketEntry]:
    """One round trip: the original TCPDIAG_GETSOCK request, which the kernel
    (net/ipv4/inet_diag.c, inet_diag_dump_compat) serves for AF_UNSPEC,
    i.e. IPv4 and IPv6 sockets in one walk of its tables."""
    return _dump(sock, TCPDIAG_GETSOCK, _REQUEST_COMPAT.pack(0, 0, 0, 0, ALL_STATES, 0), 1)


def dump_family(sock: socket.socket, family: int) -> list[SocketEntry]:
    """The current request (inet_diag_req_v2), one address family."""
    return _dump(sock, SOCK_DIAG_BY_FAMILY, _REQUEST_V2.pack(family, socket.IPPROTO_TCP, 0, ALL_STATES),
                 2 + family)


def tcp_sockets() -> tuple[SocketEntry, ...]:
    """Every TCP socket of this network namespace that is listening or part of
    a connection (an ipv4-mapped-ipv6 run's sockets are IPv6 ones)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                           NETLINK_SOCK_DIAG) as sock:
            try:
                return tuple(dump_both_families(sock))
            except OSError as exc:
                if exc.errno not in _REQUEST_REFUSED:
                    raise
            # A kernel without the original request: one dump per family.
            return tuple(dump_family(sock, socket.AF_INET) + dump_family(sock, socket.AF_INET6))
    except OSError as exc:
        raise SetupError(f"cannot read the TCP sockets of the run's namespace for %{{ }}% blocks "
                         f"(sock_diag: {exc.strerror or exc}); the kernel needs CONFIG_INET_DIAG "
                         f"and CONFIG_INET_TCP_DIAG") from exc


def connection_entry(sockets: tuple[SocketEntry, ...],
                     connection: tuple[int, int] | None) -> SocketEntry | None:
    """The socket of the connection with this (local, remote) port pair, seen
    from either end (tests put both ends in one namespace); the kernel's own
    side, (local, remote) as written, wins."""
    if connection is None:
        return None
    local, remote = connection
    for wanted in ((local, remote), (remote, local)):
        for entry in sockets:
            if (entry.local_port, entry.remote_port) == wanted:
                return entry
    return None


def listen_queue_of(sockets: tuple[SocketEntry, ...], port: int | None = None) -> ListenQueue:
    """The queues of the listener on `port`; with no port, of the one listener."""
    listeners = [entry for entry in sockets if entry.state == TcpState.TCP_LISTEN
                 and (port is None or entry.local_port == port)]
    if len(listeners) != 1:
        where = f"on port {port}" if port is not None else "in the namespace"
        found = ", ".join(str(entry) for entry in listeners) or "none"
        raise LookupError(f"listen_queue(): expected one listening socket {where}, found {found}")
    listener = listeners[0]
    syn_recv = sum(1 for entry in sockets if entry.state == TcpState.TCP_SYN_RECV
                   and entry.local_port == listener.local_port)
    return ListenQueue(accepted=listener.rqueue, limit=listener.wqueue, syn_recv=syn_recv)


def nstat() -> dict[str, int]:
    """The namespace's TCP/IP counters (/proc/net/snmp, netstat and snmp6),
    named as `nstat` names them: TcpActiveOpens, TcpExtSyncookiesSent,
    TcpExtTCPChallengeACK... They count from the namespace's creation, so
    from the start of the run."""
    counters: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        with open(path) as table:
            lines = table.read().splitlines()
        for header, values in zip(lines[::2], lines[1::2]):
            prefix, _, names = header.partition(":")
            counters.update((prefix + name, int(value))
                            for name, value in zip(names.split(), values.partition(":")[2].split()))
    try:
        with open("/proc/net/snmp6") as table:
            counters.update((name, int(value)) for name, value in (line.split() for line in table))
    except FileNotFoundError:  # a kernel without IPv6
        pass
    return counters


def code_values(connection: tuple[int, int] | None) -> dict[str, object]:
    """The names a `%{ }%` block sees besides tcpi_*: `sockets` (every TCP
    socket), `conn_socket` and `conn_state` (the script's current connection,
    found by its port pair; TCP_CLOSE once the kernel has no socket for it),
    `listen_queue(port=None)` and `nstat()`."""
    sockets = tcp_sockets()
    entry = connection_entry(sockets, connection)
    return {
        "sockets": sockets,
        "conn_socket": entry,
        "conn_state": entry.state if entry is not None else TcpState.TCP_CLOSE,
        "listen_queue": functools.partial(listen_queue_of, sockets),
        "nstat": nstat,
    }
