"""Keeping a run on time: a CPU of its own, a short scheduler slice, no
timer slack, a quick hand-over of the interpreter between threads, and
real-time priority while the script's clock runs.

What made tcptest's own events a whole tick (4 ms at HZ=250) late was the
CPU: the run's thread was ready but waited on the run queue (3.9 ms in
/proc/thread-self/schedstat) behind another task, most often the start-up of
another run's Python process, which the short slice alone did not preempt.
With two such start-ups looping beside 80 runs of 8 corpus scripts
(benchmarks/lateness_under_load.py), 27 to 36 of ~930 events were more than
3.5 ms late (max 15-24 ms) and 15 to 21 runs failed on tcptest's lateness,
in each of 3 tries; with SCHED_FIFO while the clock runs, in 6 tries, 0 or 1
events (max 1.4-5.9 ms) and one run failed once."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import struct
import sys
from collections.abc import Iterator

_PR_SET_TIMERSLACK = 29
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "arm64": 274}.get(os.uname().machine)
_SCHED_OTHER = 0
# struct sched_attr: size, policy, flags, nice, priority, runtime, deadline,
# period, util_min, util_max. For SCHED_OTHER, `runtime` is the slice.
_SCHED_ATTR = struct.Struct("IIQiIQQQII")
SLICE_NSECS = 100_000  # the kernel's smallest

_libc = ctypes.CDLL(None, use_errno=True)


def keep_on_time() -> None:
    """Set up the calling process (a run's child, before it starts anything)
    for timing; processes it starts later inherit the first three settings."""
    _keep_to_one_cpu()
    _shorten_slice()
    _tighten_timer_slack()
    _hand_over_the_interpreter_quickly()


def _keep_to_one_cpu() -> None:
    """Stay on one CPU that no other run has, when there is one.
    The kernel's work for the run (segments in, timers) then happens there
    too: a delayed ACK due after 40 ms left a tick (4 ms) late in 14 of 100
    runs of the kernel's tcp_basic_server.pkt (ipv6) unpinned, in 0 of 100
    pinned. But two runs kept to one CPU wait for each other while the other
    idles, and at real-time priority neither preempts the other: the kernel's
    runner starts runs two at a time, and each used to stay where it
    started, often the same CPU. So a run claims a free CPU (_claim_cpu);
    with every CPU claimed (more runs than CPUs) it is kept nowhere, and the
    scheduler moves it to where there is room."""
    allowed = os.sched_getaffinity(0)
    if len(allowed) == 1:
        return
    cpu = _claim_cpu(allowed)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


CPU_DIRECTORIES = "/sys/devices/system/cpu"  # cpu0, cpu1, ...: what a run claims
# The claims (directory fds), open for the process's life: the kernel drops
# them when the run's process ends, however it ends.
_claims: list[int] = []


def _claim_cpu(allowed: set[int]) -> int | None:
    """A CPU of `allowed` that no other tcptest run holds, taken: an
    exclusive flock on the CPU's directory in sysfs, which every process
    sees whatever its namespaces, and which leaves nothing behind. The CPU
    the run is on is tried first."""
    current = _libc.sched_getcpu()
    for cpu in sorted(allowed, key=lambda cpu: (cpu != current, cpu)):
        try:
            fd = os.open(f"{CPU_DIRECTORIES}/cpu{cpu}", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _claims.append(fd)
        return cpu
    return None


def _shorten_slice() -> None:
    """Ask EEVDF (Linux 6.12+) for the shortest slice. A task that wakes with a
    short slice preempts a busy one at once instead of at its slice's end,
    which at HZ=250 can be a whole 4 ms tick: the other run beside us, a
    command, a kernel worker. Not a priority: the CPU is shared as before.
    An older kernel refuses (EINVAL) and the run goes on without it."""
    if _SYS_SCHED_SETATTR is None:
        return
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    attr = _SCHED_ATTR.pack(_SCHED_ATTR.size, _SCHED_OTHER, 0, nice, 0, SLICE_NSECS, 0, 0, 0, 0)
    _libc.syscall(_SYS_SCHED_SETATTR, 0, ctypes.c_char_p(attr), 0)


def _tighten_timer_slack() -> None:
    """Let timed sleeps end when asked, not up to 50 us later (the default
    slack), so that injections are on time."""
    _libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


# How long a thread may hold the interpreter while another waits for it.
SWITCH_INTERVAL_SECS = 0.0001


def _hand_over_the_interpreter_quickly() -> None:
    """A blocking call's worker thread and the driver share the interpreter
    lock; when both want it, Python hands it over only every switch interval,
    5 ms by default: more than a 4 ms tick, so the driver's next injection
    could be a whole tolerance late waiting for the worker. 0.1 ms instead."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECS)


REALTIME_PRIORITY = 1  # the lowest: kernel threads that use SCHED_FIFO stay above


@contextlib.contextmanager
def realtime() -> Iterator[None]:
    """SCHED_FIFO for the calling thread, and the threads it starts, while
    the script's clock runs: when a sleep ends or a segment comes, the
    thread runs at once instead of after another task's slice. It mostly
    sleeps, so what it takes from others is small; commands are run at
    ordinary priority (`ordinary`). Without the privilege (EPERM) the run
    goes on without it."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        _back_to_ordinary()


def _back_to_ordinary() -> None:
    """SCHED_OTHER again, with the short slice where the kernel has it."""
    _shorten_slice()
    if os.sched_getscheduler(0) != os.SCHED_OTHER:  # a kernel without slices refused it
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


@contextlib.contextmanager
def ordinary() -> Iterator[None]:
    """SCHED_OTHER for the calling thread for a while, so that what it starts
    then (a command's processes) does not inherit real-time priority."""
    if os.sched_getscheduler(0) != os.SCHED_FIFO:
        yield
        return
    priority = os.sched_getparam(0)
    _back_to_ordinary()
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_FIFO, priority)


def above_creator() -> None:
    """For a blocking call's worker thread: one real-time step above the
    engine's thread it inherited its policy from, so that the moment a call
    returns is taken at once, not after the engine's thread next sleeps
    (threads of one priority do not preempt each other)."""
    if os.sched_getscheduler(0) == os.SCHED_FIFO:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(os.sched_getparam(0).sched_priority + 1))
