"""Write raw IPv4/IPv6 frames to a pcap file tcpdump and Wireshark can read,
and, once a run is over, to a pcapng whose packets carry comments (the script
line of each: `write_pcapng`).

The only tcptest module that imports scapy, and only when a writer is opened,
so that importing tcptest stays cheap. Frames are stored with link type
LINKTYPE_RAW (101): the first nibble of each frame tells IPv4 from IPv6, which
is what the TUN device hands us (no link-layer header).
"""

from __future__ import annotations

import os
from decimal import Decimal
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


def load_scapy_writer():
    """scapy's pcap writer, imported on first use. A parent that forks many
    runs calls it once beforehand, so that no child pays for the import (~55 ms)."""
    from scapy.utils import RawPcapWriter

    return RawPcapWriter
