"""Run a function in a forked child inside its own network namespace.

Why a process and not just a namespace: everything a run creates (tun0, sockets,
processes started by backtick commands) lives in or under one child process,
which leads its own process group. When the run ends — result, exception, crash,
timeout or Ctrl-C in the parent — the parent SIGKILLs that whole group, and the
anonymous namespace goes away with its last process. Nothing is left to clean up.

Fork-safety assumptions:
- The parent has already imported everything the child needs, so the child does
  no heavy work before running `func`.
- Only the forking thread exists in the child. Locks that other parent threads
  held at the moment of the fork stay held in the child; `func` must not depend
  on them (e.g. a `print` racing with another thread's print on the same
  stream). Python reinitialises its own import and logging locks.
- The child never returns into the caller's code: it leaves through
  `os._exit`, so atexit handlers, finalizers and pytest machinery run only in
  the parent.
- Calling `run_isolated` from several threads at once is safe: each call
  watches its own child through a pidfd, so pipe ends duplicated into another
  thread's child cannot hold up a result.
- The child leads its own process group, so a Ctrl-C at the terminal reaches
  only the parent, which then kills the group and re-raises.
- Processes that leave the process group on purpose (setsid, setpgid) escape
  the final SIGKILL; backtick commands started with `&` do not.
- If the parent itself is killed outright (SIGKILL), the child dies with it
  (PR_SET_PDEATHSIG), but processes the child started live on until they end.
- A child past its timeout is asked where it is before it is killed: on
  SIGUSR2 faulthandler writes its threads' stacks to a second pipe, and the
  time-out's message carries them.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import NoReturn, TypeVar, cast

from ..errors import RunFailure, SetupError, TcptestError
from .namespace import enter_new_network_namespace, libc

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_LENGTH = struct.Struct("=Q")
_STACKS_SIGNAL = signal.SIGUSR2
# How long a child past its timeout has to write its stacks.
STACKS_WAIT_SECS = 1.0


def run_isolated(func: Callable[[], T], *, timeout: float | None = None) -> T:
    """Call `func()` in a forked child that is alone in a new network namespace
    and return what it returned, or raise what it raised.

    tcptest errors come back as themselves; any other exception becomes a
    RuntimeError carrying the child's traceback. A child that dies without an
    answer, or outlives `timeout` seconds, is a RunFailure. Whatever happens,
    the child and every process it started are killed before this returns.
    """
    _flush_standard_streams()
    try:
        read_fd, write_fd = os.pipe()
        stacks_read, stacks_write = os.pipe()
    except OSError as exc:
        raise SetupError(f"cannot start an isolated run: {exc.strerror}") from exc
    parent_pid = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (read_fd, write_fd, stacks_read, stacks_write):
            os.close(fd)
        raise SetupError(f"cannot start an isolated run: fork failed: {exc.strerror}") from exc
    if pid == 0:
        os.close(stacks_read)
        faulthandler.register(_STACKS_SIGNAL, file=stacks_write, all_threads=True)
        _child(func, read_fd, write_fd, parent_pid)
    os.close(write_fd)
    os.close(stacks_write)
    try:
        # Also set by the child: whichever runs first, the group exists before
        # anyone can need to kill it.
        os.setpgid(pid, pid)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        message = _wait_for_child(pid, read_fd, timeout)
    except _TimedOut:
        raise RunFailure(None, f"the isolated run did not finish within {timeout:g} s and was killed",
                         _stacks_of(pid, stacks_read)) from None
    finally:
        os.close(read_fd)
        os.close(stacks_read)
        status = _kill_group_and_reap(pid)
    return cast(T, _outcome(message, status))


def _child(func: Callable[[], object], read_fd: int, write_fd: int, parent_pid: int) -> NoReturn:
    """The child's whole life: run `func` in a new namespace, send the outcome
    up the pipe, exit without unwinding into the parent's code."""
    exit_status = 0
    try:
        os.close(read_fd)
        os.setpgid(0, 0)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
        try:
            enter_new_network_namespace()
            message = _encode_value(func())
        except BaseException as exc:  # every outcome goes to the parent
            message = _encode_exception(exc)
        _write_all(write_fd, _LENGTH.pack(len(message)) + message)
        _flush_standard_streams()
    except BaseException:  # never return into the caller's stack
        exit_status = 1
    finally:
        os._exit(exit_status)


def _encode_value(value: object) -> bytes:
    try:
        return pickle.dumps(("value", value))
    except Exception as exc:  # any pickling failure
        return pickle.dumps(
            ("foreign", f"the isolated run returned a value that cannot be sent back: {exc!r}")
        )


def _encode_exception(exc: BaseException) -> bytes:
    """tcptest errors travel as (class, args, attributes): their constructors
    take more than the message, so plain exception pickling cannot rebuild
    them. Anything else travels as its traceback text."""
    if isinstance(exc, TcptestError):
        try:
            return pickle.dumps(("error", type(exc), exc.args, vars(exc)))
        except Exception:  # fall back to the traceback text
            pass
    text = "".join(traceback.format_exception(exc))
    return pickle.dumps(("foreign", f"the isolated run raised an exception:\n{text}"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _wait_for_child(pid: int, read_fd: int, timeout: float | None) -> bytes:
    """Collect what the child writes until it exits; return the raw bytes.

    Exit is detected through a pidfd, not through end-of-file on the pipe: a
    copy of the write end may live on in a process forked meanwhile by another
    thread."""
    deadline = None if timeout is None else time.monotonic() + timeout
    os.set_blocking(read_fd, False)
    pidfd = os.pidfd_open(pid)
    received = bytearray()
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(read_fd, select.POLLIN)
        while True:
            if deadline is None:
                wait_ms = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _TimedOut
                wait_ms = max(1, int(remaining * 1000))
            ready = dict(poller.poll(wait_ms))
            if read_fd in ready and not _read_available(read_fd, received):
                poller.unregister(read_fd)
            if pidfd in ready:
                _read_available(read_fd, received)
                return bytes(received)
    finally:
        os.close(pidfd)


class _TimedOut(Exception):
    """The child outlived its timeout (run_isolated makes the RunFailure)."""


def _stacks_of(pid: int, fd: int) -> str:
    """Where a child that outlived its timeout is: its threads' stacks, as its
    faulthandler writes them on SIGUSR2 (empty if it writes nothing in time)."""
    try:
        os.kill(pid, _STACKS_SIGNAL)
    except ProcessLookupError:
        return ""
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    text = bytearray()
    deadline = time.monotonic() + STACKS_WAIT_SECS
    # Read until the dump has stopped coming (100 ms without more) or the wait is over.
    while (remaining := deadline - time.monotonic()) > 0:
        if not poller.poll(max(1, int(min(remaining, 0.1 if text else remaining) * 1000))):
            if text:
                break
            continue
        if not _read_available(fd, text):
            break
    stacks = text.decode(errors="replace").strip()
    return f"where its threads were (most recent call first):\n{stacks}" if stacks else ""


def _read_available(fd: int, into: bytearray) -> bool:
    """Append what can be read without blocking; False once at end of file."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        into += chunk


def _kill_group_and_reap(pid: int) -> int:
    """SIGKILL the child's process group, then reap the child; its wait status.

    The child is not reaped before the kill: while it is unreaped (even as a
    zombie) its pid, and so the group id, cannot be reused by another process."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def _outcome(message: bytes, status: int) -> object:
    if len(message) < _LENGTH.size or len(message) != _LENGTH.size + _LENGTH.unpack_from(message)[0]:
        raise RunFailure(None, f"the isolated run {_describe_death(status)} without sending a result")
    kind, *payload = pickle.loads(message[_LENGTH.size :])
    if kind == "value":
        return payload[0]
    if kind == "error":
        cls, args, attributes = payload
        error = cls.__new__(cls)
        error.args = args
        error.__dict__.update(attributes)
        raise error
    raise RuntimeError(payload[0])


def _describe_death(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _flush_standard_streams() -> None:
    """Flush Python's buffers so that text written before a fork is not written
    twice, and text the child wrote is not lost at os._exit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
