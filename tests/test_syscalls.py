"""System calls on the real kernel. Every test that opens a socket runs in a
forked child inside a network namespace of its own (loopback only), which
disappears with the child."""

from __future__ import annotations

import ctypes
import functools
import os
import select
import socket
import stat
import subprocess
import tempfile
import time
import traceback

import pytest

from tcptest import script as s
from tcptest.errors import RunFailure
from tcptest.host.syscalls import CallEnvironment, SyscallHost
from tcptest.source import Location

CLONE_NEWNET = 0x40000000
E = s.EllipsisExpr()
LOC = Location("t.pkt", 7)


def in_netns(body):
    """Run the test in a forked child that unshares its network namespace
    and brings lo up; the child's traceback becomes the test's failure."""

    @functools.wraps(body)
    def test(*args, **kwargs):
        if os.geteuid() != 0:
            pytest.skip("needs root for a network namespace")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            status = 1
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.unshare(CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
                subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
                body(*args, **kwargs)
                status = 0
            except BaseException:
                os.write(write_end, traceback.format_exc().encode())
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            output = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            pytest.fail(output or f"child exited with status {status}", pytrace=False)

    return test


def expr(value) -> s.Expr:
    """Python shorthand -> expression: int, 'SYMBOL', 'A|B', [..], ..., or a node."""
    if isinstance(value, s.Expr.__args__):
        return value
    if value is ...:
        return E
    if isinstance(value, int):
        return s.Integer(value)
    if isinstance(value, list):
        return s.ListExpr(tuple(expr(v) for v in value))
    if isinstance(value, str) and "|" in value:
        return s.BitOr(tuple(s.Symbol(p) for p in value.split("|")))
    if isinstance(value, str):
        return s.Symbol(value)
    raise TypeError(value)


def struct_(**fields) -> s.Struct:
    return s.Struct(tuple(s.Field(name, expr(value)) for name, value in fields.items()))


def iov(length: int) -> s.Struct:
    return s.Struct((s.Field("", E), s.Field("", s.Integer(length))))


def call(name, *args, result=0, errno=None) -> s.Syscall:
    return s.Syscall(name, tuple(expr(a) for a in args), expr(result), errno)


ENV4 = CallEnvironment("ipv4", "127.0.0.1", "127.0.0.1", 8080, 8080, tolerance_usecs=5_000_000)


def run(host: SyscallHost, c: s.Syscall, blocking: bool = False):
    return host.begin(c, LOC, blocking)


def failure(host: SyscallHost, c: s.Syscall) -> str:
    with pytest.raises(RunFailure) as info:
        run(host, c)
    return str(info.value)


def connected(host: SyscallHost) -> None:
    """Script fds: 3 listener, 4 client (non-blocking after connect), 5 accepted."""
    run(host, call("socket", ..., "SOCK_STREAM", "IPPROTO_TCP", result=3))
    run(host, call("setsockopt", 3, "SOL_SOCKET", "SO_REUSEADDR", [1], 4))
    run(host, call("bind", 3, ..., ...))
    run(host, call("listen", 3, 1))
    run(host, call("socket", ..., "SOCK_STREAM", "IPPROTO_TCP", result=4))
    run(host, call("connect", 4, ..., ...))
    run(host, call("accept", 3, ..., ..., result=5))
    run(host, call("fcntl", 4, "F_SETFL", "O_RDWR|O_NONBLOCK"))


def wait_for_error_queue(live_fd: int) -> None:
    poller = select.poll()
    poller.register(live_fd, 0)
    assert poller.poll(5000), "no error-queue message arrived"


# ------------------------------------------------------- no kernel needed

def test_unknown_symbol_and_unknown_call():
    host = SyscallHost(ENV4)
    assert failure(host, call("socket", ..., "SOCK_STREEM", "IPPROTO_TCP", result=3)) == \
        "t.pkt:7: unknown symbol: 'SOCK_STREEM'"
    assert failure(host, call("frobnicate", 3)) == "t.pkt:7: Unknown system call: 'frobnicate'"
    assert host.live_fds() == []


def test_wrong_argument_count():
    assert failure(SyscallHost(ENV4), call("listen", 3)) == \
        "t.pkt:7: runtime error in listen call: expected 2 arguments but got 1"


# ------------------------------------------------------------ real kernel

@in_netns
def test_fds_are_names_for_live_fds():
    spacers = [os.open("/dev/null", os.O_RDONLY) for _ in range(5)]  # live numbers move
    host = SyscallHost(ENV4)
    connected(host)
    fds = host.script_fds()
    assert sorted(fds) == [3, 4, 5]
    assert all(stat.S_ISSOCK(os.fstat(live).st_mode) for live in fds.values())
    assert fds != {3: 3, 4: 4, 5: 5}
    assert host.socket_under_test == fds[5]
    run(host, call("write", 4, ..., 1000, result=1000))
    run(host, call("read", 5, ..., 2000, result=1000))
    run(host, call("close", 5))
    with pytest.raises(OSError):
        os.fstat(fds[5])
    assert 5 not in host.script_fds()
    # A name the script closed is EBADF, never someone else's fd.
    run(host, call("close", 5, result=-1, errno="EBADF"))
    host.close_all()
    assert host.live_fds() == []
    for live in fds.values():
        with pytest.raises(OSError):
            os.fstat(live)
    for spacer in spacers:
        os.fstat(spacer)
        os.close(spacer)


@in_netns
def test_result_and_errno_mismatch_messages():
    host = SyscallHost(ENV4)
    connected(host)
    assert failure(host, call("read", 4, ..., 1000, result=5)) == (
        "t.pkt:7: runtime error in read call: Expected result 5 but got -1 "
        "with errno 11 (Resource temporarily unavailable)")
    assert failure(host, call("read", 4, ..., 1000, result=-1, errno="ECONNRESET")) == (
        "t.pkt:7: runtime error in read call: Expected errno ECONNRESET (104) but got "
        "EAGAIN (11): Resource temporarily unavailable")
    run(host, call("read", 4, ..., 1000, result=-1, errno="EAGAIN"))
    assert failure(host, call("write", 4, ..., 10, result=11)) == \
        "t.pkt:7: runtime error in write call: Expected result 11 but got 10"
    assert failure(host, call("socket", "AF_INET", 999, 0, result=6)) == (
        "t.pkt:7: runtime error in socket call: Expected non-negative result but got -1 "
        "with errno 22 (Invalid argument)")
    assert "Expected errno EAGAIN (11) but the call succeeded" in \
        failure(host, call("write", 4, ..., 10, result=10, errno="EAGAIN"))
    run(host, call("write", 4, "NULL", 1000, result=-1, errno="EFAULT"))
    run(host, call("send", 4, "NULL", 1000, 0, result=-1, errno="EFAULT"))
    host.close_all()


@in_netns
def test_fd_result_of_a_failed_check_is_closed_at_the_end():
    host = SyscallHost(ENV4)
    assert "Expected result -1 but got" in \
        failure(host, call("socket", ..., "SOCK_STREAM", "IPPROTO_TCP", result=-1))
    (stray,) = host.live_fds()
    host.close_all()
    with pytest.raises(OSError):
        os.fstat(stray)


@in_netns
def test_blocking_accept_sleeps_then_returns():
    host = SyscallHost(ENV4)
    run(host, call("socket", ..., "SOCK_STREAM", "IPPROTO_TCP", result=3))
    run(host, call("bind", 3, ..., ...))
    run(host, call("listen", 3, 1))
    pending = run(host, call("accept", 3, ..., ..., result=4), blocking=True)
    assert not pending.done and host.in_flight is pending
    assert "still in progress" in failure_blocking(host, call("read", 3, ..., 10, result=0))
    with pytest.raises(RunFailure, match="did not return"):
        host.finish(pending, 0.05)
    run(host, call("socket", ..., "SOCK_STREAM", "IPPROTO_TCP", result=5))
    connect_started = time.time()
    run(host, call("connect", 5, ..., ...))
    returned = host.finish(pending, 5.0)
    assert returned >= connect_started and pending.returned_at == returned
    assert host.in_flight is None and 4 in host.script_fds()
    assert host.socket_under_test == host.script_fds()[4]
    host.close_all()


def failure_blocking(host: SyscallHost, c: s.Syscall) -> str:
    with pytest.raises(RunFailure) as info:
        host.begin(c, LOC, True)
    return str(info.value)


@in_netns
def test_blocking_read_is_checked_on_finish():
    host = SyscallHost(ENV4)
    connected(host)
    pending = run(host, call("read", 5, ..., 1000, result=20), blocking=True)
    assert not pending.done
    run(host, call("write", 4, ..., 10, result=10))
    with pytest.raises(RunFailure, match="Expected result 20 but got 10"):
        host.finish(pending, 5.0)
    host.close_all()


@in_netns
def test_close_all_wakes_a_call_still_in_flight():
    host = SyscallHost(ENV4)
    connected(host)
    pending = run(host, call("read", 5, ..., 1000, result=1), blocking=True)
    host.close_all()
    assert pending.done and host.live_fds() == []


@in_netns
def test_a_call_that_returns_at_once_is_done_when_begin_returns():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("write", 4, ..., 10, result=10))
    pending = run(host, call("read", 5, ..., 1000, result=10), blocking=True)
    assert pending.done
    assert host.finish(pending, None) == pending.returned_at
    host.close_all()


@in_netns
def test_getsockopt_compares_value_and_length():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("getsockopt", 4, "SOL_SOCKET", "SO_ERROR", [0], [4]))
    message = failure(host, call("getsockopt", 4, "SOL_SOCKET", "SO_TYPE", [2], [4]))
    assert message == ("t.pkt:7: runtime error in getsockopt call: "
                       "Bad getsockopt optval: expected: 2 actual: 1")
    assert failure(host, call("getsockopt", 4, "SOL_SOCKET", "SO_TYPE", [1], [8])).endswith(
        "Bad getsockopt optlen: expected: 8 actual: 4")
    run(host, call("setsockopt", 4, "SOL_SOCKET", "SO_LINGER",
                   struct_(l_onoff=1, l_linger=7), 8))
    run(host, call("getsockopt", 4, "SOL_SOCKET", "SO_LINGER", struct_(onoff=1, linger=7), [8]))
    assert failure(host, call("getsockopt", 4, "SOL_SOCKET", "SO_LINGER",
                              struct_(onoff=1, linger=0), [8])).endswith(
        "Bad getsockopt l_linger: expected: 0 actual: 7")
    run(host, call("setsockopt", 4, "SOL_TCP", "TCP_CONGESTION", s.String("reno"), 4))
    run(host, call("getsockopt", 4, "SOL_TCP", "TCP_CONGESTION", s.String("reno"), [16]))
    assert "expected: 'bbr' actual: 'reno'" in failure(
        host, call("getsockopt", 4, "SOL_TCP", "TCP_CONGESTION", s.String("bbr"), [16]))
    # An int option written with length 1, as scripts do for IP_TOS.
    run(host, call("setsockopt", 4, "SOL_IP", "IP_TOS", [4], 1))
    run(host, call("getsockopt", 4, "SOL_IP", "IP_TOS", [4], [4]))
    run(host, call("setsockopt", 4, "SOL_TCP", "TCP_FASTOPEN_KEY", s.String(""), 3,
                   result=-1, errno="EINVAL"))
    host.close_all()


@in_netns
def test_poll_revents_mismatch_message():
    host = SyscallHost(ENV4)
    connected(host)
    pollfd = struct_(fd=4, events="POLLIN|POLLOUT", revents="POLLOUT")
    run(host, call("poll", s.ListExpr((pollfd,)), 1, 0, result=1))
    run(host, call("write", 5, ..., 10, result=10))
    wait = select.poll()
    wait.register(host.script_fds()[4], select.POLLIN)
    assert wait.poll(5000)
    assert failure(host, call("poll", s.ListExpr((pollfd,)), 1, 0, result=1)) == (
        "t.pkt:7: runtime error in poll call: "
        "Expected revents of POLLOUT but got POLLIN|POLLOUT for pollfd 0")
    host.close_all()


@in_netns
def test_fcntl_ioctl_shutdown_and_disconnect():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("fcntl", 5, "F_GETFL", result=s.Integer(2, hex=True)))
    run(host, call("fcntl", 4, "F_GETFL", result=0x802))
    run(host, call("ioctl", 5, "SIOCINQ", [0]))
    run(host, call("write", 4, ..., 1000, result=1000))
    time.sleep(0.01)
    run(host, call("ioctl", 5, "SIOCINQ", [1000]))
    assert failure(host, call("ioctl", 5, "FIONREAD", [1])).endswith(
        "Bad ioctl optval: expected: 1 actual: 1000")
    run(host, call("shutdown", 4, "SHUT_WR"))
    run(host, call("connect", 5, "AF_UNSPEC", ...))
    assert host.socket_under_test == host.script_fds()[5]
    assert host.tcp_info()["tcpi_state"] == 7  # TCP_CLOSE
    host.close_all()


@in_netns
def test_recvmsg_with_tcp_inq_control_message():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("setsockopt", 5, "SOL_TCP", "TCP_INQ", [1], 4))
    run(host, call("write", 4, ..., 1000, result=1000))

    def recvmsg(length, inq, result):
        msghdr = s.Struct((
            s.Field("msg_name", E, E),
            s.Field("msg_iov", s.ListExpr((iov(length),)), s.Integer(1)),
            s.Field("msg_flags", s.Integer(0)),
            s.Field("msg_control", s.ListExpr((struct_(cmsg_level="SOL_TCP",
                                                        cmsg_type="TCP_CM_INQ",
                                                        cmsg_data=inq),))),
        ))
        return call("recvmsg", 5, msghdr, 0, result=result)

    run(host, recvmsg(600, 400, 600))
    assert failure(host, recvmsg(300, 5, 300)).endswith(
        "Bad cmsg_data in cmsg 0: expected: 5 actual: 100")
    run(host, recvmsg(100, 0, 100))
    host.close_all()


@in_netns
def test_sendmsg_and_writev_with_iovecs():
    host = SyscallHost(ENV4)
    connected(host)
    msghdr = s.Struct((
        s.Field("msg_name", E, E),
        s.Field("msg_iov", s.ListExpr((iov(0), iov(40), iov(0), iov(20))), s.Integer(4)),
        s.Field("msg_flags", s.Integer(0)),
    ))
    run(host, call("sendmsg", 4, msghdr, "MSG_MORE", result=60))
    run(host, call("writev", 4, s.ListExpr((iov(5), iov(7))), 2, result=12))
    run(host, call("readv", 5, s.ListExpr((iov(50), iov(50))), 2, result=72))
    host.close_all()


@in_netns
def test_counts_beyond_the_written_list_stay_inside_our_memory():
    host = SyscallHost(ENV4)
    connected(host)
    pollfd = struct_(fd=4, events="POLLOUT", revents="POLLOUT")
    run(host, call("poll", s.ListExpr((pollfd,)), 64, 0, result=1))
    run(host, call("write", 4, ..., 30, result=30))
    run(host, call("readv", 5, s.ListExpr((iov(10), iov(10))), 200, result=20))
    assert failure(host, call("read", 5, ..., -1, result=0)).endswith(
        "a buffer of ... needs a length of 0 or more, not -1")
    host.close_all()


def _errqueue_msghdr(flags: str, *cmsgs: s.Struct) -> s.Struct:
    return s.Struct((
        s.Field("msg_name", E, E),
        s.Field("msg_iov", s.ListExpr((iov(0),)), s.Integer(1)),
        s.Field("msg_flags", expr(flags)),
        s.Field("msg_control", s.ListExpr(cmsgs)),
    ))


def _recverr(**fields) -> s.Struct:
    return s.Struct((s.Field("cmsg_level", s.Symbol("CMSG_LEVEL_IP")),
                     s.Field("cmsg_type", s.Symbol("CMSG_TYPE_RECVERR")),
                     s.Field("cmsg_data", struct_(**fields))))


@in_netns
def test_zerocopy_completion_on_the_error_queue():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("setsockopt", 4, "SOL_SOCKET", "SO_ZEROCOPY", [1], 4))
    run(host, call("send", 4, ..., 4000, "MSG_ZEROCOPY", result=4000))
    run(host, call("read", 5, ..., 8000, result=4000))
    wait_for_error_queue(host.script_fds()[4])
    completion = dict(ee_errno=0, ee_origin="SO_EE_ORIGIN_ZEROCOPY", ee_type=0,
                      ee_code="SO_EE_CODE_ZEROCOPY_COPIED", ee_info=0, ee_data=0)
    wrong = dict(completion, ee_data=7)
    assert failure(host, call("recvmsg", 4, _errqueue_msghdr("MSG_ERRQUEUE", _recverr(**wrong)),
                              "MSG_ERRQUEUE", result=0)).endswith(
        "Bad sock_extended_err ee_data in cmsg 0: expected: 7 actual: 0")
    run(host, call("send", 4, ..., 100, "MSG_ZEROCOPY", result=100))
    run(host, call("read", 5, ..., 8000, result=100))
    wait_for_error_queue(host.script_fds()[4])
    run(host, call("recvmsg", 4, _errqueue_msghdr("MSG_ERRQUEUE", _recverr(**dict(completion, ee_info=1, ee_data=1))),
                   "MSG_ERRQUEUE", result=0))
    host.close_all()


@in_netns
def test_tx_timestamps_in_script_time():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("setsockopt", 4, "SOL_SOCKET", "SO_TIMESTAMPING",
                   ["SOF_TIMESTAMPING_TX_SCHED|SOF_TIMESTAMPING_TX_SOFTWARE|"
                    "SOF_TIMESTAMPING_SOFTWARE|SOF_TIMESTAMPING_OPT_ID"], 4))
    host.set_script_start(time.time())
    run(host, call("write", 4, ..., 1000, result=1000))
    wait_for_error_queue(host.script_fds()[4])

    def stamp(sec):
        return struct_(cmsg_level="SOL_SOCKET", cmsg_type="SCM_TIMESTAMPING",
                       cmsg_data=struct_(scm_sec=sec, scm_nsec=0))

    def report(kind):
        return _recverr(ee_errno="ENOMSG", ee_origin="SO_EE_ORIGIN_TIMESTAMPING", ee_type=0,
                        ee_code=0, ee_info=kind, ee_data=999)

    run(host, call("recvmsg", 4, _errqueue_msghdr("MSG_ERRQUEUE|MSG_TRUNC", stamp(0),
                                                  report("SCM_TSTAMP_SCHED")),
                   "MSG_ERRQUEUE", result=0))
    message = failure(host, call("recvmsg", 4, _errqueue_msghdr(
        "MSG_ERRQUEUE|MSG_TRUNC", stamp(100), report("SCM_TSTAMP_SND")), "MSG_ERRQUEUE", result=0))
    assert "Bad timestamp 0 in scm_timestamping of cmsg 0: expected 100.000000 sec" in message
    host.close_all()


@in_netns
def test_msg_flags_mismatch():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("write", 4, ..., 100, result=100))
    msghdr = s.Struct((s.Field("msg_iov", s.ListExpr((iov(10),)), s.Integer(1)),
                       s.Field("msg_flags", s.Symbol("MSG_EOR"))))
    assert failure(host, call("recvmsg", 5, msghdr, 0, result=10)).endswith(
        "Expected msg_flags MSG_EOR but got 0")
    host.close_all()


@in_netns
def test_epoll():
    host = SyscallHost(ENV4)
    connected(host)
    run(host, call("epoll_create", 1, result=6))
    run(host, call("epoll_ctl", 6, "EPOLL_CTL_ADD", 4, struct_(events="EPOLLOUT|EPOLLET", fd=4)))
    run(host, call("epoll_wait", 6, struct_(events="EPOLLOUT", fd=4), 1, 0, result=1))
    run(host, call("epoll_wait", 6, struct_(events=0, ptr=0), 1, 0, result=0))
    run(host, call("epoll_ctl", 6, "EPOLL_CTL_MOD", 4, struct_(events="EPOLLIN|EPOLLOUT", u64=77)))
    assert failure(host, call("epoll_wait", 6, struct_(events="EPOLLIN|EPOLLOUT", u64=77), 1, 0,
                              result=1)).endswith(
        "Expected events of EPOLLIN|EPOLLOUT but got EPOLLOUT for epoll_event 0")
    run(host, call("epoll_wait", 6, struct_(events="EPOLLOUT", u64=77), 1, 0, result=1))
    host.close_all()


@in_netns
def test_open_sendfile_pipe_splice():
    host = SyscallHost(ENV4)
    connected(host)
    with tempfile.NamedTemporaryFile() as file:
        file.write(bytes(5))
        file.flush()
        run(host, call("open", s.String(file.name), "O_RDONLY", result=7))
        run(host, call("sendfile", 4, 7, [0], 5, result=5))
    run(host, call("read", 5, ..., 100, result=5))
    run(host, call("pipe", [8, 9]))
    run(host, call("write", 4, ..., 100, result=100))
    run(host, call("splice", 5, "NULL", 9, "NULL", 100, 0, result=100))
    run(host, call("read", 8, ..., 200, result=100))
    assert {7, 8, 9} <= set(host.script_fds())
    host.close_all()


@in_netns
def test_tcp_info_and_meminfo_of_the_socket_under_test():
    host = SyscallHost(ENV4)
    connected(host)
    info = host.tcp_info()
    assert info["tcpi_state"] == 1
    assert info["tcpi_snd_mss"] > 0 and "tcpi_rcv_wnd" in info
    assert host.meminfo()["SK_MEMINFO_RCVBUF"] > 0
    run(host, call("close", 5))
    assert host.socket_under_test is None
    with pytest.raises(RunFailure, match="no socket under test"):
        host.tcp_info()
    host.close_all()


@pytest.mark.parametrize("env, peer", [
    (CallEnvironment("ipv6", "::1", "::1", 8080, 8080), ("::1", 8080)),
    (CallEnvironment("ipv4-mapped-ipv6", "127.0.0.1", "127.0.0.1", 8080, 8080),
     ("::ffff:127.0.0.1", 8080)),
])
def test_ipv6_and_mapped_sockets(env, peer):
    @in_netns
    def body():
        host = SyscallHost(env)
        connected(host)
        with socket.socket(fileno=os.dup(host.script_fds()[4])) as client:
            assert client.family == socket.AF_INET6
            assert client.getpeername()[:2] == peer
        host.close_all()

    body()
