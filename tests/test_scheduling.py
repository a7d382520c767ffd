"""A run's child sets itself up for timing: a CPU no other run has claimed,
the shortest slice, no timer slack, a 0.1 ms interpreter switch interval; a
process it starts inherits the first three. While the script's clock runs its
thread is SCHED_FIFO, commands are not, the blocking calls' thread is one step
above. And it starts on a tick."""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
import threading
import time

import pytest

from tcptest.host import scheduling
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


@pytest.fixture
def cpus(tmp_path, monkeypatch):
    """CPU directories of our own to claim, so that runs of other tests
    (which claim the real ones) cannot change what these see."""
    for cpu in os.sched_getaffinity(0):
        (tmp_path / f"cpu{cpu}").mkdir()
    monkeypatch.setattr(scheduling, "CPU_DIRECTORIES", str(tmp_path))
    return sorted(os.sched_getaffinity(0))


def test_the_process_is_kept_on_one_cpu_with_a_short_slice_and_no_slack(cpus):
    before = _in_a_child(_settings)
    after = _in_a_child(lambda: (keep_on_time(), _settings())[1])
    assert after == {"cpus": 1, "slice": SLICE_NSECS, "slack": 1, "switch": SWITCH_INTERVAL_SECS}
    assert before != after


def _holding_a_claim(claimed: list, release: threading.Event) -> int:
    """A child that claims a CPU, says which, and holds it until released."""
    read, write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, json.dumps(scheduling._claim_cpu(set(os.sched_getaffinity(0)))).encode())
        os.read(done_read, 1)
        os._exit(0)
    claimed.append(json.loads(os.read(read, 100)))
    threading.Thread(target=lambda: (release.wait(), os.write(done_write, b"x")), daemon=True).start()
    return pid


def test_runs_side_by_side_claim_different_cpus_and_the_claim_ends_with_the_run(cpus):
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to share out")
    claimed, release = [], threading.Event()
    children = [_holding_a_claim(claimed, release) for _ in range(len(cpus) + 1)]
    assert sorted(claimed[:-1]) == cpus  # each run its own CPU
    assert claimed[-1] is None  # every CPU taken: this one is not kept to any
    over = _in_a_child(lambda: (keep_on_time(), _settings())[1])
    assert over["cpus"] == len(cpus)
    release.set()
    for pid in children:
        os.waitpid(pid, 0)
    assert _in_a_child(lambda: scheduling._claim_cpu(set(cpus))) in cpus  # the kernel dropped them


def _policy() -> tuple[int, int]:
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


@pytest.mark.root("real-time priority needs CAP_SYS_NICE")
def test_while_the_clock_runs_the_thread_is_real_time_and_commands_are_not():
    def body():
        seen = {"before": _policy()}
        with scheduling.realtime():
            seen["during"] = _policy()
            worker = {}
            thread = threading.Thread(target=lambda: (scheduling.above_creator(), worker.update(p=_policy())))
            thread.start()
            thread.join()
            seen["worker"] = worker["p"]
            with scheduling.ordinary():
                seen["command"] = subprocess.run(
                    [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                    capture_output=True, text=True, check=True).stdout.strip()
            seen["after command"] = _policy()
        seen["after"] = _policy()
        seen["slice after"] = _settings()["slice"]
        return seen
    seen = _in_a_child(body)
    assert seen["before"] == [os.SCHED_OTHER, 0]
    assert seen["during"] == [os.SCHED_FIFO, scheduling.REALTIME_PRIORITY]
    assert seen["worker"] == [os.SCHED_FIFO, scheduling.REALTIME_PRIORITY + 1]
    assert seen["command"] == str(os.SCHED_OTHER)
    assert seen["after command"] == [os.SCHED_FIFO, scheduling.REALTIME_PRIORITY]
    assert seen["after"] == [os.SCHED_OTHER, 0]
    assert seen["slice after"] == SLICE_NSECS


def test_what_the_run_starts_inherits_them(cpus):
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

    def starts():
        """At the priority the driver has when it does this (in a child, to
        leave this process's alone): at ordinary priority, runs beside, of
        other tests, at real-time priority, can take the CPU between two
        clock reads."""
        seen = []
        for _ in range(5):
            with scheduling.realtime():
                coarse_before = time.clock_gettime(CLOCK_MONOTONIC_COARSE)
                start = _just_after_a_kernel_tick()
                start_monotonic = start - (time.time() - time.monotonic())
                seen.append((coarse_before, start_monotonic, time.monotonic()))
        return seen

    period = time.clock_getres(CLOCK_MONOTONIC_COARSE)
    for coarse_before, start_monotonic, after in _in_a_child(starts):
        # Within 0.1 ms of a tick: reading two clocks one after the other, here
        # and in the function, can be interrupted (29 us seen on a busy machine).
        assert abs(start_monotonic - round(start_monotonic / period) * period) < 1e-4
        assert start_monotonic > coarse_before
        assert after - start_monotonic >= 0


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


@pytest.mark.root("runs a script against the kernel: needs root")
def test_in_a_run_the_script_is_real_time_and_its_commands_are_not(tmp_path):
    """The driver's thread (where Python blocks run) is SCHED_FIFO while the
    clock runs; a timed command, and the init command before the clock, are
    not (`chrt -p $$` names the shell's policy)."""
    from kernel_runs import run_text

    verdict = run_text(tmp_path / "policy.pkt", """\
`chrt -p $$`
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 %{ import os; assert os.sched_getscheduler(0) == os.SCHED_FIFO, os.sched_getscheduler(0) }%
+0 `chrt -p $$`
+0 close(3) = 0
""")
    assert verdict.passed, verdict.error
    policies = [line.rsplit(": ", 1)[-1] for warning in verdict.warnings
                for line in warning.splitlines() if "scheduling policy" in line]
    assert policies == ["SCHED_OTHER", "SCHED_OTHER"], verdict.warnings
