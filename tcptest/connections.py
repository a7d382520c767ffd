"""The connections a run drives and which one each segment belongs to.

A table, as h11 keeps its states: the engine asks it who owns a captured
segment and which connection an inbound line goes to, and never keeps those
rules itself. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import script as s
from . import wire
from .seq import SeqMap

# The scripted peer's first port; each new passive connection takes the next.
EPHEMERAL_PORT_BASE = 40000


@dataclass(slots=True)
class Connection:
    """One TCP connection between the kernel and the scripted peer."""

    local_port: int
    remote_port: int
    active: bool  # the kernel opened it
    seqmap: SeqMap = field(default_factory=SeqMap)
    last_kernel_ack: int | None = None  # live
    reset: bool = False
    new_remote_isn: int | None = None  # of a SYN on this 4-tuple, until the kernel answers it
    ts_base_at: int = 0  # script time of the kernel's first timestamp (seqmap.ts_base)

    @property
    def ports(self) -> tuple[int, int]:
        return self.local_port, self.remote_port


class ConnectionTable:
    """Every connection of a run, newest last; `current` is the one the
    script's unnamed lines go to (packetdrill follows only that one)."""

    def __init__(self, bind_port: int):
        self.bind_port = bind_port
        self.all: list[Connection] = []
        self.current: Connection | None = None
        self._next_remote_port = EPHEMERAL_PORT_BASE

    def owner(self, tcp: wire.TcpHeader) -> Connection | None:
        """The connection an outbound segment of the kernel belongs to."""
        for conn in reversed(self.all):
            if conn.local_port == tcp.src_port and conn.remote_port == tcp.dst_port:
                return conn
        return None

    def owner_for_expected(self, tcp: wire.TcpHeader, expected: s.TcpSegment) -> Connection | None:
        """The connection a captured segment is matched for: the current one,
        or a new active one when the kernel sends a SYN of its own. Segments
        of older connections are ignored, as in packetdrill."""
        if (expected.src_port not in (None, tcp.src_port)) or (expected.dst_port not in (None, tcp.dst_port)):
            return None
        conn = self.owner(tcp)
        if conn is not None and (expected.src_port is not None or expected.dst_port is not None):
            self.current = conn
            return conn
        if tcp.flags & wire.SYN and not tcp.flags & wire.ACK:
            retransmitted = conn is not None and conn.active and conn.seqmap.local_isn_live == tcp.seq
            if not retransmitted:
                conn = Connection(local_port=tcp.src_port, remote_port=tcp.dst_port, active=True)
                self.all.append(conn)
            self.current = conn
            return conn
        return conn if conn is self.current else None

    def for_inbound(self, body: s.TcpSegment) -> Connection:
        """The connection an inbound line goes to; a SYN that is neither a
        retransmission nor a simultaneous open starts a new one."""
        if body.src_port is not None or body.dst_port is not None:
            return self._named(body)
        syn = "S" in body.flags
        ack = "." in body.flags
        conn = self.current
        if syn and not ack:
            simultaneous_open = conn is not None and conn.active and conn.seqmap.remote_isn is None
            retransmitted = conn is not None and not conn.active and conn.seqmap.remote_isn == body.seq_start
            if not (simultaneous_open or retransmitted):
                conn = self._new_passive()
            conn.seqmap.remote_isn = body.seq_start
        elif conn is None:
            conn = self._new_passive()
        elif syn and conn.seqmap.remote_isn is None:
            conn.seqmap.remote_isn = body.seq_start  # SYN-ACK answering the kernel's SYN
        return conn

    def _named(self, body: s.TcpSegment) -> Connection:
        """An inbound line that names its ports (`< 40001>8080 S ...`) goes to
        that connection, opened by it if new: so one script can drive several
        connections at once (packetdrill follows one)."""
        local = body.dst_port if body.dst_port is not None else self.bind_port
        remote = body.src_port if body.src_port is not None else self._next_remote_port
        conn = next((c for c in reversed(self.all) if c.ports == (local, remote)), None)
        if conn is None:
            conn = Connection(local_port=local, remote_port=remote, active=False)
            self.all.append(conn)
            self._next_remote_port = max(self._next_remote_port, remote + 1)
        if "S" in body.flags:
            if conn.seqmap.remote_isn is None:
                conn.seqmap.remote_isn = body.seq_start
            elif conn.seqmap.remote_isn != body.seq_start:
                # A SYN on a connection that exists: in its window it is answered
                # with a challenge ACK in the old numbers; only a SYN-ACK from
                # the kernel starts a new incarnation with this ISN.
                conn.new_remote_isn = body.seq_start
        self.current = conn
        return conn

    def _new_passive(self) -> Connection:
        conn = Connection(local_port=self.bind_port, remote_port=self._next_remote_port, active=False)
        self._next_remote_port += 1
        self.all.append(conn)
        self.current = conn
        return conn

    def still_open(self) -> list[Connection]:
        """Connections the kernel may still retransmit on: not reset, and the
        kernel has acknowledged something on them."""
        return [conn for conn in self.all if not conn.reset and conn.last_kernel_ack is not None]
