"""Keeping a run on time: one CPU, a short scheduler slice, no timer slack,
and a quick hand-over of the interpreter between threads.

No priority boost: with SCHED_FIFO, and even at nice -20, injected segments of
*other* runs beside it were lost for seconds (4 of 20, and 1 of 20, IPv6
handshakes beside a corpus run; 0 of 50 at normal priority)."""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

_PR_SET_TIMERSLACK = 29
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "arm64": 274}.get(platform.machine())
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
    """Stay on the CPU the run starts on (unless it was given one already).
    The kernel's work for the run (segments in, timers) then happens there
    too: a delayed ACK due after 40 ms left a tick (4 ms) late in 14 of 100
    runs of the kernel's tcp_basic_server.pkt (ipv6) unpinned, in 0 of 100
    pinned (1 of 50 in another try). Two at a time, over the whole corpus
    (-j 2, three times each way), 8 runs failed on timing pinned so, 11 not.
    Giving each of the two a CPU of its own instead made runs wait up to 19 ms
    for their CPU, while the other CPU was free."""
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {_libc.sched_getcpu()})


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
