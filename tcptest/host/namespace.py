"""Network namespaces: the private network every script run gets.

A run calls `enter_new_network_namespace()` in a freshly forked, single-threaded
child (see `isolation.run_isolated`). The namespace is anonymous: it is not
mounted under /var/run/netns, so the kernel frees it as soon as the last process
in it is gone, whichever way the run ends.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from pathlib import Path

from ..errors import SetupError
from .rtnl import Rtnetlink

CLONE_NEWNET = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)
"""The C library, for the system calls Python 3.11 has no wrapper for."""
_created_namespace_id: int | None = None
_CHILD_EHASH_SYSCTL = "/proc/sys/net/ipv4/tcp_child_ehash_entries"
# Plenty for a run's sockets (a SYN flood's request sockets included), few
# enough that walking them all costs nothing.
OWN_SOCKET_TABLE_BUCKETS = 1024

_UNSHARE_FAILURES = {
    errno.EPERM: "creating a network namespace needs root (CAP_SYS_ADMIN); run tcptest as root",
    errno.EINVAL: "this kernel has no network namespaces (CONFIG_NET_NS is off)",
    errno.ENOSPC: "too many network namespaces (see the sysctl user.max_net_namespaces)",
    errno.EUSERS: "too many network namespaces (see the sysctl user.max_net_namespaces)",
}


def enter_new_network_namespace() -> None:
    """Move the calling thread into a new, empty network namespace and bring its
    loopback device up.

    unshare(2) moves only the calling thread, so call this in a single-threaded
    process (the forked child of `run_isolated`): threads started afterwards
    inherit the new namespace, threads that already exist would not.
    """
    _unshare_network()
    if _ask_for_own_socket_table():
        _unshare_network()  # the namespace the run uses; the one before it goes
    global _created_namespace_id
    _created_namespace_id = network_namespace_id()
    with Rtnetlink() as rtnl:
        rtnl.set_link(socket.if_nametoindex("lo"), up=True)


def _unshare_network() -> None:
    if libc.unshare(CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        reason = _UNSHARE_FAILURES.get(code, os.strerror(code))
        raise SetupError(f"cannot create a network namespace: {reason}")


def _ask_for_own_socket_table() -> bool:
    """Have the next namespace made from this one get a TCP socket table
    (ehash) of its own, of OWN_SOCKET_TABLE_BUCKETS; whether it will.

    By default every namespace shares the host's table, sized for the host's
    memory (262144 buckets here), and a sock_diag dump, which a `%{ }%` block
    reads, walks all of it: about 1 ms here, up to 5 ms on a busy CI machine,
    enough to make the segment injected after a block at time 0 late
    (rst/closed-port.pkt).
    With a table of its own the dump takes 0.02 ms. The sysctl
    (tcp_child_ehash_entries, Linux 6.1 on) is read from the namespace that
    creates the new one, so it is set in a first namespace of the run's own,
    never in the host's. A kernel without it shares the host's table."""
    try:
        Path(_CHILD_EHASH_SYSCTL).write_text(str(OWN_SOCKET_TABLE_BUCKETS))
    except OSError:
        return False
    return True


def network_namespace_id() -> int:
    """The inode number naming the calling thread's network namespace: equal
    numbers, same namespace."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def in_own_network_namespace() -> bool:
    """Whether the calling thread is in a namespace that
    `enter_new_network_namespace` created in this process. Code that creates
    devices or sends packets refuses to run anywhere else: the host's network
    is never touched."""
    return _created_namespace_id is not None and network_namespace_id() == _created_namespace_id


def ipv6_loopback_error() -> OSError | None:
    """Why a TCP socket cannot bind to ::1 in this namespace, None when it can
    (`tcptest doctor`: IPv6 runs need IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        return exc
    return None
