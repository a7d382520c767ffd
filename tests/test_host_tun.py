"""tun0 against the real kernel: configuration, capture, injection, TSO/GSO.

Needs root. Each test runs its kernel side inside run_isolated, which returns
what it observed; the assertions are made here, in the parent. Packets are
built and read with struct in this file, independently of tcptest.wire."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import select
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest

from tcptest.errors import SetupError
from tcptest.host import TunConfig, TunDevice, run_isolated
from tcptest.host.namespace import CLONE_NEWNET, libc

pytestmark = pytest.mark.root("needs root")

# The addresses the kernel's selftests pass to packetdrill.
KSELFTEST_CONFIGS = {
    "ipv4": TunConfig("ipv4", "192.168.0.1", "192.0.2.1", "192.168.0.1", prefix_len=16),
    "ipv6": TunConfig(
        "ipv6", "fd3d:0a0b:17d6::1", "fd3d:fa7b:d17d::1", "fd3d:0a0b:17d6:8888::1", prefix_len=48, mtu=1520
    ),
    "ipv4-mapped-ipv6": TunConfig(
        "ipv4-mapped-ipv6", "192.168.0.1", "192.0.2.1", "192.168.0.1", prefix_len=16
    ),
}
PORT = 8080
PEER_ISN = 1000
SYN, RST, PSH, ACK = 0x02, 0x04, 0x08, 0x10


@dataclass(frozen=True)
class Segment:
    version: int
    ip_length: int
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: bytes
    payload_len: int

    def mss_option(self) -> int | None:
        options = self.options
        while options:
            kind = options[0]
            if kind == 0:
                return None
            if kind == 1:
                options = options[1:]
                continue
            if kind == 2:
                return struct.unpack_from("!H", options, 2)[0]
            options = options[options[1] :]
        return None


def parse(packet: bytes) -> Segment:
    version = packet[0] >> 4
    if version == 4:
        header_len, protocol = (packet[0] & 0x0F) * 4, packet[9]
        ip_length = struct.unpack_from("!H", packet, 2)[0]
        src, dst = (str(ipaddress.IPv4Address(packet[offset : offset + 4])) for offset in (12, 16))
    else:
        header_len, protocol = 40, packet[6]
        ip_length = 40 + struct.unpack_from("!H", packet, 4)[0]
        src, dst = (str(ipaddress.IPv6Address(packet[offset : offset + 16])) for offset in (8, 24))
    assert protocol == socket.IPPROTO_TCP, f"not TCP: protocol {protocol}"
    sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", packet, header_len)
    tcp_len = (offset_flags >> 12) * 4
    return Segment(
        version=version,
        ip_length=ip_length,
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=offset_flags & 0x1FF,
        window=window,
        options=packet[header_len + 20 : header_len + tcp_len],
        payload_len=ip_length - header_len - tcp_len,
    )


def internet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int = 65535,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    """An IP packet with a TCP segment, TTL 255, both checksums right."""
    source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    offset_flags = ((20 + len(options)) // 4) << 12 | flags
    tcp = struct.pack("!HHIIHHHH", sport, dport, seq, ack, offset_flags, window, 0, 0) + options + payload
    if source.version == 4:
        pseudo = source.packed + destination.packed + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    else:
        pseudo = source.packed + destination.packed + struct.pack("!I3xB", len(tcp), socket.IPPROTO_TCP)
    tcp = tcp[:16] + struct.pack("!H", internet_checksum(pseudo + tcp)) + tcp[18:]
    if source.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 255, socket.IPPROTO_TCP, 0,
            source.packed, destination.packed,
        )
        header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    else:
        header = struct.pack(
            "!IHBB16s16s", 6 << 28, len(tcp), socket.IPPROTO_TCP, 255, source.packed, destination.packed
        )
    return header + tcp


def reply(to: Segment, seq: int, flags: int, options: bytes = b"", payload: bytes = b"") -> bytes:
    """A segment from the peer back to the sender of `to`, acking all of it."""
    return build(
        to.dst, to.src, to.dport, to.sport, seq, (to.seq + to.payload_len + (to.flags & SYN != 0)) % 2**32,
        flags, options=options, payload=payload,
    )


def ip_link_flags() -> list[str]:
    link = subprocess.run(
        ["ip", "-j", "link", "show", "dev", "tun0"], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(link)[0]["flags"]


def next_tcp_segment(device: TunDevice) -> tuple[float, Segment]:
    frame = device.receive(timeout=5)
    assert frame is not None, "no frame captured within 5 s"
    return frame.timestamp, parse(frame.data)


def start_connect(config: TunConfig) -> tuple[socket.socket, int]:
    """A non-blocking kernel socket connecting to the scripted peer, and what
    connect returned."""
    if config.ip_version == "ipv4":
        client, remote = socket.socket(socket.AF_INET), config.remote_ip
    elif config.ip_version == "ipv6":
        client, remote = socket.socket(socket.AF_INET6), config.remote_ip
    else:
        client, remote = socket.socket(socket.AF_INET6), f"::ffff:{config.remote_ip}"
    client.setblocking(False)
    return client, client.connect_ex((remote, PORT))


def open_connection(device: TunDevice, config: TunConfig) -> tuple[socket.socket, Segment, Segment]:
    """Connect a kernel socket to the scripted peer: (socket, its SYN, its ACK)."""
    client, result = start_connect(config)
    assert result == errno.EINPROGRESS
    _, syn = next_tcp_segment(device)
    device.send(reply(syn, PEER_ISN, SYN | ACK, options=struct.pack("!BBH", 2, 4, 1460)))
    _, ack = next_tcp_segment(device)
    return client, syn, ack


@pytest.mark.parametrize("version", KSELFTEST_CONFIGS)
def test_handshake_through_tun0(version):
    config = KSELFTEST_CONFIGS[version]

    def body():
        with TunDevice(config) as device:
            before_connect = time.time()
            client, connect_result = start_connect(config)
            syn_time, syn = next_tcp_segment(device)
            after_capture = time.time()
            sent_at = device.send(reply(syn, PEER_ISN, SYN | ACK, options=struct.pack("!BBH", 2, 4, 1460)))
            after_send = time.time()
            writable = select.select([], [client], [], 5)[1] == [client]
            error = client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            _, ack = next_tcp_segment(device)
            return {
                "connect_result": connect_result,
                "syn": syn,
                "syn_time": syn_time,
                "before_connect": before_connect,
                "after_capture": after_capture,
                "sent_at": sent_at,
                "after_send": after_send,
                "writable": writable,
                "error": error,
                "ack": ack,
                "interfaces": socket.if_nameindex(),
                "index": device.interface_index,
            }

    seen = run_isolated(body, timeout=30)

    syn, ack = seen["syn"], seen["ack"]
    assert seen["connect_result"] == errno.EINPROGRESS
    assert syn.version == (6 if version == "ipv6" else 4)
    assert ipaddress.ip_address(syn.src) == ipaddress.ip_address(config.local_ip)
    assert ipaddress.ip_address(syn.dst) == ipaddress.ip_address(config.remote_ip)
    assert (syn.dport, syn.flags, syn.payload_len) == (PORT, SYN, 0)
    assert seen["before_connect"] <= seen["syn_time"] <= seen["after_capture"]
    assert seen["after_capture"] <= seen["sent_at"] <= seen["after_send"]
    assert seen["writable"] and seen["error"] == 0
    assert (ack.src, ack.dst, ack.sport, ack.dport) == (syn.src, syn.dst, syn.sport, syn.dport)
    assert ack.flags == ACK  # the first frame after the injected SYN-ACK is the kernel's own
    assert (ack.seq, ack.ack, ack.payload_len) == ((syn.seq + 1) % 2**32, PEER_ISN + 1, 0)
    assert (seen["index"], "tun0") in seen["interfaces"]
    assert "tun0" not in [name for _, name in socket.if_nameindex()]


def test_mtu_option_sets_the_device_mtu():
    config = TunConfig("ipv4", "192.168.0.1", "192.0.2.1", "192.168.0.1", prefix_len=16, mtu=1400)

    def body():
        with TunDevice(config) as device:
            client, _ = start_connect(config)
            with client:
                return next_tcp_segment(device)[1]

    syn = run_isolated(body, timeout=30)

    assert syn.mss_option() == 1400 - 40


def test_large_writes_come_out_as_tso_super_segments():
    config = KSELFTEST_CONFIGS["ipv4"]

    def body():
        with TunDevice(config) as device:
            client, _, _ = open_connection(device, config)
            client.send(bytes(10000))  # within the initial window: all of it goes out at once
            segments = []
            while sum(segment.payload_len for segment in segments) < 10000:
                segments.append(next_tcp_segment(device)[1])
            return segments

    segments = run_isolated(body, timeout=30)

    assert sum(segment.payload_len for segment in segments) == 10000
    assert all(segment.flags & ~PSH == ACK for segment in segments)
    assert max(segment.ip_length for segment in segments) > 1500  # the MTU: never split
    assert len(segments) < 10000 / 1460


@pytest.mark.parametrize("version", ["ipv4", "ipv6"])
def test_gso_injection_arrives_as_segments_of_gso_size(version):
    config = KSELFTEST_CONFIGS[version]

    def body():
        with TunDevice(config) as device:
            client, syn, _ = open_connection(device, config)
            device.send(reply(syn, PEER_ISN + 1, PSH | ACK, payload=bytes(3000)), gso_size=1000)
            received = b""
            while len(received) < 3000 and select.select([client], [], [], 5)[0]:
                received += client.recv(65536)
            info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            return len(received), struct.unpack_from("I", info, 20)[0]  # tcpi_rcv_mss

    received, rcv_mss = run_isolated(body, timeout=30)

    assert received == 3000
    assert rcv_mss == 1000


def test_packets_within_gso_size_keep_their_checksum_checked():
    """A segment no larger than gso_size goes in plain, so the kernel verifies
    its checksum: a corrupted copy is dropped and the good one delivered."""
    config = KSELFTEST_CONFIGS["ipv4"]

    def body():
        with TunDevice(config) as device:
            client, syn, _ = open_connection(device, config)
            corrupted = bytearray(reply(syn, PEER_ISN + 1, PSH | ACK, payload=bytes(500)))
            corrupted[-1] ^= 0xFF
            device.send(bytes(corrupted), gso_size=1000)
            device.send(reply(syn, PEER_ISN + 1, PSH | ACK, payload=b"\x01" * 500), gso_size=1000)
            select.select([client], [], [], 5)
            return client.recv(65536)

    assert run_isolated(body, timeout=30) == b"\x01" * 500


def test_ipv6_address_is_usable_at_once_and_alone():
    """No duplicate address detection, and no link-local address whose router
    solicitations would show up in the capture."""
    config = KSELFTEST_CONFIGS["ipv6"]

    def body():
        with TunDevice(config):
            addresses = subprocess.run(
                ["ip", "-6", "-o", "addr", "show", "dev", "tun0"], check=True, capture_output=True, text=True
            ).stdout.splitlines()
            with socket.socket(socket.AF_INET6) as server:
                server.bind((config.local_ip, PORT))
                return server.getsockname()[:2], addresses

    address, addresses = run_isolated(body, timeout=30)

    assert address == (str(ipaddress.ip_address(config.local_ip)), PORT)
    (only,) = addresses
    words = only.split()
    assert words[3] == f"{ipaddress.ip_address(config.local_ip)}/48"
    assert "nodad" in words and "tentative" not in words


def test_the_device_queue_is_drained_as_frames_are_captured():
    """Every frame the kernel sends also waits on the tun fd; unread, 500 of
    them fill tun0's queue and the rest are dropped."""
    config = KSELFTEST_CONFIGS["ipv4"]

    def body():
        with TunDevice(config) as device, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            captured = 0
            for _ in range(600):
                sender.sendto(b"x", (config.remote_ip, 9))
                captured += device.receive(timeout=5) is not None
            link = subprocess.run(
                ["ip", "-s", "-j", "link", "show", "dev", "tun0"], check=True, capture_output=True, text=True
            ).stdout
            return captured, json.loads(link)[0]["stats64"]["tx"]

    captured, transmitted = run_isolated(body, timeout=60)

    assert captured == 600
    assert transmitted["packets"] == 600
    assert transmitted["dropped"] == 0


def test_flush_discards_pending_frames():
    config = KSELFTEST_CONFIGS["ipv4"]

    def body():
        with TunDevice(config) as device:
            client, _ = start_connect(config)
            with client:
                select.select([device], [], [], 5)
                return device.flush(), device.receive(timeout=0)

    flushed, after = run_isolated(body, timeout=30)

    assert flushed == 1
    assert after is None


def test_closing_lets_go_of_tun0():
    """After close nothing reads tun0 any more (no carrier); the device itself
    is left to disappear with the namespace."""

    def body():
        device = TunDevice(KSELFTEST_CONFIGS["ipv4"])
        before = ip_link_flags()
        device.close()
        return before, ip_link_flags()

    before, after = run_isolated(body, timeout=30)

    assert "LOWER_UP" in before and "NO-CARRIER" not in before
    assert "NO-CARRIER" in after
    assert "tun0" not in [name for _, name in socket.if_nameindex()]


def test_a_second_tun0_in_one_namespace_is_a_setup_error():
    def body():
        with TunDevice(KSELFTEST_CONFIGS["ipv4"]):
            TunDevice(KSELFTEST_CONFIGS["ipv4"])

    with pytest.raises(SetupError, match="tun0 already exists"):
        run_isolated(body, timeout=30)


def test_refuses_a_namespace_tcptest_did_not_create():
    """In a namespace made by a bare unshare (so that nothing can reach the
    host even if the check were missing), TunDevice must refuse to start."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if libc.unshare(CLONE_NEWNET) != 0:
                os.write(write_fd, b"unshare failed")
            else:
                TunDevice(KSELFTEST_CONFIGS["ipv4"]).close()
                os.write(write_fd, b"created")
        except SetupError as error:
            os.write(write_fd, str(error).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        message = reader.read().decode()
    os.waitpid(pid, 0)
    assert message.startswith("refusing to create tun0 outside a network namespace that tcptest created")


def test_bad_routes_are_setup_errors():
    config = TunConfig("ipv4", "192.168.0.1", "192.0.2.1", "10.9.9.9", prefix_len=16)

    with pytest.raises(SetupError, match=r"cannot route 192.0.2.1/32 via 10.9.9.9 on tun0: "):
        run_isolated(lambda: TunDevice(config).close(), timeout=30)


class TestTunConfig:
    def test_prefix_length_must_fit_the_family(self):
        with pytest.raises(SetupError, match=r"prefix length 64 is out of range for IPv4"):
            TunConfig("ipv4", "192.168.0.1", "192.0.2.1", "192.168.0.1", 64)

    def test_address_family_must_match_ip_version(self):
        with pytest.raises(SetupError, match=r"--remote_ip=2001:db8::1 is not an IPv4 address"):
            TunConfig("ipv4-mapped-ipv6", "192.168.0.1", "2001:db8::1", "192.168.0.1", 16)

    def test_unknown_ip_version(self):
        with pytest.raises(SetupError, match=r"--ip_version=ipv5 is not one of"):
            TunConfig("ipv5", "192.168.0.1", "192.0.2.1", "192.168.0.1", 16)

    def test_remote_network(self):
        config = TunConfig("ipv4", "192.168.0.1", "192.0.2.1", "192.168.0.1", 16, remote_prefix_len=24)
        assert str(config.remote_network) == "192.0.2.0/24"
        assert str(KSELFTEST_CONFIGS["ipv6"].remote_network) == "fd3d:fa7b:d17d::1/128"
        assert KSELFTEST_CONFIGS["ipv4-mapped-ipv6"].family == socket.AF_INET
