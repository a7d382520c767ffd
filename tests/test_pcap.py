"""PcapWriter output read back by tcpdump and by scapy."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap

from tcptest import wire
from tcptest.pcap import PcapWriter
from tcptest.script import Mss, Nop, SackPermitted, WindowScale
from tcptest.wire import ACK, FIN, PSH, SYN, IpHeader, TcpHeader

V4 = IpHeader(4, "192.0.2.1", "192.168.44.5", ttl=255)
V6 = IpHeader(6, "2001:db8::1", "fd3d:fa7b:d17d::5", ttl=255)

FRAMES = [
    (1_700_000_000.000001, wire.encode_tcp(V4, TcpHeader(
        40000, 8080, 0, 0, SYN, 65535,
        options=(Mss(1460), Nop(), Nop(), SackPermitted(), Nop(), WindowScale(7))))),
    (1_700_000_000.250000, wire.encode_tcp(IpHeader(4, V4.dst, V4.src), TcpHeader(
        8080, 40000, 777, 1, SYN | ACK, 29200, options=(Mss(1460),)))),
    (1_700_000_001.999999, wire.encode_tcp(V6, TcpHeader(41000, 8080, 5001, 9001, PSH | ACK, 257), 1000)),
    (1_700_000_002.5, wire.encode_tcp(V6, TcpHeader(41000, 8080, 6001, 9001, FIN | ACK, 257))),
    # A TSO super-segment bigger than scapy's default 65535-byte snap length.
    (1_700_000_003.0, wire.encode_tcp(V6, TcpHeader(41000, 8080, 7001, 9001, ACK, 257), 65535 - 20)),
]


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "run.pcap"
    with PcapWriter(path) as pcap:
        for timestamp, frame in FRAMES:
            pcap.write(frame, timestamp)
    return path


def read_records(path) -> list[tuple[int, int, bytes]]:
    """(seconds, microseconds, frame) of each record, read by hand: scapy's
    reader cuts frames at 65535 bytes."""
    data = path.read_bytes()
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"  # the writer's byte order
    magic, _, _, _, _, snaplen, linktype = struct.unpack_from(order + "IHHiIII", data)
    assert (magic, linktype) == (0xA1B2C3D4, 101) and snaplen > 65575
    records, pos = [], 24
    while pos < len(data):
        seconds, usecs, caplen, wirelen = struct.unpack_from(order + "IIII", data, pos)
        assert caplen == wirelen
        records.append((seconds, usecs, data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    return records


def test_records_hold_whole_frames_and_times(capture):
    expected = [(int(t), round(t % 1 * 1e6), frame) for t, frame in FRAMES]
    assert read_records(capture) == expected


def test_scapy_reads_back(capture):
    packets = rdpcap(str(capture))
    assert [bytes(p) for p in packets[:4]] == [frame for _, frame in FRAMES[:4]]
    assert [float(p.time) for p in packets] == pytest.approx([t for t, _ in FRAMES], abs=1e-6)
    assert packets[1][TCP].seq == 777 and packets[2][TCP].sport == 41000


def test_tcpdump_reads_back(capture):
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (apt-get install tcpdump)")
    result = subprocess.run(["tcpdump", "-r", str(capture), "-nn", "-S", "-tt", "-v"],
                            capture_output=True, text=True, check=True)
    assert "link-type RAW" in result.stderr
    text = result.stdout
    lines = [line for line in text.splitlines() if "Flags" in line]
    assert len(lines) == len(FRAMES)
    assert "192.168.44.5.40000 > 192.0.2.1.8080: Flags [S.], cksum" not in text  # direction kept
    assert "192.0.2.1.40000 > 192.168.44.5.8080: Flags [S], cksum" in lines[0]
    assert "options [mss 1460,nop,nop,sackOK,nop,wscale 7]" in lines[0]
    assert "192.168.44.5.8080 > 192.0.2.1.40000: Flags [S.]" in lines[1] and "seq 777, ack 1" in lines[1]
    assert "2001:db8::1.41000 > fd3d:fa7b:d17d::5.8080: Flags [P.]" in lines[2]
    assert "seq 5001:6001, ack 9001, win 257, length 1000" in lines[2]
    assert "Flags [F.]" in lines[3] and "seq 6001" in lines[3]
    assert "seq 7001:72516" in lines[4]
    assert text.count("(correct)") == len(FRAMES)  # tcpdump agrees with our checksums
    assert "1700000000.000001 IP" in text and "1700000001.999999 IP6" in text


def test_empty_capture_is_a_valid_file(tmp_path):
    path = tmp_path / "empty.pcap"
    with PcapWriter(path):
        pass
    assert len(rdpcap(str(path))) == 0


def test_write_after_close_is_refused(tmp_path):
    pcap = PcapWriter(tmp_path / "closed.pcap")
    pcap.close()
    pcap.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        pcap.write(FRAMES[0][1], 0.0)
