"""Packets per second of tcptest.wire against scapy doing the same work.

Why wire.py exists: every captured and injected packet goes through the codec,
and a TSO-heavy script moves thousands of segments. Run:
    python benchmarks/bench_wire.py [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from tcptest import wire
from tcptest.script import Mss, Nop, Sack, SackPermitted, Timestamp, WindowScale
from tcptest.wire import ACK, PSH, SYN, IpHeader, TcpHeader

V4 = IpHeader(4, "192.0.2.1", "192.168.7.9", ttl=255)
V6 = IpHeader(6, "2001:db8::1", "fd3d:fa7b:d17d::2", ttl=255)

# (name, ip, tcp header, payload length, the same thing as scapy layers)
CASES = [
    ("v4 SYN, 5 options", V4,
     TcpHeader(40000, 8080, 0, 0, SYN, 65535,
               options=(Mss(1460), SackPermitted(), Timestamp(100, 0), Nop(), WindowScale(7))), 0,
     lambda: IP(src=V4.src, dst=V4.dst, ttl=255, id=0) / TCP(
         sport=40000, dport=8080, seq=0, ack=0, flags="S", window=65535,
         options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)), ("NOP", None),
                  ("WScale", 7)])),
    ("v4 data 1000 B + TS", V4,
     TcpHeader(40000, 8080, 1, 1, PSH | ACK, 502, options=(Nop(), Nop(), Timestamp(1, 2))), 1000,
     lambda: IP(src=V4.src, dst=V4.dst, ttl=255, id=0) / TCP(
         sport=40000, dport=8080, seq=1, ack=1, flags="PA", window=502,
         options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / Raw(bytes(1000))),
    ("v6 ACK + SACK", V6,
     TcpHeader(40000, 8080, 1, 1001, ACK, 502, options=(Nop(), Nop(), Sack(((2001, 3001),)))), 0,
     lambda: IPv6(src=V6.src, dst=V6.dst, hlim=255) / TCP(
         sport=40000, dport=8080, seq=1, ack=1001, flags="A", window=502,
         options=[("NOP", None), ("NOP", None), ("SAck", (2001, 3001))])),
    ("v4 TSO 10000 B", V4, TcpHeader(8080, 40000, 1, 1, PSH | ACK, 502), 10000,
     lambda: IP(src=V4.src, dst=V4.dst, ttl=255, id=0) / TCP(
         sport=8080, dport=40000, seq=1, ack=1, flags="PA", window=502) / Raw(bytes(10000))),
]


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls per second of `work`, timed over about `seconds`."""
    calls, batch = 0, 1
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            work()
        calls += batch
        batch = min(batch * 2, 4096)
    return calls / elapsed


def scapy_decode(frame: bytes) -> tuple:
    packet = IP(frame) if frame[0] >> 4 == 4 else IPv6(frame)
    segment = packet[TCP]
    return segment.flags, segment.seq, segment.options, bytes(segment.payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    seconds = parser.parse_args().seconds

    rows = []
    for name, ip, header, payload_length, scapy_build in CASES:
        frame = wire.encode_tcp(ip, header, payload_length)
        if bytes(scapy_build()) != frame:
            raise SystemExit(f"{name}: scapy builds a different packet; the comparison is unfair")
        rows.append((name, "decode", rate(lambda: wire.decode(frame), seconds),
                     rate(lambda: scapy_decode(frame), seconds)))
        rows.append((name, "encode", rate(lambda: wire.encode_tcp(ip, header, payload_length), seconds),
                     rate(lambda: bytes(scapy_build()), seconds)))

    print(f"{'packet':<22} {'op':<7} {'wire pkt/s':>12} {'scapy pkt/s':>12} {'speed-up':>9}")
    for name, op, ours, theirs in rows:
        print(f"{name:<22} {op:<7} {ours:>12,.0f} {theirs:>12,.0f} {ours / theirs:>8.0f}x")


if __name__ == "__main__":
    main()
