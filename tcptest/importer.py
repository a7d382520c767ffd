"""`tcptest import CAPTURE [--local ADDR:PORT]`: a capture of one TCP
connection turned into a script to start from.

The side under test (the kernel's, `>` lines) is `--local`, else tcptest's own
local address when the capture is of a tcptest run, else the side that
received the SYN. The prologue comes from who sent the SYN: socket, bind,
listen (non-blocking), and accept just before the first call on the
connection, for a listener; socket, non-blocking connect for a client. Sequence numbers are written as packetdrill
writes them, from each side's ISN (a SYN carries 0), SACK blocks too; times
are relative to the previous segment, rounded to the millisecond. The local
side's new data is preceded by the `write` that sends it, its FIN by a
`shutdown`, its RST by a `close` (the peer's data is never read). Outbound
lines leave the window unchecked (it depends on how fast the application
reads); inbound lines give it. The capture does not say how the host was set
up: `init` (`--init`) gives the script the command that does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import layout, pcap, wire
from . import script as s
from .errors import CaptureError
from .match import ECN_NAMES
from .options import RunOptions
from .render import render_packet

_DEFAULT_PORT = RunOptions().bind_port
# The kernel's address in tcptest's own runs (ipv4, and ipv6's device).
_TCPTEST_LOCAL = {ipaddress.ip_address(RunOptions(ip_version=version).live_local_ip)
                  for version in ("ipv4", "ipv6")}


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if self.address.version == 6 else f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class _Captured:
    usecs: int
    dgram: wire.Datagram
    source: Endpoint
    destination: Endpoint


def parse_endpoint(text: str) -> Endpoint:
    """`192.168.0.2:8080` or `[fd3d::2]:8080`."""
    host, colon, port = text.rpartition(":")
    try:
        if not colon or not port.isdigit():
            raise ValueError
        return Endpoint(ipaddress.ip_address(host.strip("[]")), int(port))
    except ValueError:
        raise CaptureError(f"--local takes ADDRESS:PORT (an IPv6 address in brackets), not {text!r}") from None


def import_capture(path: str, local: Endpoint | None = None, init: str | None = None) -> str:
    """The script text for the first connection of the capture at `path`
    (the first with `local` as one end, if given), with `init` as its init
    command: the capture does not say how the host was set up (sysctls
    decide the window scale, say). Raises CaptureError."""
    try:
        frames = pcap.read_ip_packets(path)
    except (OSError, ValueError) as err:
        raise CaptureError(f"{path}: cannot read the capture: {getattr(err, 'strerror', None) or err}") from None
    segments = _tcp_segments(frames)
    syn = next((seg for seg in segments if seg.dgram.transport.flags & (wire.SYN | wire.ACK) == wire.SYN
                and (local is None or local in (seg.source, seg.destination))), None)
    if syn is None:
        whose = f" to or from {local}" if local else ""
        raise CaptureError(f"{path}: no SYN{whose} in the capture ({len(segments)} TCP segments): "
                           "import needs a connection's handshake")
    client, server = syn.source, syn.destination
    if local is None:
        local = client if client.address in _TCPTEST_LOCAL else server
    peer = server if local == client else client
    connection = [seg for seg in segments if {seg.source, seg.destination} == {local, peer}
                  and seg.usecs >= syn.usecs]
    return _Writer(path, local, peer, local == client, init).script(connection)


def _tcp_segments(frames: list[tuple[float, bytes]]) -> list[_Captured]:
    out = []
    start = frames[0][0] if frames else 0.0
    for timestamp, frame in frames:
        try:
            dgram = wire.decode(frame)
        except wire.DecodeError:
            continue
        tcp = dgram.transport
        if isinstance(tcp, wire.TcpHeader):
            out.append(_Captured(round((timestamp - start) * 1_000_000), dgram,
                                 Endpoint(ipaddress.ip_address(dgram.ip.src), tcp.src_port),
                                 Endpoint(ipaddress.ip_address(dgram.ip.dst), tcp.dst_port)))
    return out


class _Writer:
    """The lines of one connection, in order."""

    def __init__(self, path: str, local: Endpoint, peer: Endpoint, active: bool, init: str | None):
        self.path, self.local, self.peer, self.active, self.init = path, local, peer, active, init
        self.fd = 3 if active else None  # the connection's descriptor, once there is one
        self.closed = False
        self.peer_sent_data = False
        self.isn: dict[Endpoint, int] = {}
        self.sent_up_to: int | None = None  # the local side's highest sequence number sent
        self.lines: list[str] = []

    def script(self, segments: list[_Captured]) -> str:
        self._prologue()
        previous = segments[0].usecs
        for index, seg in enumerate(segments):
            tcp = seg.dgram.transport
            if tcp.flags & wire.SYN:
                self.isn.setdefault(seg.source, tcp.seq)
            outbound = seg.source == self.local
            delay = seg.usecs - previous
            previous = seg.usecs
            if outbound:
                delay = self._calls_before(segments, index, delay)
            elif seg.dgram.payload:
                self.peer_sent_data = True
            self._line(delay, self._packet(seg, outbound))
        return "\n".join(self.lines) + "\n"

    def _prologue(self) -> None:
        port = self.peer.port if self.active else self.local.port
        version = "ipv6" if self.local.address.version == 6 else "ipv4"
        self.lines += [f"// Imported by tcptest from {self.path}: {self.local} is the side under test (> lines),",
                       f"// {self.peer} the peer (< lines).",
                       f"--ip_version={version}"]
        if port != _DEFAULT_PORT:
            self.lines.append(f"--{'connect' if self.active else 'bind'}_port={port}")
        if self.init is not None:
            self.lines.append(f"`{self.init}`")
        self.lines.append("")
        self._line(None, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
        if self.active:
            self._line(0, "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0")
            self._line(0, "connect(3, ..., ...) = -1 EINPROGRESS")
        else:
            self._line(0, "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0")
            # An accept the capture placed too early fails (EAGAIN) instead of waiting forever.
            self._line(0, "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0")
            self._line(0, "bind(3, ..., ...) = 0")
            self._line(0, "listen(3, 1) = 0")

    def _calls_before(self, segments: list[_Captured], index: int, delay: int) -> int:
        """The write that sends new data (once for a run of outbound segments
        with no inbound one between) and the shutdown before a FIN; they take
        the segment's delay, the segment comes at +0 after them."""
        seg = segments[index]
        tcp = seg.dgram.transport
        new = self._new_data(seg, self.sent_up_to)
        before = segments[index - 1] if index else None
        if new and not self.closed and not (before is not None and before.source == self.local
                                            and self._new_data(before, None)):
            length, up_to = 0, self.sent_up_to
            for later in segments[index:]:
                if later.source != self.local or not self._new_data(later, up_to):
                    break
                length += self._new_data(later, up_to)
                up_to = _end(later)
            fd, delay = self._descriptor(delay)
            self._line(delay, f"write({fd}, ..., {length}) = {length}")
            delay = 0
        first_fin = self.sent_up_to is None or _after(_end(seg), self.sent_up_to)
        if tcp.flags & wire.FIN and first_fin and not self.closed:
            fd, delay = self._descriptor(delay)
            self._line(delay, f"shutdown({fd}, SHUT_WR) = 0")
            delay = 0
        if tcp.flags & wire.RST and not self.closed and (self.fd is not None or self.peer_sent_data):
            # The application closed with data unread (the script reads none).
            fd, delay = self._descriptor(delay)
            self._line(delay, f"close({fd}) = 0")
            self.closed, delay = True, 0
        if self.sent_up_to is None or _after(_end(seg), self.sent_up_to):
            self.sent_up_to = _end(seg)
        return delay

    def _descriptor(self, delay: int) -> tuple[int, int]:
        """(the connection's descriptor, the delay left for the call on it):
        a listener's connection is accepted first, after `delay`."""
        if self.fd is not None:
            return self.fd, delay
        self._line(delay, "accept(3, ..., ...) = 4")
        self.fd = 4
        return self.fd, 0

    @staticmethod
    def _new_data(seg: _Captured, sent_up_to: int | None) -> int:
        """How many bytes of the segment's payload were not sent before."""
        length = len(seg.dgram.payload)
        if not length or sent_up_to is None:
            return length
        end = (seg.dgram.transport.seq + length) % (1 << 32)
        return min(length, (end - sent_up_to) % (1 << 32)) if _after(end, sent_up_to) else 0

    def _packet(self, seg: _Captured, outbound: bool) -> str:
        tcp = seg.dgram.transport
        sender, receiver = seg.source, seg.destination
        letters, _ = wire.flags_to_letters(tcp.flags)
        seq = (tcp.seq - self.isn.get(sender, tcp.seq)) % (1 << 32)
        length = len(seg.dgram.payload)
        ack = (tcp.ack - self.isn.get(receiver, tcp.ack)) % (1 << 32) if tcp.flags & wire.ACK else None
        options: tuple | None = tuple(self._option(option, receiver) for option in tcp.options)
        if any(option is None for option in options):
            options = None if outbound else tuple(option for option in options if option is not None)
        body = s.TcpSegment(letters, seq, (seq + length) % (1 << 32), length, ack=ack,
                            window=None if outbound else tcp.window,
                            urg=tcp.urg_ptr if tcp.flags & wire.URG else None, options=options)
        ecn = seg.dgram.ip.tos & 3
        return render_packet(s.Packet(">" if outbound else "<", body, s.IpInfo(ecn=ECN_NAMES[ecn] if ecn else None)))

    def _option(self, option, receiver: Endpoint):
        """An option in script terms; None for one a script cannot write."""
        if isinstance(option, wire.UnknownOption):
            return None
        if isinstance(option, s.Sack):
            base = self.isn.get(receiver, 0)
            return s.Sack(tuple(((left - base) % (1 << 32), (right - base) % (1 << 32))
                                for left, right in option.blocks))
        return option

    def _line(self, delay: int | None, action: str) -> None:
        self.lines.append(layout.timed_line("0" if delay is None else layout.after(delay), action))


def _end(seg: _Captured) -> int:
    """The sequence number after the segment (SYN and FIN take one)."""
    tcp = seg.dgram.transport
    flags = 1 if tcp.flags & wire.SYN else 0
    flags += 1 if tcp.flags & wire.FIN else 0
    return (tcp.seq + len(seg.dgram.payload) + flags) % (1 << 32)


def _after(a: int, b: int) -> bool:
    """Sequence number `a` is beyond `b` (modulo 2**32)."""
    return 0 < (a - b) % (1 << 32) < 1 << 31
