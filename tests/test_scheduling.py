"""A run's child sets itself up for timing: one CPU, the shortest slice, no
timer slack, a 0.1 ms interpreter switch interval; a process it starts inherits
the first three. And it starts on a tick."""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
import time

from tcptest.host.scheduling import SLICE_NSECS, SWITCH_INTERVAL_SECS, keep_on_time

_SYS_SCHED_GETATTR = 315  # x86_64


def _settings() -> dict:
    attr = ctypes.create_string_buffer(56)
    ctypes.CDLL(None).syscall(_SYS_SCHED_GETATTR, 0, attr, 56, 0)
    with open("/proc/self/timerslack_ns") as slack:
        return {"cpus": len(os.sched_getaffinity(0)), "slice": struct.unpack_from("Q", attr.raw, 24)[0],
                "slack": int(slack.read()), "switch": round(sys.getswitchinterval(), 6)}


def _in_a_child(body) -> dict:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return result


def test_the_process_is_kept_on_one_cpu_with_a_short_slice_and_no_slack():
    before = _in_a_child(_settings)
    after = _in_a_child(lambda: (keep_on_time(), _settings())[1])
    assert after == {"cpus": 1, "slice": SLICE_NSECS, "slack": 1, "switch": SWITCH_INTERVAL_SECS}
    assert before != after


def test_what_the_run_starts_inherits_them():
    def child_of_child():
        keep_on_time()
        program = ("import json, sys; sys.path.insert(0, %r); from test_scheduling import _settings; "
                   "print(json.dumps(_settings()))" % os.path.dirname(__file__))
        return json.loads(subprocess.run([sys.executable, "-c", program], capture_output=True,
                                         text=True, check=True).stdout)
    inherited = _in_a_child(child_of_child)
    assert inherited == {"cpus": 1, "slice": SLICE_NSECS, "slack": 1, "switch": inherited["switch"]}


def test_a_script_starts_on_a_kernel_tick():
    """The start is the time of a tick (a multiple of the tick period in
    CLOCK_MONOTONIC, where Linux puts them), returned just after it, and the
    coarse clock has moved (or should have) by then."""
    from tcptest.driver import CLOCK_MONOTONIC_COARSE, _just_after_a_kernel_tick

    period = time.clock_getres(CLOCK_MONOTONIC_COARSE)
    for _ in range(5):
        coarse_before = time.clock_gettime(CLOCK_MONOTONIC_COARSE)
        start = _just_after_a_kernel_tick()
        start_monotonic = start - (time.time() - time.monotonic())
        # Within 0.1 ms of a tick: reading two clocks one after the other, here
        # and in the function, can be interrupted (29 us seen on a busy machine).
        assert abs(start_monotonic - round(start_monotonic / period) * period) < 1e-4
        assert start_monotonic > coarse_before
        assert time.monotonic() - start_monotonic >= 0


def test_a_long_wait_sleeps_in_halves_and_the_last_stretch_in_one_go():
    """select() may end late by 0.1 % of its timeout: a long wait halves what
    is left until 2 ms remain, then sleeps to just before the deadline."""
    from tcptest.driver import HALVED_WAIT_USECS, SPIN_USECS, _sleep_usecs

    remaining, sleeps = 10_000_000, []
    while remaining > SPIN_USECS:
        sleeps.append(_sleep_usecs(remaining))
        remaining -= sleeps[-1]
    assert len(sleeps) <= 14 and sleeps[0] == 5_000_000
    assert sleeps[-1] <= HALVED_WAIT_USECS and remaining == SPIN_USECS
    assert all(sleep / 1000 < remaining_after for sleep, remaining_after in
               zip(sleeps, [10_000_000 - sum(sleeps[:i + 1]) for i in range(len(sleeps))]))
