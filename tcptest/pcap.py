"""Write raw IPv4/IPv6 frames to a pcap file tcpdump and Wireshark can read.

The only tcptest module that imports scapy, and only when a writer is opened,
so that importing tcptest stays cheap. Frames are stored with link type
LINKTYPE_RAW (101): the first nibble of each frame tells IPv4 from IPv6, which
is what the TUN device hands us (no link-layer header).
"""

from __future__ import annotations

import os
from types import TracebackType

LINKTYPE_RAW = 101
# Big enough for an IPv6 TSO super-segment (65535 payload + 40 header bytes).
SNAPLEN = 262144


class PcapWriter:
    """`with PcapWriter(path) as pcap: pcap.write(frame, timestamp)`.

    `timestamp` is seconds since the epoch (e.g. the kernel capture time),
    stored with microsecond resolution."""

    def __init__(self, path: str | os.PathLike[str]):
        RawPcapWriter = load_scapy_writer()

        self.path = os.fspath(path)
        self._writer = RawPcapWriter(self.path, linktype=LINKTYPE_RAW, snaplen=SNAPLEN,
                                     sync=False)
        self._writer.write_header(None)

    def write(self, frame: bytes, timestamp: float) -> None:
        if self._writer is None:
            raise ValueError(f"pcap file {self.path} is closed")
        seconds, usecs = divmod(round(timestamp * 1_000_000), 1_000_000)
        self._writer.write_packet(frame, sec=seconds, usec=usecs)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def load_scapy_writer():
    """scapy's pcap writer, imported on first use. A parent that forks many
    runs calls it once beforehand, so that no child pays for the import (~55 ms)."""
    from scapy.utils import RawPcapWriter

    return RawPcapWriter
