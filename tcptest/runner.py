"""One script, one IP version, start to verdict.

The run happens in a forked child inside a network namespace of its own
(host.isolation), so that nothing it creates outlives it. What crosses back
is a picklable `Verdict`.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import engine as e
from .driver import Driver
from .errors import LateStart, SetupError, TcptestError
from .host import diag
from .host.commands import CommandRunner
from .host.isolation import run_isolated
from .host.scheduling import keep_on_time
from .host.syscalls import CallEnvironment, SyscallHost
from .host.tun import TunConfig, TunDevice
from .options import IP_VERSIONS, RunOptions, resolve
from .cache import read_script
from .pcap import PcapWriter, load_scapy_writer
from .plan import Plan, make_plan
from .pycode import PythonBlocks
from .script import Code, Script, Syscall
from .timeline import Timeline

# A run that goes on longer than this is stopped: the longest corpus script
# takes about 10 s; a hang must not hold a CI job forever.
RUN_TIMEOUT_SECS = 300.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one run of one script found."""

    path: str
    ip_version: str
    passed: bool
    error: str | None = None  # the first error, as the user sees it
    line: int | None = None  # its script line, when it has one
    warnings: tuple[str, ...] = ()
    duration: float = 0.0
    pcap: str | None = None
    timeline: Timeline | None = None  # what happened, in order (tcptest.timeline)
    # (line, kind, usecs) of each of tcptest's own events: how late it was.
    lateness: tuple[e.Lateness, ...] = ()
    late_start: bool = False  # failed because tcptest itself was late, not the kernel
    setup_failed: bool = False  # the host could not run it (`tcptest doctor` tells why)

    @property
    def name(self) -> str:
        return f"{Path(self.path).name}[{self.ip_version}]"

    @property
    def worst_lateness(self) -> e.Lateness | None:
        return max(self.lateness, key=lambda late: late.usecs, default=None)


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A script and the command-line options that override its own."""

    path: str
    command_line: tuple[tuple[str, str | None], ...] = ()
    pcap_dir: str | None = None


def script_ip_versions(script: Script) -> tuple[str, ...]:
    """The IP versions a script is meant for: the one its `--ip_version=` line
    names, else all three."""
    for line in script.options:
        if line.name == "ip_version" and line.value:
            return (line.value,)
    return IP_VERSIONS


def load(request: RunRequest) -> tuple[Script, RunOptions]:
    """Parse and resolve options, without running anything."""
    defines = dict(value.partition("=")[::2]
                   for name, value in request.command_line if name in ("define", "D") and value)
    script = read_script(request.path, defines)
    return script, resolve(script.options, request.command_line)


def run(request: RunRequest, trace: Callable[[str], None] | None = None) -> Verdict:
    """Run one script; every failure becomes a failed Verdict, never an exception."""
    started = time.monotonic()
    ip_version = dict(request.command_line).get("ip_version") or "ipv4"
    try:
        plan = make_plan(*load(request))  # what fails before the clock starts (also `--dry_run`)
        ip_version = plan.options.ip_version
        if plan.options.dry_run:
            return Verdict(request.path, ip_version, True, duration=time.monotonic() - started)
        pcap_path = _pcap_path(request, ip_version)
        if pcap_path:
            load_scapy_writer()
        outcome = run_isolated(lambda: _run_here(plan, pcap_path, trace),
                               timeout=RUN_TIMEOUT_SECS)
    except RuntimeError as err:  # a bug of ours in the child, with its traceback
        return Verdict(request.path, ip_version, False, error=f"internal error: {err}",
                       duration=time.monotonic() - started)
    except TcptestError as err:
        line = getattr(getattr(err, "loc", None), "line", None)
        pcap = _pcap_path(request, ip_version)
        return Verdict(request.path, ip_version, False, error=str(err), line=line,
                       warnings=err.warnings, duration=time.monotonic() - started,
                       pcap=pcap if pcap and os.path.exists(pcap) else None, timeline=err.timeline,
                       lateness=err.lateness, late_start=isinstance(err, LateStart),
                       setup_failed=isinstance(err, SetupError))
    return Verdict(request.path, ip_version, True, warnings=outcome.warnings,
                   duration=time.monotonic() - started, pcap=pcap_path,
                   timeline=outcome.timeline, lateness=outcome.lateness)


def _pcap_path(request: RunRequest, ip_version: str) -> str | None:
    if not request.pcap_dir:
        return None
    return str(Path(request.pcap_dir) / f"{Path(request.path).stem}.{ip_version}.pcap")


def _run_here(plan: Plan, pcap_path: str | None, trace) -> e.Outcome:
    """Inside the namespace: device, init command, the events, cleanup."""
    script, options = plan.script, plan.options
    # A full collection over everything the parent had (pytest, many parsed
    # scripts) can stall the run for tens of milliseconds, and a run is short:
    # the child leaves what it inherited alone and collects nothing.
    gc.freeze()
    gc.disable()
    keep_on_time()
    commands = CommandRunner(Path(script.path).parent)
    notes = Notes(commands)
    for text in options.init_scripts:
        notes.run(text, None, "--init_scripts")
    config = TunConfig(ip_version=options.ip_version, local_ip=options.live_local_ip,
                       remote_ip=options.live_remote_ip, gateway_ip=options.live_gateway_ip,
                       prefix_len=options.local_prefix_len, mtu=options.mtu,
                       remote_prefix_len=options.remote_prefix_len)
    pcap = PcapWriter(pcap_path) if pcap_path else None
    timeline = None
    try:
        with TunDevice(config) as tun:
            outcome = _run_events(plan, commands, tun, pcap, trace, notes)
        timeline = outcome.timeline
        return outcome
    except TcptestError as err:
        err.warnings = tuple(notes.lines)
        timeline = err.timeline
        raise
    finally:
        if pcap:
            pcap.close()
            if timeline is not None:
                _write_annotated_capture(pcap, timeline)
        commands.restore_file().unlink(missing_ok=True)


def _write_annotated_capture(pcap: PcapWriter, timeline) -> None:
    """The run's capture again as .pcapng, each packet commented with the
    script line that sent or expected it (see timeline.packet_comments)."""
    from .pcap import write_pcapng
    from .timeline import packet_comments

    records = pcap.records()
    notes = packet_comments(timeline, records)
    write_pcapng(Path(pcap.path).with_suffix(".pcapng"),
                 ((frame, timestamp, comments, outbound)
                  for (frame, timestamp), (comments, outbound) in zip(pcap.frames, notes)))


def _prepared_blocks(plan: Plan) -> PythonBlocks:
    """The script's `%{ }%` blocks compiled, and the socket dump they read
    done once, before the clock starts: the first time either is done costs
    up to a millisecond, which would make the events after a block late."""
    blocks = PythonBlocks()
    for event in plan.events:
        if isinstance(event.action, Code):
            blocks.prepare(event.action.text, event.loc)
    if blocks.prepared:
        diag.tcp_sockets()
    return blocks


class Notes:
    """The run's warnings in the order they arose: the engine's, and what the
    untimed commands printed (packetdrill lets it through to the terminal; a
    `tc` that fails inside a command that succeeds is seen only this way)."""

    def __init__(self, commands: CommandRunner) -> None:
        self.commands = commands
        self.lines: list[str] = []

    def run(self, text: str, loc, what: str) -> None:
        output = self.commands.run(text, loc, what)
        if output:
            self.lines.append(f"{loc or what}: command printed:\n{output}")


def _run_events(plan: Plan, commands: CommandRunner, tun: TunDevice,
                pcap: PcapWriter | None, trace, notes: Notes) -> e.Outcome:
    script, options = plan.script, plan.options
    init_ran = False
    calls = SyscallHost(CallEnvironment(
        ip_version=options.ip_version, local_ip=options.live_local_ip,
        remote_ip=options.live_remote_ip, bind_port=options.bind_port,
        connect_port=options.connect_port, tolerance_usecs=options.tolerance_usecs))
    engine = e.Engine(plan, trace)
    blocking_calls = any(isinstance(event.action, Syscall) and event.action.end_usecs is not None
                         for event in plan.events)
    try:
        if script.init:
            init_ran = True
            notes.run(script.init.command.text, script.init.loc, "init")
        driver = Driver(tun, calls, commands, _prepared_blocks(plan), pcap, blocking_calls)
        outcome = driver.run(engine.run())
    except TcptestError as err:
        notes.lines.extend(engine.warnings)
        err.timeline = engine.recorder.finish(err)
        err.lateness = tuple(engine.lateness)
        if init_ran and script.cleanup:
            try:
                notes.run(script.cleanup.command.text, script.cleanup.loc, "cleanup")
            except TcptestError:
                pass  # the first error is the one to report
        raise
    finally:
        calls.close_all()
    notes.lines.extend(outcome.warnings)
    if script.cleanup:
        notes.run(script.cleanup.command.text, script.cleanup.loc, "cleanup")
    return e.Outcome(tuple(notes.lines), outcome.lateness, outcome.timeline)
