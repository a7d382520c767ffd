"""TCP_INFO and SO_MEMINFO of a live socket, decoded into plain dicts.

The layout is the kernel's `struct tcp_info` from include/uapi/linux/tcp.h as
of Linux 6.18 (280 bytes, ending with the AccECN counters). Older kernels
return a shorter struct: only the fields that fit in what the kernel
returned are reported, as packetdrill does, so `%{ }%` code that names a
newer field fails with a NameError instead of reading a zero.
"""

from __future__ import annotations

import ctypes
import os
import struct

from .. import symbols

SOL_TCP = symbols.SOCKET_LEVELS["SOL_TCP"]
SOL_SOCKET = symbols.SOCKET_LEVELS["SOL_SOCKET"]
TCP_INFO = symbols.TCP_OPTIONS["TCP_INFO"]
SO_MEMINFO = symbols.SOCKET_OPTIONS["SO_MEMINFO"]

# (name, struct format) in declaration order; "B" bytes holding bit-fields
# are split below. Natural alignment is spelled out by the `struct` module's
# native mode ("@"), which lays fields out as the C compiler does.
_LAYOUT: tuple[tuple[str, str], ...] = (
    ("tcpi_state", "B"), ("tcpi_ca_state", "B"), ("tcpi_retransmits", "B"),
    ("tcpi_probes", "B"), ("tcpi_backoff", "B"), ("tcpi_options", "B"),
    ("_wscales", "B"), ("_rate_flags", "B"),
    ("tcpi_rto", "I"), ("tcpi_ato", "I"), ("tcpi_snd_mss", "I"), ("tcpi_rcv_mss", "I"),
    ("tcpi_unacked", "I"), ("tcpi_sacked", "I"), ("tcpi_lost", "I"),
    ("tcpi_retrans", "I"), ("tcpi_fackets", "I"),
    ("tcpi_last_data_sent", "I"), ("tcpi_last_ack_sent", "I"),
    ("tcpi_last_data_recv", "I"), ("tcpi_last_ack_recv", "I"),
    ("tcpi_pmtu", "I"), ("tcpi_rcv_ssthresh", "I"), ("tcpi_rtt", "I"),
    ("tcpi_rttvar", "I"), ("tcpi_snd_ssthresh", "I"), ("tcpi_snd_cwnd", "I"),
    ("tcpi_advmss", "I"), ("tcpi_reordering", "I"),
    ("tcpi_rcv_rtt", "I"), ("tcpi_rcv_space", "I"),
    ("tcpi_total_retrans", "I"),
    ("tcpi_pacing_rate", "Q"), ("tcpi_max_pacing_rate", "Q"),
    ("tcpi_bytes_acked", "Q"), ("tcpi_bytes_received", "Q"),
    ("tcpi_segs_out", "I"), ("tcpi_segs_in", "I"),
    ("tcpi_notsent_bytes", "I"), ("tcpi_min_rtt", "I"),
    ("tcpi_data_segs_in", "I"), ("tcpi_data_segs_out", "I"),
    ("tcpi_delivery_rate", "Q"),
    ("tcpi_busy_time", "Q"), ("tcpi_rwnd_limited", "Q"), ("tcpi_sndbuf_limited", "Q"),
    ("tcpi_delivered", "I"), ("tcpi_delivered_ce", "I"),
    ("tcpi_bytes_sent", "Q"), ("tcpi_bytes_retrans", "Q"),
    ("tcpi_dsack_dups", "I"), ("tcpi_reord_seen", "I"),
    ("tcpi_rcv_ooopack", "I"),
    ("tcpi_snd_wnd", "I"), ("tcpi_rcv_wnd", "I"),
    ("tcpi_rehash", "I"),
    ("tcpi_total_rto", "H"), ("tcpi_total_rto_recoveries", "H"),
    ("tcpi_total_rto_time", "I"),
    ("tcpi_received_ce", "I"),
    ("tcpi_delivered_e1_bytes", "I"), ("tcpi_delivered_e0_bytes", "I"),
    ("tcpi_delivered_ce_bytes", "I"),
    ("tcpi_received_e1_bytes", "I"), ("tcpi_received_e0_bytes", "I"),
    ("tcpi_received_ce_bytes", "I"),
    ("tcpi_accecn_fail_mode", "H"), ("tcpi_accecn_opt_seen", "H"),
)


def _offsets() -> tuple[tuple[str, str, int], ...]:
    out = []
    fmt = "@"
    for name, code in _LAYOUT:
        offset = struct.calcsize(fmt + "0" + code)  # aligned start of this field
        out.append((name, code, offset))
        fmt += code
    return tuple(out)


FIELDS = _offsets()
TCP_INFO_SIZE = struct.calcsize("@" + "".join(code for _, code in _LAYOUT) + "0Q")


def decode_tcp_info(data: bytes) -> dict[str, int]:
    """Every tcpi_* field that lies wholly inside `data`."""
    info: dict[str, int] = {}
    for name, code, offset in FIELDS:
        size = struct.calcsize(code)
        if offset + size > len(data):
            break
        (value,) = struct.unpack_from("@" + code, data, offset)
        if name == "_wscales":
            info["tcpi_snd_wscale"] = value & 0x0F
            info["tcpi_rcv_wscale"] = value >> 4
        elif name == "_rate_flags":
            info["tcpi_delivery_rate_app_limited"] = value & 0x1
            info["tcpi_fastopen_client_fail"] = (value >> 1) & 0x3
        else:
            info[name] = value
    return info


def decode_meminfo(data: bytes) -> dict[str, int]:
    """SO_MEMINFO's u32 array, keyed by the SK_MEMINFO_* names."""
    count = len(data) // 4
    values = struct.unpack_from(f"@{count}I", data)
    return {name: values[index] for name, index in symbols.SK_MEMINFO.items() if index < count}


_libc = ctypes.CDLL(None, use_errno=True)
_getsockopt = _libc.getsockopt
_getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                        ctypes.POINTER(ctypes.c_uint32)]
_getsockopt.restype = ctypes.c_int


def _read_option(fd: int, level: int, name: int, size: int) -> bytes:
    buf = ctypes.create_string_buffer(size)
    length = ctypes.c_uint32(size)
    if _getsockopt(fd, level, name, ctypes.addressof(buf), ctypes.byref(length)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"getsockopt({fd}, {level}, {name}): {os.strerror(err)}")
    return buf.raw[: length.value]


def read_tcp_info(fd: int) -> dict[str, int]:
    """TCP_INFO of the live socket `fd` (asks for more than we know, so that
    the kernel's own length decides which fields exist)."""
    return decode_tcp_info(_read_option(fd, SOL_TCP, TCP_INFO, TCP_INFO_SIZE + 256))


def read_meminfo(fd: int) -> dict[str, int]:
    return decode_meminfo(_read_option(fd, SOL_SOCKET, SO_MEMINFO, 4 * 32))
