"""Script + options -> Plan: what a run can know before its clock starts.

The engine runs a Plan, not a bare syntax tree: here the script is checked
against the run's options (calls and symbols tcptest can make, ICMP names of
the run's IP version) and what every event needs that does not depend on the
kernel is worked out once (ICMP numbers, whether the script names ports, the
next outbound line's timing), so nothing of it is redone, or found wrong,
while the run is under way. Errors are ScriptErrors at their line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import calls, wire
from . import script as s
from .errors import ScriptError
from .options import RunOptions


@dataclass(frozen=True, slots=True)
class Plan:
    script: s.Script
    options: RunOptions
    wire_version: int  # 4 or 6: the IP version on tun0 (ipv4-mapped-ipv6 runs IPv4 there)
    # A script that names ports drives several connections at once: frames of
    # one are kept while lines about another are matched.
    names_ports: bool
    icmp_numbers: Mapping[int, tuple[int, int]]  # event index -> (type, code), for ICMP lines
    # Per event index: whether the first outbound line from there on may come
    # at any time in a window (`*` or a range), so an early frame may be its.
    next_outbound_is_flexible: tuple[bool, ...]

    @property
    def events(self) -> tuple[s.Event, ...]:
        return self.script.events


def make_plan(script: s.Script, options: RunOptions) -> Plan:
    """Check and prepare `script` for a run with `options`; raises ScriptError."""
    wire_version = 6 if options.ip_version == "ipv6" else 4
    icmp_numbers = {}
    for index, event in enumerate(script.events):
        action = event.action
        if isinstance(action, s.Syscall):
            problems = calls.static_problems(action)
            if problems:
                raise ScriptError(event.loc, problems[0])
        elif isinstance(action, s.Packet) and isinstance(action.body, s.IcmpMessage):
            icmp_numbers[index] = _icmp_numbers(event, action.body, wire_version)
    return Plan(script, options, wire_version, _names_ports(script), icmp_numbers,
                _next_outbound_is_flexible(script.events))


def _icmp_numbers(event: s.Event, body: s.IcmpMessage, wire_version: int) -> tuple[int, int]:
    try:
        return wire.icmp_type_code(wire_version, body.type_name, body.code_name)
    except wire.UnknownIcmpName as err:
        raise ScriptError(event.loc, str(err)) from None


def _names_ports(script: s.Script) -> bool:
    return any(isinstance(event.action, s.Packet) and isinstance(event.action.body, s.TcpSegment)
               and (event.action.body.src_port is not None or event.action.body.dst_port is not None)
               for event in script.events)


def _next_outbound_is_flexible(events: tuple[s.Event, ...]) -> tuple[bool, ...]:
    """One backward pass instead of a forward scan per captured frame."""
    flexible = [False] * len(events)
    following = False
    for index in range(len(events) - 1, -1, -1):
        action = events[index].action
        if isinstance(action, s.Packet) and action.direction == ">":
            following = isinstance(events[index].time, (s.AnyTime, s.TimeRange))
        flexible[index] = following
    return tuple(flexible)
