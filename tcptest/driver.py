"""The loop that joins the engine to the host: it answers the engine's requests
with real packets, calls and commands, and is the only reader of the clock.

Times handed to the engine are microseconds since the script's start, on
CLOCK_REALTIME, the clock of the kernel's capture timestamps.
"""

from __future__ import annotations

import math
import select
import time
from dataclasses import dataclass
from typing import Generator

from . import engine as e
from .pcap import PcapWriter
from .pycode import PythonBlocks
from .host import diag
from .host import scheduling
from .host.commands import CommandRunner
from .host.syscalls import SyscallHost
from .host.tun import TunDevice

# select() wakes up late by tens of microseconds (median 64 us, p99 0.25 ms
# here under load); only the last few before an event are spun. A longer spin
# costs more than it gains. At ordinary priority (as measured before runs had
# real-time priority, host/scheduling.py) it used up the short slice and
# handed the CPU to whatever else was runnable there for that one's whole
# slice (with a 300 us spin, a call at time 0 was seen to start 27 ms late
# beside a busy VM); at real-time priority it keeps everything else on the
# run's CPU from running, the kernel's workers for its own segments included.
SPIN_USECS = 50


@dataclass
class Driver:
    tun: TunDevice
    calls: SyscallHost
    commands: CommandRunner
    code: PythonBlocks
    pcap: PcapWriter | None = None
    blocking_calls: bool = False  # the script has some: their thread is started before the clock

    def run(self, steps: Generator[e.Request, e.Response, e.Outcome]) -> e.Outcome:
        with scheduling.realtime():
            if self.blocking_calls:
                self.calls.prepare_blocking_calls()  # its thread inherits the priority
            self.start = _just_after_a_kernel_tick()
            self.calls.set_script_start(self.start)
            if self.pcap:
                self.pcap.script_start = self.start  # for the annotated capture's times
            self.pending_call = None
            return e.drive(steps, self._answer)

    # ---------------------------------------------------------------- clock

    def now(self) -> int:
        return int((time.time() - self.start) * 1e6)

    def _usecs(self, timestamp: float) -> int:
        return int((timestamp - self.start) * 1e6)

    # ------------------------------------------------------------- requests

    def _answer(self, request: e.Request) -> e.Response:
        if isinstance(request, e.WaitFor):
            return self._wait(request.until)
        if isinstance(request, e.Inject):
            # Timed as it is handed over: the write also runs the kernel's
            # receive path, and whatever softirq work is pending (another
            # namespace being freed, say), which is not the script's lateness.
            sent_at = self.now()
            self.tun.send(request.frame, request.gso_size)
            ended = self.now()
            if self.pcap:
                self.pcap.write(request.frame, self.start + sent_at / 1e6)
            return e.Done(sent_at, ended=ended)
        if isinstance(request, e.StartCall):
            return self._start_call(request)
        if isinstance(request, e.AwaitCall):
            return self._await_call(request.until)
        if isinstance(request, e.RunCommand):
            at = self.now()
            with scheduling.ordinary():
                output = self.commands.run(request.text, request.loc)
            return e.Done(at, self.now(), output)
        if isinstance(request, e.RunCode):
            at = self.now()
            values = {}
            if self.calls.socket_under_test is not None:
                values.update(self.calls.tcp_info())
                values.update(self.calls.meminfo())
            values.update(diag.code_values(request.connection))
            self.code.run(request.text, request.loc, values)
            return e.Done(at, self.now())
        raise TypeError(f"unknown request {request!r}")

    def _wait(self, until: int | None) -> e.Response:
        while True:
            frame = self.tun.receive(0)
            if frame is not None:
                if self.pcap:
                    self.pcap.write(frame.data, frame.timestamp)
                return e.Captured(self._usecs(frame.timestamp), frame.data)
            if until is None:
                select.select([self.tun], [], [])
                continue
            remaining = until - self.now()
            if remaining <= 0:
                return e.Elapsed(self.now())
            if remaining > SPIN_USECS:
                select.select([self.tun], [], [], _sleep_usecs(remaining) / 1e6)

    def _start_call(self, request: e.StartCall) -> e.Response:
        at = self.now()
        pending = self.calls.begin(request.call, request.loc, request.blocking)
        if not request.blocking:
            return e.Done(at, result=pending.result, ended=self.now())
        if pending.done:
            return e.Done(at, self._usecs(self.calls.finish(pending, 0)), result=pending.result)
        self.pending_call = pending
        return e.Done(at)

    def _await_call(self, until: int | None) -> e.Response:
        pending = self.pending_call
        now = self.now()
        if not pending.done and until is not None and until <= now:
            return e.Elapsed(now)
        timeout = None if until is None else (until - now) / 1e6
        returned_at = self.calls.finish(pending, timeout)  # RunFailure if it does not return
        self.pending_call = None
        return e.Done(now, self._usecs(returned_at), result=pending.result)


# Above this, a wait is done in halves (see _sleep_usecs).
HALVED_WAIT_USECS = 2000


def _sleep_usecs(remaining: int) -> int:
    """How long to sleep in select() of `remaining` usecs to the deadline.
    select() sleeps with microsecond precision (poll() rounds up to ms), but
    the kernel lets it end late by 0.1 % of its timeout (its own slack,
    select_estimate_accuracy, whatever the timer slack): 0.3 ms for a 0.3 s
    sleep, 10 ms for 10 s. So a long wait sleeps half of what is left, again
    and again (a dozen wake-ups for ten seconds), and only the last 2 ms in
    one go, which ends within microseconds."""
    if remaining > HALVED_WAIT_USECS:
        return remaining // 2
    return remaining - SPIN_USECS


CLOCK_MONOTONIC_COARSE = 6  # advances on kernel ticks (jiffies): its resolution is the tick period
TICK_HANDLED_SECS = 0.0002  # the tick interrupt came 22-70 us after its time here
TICK_WAKE_LATE_SECS = 0.001  # woken later than this after the tick: preempted, take the next one


def _just_after_a_kernel_tick() -> float:
    """The time.time() of a kernel tick (jiffy) that has just happened.

    Kernel timers (delayed ACKs, retransmissions) fire on ticks; starting the
    script on one, as packetdrill does, keeps their firing times and the
    script's in step instead of up to a tick (4 ms at HZ=250) apart. Linux
    (5.10 on) puts its ticks on multiples of the tick period in
    CLOCK_MONOTONIC, so this sleeps until just after the next one has been
    handled. It does not spin, for the reasons of SPIN_USECS.
    Woken too late (preempted), it takes the next tick."""
    period = time.clock_getres(CLOCK_MONOTONIC_COARSE)
    while True:
        next_tick = (math.floor(time.monotonic() / period) + 1) * period
        time.sleep(max(0.0, next_tick + TICK_HANDLED_SECS - time.monotonic()))
        late = time.monotonic() - next_tick
        if late < TICK_WAKE_LATE_SECS:
            return time.time() - late
