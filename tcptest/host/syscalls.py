"""A script's system calls, made on the real kernel through libc (ctypes).

Calls go through ctypes rather than Python's `socket` module so that the
script's exact arguments reach the kernel — a NULL buffer with a length for
an EFAULT test, an int option with length 1 — and the descriptors are real
kernel numbers. Each call is made in three steps:

1. prepare (caller's thread): evaluate the arguments — symbols, `...`, struct
   literals — into C memory, translating script fds to live fds;
2. invoke (caller's thread, or a worker thread for a blocking call): the one
   libc call, then errno and `time.time()` right after it returns;
3. check (caller's thread): the return value and errno against the script,
   then outputs (getsockopt values, poll revents, recvmsg fields), and the
   bookkeeping of script fd -> live fd.

Script fds are names: `socket(...) = 3` binds 3 to whatever the kernel
returned. An fd argument the script never bound (or has closed) is passed as
an fd number no process can have, so the kernel answers EBADF as it would in
a fresh process — and a script can never touch one of tcptest's own fds.
An epoll_event's `fd=N` is stored as written (the kernel hands the data back
untouched), so epoll_wait compares it with the script's number.

The socket under test (TCP_INFO for `%{ }%`) is the one the script last
created with socket(), got from accept(), or called connect() on.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import resource
import signal
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import calls
from .. import script as s
from .. import symbols
from ..errors import RunFailure
from ..render import render_expr as render
from ..source import Location
from . import scheduling
from . import structs
from . import tcpinfo

_libc = ctypes.CDLL(None, use_errno=True)

_INT = ctypes.c_int
_PTR = ctypes.c_void_p
_SIZE = ctypes.c_size_t
_SSIZE = ctypes.c_ssize_t
_U32 = ctypes.c_uint32


def _prototype(name: str, restype, *argtypes):
    function = getattr(_libc, name)
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


_C = {
    "socket": _prototype("socket", _INT, _INT, _INT, _INT),
    "bind": _prototype("bind", _INT, _INT, _PTR, _U32),
    "listen": _prototype("listen", _INT, _INT, _INT),
    "accept": _prototype("accept", _INT, _INT, _PTR, _PTR),
    "connect": _prototype("connect", _INT, _INT, _PTR, _U32),
    "read": _prototype("read", _SSIZE, _INT, _PTR, _SIZE),
    "write": _prototype("write", _SSIZE, _INT, _PTR, _SIZE),
    "readv": _prototype("readv", _SSIZE, _INT, _PTR, _INT),
    "writev": _prototype("writev", _SSIZE, _INT, _PTR, _INT),
    "recv": _prototype("recv", _SSIZE, _INT, _PTR, _SIZE, _INT),
    "send": _prototype("send", _SSIZE, _INT, _PTR, _SIZE, _INT),
    "recvfrom": _prototype("recvfrom", _SSIZE, _INT, _PTR, _SIZE, _INT, _PTR, _PTR),
    "sendto": _prototype("sendto", _SSIZE, _INT, _PTR, _SIZE, _INT, _PTR, _U32),
    "recvmsg": _prototype("recvmsg", _SSIZE, _INT, _PTR, _INT),
    "sendmsg": _prototype("sendmsg", _SSIZE, _INT, _PTR, _INT),
    "close": _prototype("close", _INT, _INT),
    "shutdown": _prototype("shutdown", _INT, _INT, _INT),
    "getsockopt": _prototype("getsockopt", _INT, _INT, _INT, _INT, _PTR, _PTR),
    "setsockopt": _prototype("setsockopt", _INT, _INT, _INT, _INT, _PTR, _U32),
    "fcntl": _prototype("fcntl", _INT, _INT, _INT, ctypes.c_long),
    "ioctl": _prototype("ioctl", _INT, _INT, ctypes.c_ulong, _PTR),
    "poll": _prototype("poll", _INT, _PTR, ctypes.c_ulong, _INT),
    "open": _prototype("open", _INT, ctypes.c_char_p, _INT, _INT),
    "sendfile": _prototype("sendfile", _SSIZE, _INT, _INT, _PTR, _SIZE),
    "epoll_create": _prototype("epoll_create", _INT, _INT),
    "epoll_ctl": _prototype("epoll_ctl", _INT, _INT, _INT, _INT, _PTR),
    "epoll_wait": _prototype("epoll_wait", _INT, _INT, _PTR, _INT, _INT),
    "pipe": _prototype("pipe", _INT, _PTR),
    "splice": _prototype("splice", _SSIZE, _INT, _PTR, _INT, _PTR, _SIZE, ctypes.c_uint),
}
_mmap = _prototype("mmap", _PTR, _PTR, _SIZE, _INT, _INT, _INT, ctypes.c_long)
_capget = _prototype("capget", _INT, _PTR, _PTR)
_capset = _prototype("capset", _INT, _PTR, _PTR)
_CAPABILITY_VERSION_3 = 0x20080522


def _cap_set(which_set: int, capability: int, value: int) -> int:
    """libcap's cap_set_flag + cap_set_proc for one capability, on the
    calling thread (capabilities are per thread; the worker threads of later
    blocking calls inherit them)."""
    header = (_U32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (_U32 * 6)()  # two of {effective, permitted, inheritable}
    if _capget(ctypes.addressof(header), ctypes.addressof(data)) < 0:
        return -1
    if not (0 <= which_set <= 2 and 0 <= capability < 64):
        ctypes.set_errno(22)  # EINVAL, as libcap's cap_set_flag
        return -1
    word, bit = 3 * (capability // 32) + which_set, 1 << (capability % 32)
    data[word] = data[word] | bit if value else data[word] & ~bit
    return _capset(ctypes.addressof(header), ctypes.addressof(data))


_C["cap_set"] = _cap_set

assert set(_C) == set(calls.CALLS), "calls.CALLS and the libc prototypes name the same calls"

# An fd number above any RLIMIT_NOFILE: the kernel answers EBADF for it.
INVALID_FD = 0x7FFFFFFF

_FUTEX_SYSCALL = {"x86_64": 202, "aarch64": 98, "arm64": 98}.get(os.uname().machine)


@dataclass(frozen=True, slots=True)
class CallEnvironment:
    """What `...` means in this run (from the command line / script options)."""

    ip_version: str  # 'ipv4' | 'ipv6' | 'ipv4-mapped-ipv6'
    local_ip: str
    remote_ip: str
    bind_port: int = 8080
    connect_port: int = 8080
    tolerance_usecs: int = 4000  # for SCM_TIMESTAMPING times

    @property
    def ipv6_socket(self) -> bool:
        return symbols.is_ipv6_socket(self.ip_version)

    @property
    def socket_domain(self) -> int:
        return structs.AF_INET6 if self.ipv6_socket else structs.AF_INET


class PendingCall:
    """A call that has started. Mutable on purpose: a worker thread fills in
    the outcome while the engine goes on."""

    __slots__ = ("call", "loc", "returned_at", "_op", "_done", "_started", "_tid",
                 "_result", "_errno", "_checked")

    def __init__(self, call: s.Syscall, loc: Location, op: _Operation):
        self.call = call
        self.loc = loc
        self.returned_at: float | None = None
        self._op = op
        self._done = threading.Event()
        self._started = threading.Event()
        self._tid: int | None = None
        self._result: int | None = None
        self._errno = 0
        self._checked = False

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def result(self) -> tuple[int, int] | None:
        """(what the call returned, errno), once it returned; a new descriptor
        by the number the script names it with (the live one differs)."""
        if not self.done:
            return None
        value = self._result
        named = self.call.result
        if calls.CALLS[self.call.name].returns_fd and value >= 0 and isinstance(named, s.Integer) and named.value >= 0:
            value = named.value
        return value, self._errno

    def _run(self) -> None:
        self._tid = threading.get_native_id()
        self._started.set()
        result = self._op.invoke()
        self._errno = ctypes.get_errno() if result < 0 else 0
        self.returned_at = time.time()
        self._result = result
        self._done.set()



class _Worker:
    """The thread that makes blocking calls, one after another. Kept between
    calls and started before the clock (SyscallHost.prepare_blocking_calls):
    starting a thread for each call took half a millisecond at the call's
    time, by which the segment due right after it was late. It has the
    capabilities of the engine's thread when it started (they are per
    thread): after a cap_set call, the next blocking call gets a new one."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[PendingCall | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="tcptest blocking calls")
        self._thread.start()

    def _serve(self) -> None:
        # Signals go to the engine's thread, never interrupt a call.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        scheduling.above_creator()
        while (pending := self._calls.get()) is not None:
            pending._run()

    def make(self, pending: PendingCall) -> None:
        self._calls.put(pending)

    def stop(self) -> None:
        """End the thread once it is done with its call (a call that never
        returns keeps it: it is a daemon, and the run's process exits)."""
        self._calls.put(None)


@dataclass(slots=True)
class _Operation:
    """One prepared libc call: the function, its C arguments, the memory
    they point into (kept alive here), and what to check afterwards."""

    function: Callable[..., int]
    args: tuple
    keep: list = field(default_factory=list)
    # Run after the result and errno matched, only when the call succeeded:
    # compares outputs; returns a failure message or None.
    check_outputs: Callable[[int], str | None] | None = None
    # Script fds the call binds to live fds on success: list of
    # (script_fd, reader of the live fd given the return value).
    binds: list[tuple[int, Callable[[int], int]]] = field(default_factory=list)

    def invoke(self) -> int:
        ctypes.set_errno(0)
        return self.function(*self.args)


class _Failure(Exception):
    """A problem with one call; turned into RunFailure with the call's name."""


class _ZeroSource:
    """Read-only anonymous memory: the zeros behind every outbound `...`
    buffer. Never written and never freed during the run, so MSG_ZEROCOPY
    sends cannot see their pages change (what packetdrill's
    --send_omit_free is for)."""

    def __init__(self) -> None:
        self._address = 0
        self._size = 0

    def address(self, length: int) -> int:
        if length > self._size or not self._address:
            size = max(length, 64 << 20)
            size = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
            address = _mmap(None, size, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                raise _Failure(f"cannot map {size} bytes for an outbound buffer")
            # Older, smaller mappings stay: zerocopy sends may still pin them.
            self._address, self._size = address, size
        return self._address


def _int_bytes(value: int, size: int = 4) -> ctypes.Array:
    # Filled as it is made: the first ctypes.memmove of a process costs
    # 0.13 ms here, which made a script's first setsockopt that much late.
    return ctypes.create_string_buffer(int(value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"), size)


def _ellipsis_length(length: int) -> int:
    if length < 0:
        raise _Failure(f"a buffer of ... needs a length of 0 or more, not {length}")
    return length


def _encode_string(text: str) -> bytes:
    """Script strings hold byte escapes (`"\\xa1"`) as code points < 256."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


class SyscallHost:
    """Runs a script's system calls on the live kernel and checks them.

    Single-threaded API (the engine's thread); only a blocking call's libc
    call runs on a worker thread, started from the engine's thread so that it
    shares its network namespace. Every failure is a RunFailure at the
    call's location, worded as packetdrill words it."""

    def __init__(self, env: CallEnvironment):
        self.env = env
        self._fds: dict[int, int] = {}  # script fd -> live fd
        self._stray: list[int] = []  # live fds the script never named
        self._under_test: int | None = None  # script fd
        self._in_flight: PendingCall | None = None
        self._zeros = _ZeroSource()
        self._script_start: float | None = None
        self._worker: _Worker | None = None

    # ------------------------------------------------------------ public

    def prepare_blocking_calls(self) -> None:
        """Start the thread for blocking calls now, before the clock."""
        if self._worker is None:
            self._worker = _Worker()

    def set_script_start(self, wall_time: float) -> None:
        """time.time() of script time 0: SCM_TIMESTAMPING times in recvmsg
        are written relative to it."""
        self._script_start = wall_time

    @property
    def in_flight(self) -> PendingCall | None:
        return self._in_flight

    @property
    def socket_under_test(self) -> int | None:
        """Live fd of the socket the script last created (socket), accepted
        or connected, while the script still holds it."""
        if self._under_test is None:
            return None
        return self._fds.get(self._under_test)

    def live_fds(self) -> list[int]:
        return sorted(set(self._fds.values()) | set(self._stray))

    def script_fds(self) -> dict[int, int]:
        """Script fd -> live fd, for reports."""
        return dict(self._fds)

    def tcp_info(self) -> dict[str, int]:
        """TCP_INFO of the socket under test (see host/tcpinfo.py)."""
        return tcpinfo.read_tcp_info(self._require_socket_under_test())

    def meminfo(self) -> dict[str, int]:
        """SO_MEMINFO of the socket under test, as SK_MEMINFO_* names."""
        return tcpinfo.read_meminfo(self._require_socket_under_test())

    def begin(self, call: s.Syscall, loc: Location, blocking: bool) -> PendingCall:
        """Start `call`. Not blocking: make it here and check it (RunFailure on
        any difference); the PendingCall comes back done. Blocking (`...END`):
        make it on a worker thread and return once it returned or sleeps in
        the kernel; `finish` checks it."""
        if blocking and self._in_flight is not None:
            other = self._in_flight
            raise RunFailure(loc, f"runtime error in {call.name} call: a blocking call was "
                                  f"started while the blocking {other.call.name} call from "
                                  f"line {other.loc.line} is still in progress")
        op = self._prepare(call, loc)
        pending = PendingCall(call, loc, op)
        if not blocking:
            pending._run()
            self._check(pending)
            if call.name == "cap_set" and self._worker is not None:
                self._worker.stop()  # it keeps the capabilities it had
                self._worker = None
            return pending
        self.prepare_blocking_calls()
        self._in_flight = pending
        self._worker.make(pending)
        self._wait_until_asleep(pending)
        return pending

    def finish(self, pending: PendingCall, timeout: float | None) -> float:
        """Wait for a blocking call to return (None = forever), check it, and
        return when it returned (time.time() on the worker)."""
        if not pending._done.wait(timeout):
            raise RunFailure(pending.loc, f"runtime error in {pending.call.name} call: "
                                          f"blocking call did not return within {timeout:.6f} sec")
        if self._in_flight is pending:
            self._in_flight = None
        if not pending._checked:
            self._check(pending)
        assert pending.returned_at is not None
        return pending.returned_at

    def close_all(self) -> None:
        """Close every fd the script opened. A blocking call still in flight
        is woken first (shutdown of its socket) so that its thread ends."""
        pending = self._in_flight
        if pending is not None and not pending.done:
            for live in self.live_fds():
                _C["shutdown"](live, 2)
            pending._done.wait(1.0)
        if pending is not None and pending.done and not pending._checked:
            if calls.CALLS[pending.call.name].returns_fd and pending._result is not None and pending._result >= 0:
                self._stray.append(pending._result)
        self._in_flight = None
        for live in self.live_fds():
            _C["close"](live)
        self._fds.clear()
        self._stray.clear()
        self._under_test = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    # ------------------------------------------------------ bookkeeping

    def _require_socket_under_test(self) -> int:
        fd = self.socket_under_test
        if fd is None:
            raise RunFailure(None, "no socket under test: the script holds no socket")
        return fd

    def _wait_until_asleep(self, pending: PendingCall) -> None:
        """Like packetdrill: go on once the worker sleeps in the kernel (state
        S) inside the call — not while it waits for the GIL (a futex) — or
        once the call returned."""
        pending._started.wait()
        stat = f"/proc/self/task/{pending._tid}/stat"
        current = f"/proc/self/task/{pending._tid}/syscall"
        while not pending._done.wait(0.0001):
            try:
                with open(stat, "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
                if state != b"S":
                    continue
                with open(current, "rb") as f:
                    number = f.read().split(maxsplit=1)[0]
            except (OSError, IndexError):
                continue  # the thread just ended
            if number.isdigit() and int(number) != _FUTEX_SYSCALL:
                return

    def _live_fd(self, script_fd: int) -> int:
        if script_fd < 0:
            return script_fd
        return self._fds.get(script_fd, INVALID_FD)

    def _check(self, pending: PendingCall) -> None:
        pending._checked = True
        call, op = pending.call, pending._op
        result, err = pending._result, pending._errno
        assert result is not None
        try:
            self._check_result(call, result, err)
        except _Failure as failure:
            self._keep_unnamed(call, op, result)
            if call.name == "close" and result == 0:  # gone, whatever the script said
                self._fds.pop(self._int(call.args[0], "a file descriptor"), None)
            raise RunFailure(pending.loc, f"runtime error in {call.name} call: {failure}") from None
        self._bookkeep(call, op, result)
        if result >= 0 and op.check_outputs is not None:
            message = op.check_outputs(result)
            if message is not None:
                raise RunFailure(pending.loc, f"runtime error in {call.name} call: {message}")

    def _check_result(self, call: s.Syscall, result: int, err: int) -> None:
        problems = calls.result_problems(call, self._int(call.result, "the expected result"), result, err)
        if problems:
            raise _Failure(problems[0])

    def _keep_unnamed(self, call: s.Syscall, op: _Operation, result: int) -> None:
        """A call that created fds but failed its check: close them at the end."""
        if result < 0:
            return
        if calls.CALLS[call.name].returns_fd:
            self._stray.append(result)
        elif op.binds:
            self._stray.extend(live_of(result) for _, live_of in op.binds)

    def _bookkeep(self, call: s.Syscall, op: _Operation, result: int) -> None:
        """After a call matched the script: name new fds, forget closed ones,
        follow the socket under test."""
        if call.name == "connect":
            self._under_test = self._int(call.args[0], "a file descriptor")
        if call.name == "close" and result == 0:
            self._fds.pop(self._int(call.args[0], "a file descriptor"), None)
        if result < 0:
            return
        for script_fd, live_of in op.binds:
            live = live_of(result)
            old = self._fds.get(script_fd)
            if old is not None and old != live:
                # The script reuses a name it never closed: keep the old fd
                # open (the script may still depend on it) but unnamed.
                self._stray.append(old)
            self._fds[script_fd] = live
            if call.name in ("socket", "accept"):
                self._under_test = script_fd

    # ----------------------------------------------------- expressions

    def _int(self, expr: s.Expr, what: str = "an integer") -> int:
        if isinstance(expr, s.Integer):
            return expr.value
        if isinstance(expr, s.Symbol):
            value = symbols.lookup(expr.name, self.env.ip_version)
            if value is None:
                raise _Failure(f"unknown symbol: '{expr.name}'")
            return value
        if isinstance(expr, s.BitOr):
            value = 0
            for operand in expr.operands:
                value |= self._int(operand, what)
            return value
        if isinstance(expr, s.Call) and expr.name in ("htons", "htonl", "ntohs", "ntohl") \
                and len(expr.args) == 1:
            return self._int(expr.args[0], what)
        raise _Failure(f"expected {what} but got {render(expr)}")

    def _fd(self, expr: s.Expr) -> int:
        return self._live_fd(self._int(expr, "a file descriptor"))

    def _is_pointer_literal(self, expr: s.Expr) -> bool:
        return isinstance(expr, s.Integer) or (isinstance(expr, s.Symbol) and expr.name == "NULL")

    def _outbound(self, expr: s.Expr, length: int, op: _Operation) -> int:
        """Address of `length` bytes to send: zeros for `...`."""
        if isinstance(expr, s.EllipsisExpr):
            return self._zeros.address(_ellipsis_length(length))
        if isinstance(expr, s.String):
            data = _encode_string(expr.value)
            buf = ctypes.create_string_buffer(data, max(len(data) + 1, length))
            op.keep.append(buf)
            return ctypes.addressof(buf)
        if self._is_pointer_literal(expr):
            return self._int(expr)
        raise _Failure(f"expected a buffer (..., NULL or a string) but got {render(expr)}")

    def _inbound(self, expr: s.Expr, length: int, op: _Operation) -> int:
        """Address of a writable buffer of `length` bytes."""
        if isinstance(expr, s.EllipsisExpr):
            buf = ctypes.create_string_buffer(max(_ellipsis_length(length), 1))
            op.keep.append(buf)
            return ctypes.addressof(buf)
        if self._is_pointer_literal(expr):
            return self._int(expr)
        raise _Failure(f"expected a buffer (... or NULL) but got {render(expr)}")

    def _new(self, op: _Operation, value: ctypes._CData) -> int:
        op.keep.append(value)
        return ctypes.addressof(value)

    def _sockaddr(self, expr: s.Expr, default: tuple[str, int] | None, op: _Operation) -> tuple[int, int]:
        """(address, length) of an input sockaddr."""
        if isinstance(expr, s.EllipsisExpr):
            if default is None:
                raise _Failure("this call has no default address for ...")
            data = structs.pack_sockaddr(default[0], default[1], self.env.ipv6_socket)
        elif self._is_pointer_literal(expr):
            return self._int(expr), 0
        elif isinstance(expr, (s.Symbol, s.BitOr)):
            data = structs.pack_family_only(self._int(expr))
        elif isinstance(expr, s.Struct):
            data = self._sockaddr_struct(expr)
        else:
            raise _Failure(f"expected a socket address but got {render(expr)}")
        buf = ctypes.create_string_buffer(data, len(data))
        op.keep.append(buf)
        return ctypes.addressof(buf), len(data)

    def _sockaddr_struct(self, expr: s.Struct) -> bytes:
        """`{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("1.2.3.4")}`."""
        family_field = expr.get("sa_family")
        family = self._int(family_field.value) if family_field else self.env.socket_domain
        port_field = expr.get("sin_port") or expr.get("sin6_port")
        port = self._int(port_field.value) if port_field else 0
        addr_field = expr.get("sin_addr") or expr.get("sin6_addr")
        address = "::" if family == structs.AF_INET6 else "0.0.0.0"
        if addr_field is not None:
            value = addr_field.value
            if isinstance(value, s.Call) and value.name in ("inet_addr", "inet6_addr") \
                    and len(value.args) == 1 and isinstance(value.args[0], s.String):
                address = value.args[0].value
            elif isinstance(value, s.String):
                address = value.value
            else:
                raise _Failure(f"expected inet_addr(\"...\") but got {render(value)}")
        if family not in (structs.AF_INET, structs.AF_INET6):
            return structs.pack_family_only(family)
        try:
            return structs.pack_sockaddr(address, port, family == structs.AF_INET6)
        except OSError:
            raise _Failure(f"bad address {address!r} for family {family}") from None

    def _socklen_in(self, expr: s.Expr, size: int) -> int:
        if isinstance(expr, s.EllipsisExpr):
            return size
        return self._int(expr, "an address length")

    def _socklen_out(self, expr: s.Expr, size: int, op: _Operation) -> tuple[int, ctypes.c_uint32 | None]:
        """An in/out socklen pointer: `...` (sizeof), `[N]`, or NULL."""
        if isinstance(expr, s.EllipsisExpr):
            cell = _U32(size)
        elif isinstance(expr, s.ListExpr) and len(expr.items) == 1:
            cell = _U32(self._int(expr.items[0], "a length"))
        elif self._is_pointer_literal(expr):
            return self._int(expr), None
        else:
            raise _Failure(f"expected a length pointer ([N], ... or NULL) but got {render(expr)}")
        return self._new(op, cell), cell

    def _int_pointer(self, expr: s.Expr, op: _Operation, ctype=_INT) -> tuple[int, ctypes._SimpleCData | None]:
        """`[N]`: pointer to a C int (or `ctype`) holding N; NULL passes 0."""
        if isinstance(expr, s.ListExpr) and len(expr.items) == 1:
            cell = ctype(self._int(expr.items[0]))
            return self._new(op, cell), cell
        if self._is_pointer_literal(expr):
            return self._int(expr), None
        raise _Failure(f"expected [N] or NULL but got {render(expr)}")

    # ---------------------------------------------------------- calls

    def _prepare(self, call: s.Syscall, loc: Location) -> _Operation:
        problem = calls.call_problem(call)
        if problem:
            raise RunFailure(loc, problem)
        op = _Operation(_C[call.name], ())
        try:
            getattr(self, f"_prepare_{call.name}")(call.args, op)
            if calls.CALLS[call.name].returns_fd:
                # The call returns a new fd; a non-negative result names it.
                script_fd = self._int(call.result, "the expected result")
                if script_fd >= 0:
                    op.binds.append((script_fd, lambda result: result))
        except _Failure as failure:
            message = str(failure)
            if not message.startswith("unknown symbol"):
                message = f"runtime error in {call.name} call: {message}"
            raise RunFailure(loc, message) from None
        return op

    def _prepare_socket(self, a, op):
        domain = self.env.socket_domain if isinstance(a[0], s.EllipsisExpr) else self._int(a[0])
        op.args = (domain, self._int(a[1]), self._int(a[2]))

    def _prepare_bind(self, a, op):
        address, size = self._sockaddr(a[1], (self.env.local_ip, self.env.bind_port), op)
        op.args = (self._fd(a[0]), address, self._socklen_in(a[2], size))

    def _prepare_listen(self, a, op):
        op.args = (self._fd(a[0]), self._int(a[1]))

    def _prepare_accept(self, a, op):
        address = self._address_buffer(a[1], op)
        length, _ = self._socklen_out(a[2], structs.SOCKADDR_STORAGE_SIZE, op)
        op.args = (self._fd(a[0]), address, length)

    def _address_buffer(self, expr: s.Expr, op: _Operation) -> int:
        """Where the kernel writes a peer address: `...` is ignored space."""
        if isinstance(expr, s.EllipsisExpr):
            return self._new(op, structs.SockaddrStorage())
        if self._is_pointer_literal(expr):
            return self._int(expr)
        raise _Failure(f"expected ... or NULL for the address but got {render(expr)}")

    def _prepare_connect(self, a, op):
        address, size = self._sockaddr(a[1], (self.env.remote_ip, self.env.connect_port), op)
        op.args = (self._fd(a[0]), address, self._socklen_in(a[2], size))

    def _prepare_read(self, a, op):
        length = self._int(a[2], "a length")
        op.args = (self._fd(a[0]), self._inbound(a[1], length, op), length)

    def _prepare_write(self, a, op):
        length = self._int(a[2], "a length")
        op.args = (self._fd(a[0]), self._outbound(a[1], length, op), length)

    def _prepare_recv(self, a, op):
        length = self._int(a[2], "a length")
        op.args = (self._fd(a[0]), self._inbound(a[1], length, op), length, self._int(a[3]))

    def _prepare_send(self, a, op):
        length = self._int(a[2], "a length")
        op.args = (self._fd(a[0]), self._outbound(a[1], length, op), length, self._int(a[3]))

    def _prepare_recvfrom(self, a, op):
        length = self._int(a[2], "a length")
        address = self._address_buffer(a[4], op)
        address_length, _ = self._socklen_out(a[5], structs.SOCKADDR_STORAGE_SIZE, op)
        op.args = (self._fd(a[0]), self._inbound(a[1], length, op), length, self._int(a[3]),
                   address, address_length)

    def _prepare_sendto(self, a, op):
        length = self._int(a[2], "a length")
        address, size = self._sockaddr(a[4], (self.env.remote_ip, self.env.connect_port), op)
        op.args = (self._fd(a[0]), self._outbound(a[1], length, op), length, self._int(a[3]),
                   address, self._socklen_in(a[5], size))

    def _prepare_readv(self, a, op):
        count = self._int(a[2], "an iovec count")
        iov, _ = self._iovec_array(a[1], op, inbound=True, room=count)
        op.args = (self._fd(a[0]), iov, count)

    def _prepare_writev(self, a, op):
        count = self._int(a[2], "an iovec count")
        iov, _ = self._iovec_array(a[1], op, inbound=False, room=count)
        op.args = (self._fd(a[0]), iov, count)

    def _iovec_array(self, expr: s.Expr, op: _Operation, inbound: bool,
                     room: int = 0) -> tuple[int, int]:
        """(address, entries) of an iovec array; `room` more (empty) entries
        when the script's count exceeds its list, so the kernel never walks
        past the array."""
        if self._is_pointer_literal(expr):
            return self._int(expr), 0
        if not isinstance(expr, s.ListExpr):
            raise _Failure(f"expected a list of iovecs but got {render(expr)}")
        # The kernel rejects more than UIO_MAXIOV (1024) before reading any.
        array = (structs.Iovec * max(len(expr.items), min(room, 1024), 1))()
        for index, item in enumerate(expr.items):
            base, length = self._struct_items(item, ("iov_base", "iov_len"), "iovec")
            size = self._int(length, "an iov_len")
            place = self._inbound if inbound else self._outbound
            array[index].iov_base = place(base, size, op)
            array[index].iov_len = size
        return self._new(op, array), len(expr.items)

    def _struct_items(self, expr: s.Expr, names: tuple[str, ...], what: str) -> tuple[s.Expr, ...]:
        """Field values of a struct literal written with names or by
        position (`{..., 1000}`), in the order of `names`."""
        if isinstance(expr, s.ListExpr) and len(expr.items) == len(names):
            return expr.items
        if not isinstance(expr, s.Struct):
            raise _Failure(f"expected a {what} but got {render(expr)}")
        values: dict[str, s.Expr] = {}
        for index, f in enumerate(expr.fields):
            name = f.name or (names[index] if index < len(names) else "")
            if name not in names:
                raise _Failure(f"unexpected field {f.name or render(f.value)!r} in {what}")
            values[name] = f.value
        missing = [n for n in names if n not in values]
        if missing:
            raise _Failure(f"{what} needs {', '.join(missing)}")
        return tuple(values[n] for n in names)

    def _prepare_close(self, a, op):
        op.args = (self._fd(a[0]),)

    def _prepare_shutdown(self, a, op):
        op.args = (self._fd(a[0]), self._int(a[1]))

    def _prepare_fcntl(self, a, op):
        argument = self._int(a[2]) if len(a) > 2 else 0
        op.args = (self._fd(a[0]), self._int(a[1]), argument)

    def _prepare_ioctl(self, a, op):
        request = self._int(a[1])
        if isinstance(a[2], s.ListExpr) and len(a[2].items) == 1:
            expected = self._int(a[2].items[0])
            # Room beyond the int for requests that write a larger struct.
            room = ctypes.create_string_buffer(_int_bytes(expected).raw, 64)
            cell = _INT.from_buffer(room)
            argument = self._new(op, room)

            def compare(_result: int) -> str | None:
                if cell.value != expected:
                    return f"Bad ioctl optval: expected: {expected} actual: {cell.value}"
                return None

            op.check_outputs = compare
        else:
            argument = self._int(a[2])
        op.args = (self._fd(a[0]), request, argument)

    # -- socket options

    def _prepare_setsockopt(self, a, op):
        address, size = self._option_value_in(a[3], op)
        length = size if isinstance(a[4], s.EllipsisExpr) else self._int(a[4], "an option length")
        if address and not self._is_pointer_literal(a[3]) and length > size:
            # The kernel may read `length` bytes: give it that many.
            grown = ctypes.create_string_buffer(length)
            ctypes.memmove(grown, address, size)
            op.keep.append(grown)
            address = ctypes.addressof(grown)
        op.args = (self._fd(a[0]), self._int(a[1]), self._int(a[2]), address, length)

    def _option_value_in(self, expr: s.Expr, op: _Operation) -> tuple[int, int]:
        if isinstance(expr, s.ListExpr) and len(expr.items) == 1:
            cell = _int_bytes(self._int(expr.items[0]))
            return self._new(op, cell), 4
        if isinstance(expr, s.String):
            data = _encode_string(expr.value)
            buf = ctypes.create_string_buffer(data, len(data) + 1)
            return self._new(op, buf), len(data)
        if isinstance(expr, s.Struct):
            value = self._option_struct(expr)
            return self._new(op, value), ctypes.sizeof(value)
        if self._is_pointer_literal(expr):
            return self._int(expr), 0
        if isinstance(expr, s.EllipsisExpr):
            return self._new(op, ctypes.create_string_buffer(4)), 4
        raise _Failure(f"expected an option value ([N], a string, a struct or NULL) but got {render(expr)}")

    def _option_struct(self, expr: s.Struct) -> ctypes.Structure:
        names = {f.name for f in expr.fields}
        if names <= {"l_onoff", "l_linger", "onoff", "linger"}:
            return self._linger(expr)
        if names and all(n.startswith("tcpm_") for n in names):
            return self._md5sig(expr)
        raise _Failure(f"unknown option struct {render(expr)}")

    def _linger(self, expr: s.Struct) -> structs.Linger:
        onoff = expr.get("l_onoff") or expr.get("onoff")
        linger = expr.get("l_linger") or expr.get("linger")
        return structs.Linger(self._int(onoff.value) if onoff else 0,
                              self._int(linger.value) if linger else 0)

    def _md5sig(self, expr: s.Struct) -> structs.TcpMd5Sig:
        """`{tcpm_addr=..., tcpm_keylen=5, tcpm_key="12345"}`; `...` (or no
        tcpm_addr) is the remote address; a sockaddr struct may be written."""
        value = structs.TcpMd5Sig()
        address = expr.get("tcpm_addr")
        if address is None or isinstance(address.value, s.EllipsisExpr):
            data = structs.pack_sockaddr(self.env.remote_ip, 0, self.env.ipv6_socket)
        elif isinstance(address.value, s.Struct):
            data = self._sockaddr_struct(address.value)
        else:
            raise _Failure(f"expected ... or a sockaddr for tcpm_addr but got {render(address.value)}")
        ctypes.memmove(ctypes.addressof(value.tcpm_addr), data, len(data))
        key = b""
        for f in expr.fields:
            if f.name == "tcpm_key":
                if not isinstance(f.value, s.String):
                    raise _Failure(f"expected a string for tcpm_key but got {render(f.value)}")
                key = _encode_string(f.value.value)
                if len(key) > structs.TCP_MD5SIG_MAXKEYLEN:
                    raise _Failure(f"tcpm_key is longer than {structs.TCP_MD5SIG_MAXKEYLEN} bytes")
                value.tcpm_key[: len(key)] = list(key)
            elif f.name in ("tcpm_flags", "tcpm_prefixlen", "tcpm_ifindex"):
                setattr(value, f.name, self._int(f.value))
            elif f.name not in ("tcpm_addr", "tcpm_keylen"):
                raise _Failure(f"unknown tcp_md5sig field {f.name}")
        keylen = expr.get("tcpm_keylen")
        value.tcpm_keylen = self._int(keylen.value) if keylen else len(key)
        return value

    def _prepare_getsockopt(self, a, op):
        """The value is compared after the call: `[N]` an int, a string (up
        to its NUL), a struct field by field; `...` and NULL are not."""
        value_expr, length_expr = a[3], a[4]
        declared = self._declared_length(length_expr)
        expected: int | bytes | ctypes.Structure | None = None
        if isinstance(value_expr, s.ListExpr) and len(value_expr.items) == 1:
            expected, natural = self._int(value_expr.items[0]), 4
        elif isinstance(value_expr, s.String):
            expected = _encode_string(value_expr.value)
            natural = len(expected) + 1
        elif isinstance(value_expr, s.Struct):
            expected = self._option_struct(value_expr)
            natural = ctypes.sizeof(expected)
        elif isinstance(value_expr, s.EllipsisExpr):
            natural = 4
        elif self._is_pointer_literal(value_expr):
            natural = 0
        else:
            raise _Failure(f"expected an option value ([N], a string, a struct, ... or NULL) "
                           f"but got {render(value_expr)}")
        value = ctypes.create_string_buffer(max(natural, declared)) if natural else None
        address = self._new(op, value) if value is not None else self._int(value_expr)
        length_address, length_cell = self._socklen_out(length_expr, natural, op)
        length_expected = declared if isinstance(length_expr, s.ListExpr) else None
        op.args = (self._fd(a[0]), self._int(a[1]), self._int(a[2]), address, length_address)

        def compare(_result: int) -> str | None:
            if length_cell is not None and length_expected is not None \
                    and length_cell.value != length_expected:
                return f"Bad getsockopt optlen: expected: {length_expected} actual: {length_cell.value}"
            if value is None or expected is None:
                return None
            raw = value.raw
            if isinstance(expected, int):
                live = int.from_bytes(raw[:4], "little", signed=True)
                want = expected if expected < (1 << 31) else expected - (1 << 32)
                if live != want:
                    return f"Bad getsockopt optval: expected: {expected} actual: {live}"
            elif isinstance(expected, bytes):
                live_text = raw.split(b"\0", 1)[0]
                if live_text != expected:
                    return (f"Bad getsockopt optval: expected: {expected.decode('latin-1')!r} "
                            f"actual: {live_text.decode('latin-1')!r}")
            else:
                live_struct = structs.from_bytes(type(expected), raw)
                for name, _ in type(expected)._fields_:
                    want_field, live_field = getattr(expected, name), getattr(live_struct, name)
                    if isinstance(want_field, int) and want_field != live_field:
                        return f"Bad getsockopt {name}: expected: {want_field} actual: {live_field}"
            return None

        op.check_outputs = compare

    def _declared_length(self, expr: s.Expr) -> int:
        if isinstance(expr, s.ListExpr) and len(expr.items) == 1:
            return max(self._int(expr.items[0]), 0)
        if isinstance(expr, s.Integer):
            return max(expr.value, 0)
        return 0

    # -- poll and epoll

    def _prepare_poll(self, a, op):
        if self._is_pointer_literal(a[0]):
            op.args = (self._int(a[0]), self._int(a[1]), self._int(a[2]))
            return
        if not isinstance(a[0], s.ListExpr):
            raise _Failure(f"expected a list of pollfd structs but got {render(a[0])}")
        entries = a[0].items
        count = self._int(a[1], "a count")
        # poll() reads and writes back `count` entries (EINVAL above
        # RLIMIT_NOFILE): make them all ours.
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        array = (structs.PollFd * max(len(entries), min(count, limit), 1))()
        for extra in range(len(entries), len(array)):
            array[extra].fd = -1  # poll skips it: room for a count beyond the list
        expected_revents: list[int | None] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, s.Struct):
                raise _Failure(f"expected a pollfd struct but got {render(entry)}")
            fd_field, events_field = entry.get("fd"), entry.get("events")
            if fd_field is None or events_field is None:
                raise _Failure(f"pollfd {index} needs fd and events")
            array[index].fd = self._fd(fd_field.value)
            array[index].events = self._int(events_field.value)
            revents = entry.get("revents")
            expected_revents.append(self._int(revents.value) if revents else None)
        op.args = (self._new(op, array), count, self._int(a[2], "a timeout"))

        def compare(_result: int) -> str | None:
            for index, want in enumerate(expected_revents):
                live = array[index].revents & 0xFFFF
                if want is not None and live != want:
                    return (f"Expected revents of {symbols.flag_names(want, symbols.POLL_EVENTS)} "
                            f"but got {symbols.flag_names(live, symbols.POLL_EVENTS)} for pollfd {index}")
            return None

        op.check_outputs = compare

    def _epoll_data(self, entry: s.Struct, what: str) -> tuple[str, int]:
        """Which data member a literal names, and its value (stored as
        written: `fd=4` is the script's fd number)."""
        for name in ("fd", "u32", "u64", "ptr"):
            f = entry.get(name)
            if f is not None:
                return name, self._int(f.value)
        raise _Failure(f"{what} needs fd, u32, u64 or ptr")

    def _prepare_epoll_create(self, a, op):
        op.args = (self._int(a[0]),)

    def _prepare_epoll_ctl(self, a, op):
        event_expr = a[3]
        if self._is_pointer_literal(event_expr):
            event = self._int(event_expr)
        elif isinstance(event_expr, s.Struct):
            events_field = event_expr.get("events")
            member, data = self._epoll_data(event_expr, "epoll_event")
            value = structs.EpollEvent(self._int(events_field.value) if events_field else 0,
                                       data & (0xFFFFFFFF if member in ("fd", "u32") else 0xFFFFFFFFFFFFFFFF))
            event = self._new(op, value)
        else:
            raise _Failure(f"expected an epoll_event struct or NULL but got {render(event_expr)}")
        op.args = (self._fd(a[0]), self._int(a[1]), self._fd(a[2]), event)

    def _prepare_epoll_wait(self, a, op):
        events_expr = a[1]
        if isinstance(events_expr, s.Struct):
            entries = (events_expr,)
        elif isinstance(events_expr, s.ListExpr):
            entries = events_expr.items
        elif self._is_pointer_literal(events_expr):
            op.args = (self._fd(a[0]), self._int(events_expr), self._int(a[2]), self._int(a[3]))
            return
        else:
            raise _Failure(f"expected epoll_event structs but got {render(events_expr)}")
        maximum = self._int(a[2], "a count")
        # The kernel writes one entry per ready fd, at most the fds this
        # process holds; the script's maximum may be larger than that.
        array = (structs.EpollEvent * max(min(maximum, 1024), len(entries), 1))()
        expected = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, s.Struct):
                raise _Failure(f"expected an epoll_event struct but got {render(entry)}")
            events_field = entry.get("events")
            expected.append((self._int(events_field.value) if events_field else None,
                             *self._epoll_data(entry, f"epoll_event {index}")))
        op.args = (self._fd(a[0]), self._new(op, array), maximum, self._int(a[3], "a timeout"))

        def compare(result: int) -> str | None:
            for index, (want_events, member, want_data) in enumerate(expected[:result]):
                live = array[index]
                if want_events is not None and live.events != want_events:
                    return (f"Expected events of {symbols.flag_names(want_events, symbols.EPOLL_EVENT_BITS)} "
                            f"but got {symbols.flag_names(live.events, symbols.EPOLL_EVENT_BITS)} "
                            f"for epoll_event {index}")
                mask = 0xFFFFFFFF if member in ("fd", "u32") else 0xFFFFFFFFFFFFFFFF
                live_data = live.data & mask
                if member == "fd" and live_data >= 1 << 31:
                    live_data -= 1 << 32
                if live_data != want_data:
                    return f"Expected {member} {want_data} but got {live_data} for epoll_event {index}"
            return None

        op.check_outputs = compare

    # -- files, pipes, splice

    def _prepare_open(self, a, op):
        if not isinstance(a[0], s.String):
            raise _Failure(f"expected a path string but got {render(a[0])}")
        path = os.fsencode(a[0].value)
        op.keep.append(path)
        op.args = (path, self._int(a[1]), self._int(a[2]) if len(a) > 2 else 0)

    def _prepare_pipe(self, a, op):
        if not (isinstance(a[0], s.ListExpr) and len(a[0].items) == 2):
            raise _Failure(f"expected [read_fd, write_fd] but got {render(a[0])}")
        pair = (_INT * 2)()
        op.args = (self._new(op, pair),)
        for index, item in enumerate(a[0].items):
            op.binds.append((self._int(item, "a file descriptor"), lambda _r, i=index: pair[i]))

    def _prepare_sendfile(self, a, op):
        offset, _ = self._int_pointer(a[2], op, ctypes.c_int64)
        op.args = (self._fd(a[0]), self._fd(a[1]), offset, self._int(a[3], "a count"))

    def _prepare_splice(self, a, op):
        in_offset, _ = self._int_pointer(a[1], op, ctypes.c_int64)
        out_offset, _ = self._int_pointer(a[3], op, ctypes.c_int64)
        op.args = (self._fd(a[0]), in_offset, self._fd(a[2]), out_offset,
                   self._int(a[4], "a length"), self._int(a[5]))

    # -- capabilities

    def _prepare_cap_set(self, a, op):
        """cap_set(CAP_EFFECTIVE, CAP_NET_ADMIN, CAP_CLEAR): libcap's argument
        order (set, capability, value). Written as names, the three may come
        in any order: each name says which it is."""
        roles = (symbols.CAPABILITY_SETS, symbols.CAPABILITIES, symbols.CAPABILITY_FLAG_VALUES)
        named = {}
        for arg in a:
            for index, table in enumerate(roles):
                if isinstance(arg, s.Symbol) and arg.name in table:
                    named.setdefault(index, arg)
        ordered = [named[i] for i in range(3)] if len(named) == 3 else list(a)
        op.args = (self._int(ordered[0], "a capability set (CAP_EFFECTIVE, CAP_PERMITTED, "
                                         "CAP_INHERITABLE)"),
                   self._int(ordered[1], "a capability"),
                   self._int(ordered[2], "CAP_SET or CAP_CLEAR"))

    # -- sendmsg / recvmsg

    def _prepare_sendmsg(self, a, op):
        header = self._msghdr(a[1], op, inbound=False)
        op.args = (self._fd(a[0]), header, self._int(a[2]))

    def _prepare_recvmsg(self, a, op):
        header = self._msghdr(a[1], op, inbound=True)
        op.args = (self._fd(a[0]), header, self._int(a[2]))

    def _msghdr(self, expr: s.Expr, op: _Operation, inbound: bool) -> int:
        if self._is_pointer_literal(expr):
            return self._int(expr)
        if not isinstance(expr, s.Struct):
            raise _Failure(f"expected a msghdr struct but got {render(expr)}")
        header = structs.Msghdr()
        address = self._new(op, header)
        expected_flags: int | None = None
        expected_cmsgs: tuple[s.Expr, ...] | None = None
        for f in expr.fields:
            if f.name == "msg_name":
                if isinstance(f.value, s.EllipsisExpr) and inbound:
                    header.msg_name = self._new(op, structs.SockaddrStorage())
                    header.msg_namelen = structs.SOCKADDR_STORAGE_SIZE
                elif isinstance(f.value, s.EllipsisExpr) or isinstance(f.value, s.Struct):
                    where, size = self._sockaddr(
                        f.value, (self.env.remote_ip, self.env.connect_port), op)
                    header.msg_name, header.msg_namelen = where, size
                else:
                    header.msg_name = self._int(f.value)
            elif f.name == "msg_iov":
                where, count = self._iovec_array(f.value, op, inbound)
                if f.arg is not None and not isinstance(f.arg, s.EllipsisExpr):
                    declared = self._int(f.arg, "an iovec count")
                    if isinstance(f.value, s.ListExpr) and declared != count:
                        raise _Failure(f"msg_iov({declared}) lists {count} iovecs")
                    count = declared
                header.msg_iov, header.msg_iovlen = where, count
            elif f.name == "msg_control":
                if isinstance(f.value, s.ListExpr):
                    expected_cmsgs = f.value.items
                    data = self._control_messages(f.value.items, inbound)
                    buf = ctypes.create_string_buffer(data, max(len(data), 1))
                    header.msg_control = self._new(op, buf)
                    header.msg_controllen = len(data)
                else:
                    header.msg_control = self._int(f.value)
            elif f.name == "msg_flags":
                expected_flags = self._int(f.value)
                header.msg_flags = expected_flags
            else:
                raise _Failure(f"unknown msghdr field {f.name}")
        if inbound:
            op.check_outputs = lambda _result: self._compare_msghdr(header, expected_flags,
                                                                     expected_cmsgs)
        return address

    def _control_messages(self, items: tuple[s.Expr, ...], inbound: bool) -> bytes:
        """The control buffer: for recvmsg, room for what each listed message
        needs (zeros); for sendmsg, the messages themselves."""
        messages = []
        for index, item in enumerate(items):
            if not isinstance(item, s.Struct):
                raise _Failure(f"expected a cmsghdr struct but got {render(item)}")
            level, kind, data = item.get("cmsg_level"), item.get("cmsg_type"), item.get("cmsg_data")
            if level is None or kind is None or data is None:
                raise _Failure(f"cmsg {index} needs cmsg_level, cmsg_type and cmsg_data")
            payload = self._cmsg_payload(data.value)
            if inbound:
                payload = bytes(self._cmsg_room(data.value, len(payload)))
            messages.append(structs.ControlMessage(self._int(level.value), self._int(kind.value), payload))
        return structs.pack_cmsgs(messages)

    def _cmsg_room(self, value: s.Expr, size: int) -> int:
        # The kernel follows sock_extended_err with the offender's address.
        if isinstance(value, s.Struct) and any(f.name.startswith("ee_") for f in value.fields):
            return ctypes.sizeof(structs.SockExtendedErr) + ctypes.sizeof(structs.SockaddrIn6)
        return size

    def _cmsg_payload(self, value: s.Expr) -> bytes:
        if isinstance(value, s.Struct):
            names = {f.name for f in value.fields}
            if names and names <= {"scm_sec", "scm_nsec"}:
                stamp = structs.ScmTimestamping()
                sec, nsec = value.get("scm_sec"), value.get("scm_nsec")
                stamp.ts[0].tv_sec = self._int(sec.value) if sec else 0
                stamp.ts[0].tv_nsec = self._int(nsec.value) if nsec else 0
                return bytes(stamp)
            if names and all(n.startswith("ee_") for n in names):
                err = structs.SockExtendedErr()
                for f in value.fields:
                    if f.name not in structs.SOCK_EXTENDED_ERR_FIELDS:
                        raise _Failure(f"unknown sock_extended_err field {f.name}")
                    setattr(err, f.name, self._int(f.value))
                return bytes(err)
            raise _Failure(f"unknown cmsg_data struct {render(value)}")
        if isinstance(value, s.String):
            return _encode_string(value.value)
        return _int_bytes(self._int(value, "cmsg_data")).raw

    def _compare_msghdr(self, header: structs.Msghdr, expected_flags: int | None,
                        expected_cmsgs: tuple[s.Expr, ...] | None) -> str | None:
        if expected_flags is not None and header.msg_flags != expected_flags:
            return (f"Expected msg_flags {symbols.flag_names(expected_flags, symbols.MSG_FLAGS)} "
                    f"but got {symbols.flag_names(header.msg_flags & 0xFFFFFFFF, symbols.MSG_FLAGS)}")
        if expected_cmsgs is None:
            return None
        control = ctypes.string_at(header.msg_control, header.msg_controllen) \
            if header.msg_control and header.msg_controllen else b""
        live = structs.unpack_cmsgs(control)
        if len(live) != len(expected_cmsgs):
            found = ", ".join(f"level {m.level} type {m.type}" for m in live) or "none"
            return f"Expected {len(expected_cmsgs)} control messages but got {len(live)} ({found})"
        for index, (want, got) in enumerate(zip(expected_cmsgs, live)):
            message = self._compare_cmsg(index, want, got)
            if message is not None:
                return message
        return None

    def _compare_cmsg(self, index: int, want: s.Struct, got: structs.ControlMessage) -> str | None:
        level, kind = self._int(want.get("cmsg_level").value), self._int(want.get("cmsg_type").value)
        if got.level != level:
            return f"Bad cmsg_level in cmsg {index}: expected: {level} actual: {got.level}"
        if got.type != kind:
            return f"Bad cmsg_type in cmsg {index}: expected: {kind} actual: {got.type}"
        value = want.get("cmsg_data").value
        if isinstance(value, s.Struct) and {f.name for f in value.fields} <= {"scm_sec", "scm_nsec"}:
            return self._compare_timestamping(index, value, got.data)
        if isinstance(value, s.Struct):
            live = structs.from_bytes(structs.SockExtendedErr, got.data)
            for f in value.fields:
                expected, actual = self._int(f.value), getattr(live, f.name)
                if expected != actual:
                    return (f"Bad sock_extended_err {f.name} in cmsg {index}: "
                            f"expected: {expected} actual: {actual}")
            return None
        if isinstance(value, s.String):
            expected_bytes = _encode_string(value.value)
            if got.data[: len(expected_bytes)] != expected_bytes:
                return f"Bad cmsg_data in cmsg {index}: expected: {expected_bytes!r} actual: {got.data!r}"
            return None
        expected = self._int(value, "cmsg_data")
        actual = int.from_bytes(got.data[:4].ljust(4, b"\0"), "little", signed=True)
        if actual != expected:
            return f"Bad cmsg_data in cmsg {index}: expected: {expected} actual: {actual}"
        return None

    def _compare_timestamping(self, index: int, want: s.Struct, data: bytes) -> str | None:
        """The software stamp, in script time, within --tolerance_usecs."""
        live = structs.from_bytes(structs.ScmTimestamping, data)
        sec, nsec = want.get("scm_sec"), want.get("scm_nsec")
        expected_usecs = ((self._int(sec.value) if sec else 0) * 1_000_000
                          + (self._int(nsec.value) if nsec else 0) // 1000)
        actual_usecs = live.ts[0].tv_sec * 1_000_000 + live.ts[0].tv_nsec // 1000
        if actual_usecs and self._script_start is not None:
            actual_usecs -= round(self._script_start * 1_000_000)
        if abs(actual_usecs - expected_usecs) > self.env.tolerance_usecs:
            return (f"Bad timestamp 0 in scm_timestamping of cmsg {index}: expected "
                    f"{expected_usecs / 1e6:.6f} sec but got {actual_usecs / 1e6:.6f} sec; "
                    f"tolerance {self.env.tolerance_usecs / 1e6:.6f} sec")
        return None
