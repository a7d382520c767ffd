"""Frames the scripted peer sends: an inbound line, in script terms, made into
bytes with the connection's live numbers. Pure: the engine builds each frame
before it sleeps, so that it leaves the moment it is due.
"""

from __future__ import annotations

from . import match, wire
from . import script as s
from .connections import EPHEMERAL_PORT_BASE, Connection
from .errors import RunFailure
from .options import RunOptions
from .seq import SeqMap, u32


class InboundFrames:
    """Builds the peer's frames for one run (its IP version and addresses)."""

    def __init__(self, options: RunOptions, ip_version: int):
        self.options = options
        self.ip_version = ip_version
        self.local_ip = options.live_local_ip
        self.remote_ip = options.live_remote_ip

    def tcp(self, loc, packet: s.Packet, body: s.TcpSegment, conn: Connection) -> bytes:
        seqmap = conn.seqmap
        syn = "S" in body.flags
        options = tuple(self._option(loc, opt, seqmap) for opt in body.options or ())
        tcp = wire.TcpHeader(
            src_port=conn.remote_port,
            dst_port=conn.local_port,
            seq=seqmap.remote_to_live(body.seq_start, syn),
            ack=seqmap.local_to_live(body.ack, syn) if body.ack is not None else 0,
            flags=wire.flags_from_letters(body.flags, body.ace),
            window=body.window or 0,
            urg_ptr=body.urg or 0,
            options=options,
        )
        return wire.encode_tcp(self.ip(packet.ip), tcp, bytes(body.length))

    def gso_size(self, body: s.TcpSegment) -> int:
        """A segment longer than --mss goes to the device as one GSO frame."""
        mss = self.options.mss
        return mss if mss and body.length > mss else 0

    def icmp(self, packet: s.Packet, body: s.IcmpMessage, numbers: tuple[int, int],
             conn: Connection | None) -> bytes:
        """An ICMP error from the peer about a segment the kernel sent: the
        quoted TCP header carries the kernel's live ports and seq. A line
        that quotes nothing quotes seq 0 (the kernel's ISN) without payload,
        as packetdrill does: the kernel ignores an ICMP error quoting nothing."""
        icmp_type, code = numbers
        start, _, length = body.quoted if body.quoted is not None else (0, 0, 0)
        seqmap = conn.seqmap if conn else SeqMap()
        tcp = wire.TcpHeader(
            src_port=conn.local_port if conn else self.options.bind_port,
            dst_port=conn.remote_port if conn else EPHEMERAL_PORT_BASE,
            seq=seqmap.local_to_live(start, False), ack=0, flags=wire.ACK, window=0)
        original = wire.IpHeader(version=self.ip_version, src=self.local_ip, dst=self.remote_ip)
        quoted = wire.icmp_quote(wire.encode_tcp(original, tcp, length))
        icmp = wire.IcmpHeader(type=icmp_type, code=code, mtu=body.mtu, quoted=quoted)
        return wire.encode_icmp(self.ip(packet.ip), icmp)

    def udp(self, packet: s.Packet, body: s.UdpDatagram) -> bytes:
        udp = wire.UdpHeader(src_port=body.src_port or EPHEMERAL_PORT_BASE,
                             dst_port=body.dst_port or self.options.bind_port)
        return wire.encode_udp(self.ip(packet.ip), udp, body.length)

    def reset(self, conn: Connection) -> bytes:
        """A bare RST at the kernel's last ack, to end a connection the script left open."""
        tcp = wire.TcpHeader(src_port=conn.remote_port, dst_port=conn.local_port,
                             seq=conn.last_kernel_ack, ack=0, flags=wire.RST, window=0,
                             urg_ptr=0, options=())
        return wire.encode_tcp(self.ip(s.IpInfo()), tcp, b"")

    def ip(self, info: s.IpInfo) -> wire.IpHeader:
        ecn = match.ECN_CODEPOINTS[info.ecn][0] if info.ecn else 0
        tos = info.tos if info.tos is not None else ecn
        return wire.IpHeader(
            version=self.ip_version, src=self.remote_ip, dst=self.local_ip,
            tos=(tos & ~3) | ecn if info.ecn else tos,
            ttl=info.ttl if info.ttl is not None else 255,
            flowlabel=info.flowlabel or 0)

    def _option(self, loc, option, seqmap: SeqMap):
        if isinstance(option, s.Sack):
            return s.Sack(tuple((seqmap.local_to_live(left, False), seqmap.local_to_live(right, False))
                                for left, right in option.blocks))
        if isinstance(option, s.Timestamp) and option.ecr:
            live = seqmap.ts_vals.get(option.ecr)
            if live is None and not seqmap.ts_vals:
                live = option.ecr  # nothing to echo yet (a SYN): the kernel ignores it
            elif live is None:
                live = self._scaled_ecr(loc, option.ecr, seqmap)
            return s.Timestamp(option.val, live)
        return option

    def _scaled_ecr(self, loc, ecr: int, seqmap: SeqMap) -> int:
        """An ecr no outbound line wrote as a TS val: with --tcp_ts_ecr_scaled,
        extrapolate from the nearest known val at the kernel's 1 ms tick;
        otherwise it is the script's mistake, as in packetdrill."""
        if not self.options.tcp_ts_ecr_scaled:
            known = ", ".join(str(v) for v in sorted(seqmap.ts_vals))
            raise RunFailure(loc, f"TS ecr {ecr} matches no TS val of an earlier outbound "
                                  f"segment (known: {known})")
        nearest = min(seqmap.ts_vals, key=lambda val: abs(val - ecr))
        return u32(seqmap.ts_vals[nearest] + (ecr - nearest))
