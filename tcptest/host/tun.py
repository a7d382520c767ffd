"""tun0: the device between the kernel under test and the script's peer.

Set up as packetdrill does, so that scripts written for it see the same kernel
behaviour: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR with checksum and TSO offloads on
(the kernel hands over TSO super-segments unsplit), the local address on tun0,
and the remote prefix routed through the gateway on tun0.

Two file descriptors, two jobs:
- the capture socket (AF_PACKET on tun0, outgoing frames only, kernel
  timestamps) is how outbound packets are seen, and when;
- the tun fd is where inbound packets are written. What the kernel transmits
  is also queued on it; that copy is only read to be thrown away, so that the
  queue (tx_queue_len frames) never fills and drops traffic.

Ordering: the kernel hands a frame to packet sockets before it queues it on the
tun fd (dev_queue_xmit_nit runs before the driver's xmit), so reading the tun fd
dry never takes away a frame that the capture has not got yet.

Captured frames are IP packets exactly as the kernel produced them: with TSO the
TCP checksum holds only the pseudo-header sum (the "hardware" would finish it),
so readers must not verify outbound checksums.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import math
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunFailure, SetupError
from ..options import IP_VERSIONS
from .namespace import in_own_network_namespace
from .rtnl import RTN_LOCAL, Rtnetlink, RtnetlinkError

DEVICE_NAME = "tun0"

# linux/if_tun.h
_TUNSETIFF = 0x400454CA
_TUNSETOFFLOAD = 0x400454D0
_TUNSETPERSIST = 0x400454CB
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_IFF_VNET_HDR = 0x4000
_TUN_F_CSUM = 0x01
_TUN_F_TSO4 = 0x02
_TUN_F_TSO6 = 0x04
_TUN_F_TSO_ECN = 0x08

# linux/virtio_net.h: struct virtio_net_hdr, native byte order (legacy tun)
_VNET_HEADER = struct.Struct("=BBHHHH")
_VNET_F_NEEDS_CSUM = 1
_VNET_GSO_TCPV4 = 1
_VNET_GSO_TCPV6 = 4
_VNET_GSO_ECN = 0x80
_PLAIN_VNET_HEADER = bytes(_VNET_HEADER.size)
_TCP_CHECKSUM_OFFSET = 16
_TCP_FLAG_CWR = 0x80

# asm-generic/socket.h, linux/filter.h, linux/if_ether.h, linux/if_addr.h
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33
_SO_RXQ_OVFL = 40
_SO_TIMESTAMPNS_NEW = 64
_ETH_P_ALL = 0x0003
_IFA_F_NODAD = 0x02
_ADDRESS_READY_SECS = 30.0
_TIMESPEC = struct.Struct("=qq")
_DROP_COUNT = struct.Struct("=I")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_DROP_COUNT.size)

_FRAME_BUFFER_SIZE = 1 << 18  # above any GSO frame tun0 can carry (64 KiB)
_CAPTURE_BUFFER_BYTES = 32 << 20  # a burst of super-segments must not overflow it

# Classic BPF, run by the kernel on every frame the socket would get: keep the
# frames this host sends (skb->pkt_type == PACKET_OUTGOING), drop the ones
# written into tun0, so that the socket is readable only for outbound traffic.
_OUTGOING_ONLY = (
    (0x20, 0, 0, 0xFFFFF004),  # ld  [SKF_AD_OFF + SKF_AD_PKTTYPE]
    (0x15, 0, 1, socket.PACKET_OUTGOING),  # jeq #PACKET_OUTGOING, keep, drop
    (0x06, 0, 0, _FRAME_BUFFER_SIZE),  # keep: ret #snaplen
    (0x06, 0, 0, 0),  # drop: ret #0
)


@dataclass(frozen=True, slots=True)
class TunConfig:
    """Addresses and MTU of tun0, from the script's options (options.py works
    out packetdrill's defaults; this only checks that they fit together).

    For ipv4-mapped-ipv6 the sockets are IPv6 but the wire and tun0 are IPv4:
    all addresses here are then IPv4. `remote_prefix_len` None routes only
    `remote_ip` itself."""

    ip_version: str
    local_ip: str
    remote_ip: str
    gateway_ip: str
    prefix_len: int
    mtu: int | None = None
    remote_prefix_len: int | None = None

    def __post_init__(self) -> None:
        if self.ip_version not in IP_VERSIONS:
            raise SetupError(
                f"--ip_version={self.ip_version} is not one of {', '.join(IP_VERSIONS)}"
            )
        wanted = 6 if self.ip_version == "ipv6" else 4
        for option, value in (
            ("local_ip", self.local_ip),
            ("remote_ip", self.remote_ip),
            ("gateway_ip", self.gateway_ip),
        ):
            try:
                version = ipaddress.ip_address(value).version
            except ValueError:
                raise SetupError(f"--{option}={value} is not an IP address") from None
            if version != wanted:
                raise SetupError(
                    f"--{option}={value} is not an IPv{wanted} address, "
                    f"which --ip_version={self.ip_version} needs"
                )
        lengths = (("prefix length", self.prefix_len), ("remote prefix length", self.remote_prefix_len))
        for option, length in lengths:
            if length is not None and not 0 <= length <= self.address_bits:
                raise SetupError(f"{option} {length} is out of range for IPv{wanted}")
        if self.mtu is not None and self.mtu <= 0:
            raise SetupError(f"--mtu={self.mtu} must be positive")

    @property
    def family(self) -> socket.AddressFamily:
        """Address family of tun0 and of the packets on it."""
        return socket.AF_INET6 if self.ip_version == "ipv6" else socket.AF_INET

    @property
    def address_bits(self) -> int:
        return 128 if self.ip_version == "ipv6" else 32

    @property
    def remote_network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The destination routed through the gateway on tun0."""
        length = self.address_bits if self.remote_prefix_len is None else self.remote_prefix_len
        return ipaddress.ip_network(f"{self.remote_ip}/{length}", strict=False)


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One packet the kernel sent out of tun0."""

    timestamp: float  # CLOCK_REALTIME seconds, taken by the kernel at transmission
    data: bytes  # the IP packet; with TSO possibly larger than the MTU


class TunDevice:
    """tun0 in the current network namespace, configured and capturing.

    Refuses to run outside a namespace made by `enter_new_network_namespace`.
    Meant for one thread: the driver's loop."""

    def __init__(self, config: TunConfig):
        if not in_own_network_namespace():
            raise SetupError(
                f"refusing to create {DEVICE_NAME} outside a network namespace that tcptest "
                "created (use run_isolated)"
            )
        self.config = config
        self._tun_fd = -1
        self._capture: socket.socket | None = None
        self._drops_reported = 0
        self._frame_buffer = bytearray(_FRAME_BUFFER_SIZE)
        self._discard_buffer = bytearray(_FRAME_BUFFER_SIZE)
        try:
            self._tun_fd = _open_tun_device()
            self.interface_index = socket.if_nametoindex(DEVICE_NAME)
            _configure(config, self.interface_index)
            # Bound only now: binding to a device that is down leaves an
            # ENETDOWN error on the socket.
            self._capture = _open_capture_socket()
            self._poller = select.poll()
            self._poller.register(self._capture, select.POLLIN)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> TunDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fileno(self) -> int:
        """The capture socket: readable when an outbound frame is waiting."""
        assert self._capture is not None, "TunDevice is closed"
        return self._capture.fileno()

    def receive(self, timeout: float | None) -> CapturedFrame | None:
        """The next frame the kernel sent, waiting up to `timeout` seconds
        (None: for ever, 0: only if one is already there); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frame = self._next_frame()
            if frame is not None:
                return frame
            if deadline is None:
                wait_ms = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait_ms = math.ceil(remaining * 1000)
            self._poller.poll(wait_ms)

    def flush(self) -> int:
        """Throw away every captured frame not yet received; how many there were."""
        count = 0
        while self._next_frame() is not None:
            count += 1
        self._drain_device()
        return count

    def send(self, packet: bytes, gso_size: int = 0) -> float:
        """Inject an IP packet (checksums already right) as if it came from the
        peer; the time.time() just after the kernel took it.

        With `gso_size` > 0, a TCP packet whose payload is larger goes in as one
        GSO packet of `gso_size` segments, as packetdrill's --mss does."""
        header = _vnet_header(packet, gso_size) if gso_size > 0 else _PLAIN_VNET_HEADER
        try:
            os.writev(self._tun_fd, (header, packet))
        except OSError as exc:
            raise RunFailure(
                None, f"{DEVICE_NAME} refused an injected packet of {len(packet)} bytes: {exc.strerror}"
            ) from exc
        return time.time()

    def close(self) -> None:
        """Stop capturing and let go of tun0.

        tun0 is made persistent first, so that closing does not destroy it
        here: destroying a device waits for RCU grace periods, some 30 ms per
        run. It goes, with its addresses and routes, when the namespace does,
        in the kernel's batched background cleanup."""
        if self._capture is not None:
            self._capture.close()
            self._capture = None
        if self._tun_fd >= 0:
            tun_fd, self._tun_fd = self._tun_fd, -1
            try:
                fcntl.ioctl(tun_fd, _TUNSETPERSIST, 1)
            finally:
                os.close(tun_fd)

    def _next_frame(self) -> CapturedFrame | None:
        assert self._capture is not None, "TunDevice is closed"
        try:
            size, ancillary, flags, _ = self._capture.recvmsg_into([self._frame_buffer], _ANCILLARY_SIZE)
        except BlockingIOError:
            return None
        timestamp = None
        for level, kind, data in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, _SO_TIMESTAMPNS_NEW):
                seconds, nanoseconds = _TIMESPEC.unpack(data)
                timestamp = seconds + nanoseconds * 1e-9
            elif (level, kind) == (socket.SOL_SOCKET, _SO_RXQ_OVFL):
                self._check_drops(_DROP_COUNT.unpack(data)[0])
        if flags & socket.MSG_TRUNC:
            raise RunFailure(None, f"an outbound packet on {DEVICE_NAME} was too big to capture")
        if timestamp is None:
            raise RunFailure(None, f"the kernel gave no timestamp for a packet sent on {DEVICE_NAME}")
        self._drain_device()
        return CapturedFrame(timestamp, bytes(memoryview(self._frame_buffer)[:size]))

    def _check_drops(self, total: int) -> None:
        """A lost capture would make the script's view of the connection wrong
        in ways nobody could explain, so it is an error."""
        if total != self._drops_reported:
            lost, self._drops_reported = total - self._drops_reported, total
            raise RunFailure(
                None, f"the capture on {DEVICE_NAME} lost {lost} outbound packets (buffer overflow)"
            )

    def _drain_device(self) -> None:
        while True:
            try:
                os.readv(self._tun_fd, (self._discard_buffer,))
            except BlockingIOError:
                return


def tun_open_error() -> OSError | None:
    """Why /dev/net/tun does not open here, None when it does (`tcptest doctor`)."""
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return exc
    return None


@contextmanager
def bare_tun_device() -> Iterator[str]:
    """tun0 with no address, offloads or capture, while the block runs: what
    `tcptest doctor` tries qdiscs on. Yields the device's name."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH22x", DEVICE_NAME.encode(), _IFF_TUN | _IFF_NO_PI))
        yield DEVICE_NAME
    finally:
        os.close(fd)


def _open_tun_device() -> int:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SetupError("no TUN support: /dev/net/tun does not exist (modprobe tun)") from None
    except OSError as exc:
        raise SetupError(f"cannot open /dev/net/tun: {exc.strerror}") from None
    try:
        request = struct.pack("16sH22x", DEVICE_NAME.encode(), _IFF_TUN | _IFF_NO_PI | _IFF_VNET_HDR)
        fcntl.ioctl(fd, _TUNSETIFF, request)
        fcntl.ioctl(fd, _TUNSETOFFLOAD, _TUN_F_CSUM | _TUN_F_TSO4 | _TUN_F_TSO6 | _TUN_F_TSO_ECN)
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.EBUSY:
            raise SetupError(f"{DEVICE_NAME} already exists in this network namespace") from None
        raise SetupError(f"cannot create {DEVICE_NAME}: {exc.strerror}") from None
    return fd


def _open_capture_socket() -> socket.socket:
    """An AF_PACKET socket on tun0 for outgoing frames with kernel timestamps.

    Created with protocol 0 (receives nothing), filtered, then bound: no frame
    can slip in before the filter is in place."""
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    try:
        program = (ctypes.c_uint8 * (8 * len(_OUTGOING_ONLY)))()
        for index, instruction in enumerate(_OUTGOING_ONLY):
            struct.pack_into("=HBBI", program, 8 * index, *instruction)
        fprog = struct.pack("@HP", len(_OUTGOING_ONLY), ctypes.addressof(program))
        capture.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
        capture.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS_NEW, 1)
        capture.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
        capture.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _CAPTURE_BUFFER_BYTES)
        capture.bind((DEVICE_NAME, _ETH_P_ALL))
        capture.setblocking(False)
    except OSError as exc:
        capture.close()
        raise SetupError(f"cannot capture packets on {DEVICE_NAME}: {exc.strerror}") from None
    return capture


def _configure(config: TunConfig, index: int) -> None:
    """MTU, address, link up, route: the packetdrill layout.

    IPv6 link-local autoconfiguration is switched off on tun0: the script's
    peer has no use for it, and it would put DAD and router solicitations
    among the captured frames. The local IPv6 address is added without
    duplicate address detection (IFA_F_NODAD): otherwise it stays tentative
    for a moment after the link comes up, and a bind() or connect() then
    fails or picks another source address."""
    ipv6 = config.family == socket.AF_INET6
    _set_ipv6_device_sysctl("addr_gen_mode", "1", required=ipv6)
    network = config.remote_network
    with Rtnetlink() as rtnl:
        if config.mtu is not None:
            _netlink(f"set the MTU to {config.mtu}", rtnl.set_link, index, mtu=config.mtu)
        _netlink(f"add address {config.local_ip}/{config.prefix_len}", rtnl.add_address, index,
                 config.local_ip, config.prefix_len, _IFA_F_NODAD if ipv6 else 0)
        _netlink("bring it up", rtnl.set_link, index, up=True)
        _netlink(f"route {network} via {config.gateway_ip}", rtnl.add_route,
                 str(network.network_address), network.prefixlen, config.gateway_ip, index)
        if ipv6:
            _wait_until_local(rtnl, config.local_ip)


def _wait_until_local(rtnl: Rtnetlink, address: str) -> None:
    """Even without DAD, an IPv6 address takes effect only once the kernel's
    address-configuration work has run (on a workqueue shared by every
    namespace, behind the RTNL lock) and installed its local route. Until
    then input routing does not see the address as ours and drops what is
    sent to it (Ip6InAddrErrors): an injected SYN-ACK vanished while the
    kernel's SYN had already left. So wait for a route lookup to say local."""
    deadline = time.monotonic() + _ADDRESS_READY_SECS
    while True:
        try:
            if rtnl.route_type(address) == RTN_LOCAL:
                return
        except RtnetlinkError:
            pass
        if time.monotonic() > deadline:
            raise SetupError(f"{address} on {DEVICE_NAME} is not a local address after "
                             f"{_ADDRESS_READY_SECS:.0f} s: the kernel's address configuration is stuck")
        time.sleep(0.0005)


def _netlink(description: str, request: Callable[..., object], *args: object, **kwargs: object) -> None:
    try:
        request(*args, **kwargs)
    except RtnetlinkError as exc:
        raise SetupError(f"cannot {description} on {DEVICE_NAME}: {exc.strerror}") from None


def _set_ipv6_device_sysctl(name: str, value: str, *, required: bool) -> None:
    try:
        Path(f"/proc/sys/net/ipv6/conf/{DEVICE_NAME}/{name}").write_text(value)
    except FileNotFoundError:
        if required:
            raise SetupError("IPv6 is disabled on this host (no /proc/sys/net/ipv6)") from None


def _vnet_header(packet: bytes, gso_size: int) -> bytes:
    """The virtio-net header asking the kernel to treat `packet` as a TSO
    super-segment of `gso_size` segments, or the plain header when it is not a
    TCP packet with more payload than that."""
    if packet[0] >> 4 == 4:
        ip_header_len, protocol, gso_type = (packet[0] & 0x0F) * 4, packet[9], _VNET_GSO_TCPV4
    else:
        ip_header_len, protocol, gso_type = 40, packet[6], _VNET_GSO_TCPV6
    if protocol != socket.IPPROTO_TCP:
        return _PLAIN_VNET_HEADER
    headers_len = ip_header_len + (packet[ip_header_len + 12] >> 4) * 4
    if len(packet) - headers_len <= gso_size:
        return _PLAIN_VNET_HEADER
    if packet[ip_header_len + 13] & _TCP_FLAG_CWR:
        gso_type |= _VNET_GSO_ECN
    # hdr_len is what tun copies into the skb's linear part (up to a page); the
    # rest goes to page fragments. That shapes the skb's truesize and so the
    # receive window the kernel advertises: the whole length reproduces the
    # windows the kernel's selftests expect (tcp_ooo_rcv_mss, tcp_rcv_big_endseq),
    # the headers' length alone does not.
    return _VNET_HEADER.pack(
        _VNET_F_NEEDS_CSUM, gso_type, len(packet), gso_size, ip_header_len, _TCP_CHECKSUM_OFFSET
    )
