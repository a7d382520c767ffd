"""The symbols a script may name in a system call: pure data and lookup.

Values are Linux's, for x86_64 and arm64 (the two agree everywhere except a
few `O_*` flags, chosen by `os.uname().machine`). Errno values come from the
stdlib `errno` module, which is Linux's own table on both architectures.

Two names depend on the run rather than on the kernel: `CMSG_LEVEL_IP` and
`CMSG_TYPE_RECVERR` name the IPv4 or IPv6 error-queue control message,
whichever the socket under test's family produces (`lookup` takes the
`--ip_version` for them).
"""

from __future__ import annotations

import enum

import errno as _errno
import os

_ARM64 = os.uname().machine in ("aarch64", "arm64")  # not platform.machine(): importing platform takes 1.9 ms

ADDRESS_FAMILIES = {
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
    "AF_NETLINK": 16, "AF_PACKET": 17,
    "PF_UNSPEC": 0, "PF_UNIX": 1, "PF_LOCAL": 1, "PF_INET": 2, "PF_INET6": 10,
    "PF_NETLINK": 16, "PF_PACKET": 17,
}

SOCKET_TYPES = {
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_RDM": 4,
    "SOCK_SEQPACKET": 5, "SOCK_PACKET": 10,
    "SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000,
}

PROTOCOLS = {
    "IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17,
    "IPPROTO_IPV6": 41, "IPPROTO_GRE": 47, "IPPROTO_ICMPV6": 58,
    "IPPROTO_SCTP": 132, "IPPROTO_UDPLITE": 136, "IPPROTO_RAW": 255,
    "IPPROTO_MPTCP": 262,
}

SOCKET_LEVELS = {
    "SOL_IP": 0, "SOL_SOCKET": 1, "SOL_TCP": 6, "SOL_UDP": 17, "SOL_IPV6": 41,
    "SOL_ICMPV6": 58, "SOL_RAW": 255, "SOL_PACKET": 263,
}

# asm-generic/socket.h (x86_64 and arm64 both use it); 64-bit, so the
# plain SO_TIMESTAMP* names keep their old values.
SOCKET_OPTIONS = {
    "SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4,
    "SO_DONTROUTE": 5, "SO_BROADCAST": 6, "SO_SNDBUF": 7, "SO_RCVBUF": 8,
    "SO_KEEPALIVE": 9, "SO_OOBINLINE": 10, "SO_NO_CHECK": 11,
    "SO_PRIORITY": 12, "SO_LINGER": 13, "SO_BSDCOMPAT": 14, "SO_REUSEPORT": 15,
    "SO_PASSCRED": 16, "SO_PEERCRED": 17, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19,
    "SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21, "SO_BINDTODEVICE": 25,
    "SO_ATTACH_FILTER": 26, "SO_DETACH_FILTER": 27, "SO_PEERNAME": 28,
    "SO_TIMESTAMP": 29, "SO_ACCEPTCONN": 30, "SO_PEERSEC": 31,
    "SO_SNDBUFFORCE": 32, "SO_RCVBUFFORCE": 33, "SO_PASSSEC": 34,
    "SO_TIMESTAMPNS": 35, "SO_MARK": 36, "SO_TIMESTAMPING": 37,
    "SO_PROTOCOL": 38, "SO_DOMAIN": 39, "SO_RXQ_OVFL": 40,
    "SO_WIFI_STATUS": 41, "SO_PEEK_OFF": 42, "SO_NOFCS": 43,
    "SO_LOCK_FILTER": 44, "SO_SELECT_ERR_QUEUE": 45, "SO_BUSY_POLL": 46,
    "SO_MAX_PACING_RATE": 47, "SO_BPF_EXTENSIONS": 48, "SO_INCOMING_CPU": 49,
    "SO_ATTACH_BPF": 50, "SO_ATTACH_REUSEPORT_CBPF": 51,
    "SO_ATTACH_REUSEPORT_EBPF": 52, "SO_CNX_ADVICE": 53,
    "SCM_TIMESTAMPING_OPT_STATS": 54, "SO_MEMINFO": 55,
    "SO_INCOMING_NAPI_ID": 56, "SO_COOKIE": 57, "SCM_TIMESTAMPING_PKTINFO": 58,
    "SO_PEERGROUPS": 59, "SO_ZEROCOPY": 60, "SO_TXTIME": 61,
    "SO_BINDTOIFINDEX": 62, "SO_TIMESTAMP_NEW": 63, "SO_TIMESTAMPNS_NEW": 64,
    "SO_TIMESTAMPING_NEW": 65, "SO_RCVTIMEO_NEW": 66, "SO_SNDTIMEO_NEW": 67,
    "SO_DETACH_REUSEPORT_BPF": 68, "SO_PREFER_BUSY_POLL": 69,
    "SO_BUSY_POLL_BUDGET": 70, "SO_NETNS_COOKIE": 71, "SO_BUF_LOCK": 72,
    "SO_RESERVE_MEM": 73, "SO_TXREHASH": 74, "SO_RCVMARK": 75,
    "SO_PASSPIDFD": 76, "SO_PEERPIDFD": 77, "SCM_TS_OPT_ID": 81,
    "SO_RCVPRIORITY": 82,
    "SCM_RIGHTS": 1, "SCM_CREDENTIALS": 2, "SCM_TIMESTAMP": 29,
    "SCM_TIMESTAMPNS": 35, "SCM_TIMESTAMPING": 37, "SCM_WIFI_STATUS": 41,
    "SCM_TXTIME": 61,
}

# linux/errqueue.h and linux/net_tstamp.h
ERROR_QUEUE = {
    "SO_EE_ORIGIN_NONE": 0, "SO_EE_ORIGIN_LOCAL": 1, "SO_EE_ORIGIN_ICMP": 2,
    "SO_EE_ORIGIN_ICMP6": 3, "SO_EE_ORIGIN_TXSTATUS": 4,
    "SO_EE_ORIGIN_TIMESTAMPING": 4, "SO_EE_ORIGIN_ZEROCOPY": 5,
    "SO_EE_ORIGIN_TXTIME": 6,
    "SO_EE_CODE_ZEROCOPY_COPIED": 1,
    "SO_EE_CODE_TXTIME_INVALID_PARAM": 1, "SO_EE_CODE_TXTIME_MISSED": 2,
    "SCM_TSTAMP_SND": 0, "SCM_TSTAMP_SCHED": 1, "SCM_TSTAMP_ACK": 2,
    "SCM_TSTAMP_COMPLETION": 3,
    "SOF_TIMESTAMPING_TX_HARDWARE": 1 << 0,
    "SOF_TIMESTAMPING_TX_SOFTWARE": 1 << 1,
    "SOF_TIMESTAMPING_RX_HARDWARE": 1 << 2,
    "SOF_TIMESTAMPING_RX_SOFTWARE": 1 << 3,
    "SOF_TIMESTAMPING_SOFTWARE": 1 << 4,
    "SOF_TIMESTAMPING_SYS_HARDWARE": 1 << 5,
    "SOF_TIMESTAMPING_RAW_HARDWARE": 1 << 6,
    "SOF_TIMESTAMPING_OPT_ID": 1 << 7,
    "SOF_TIMESTAMPING_TX_SCHED": 1 << 8,
    "SOF_TIMESTAMPING_TX_ACK": 1 << 9,
    "SOF_TIMESTAMPING_OPT_CMSG": 1 << 10,
    "SOF_TIMESTAMPING_OPT_TSONLY": 1 << 11,
    "SOF_TIMESTAMPING_OPT_STATS": 1 << 12,
    "SOF_TIMESTAMPING_OPT_PKTINFO": 1 << 13,
    "SOF_TIMESTAMPING_OPT_TX_SWHW": 1 << 14,
    "SOF_TIMESTAMPING_BIND_PHC": 1 << 15,
    "SOF_TIMESTAMPING_OPT_ID_TCP": 1 << 16,
    "SOF_TIMESTAMPING_OPT_RX_FILTER": 1 << 17,
    "SOF_TIMESTAMPING_TX_RECORD_MASK": (1 << 0) | (1 << 1) | (1 << 8) | (1 << 9),
}

# linux/tcp.h
TCP_OPTIONS = {
    "TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4,
    "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8,
    "TCP_DEFER_ACCEPT": 9, "TCP_WINDOW_CLAMP": 10, "TCP_INFO": 11,
    "TCP_QUICKACK": 12, "TCP_CONGESTION": 13, "TCP_MD5SIG": 14,
    "TCP_THIN_LINEAR_TIMEOUTS": 16, "TCP_THIN_DUPACK": 17,
    "TCP_USER_TIMEOUT": 18, "TCP_REPAIR": 19, "TCP_REPAIR_QUEUE": 20,
    "TCP_QUEUE_SEQ": 21, "TCP_REPAIR_OPTIONS": 22, "TCP_FASTOPEN": 23,
    "TCP_TIMESTAMP": 24, "TCP_NOTSENT_LOWAT": 25, "TCP_CC_INFO": 26,
    "TCP_SAVE_SYN": 27, "TCP_SAVED_SYN": 28, "TCP_REPAIR_WINDOW": 29,
    "TCP_FASTOPEN_CONNECT": 30, "TCP_ULP": 31, "TCP_MD5SIG_EXT": 32,
    "TCP_FASTOPEN_KEY": 33, "TCP_FASTOPEN_NO_COOKIE": 34,
    "TCP_ZEROCOPY_RECEIVE": 35, "TCP_INQ": 36, "TCP_CM_INQ": 36,
    "TCP_TX_DELAY": 37, "TCP_AO_ADD_KEY": 38, "TCP_AO_DEL_KEY": 39,
    "TCP_AO_INFO": 40, "TCP_AO_GET_KEYS": 41, "TCP_AO_REPAIR": 42,
    "TCP_IS_MPTCP": 43, "TCP_RTO_MAX_MS": 44, "TCP_RTO_MIN_US": 45,
    "TCP_DELACK_MAX_US": 46,
    "TCP_MD5SIG_FLAG_PREFIX": 1, "TCP_MD5SIG_FLAG_IFINDEX": 2,
    "TCP_MD5SIG_MAXKEYLEN": 80,
    "TCP_REPAIR_ON": 1, "TCP_REPAIR_OFF": 0, "TCP_REPAIR_OFF_NO_WP": -1,
}

# The TCP_INFO vocabulary that %{ }% blocks use (tcpi_state, tcpi_ca_state,
# tcpi_options); kept here so that every name has one home.
TCP_INFO_CONSTANTS = {
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3,
    "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6,
    "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10,
    "TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12, "TCP_BOUND_INACTIVE": 13,
    "TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2,
    "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4,
    "TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4,
    "TCPI_OPT_ECN": 8, "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32,
    "TCPI_OPT_USEC_TS": 64, "TCPI_OPT_TFO_CHILD": 128,
}

# linux/sock_diag.h: indexes into SO_MEMINFO's array.
SK_MEMINFO = {
    "SK_MEMINFO_RMEM_ALLOC": 0, "SK_MEMINFO_RCVBUF": 1,
    "SK_MEMINFO_WMEM_ALLOC": 2, "SK_MEMINFO_SNDBUF": 3,
    "SK_MEMINFO_FWD_ALLOC": 4, "SK_MEMINFO_WMEM_QUEUED": 5,
    "SK_MEMINFO_OPTMEM": 6, "SK_MEMINFO_BACKLOG": 7, "SK_MEMINFO_DROPS": 8,
}

# linux/in.h
IP_OPTIONS = {
    "IP_TOS": 1, "IP_TTL": 2, "IP_HDRINCL": 3, "IP_OPTIONS": 4,
    "IP_RECVOPTS": 6, "IP_RETOPTS": 7, "IP_PKTINFO": 8, "IP_PKTOPTIONS": 9,
    "IP_MTU_DISCOVER": 10, "IP_RECVERR": 11, "IP_RECVTTL": 12,
    "IP_RECVTOS": 13, "IP_MTU": 14, "IP_FREEBIND": 15, "IP_IPSEC_POLICY": 16,
    "IP_XFRM_POLICY": 17, "IP_PASSSEC": 18, "IP_TRANSPARENT": 19,
    "IP_ORIGDSTADDR": 20, "IP_RECVORIGDSTADDR": 20, "IP_MINTTL": 21,
    "IP_NODEFRAG": 22, "IP_CHECKSUM": 23, "IP_BIND_ADDRESS_NO_PORT": 24,
    "IP_RECVFRAGSIZE": 25, "IP_RECVERR_RFC4884": 26,
    "IP_MULTICAST_IF": 32, "IP_MULTICAST_TTL": 33, "IP_MULTICAST_LOOP": 34,
    "IP_ADD_MEMBERSHIP": 35, "IP_DROP_MEMBERSHIP": 36,
    "IP_LOCAL_PORT_RANGE": 51, "IP_PROTOCOL": 52,
    "IP_PMTUDISC_DONT": 0, "IP_PMTUDISC_WANT": 1, "IP_PMTUDISC_DO": 2,
    "IP_PMTUDISC_PROBE": 3, "IP_PMTUDISC_INTERFACE": 4, "IP_PMTUDISC_OMIT": 5,
}

# linux/in6.h
IPV6_OPTIONS = {
    "IPV6_ADDRFORM": 1, "IPV6_2292PKTINFO": 2, "IPV6_2292HOPOPTS": 3,
    "IPV6_2292DSTOPTS": 4, "IPV6_2292RTHDR": 5, "IPV6_2292PKTOPTIONS": 6,
    "IPV6_CHECKSUM": 7, "IPV6_2292HOPLIMIT": 8, "IPV6_NEXTHOP": 9,
    "IPV6_AUTHHDR": 10, "IPV6_FLOWINFO": 11, "IPV6_UNICAST_HOPS": 16,
    "IPV6_MULTICAST_IF": 17, "IPV6_MULTICAST_HOPS": 18,
    "IPV6_MULTICAST_LOOP": 19, "IPV6_ADD_MEMBERSHIP": 20,
    "IPV6_DROP_MEMBERSHIP": 21, "IPV6_ROUTER_ALERT": 22,
    "IPV6_MTU_DISCOVER": 23, "IPV6_MTU": 24, "IPV6_RECVERR": 25,
    "IPV6_V6ONLY": 26, "IPV6_JOIN_ANYCAST": 27, "IPV6_LEAVE_ANYCAST": 28,
    "IPV6_MULTICAST_ALL": 29, "IPV6_ROUTER_ALERT_ISOLATE": 30,
    "IPV6_RECVERR_RFC4884": 31, "IPV6_FLOWLABEL_MGR": 32,
    "IPV6_FLOWINFO_SEND": 33, "IPV6_IPSEC_POLICY": 34,
    "IPV6_XFRM_POLICY": 35, "IPV6_HDRINCL": 36,
    "IPV6_RECVPKTINFO": 49, "IPV6_PKTINFO": 50, "IPV6_RECVHOPLIMIT": 51,
    "IPV6_HOPLIMIT": 52, "IPV6_RECVHOPOPTS": 53, "IPV6_HOPOPTS": 54,
    "IPV6_RTHDRDSTOPTS": 55, "IPV6_RECVRTHDR": 56, "IPV6_RTHDR": 57,
    "IPV6_RECVDSTOPTS": 58, "IPV6_DSTOPTS": 59, "IPV6_RECVPATHMTU": 60,
    "IPV6_PATHMTU": 61, "IPV6_DONTFRAG": 62, "IPV6_RECVTCLASS": 66,
    "IPV6_TCLASS": 67, "IPV6_AUTOFLOWLABEL": 70, "IPV6_ADDR_PREFERENCES": 72,
    "IPV6_MINHOPCOUNT": 73, "IPV6_ORIGDSTADDR": 74,
    "IPV6_RECVORIGDSTADDR": 74, "IPV6_TRANSPARENT": 75, "IPV6_UNICAST_IF": 76,
    "IPV6_RECVFRAGSIZE": 77, "IPV6_FREEBIND": 78,
    "IPV6_PMTUDISC_DONT": 0, "IPV6_PMTUDISC_WANT": 1, "IPV6_PMTUDISC_DO": 2,
    "IPV6_PMTUDISC_PROBE": 3, "IPV6_PMTUDISC_INTERFACE": 4,
    "IPV6_PMTUDISC_OMIT": 5,
}

MSG_FLAGS = {
    "MSG_OOB": 0x1, "MSG_PEEK": 0x2, "MSG_DONTROUTE": 0x4, "MSG_CTRUNC": 0x8,
    "MSG_PROXY": 0x10, "MSG_TRUNC": 0x20, "MSG_DONTWAIT": 0x40,
    "MSG_EOR": 0x80, "MSG_WAITALL": 0x100, "MSG_FIN": 0x200, "MSG_SYN": 0x400,
    "MSG_CONFIRM": 0x800, "MSG_RST": 0x1000, "MSG_ERRQUEUE": 0x2000,
    "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000, "MSG_WAITFORONE": 0x10000,
    "MSG_BATCH": 0x40000, "MSG_SOCK_DEVMEM": 0x2000000,
    "MSG_ZEROCOPY": 0x4000000, "MSG_FASTOPEN": 0x20000000,
    "MSG_CMSG_CLOEXEC": 0x40000000,
}

# Generic open flags; the four below differ between x86_64 and arm64.
OPEN_FLAGS = {
    "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_ACCMODE": 3,
    "O_CREAT": 0o100, "O_EXCL": 0o200, "O_NOCTTY": 0o400, "O_TRUNC": 0o1000,
    "O_APPEND": 0o2000, "O_NONBLOCK": 0o4000, "O_NDELAY": 0o4000,
    "O_DSYNC": 0o10000, "O_ASYNC": 0o20000, "FASYNC": 0o20000,
    "O_NOATIME": 0o1000000, "O_CLOEXEC": 0o2000000, "O_SYNC": 0o4010000,
    "O_PATH": 0o10000000,
    "O_DIRECT": 0o200000 if _ARM64 else 0o40000,
    "O_DIRECTORY": 0o40000 if _ARM64 else 0o200000,
    "O_NOFOLLOW": 0o100000 if _ARM64 else 0o400000,
    "O_LARGEFILE": 0,  # what glibc's 64-bit ABI passes
}

FCNTL_COMMANDS = {
    "F_DUPFD": 0, "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4,
    "F_GETLK": 5, "F_SETLK": 6, "F_SETLKW": 7, "F_SETOWN": 8, "F_GETOWN": 9,
    "F_SETSIG": 10, "F_GETSIG": 11, "F_SETOWN_EX": 15, "F_GETOWN_EX": 16,
    "F_SETLEASE": 1024, "F_GETLEASE": 1025, "F_NOTIFY": 1026,
    "F_DUPFD_CLOEXEC": 1030, "F_SETPIPE_SZ": 1031, "F_GETPIPE_SZ": 1032,
    "FD_CLOEXEC": 1,
}

SHUTDOWN_HOW = {"SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2}

# asm-generic/ioctls.h and linux/sockios.h (both architectures use these).
IOCTL_REQUESTS = {
    "FIONREAD": 0x541B, "SIOCINQ": 0x541B, "TIOCOUTQ": 0x5411,
    "SIOCOUTQ": 0x5411, "FIONBIO": 0x5421, "FIOASYNC": 0x5452,
    "SIOCATMARK": 0x8905, "SIOCGSTAMP": 0x8906, "SIOCGSTAMPNS": 0x8907,
    "SIOCOUTQNSD": 0x894B,
}

POLL_EVENTS = {
    "POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8,
    "POLLHUP": 0x10, "POLLNVAL": 0x20, "POLLRDNORM": 0x40, "POLLRDBAND": 0x80,
    "POLLWRNORM": 0x100, "POLLWRBAND": 0x200, "POLLMSG": 0x400,
    "POLLREMOVE": 0x1000, "POLLRDHUP": 0x2000,
}

EPOLL = {
    "EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8,
    "EPOLLHUP": 0x10, "EPOLLNVAL": 0x20, "EPOLLRDNORM": 0x40,
    "EPOLLRDBAND": 0x80, "EPOLLWRNORM": 0x100, "EPOLLWRBAND": 0x200,
    "EPOLLMSG": 0x400, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28,
    "EPOLLWAKEUP": 1 << 29, "EPOLLONESHOT": 1 << 30, "EPOLLET": 1 << 31,
    "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3,
    "EPOLL_CLOEXEC": 0o2000000,
}

SPLICE_FLAGS = {
    "SPLICE_F_MOVE": 1, "SPLICE_F_NONBLOCK": 2, "SPLICE_F_MORE": 4,
    "SPLICE_F_GIFT": 8,
}

# Linux capabilities (linux/capability.h) and libcap's names for the sets and
# for set/clear, for cap_set().
CAPABILITIES = {f"CAP_{name}": number for number, name in enumerate((
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"))}
CAPABILITY_SETS = {"CAP_EFFECTIVE": 0, "CAP_PERMITTED": 1, "CAP_INHERITABLE": 2}
CAPABILITY_FLAG_VALUES = {"CAP_CLEAR": 0, "CAP_SET": 1}

ERRNO = {name: getattr(_errno, name) for name in dir(_errno) if name.startswith("E")}

POINTERS = {"NULL": 0}

_TABLES = (
    ADDRESS_FAMILIES, SOCKET_TYPES, PROTOCOLS, SOCKET_LEVELS, SOCKET_OPTIONS,
    ERROR_QUEUE, TCP_OPTIONS, TCP_INFO_CONSTANTS, SK_MEMINFO, IP_OPTIONS,
    IPV6_OPTIONS, MSG_FLAGS, OPEN_FLAGS, FCNTL_COMMANDS, SHUTDOWN_HOW,
    IOCTL_REQUESTS, POLL_EVENTS, EPOLL, SPLICE_FLAGS, CAPABILITIES, CAPABILITY_SETS,
    CAPABILITY_FLAG_VALUES, ERRNO, POINTERS,
)

SYMBOLS: dict[str, int] = {}
for _table in _TABLES:
    for _name, _value in _table.items():
        if SYMBOLS.setdefault(_name, _value) != _value:
            raise AssertionError(f"symbol {_name} defined twice with different values")

# Names whose value follows the address family of the run.
_PER_FAMILY = {
    "CMSG_LEVEL_IP": (SOCKET_LEVELS["SOL_IP"], SOCKET_LEVELS["SOL_IPV6"]),
    "CMSG_TYPE_RECVERR": (IP_OPTIONS["IP_RECVERR"], IPV6_OPTIONS["IPV6_RECVERR"]),
}


def is_ipv6_socket(ip_version: str) -> bool:
    """Whether `...` sockets of this run are AF_INET6 (ipv6 and
    ipv4-mapped-ipv6 both are)."""
    return ip_version != "ipv4"


def lookup(name: str, ip_version: str = "ipv4") -> int | None:
    """The value of `name`, or None when no such symbol exists."""
    per_family = _PER_FAMILY.get(name)
    if per_family is not None:
        return per_family[1] if is_ipv6_socket(ip_version) else per_family[0]
    return SYMBOLS.get(name)


def is_known(name: str) -> bool:
    return name in SYMBOLS or name in _PER_FAMILY


def errno_name(value: int) -> str:
    """`11` -> `EAGAIN` (the first name Python knows for it)."""
    return _errno.errorcode.get(value, str(value))


def flag_names(value: int, table: dict[str, int]) -> str:
    """`POLLIN|POLLOUT` for 5 with POLL_EVENTS: the set bits by name in
    ascending bit order, unnamed bits in hex, `0` for none."""
    names = []
    rest = value
    for bit in range(64):
        mask = 1 << bit
        if not value & mask:
            continue
        name = next((n for n, v in table.items() if v == mask), None)
        if name is not None:
            names.append(name)
            rest &= ~mask
    if rest:
        names.append(hex(rest))
    return "|".join(names) if names else "0"


EPOLL_EVENT_BITS = {k: v for k, v in EPOLL.items() if not k.startswith("EPOLL_")}


class _NamedInt(enum.IntEnum):
    """An int that prints as its constant's name, so that
    `assert conn_state == TCP_TIME_WAIT, conn_state` fails with
    `AssertionError: TCP_CLOSE` rather than `7`; it still compares, hashes
    and computes as the plain number old scripts expect."""

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return self.name if not spec else format(int(self), spec)


def _constants(prefix: str, but_not: str = "") -> dict[str, int]:
    return {name: value for name, value in TCP_INFO_CONSTANTS.items()
            if name.startswith(prefix) and not (but_not and name.startswith(but_not))}


# The kernel's TCP states (include/net/tcp_states.h) and congestion-avoidance
# states (include/uapi/linux/tcp.h), as named ints: `%{ }%` blocks and the
# socket diagnostics (host/diag.py) hand them out.
TcpState = _NamedInt("TcpState", names=_constants("TCP_", but_not="TCP_CA_"), module=__name__)
CaState = _NamedInt("CaState", names=_constants("TCP_CA_"), module=__name__)

TCP_STATES: dict[str, TcpState] = dict(TcpState.__members__)
