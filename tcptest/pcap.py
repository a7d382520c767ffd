"""Write raw IPv4/IPv6 frames to a pcap file tcpdump and Wireshark can read,
and, once a run is over, to a pcapng whose packets carry comments (the script
line of each: `write_pcapng`); read the IP packets of a capture back
(`read_ip_packets`, for `tcptest import`).

The only tcptest module that imports scapy, and only when a writer is opened,
so that importing tcptest stays cheap. Frames are stored with link type
LINKTYPE_RAW (101): the first nibble of each frame tells IPv4 from IPv6, which
is what the TUN device hands us (no link-layer header).
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Iterable, Sequence

LINKTYPE_RAW = 101
# Big enough for an IPv6 TSO super-segment (65535 payload + 40 header bytes).
SNAPLEN = 262144


class PcapWriter:
    """`with PcapWriter(path) as pcap: pcap.write(frame, timestamp)`.

    `timestamp` is seconds since the epoch (e.g. the kernel capture time),
    stored with microsecond resolution. The frames are kept as well, for the
    annotated pcapng written when the run is over; `script_start` (the
    driver's time.time() of the script's start) turns their timestamps into
    the engine's times."""

    def __init__(self, path: str | os.PathLike[str]):
        RawPcapWriter = load_scapy_writer()

        self.path = os.fspath(path)
        self.frames: list[tuple[bytes, float]] = []
        self.script_start: float | None = None
        self._writer = RawPcapWriter(self.path, linktype=LINKTYPE_RAW, snaplen=SNAPLEN,
                                     sync=False)
        self._writer.write_header(None)

    def write(self, frame: bytes, timestamp: float) -> None:
        if self._writer is None:
            raise ValueError(f"pcap file {self.path} is closed")
        seconds, usecs = divmod(round(timestamp * 1_000_000), 1_000_000)
        self._writer.write_packet(frame, sec=seconds, usec=usecs)
        self.frames.append((frame, timestamp))

    def records(self) -> list[tuple[int, bytes]]:
        """(usecs since the script's start, as the driver counts them; frame)."""
        start = self.script_start or 0.0
        return [(int((timestamp - start) * 1e6), frame) for frame, timestamp in self.frames]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# pcapng's EPB flags: the direction of a packet, from the kernel's side.
INBOUND, OUTBOUND = 1, 2


def write_pcapng(path: str | os.PathLike[str],
                 packets: Iterable[tuple[bytes, float, Sequence[str], bool | None]]) -> None:
    """A pcapng of (frame, timestamp, comments, outbound) packets on one
    raw-IP interface, each with its comments (Wireshark shows them as packet
    comments, `tshark -T fields -e frame.comment` prints them; scapy reads
    them as `packet.comments`)."""
    from decimal import Decimal  # here, not at the top: only a capture needs it (1.6 ms)

    from scapy.utils import RawPcapNgWriter

    writer = RawPcapNgWriter(os.fspath(path))
    try:
        writer.linktype = LINKTYPE_RAW
        writer.write_header(None)  # and the one interface's block, of this link type
        for frame, timestamp, comments, outbound in packets:
            direction = None if outbound is None else (OUTBOUND if outbound else INBOUND)
            # Decimal: a float times 1e6 may round down a microsecond.
            writer._write_packet(frame, LINKTYPE_RAW, sec=Decimal(round(timestamp * 1_000_000)) / 1_000_000,
                                 direction=direction,
                                 comments=[comment.encode() for comment in comments] or None)
    finally:
        writer.close()


# Link-layer headers before the IP header, by link type: Ethernet, BSD
# loopback, Linux cooked v1 and v2, raw IP (also as LINKTYPE_IPV4/IPV6).
_LINK_HEADER_BYTES = {1: 14, 0: 4, 113: 16, 276: 20, LINKTYPE_RAW: 0, 228: 0, 229: 0}
_ETHERTYPE_VLAN = (0x8100, 0x88A8)


def read_ip_packets(path: str | os.PathLike[str]) -> list[tuple[float, bytes]]:
    """(timestamp in seconds, IP packet) of each packet of a pcap or pcapng
    file, link-layer header removed. Raises ValueError for a file that is
    not a capture, or a link type without IP packets."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    packets = []
    try:
        with RawPcapReader(os.fspath(path)) as reader:
            for frame, meta in reader:
                linktype = getattr(meta, "linktype", None) or reader.linktype
                if linktype not in _LINK_HEADER_BYTES:
                    raise ValueError(f"link type {linktype} holds no IP packets tcptest can read")
                start = _LINK_HEADER_BYTES[linktype]
                while linktype == 1 and int.from_bytes(frame[start - 2:start], "big") in _ETHERTYPE_VLAN:
                    start += 4
                packets.append((_seconds(meta), bytes(frame[start:])))
    except Scapy_Exception as err:
        raise ValueError(str(err)) from None
    return packets


def _seconds(meta) -> float:
    """A packet's time from either reader's metadata (pcap: sec and usec;
    pcapng: a 64-bit count of `tsresol` units)."""
    if hasattr(meta, "sec"):
        return meta.sec + meta.usec / 1_000_000
    return ((meta.tshigh << 32) | meta.tslow) / meta.tsresol


def load_scapy_writer():
    """scapy's pcap writer, imported on first use. A parent that forks many
    runs calls it once beforehand, so that no child pays for the import (~55 ms)."""
    from scapy.utils import RawPcapWriter

    return RawPcapWriter
