"""The system calls a script may make, and the checks of a call that need no
kernel: one spec per call (how many arguments, whether it returns a new
descriptor), what makes a call impossible before the run (an unknown name or
symbol, a wrong count), and whether a result and errno are the script's.

`host/syscalls.py` makes the calls; it asks these questions of its results.
The checkers return problems (messages in packetdrill's words, empty when
none), as `match.compare` does for segments, so they are tested without root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from . import script as s
from . import symbols


@dataclass(frozen=True, slots=True)
class CallSpec:
    name: str
    min_args: int
    max_args: int
    returns_fd: bool = False  # a non-negative result is a new descriptor the script names


CALLS: dict[str, CallSpec] = {spec.name: spec for spec in (
    CallSpec("socket", 3, 3, returns_fd=True),
    CallSpec("bind", 3, 3),
    CallSpec("listen", 2, 2),
    CallSpec("accept", 3, 3, returns_fd=True),
    CallSpec("connect", 3, 3),
    CallSpec("read", 3, 3),
    CallSpec("write", 3, 3),
    CallSpec("readv", 3, 3),
    CallSpec("writev", 3, 3),
    CallSpec("recv", 4, 4),
    CallSpec("send", 4, 4),
    CallSpec("recvfrom", 6, 6),
    CallSpec("sendto", 6, 6),
    CallSpec("recvmsg", 3, 3),
    CallSpec("sendmsg", 3, 3),
    CallSpec("close", 1, 1),
    CallSpec("shutdown", 2, 2),
    CallSpec("getsockopt", 5, 5),
    CallSpec("setsockopt", 5, 5),
    CallSpec("fcntl", 2, 3),
    CallSpec("ioctl", 3, 3),
    CallSpec("poll", 3, 3),
    CallSpec("open", 2, 3, returns_fd=True),
    CallSpec("sendfile", 4, 4),
    CallSpec("epoll_create", 1, 1, returns_fd=True),
    CallSpec("epoll_ctl", 4, 4),
    CallSpec("epoll_wait", 4, 4),
    CallSpec("pipe", 1, 1),
    CallSpec("splice", 6, 6),
    CallSpec("cap_set", 3, 3),
)}


def call_problem(call: s.Syscall) -> str | None:
    """What makes a call impossible whatever its arguments' values."""
    spec = CALLS.get(call.name)
    if spec is None:
        return f"Unknown system call: '{call.name}'"
    if spec.min_args <= len(call.args) <= spec.max_args:
        return None
    count = str(spec.min_args) if spec.min_args == spec.max_args else f"{spec.min_args} or {spec.max_args}"
    return f"runtime error in {call.name} call: expected {count} arguments but got {len(call.args)}"


def static_problems(call: s.Syscall) -> list[str]:
    """Everything wrong with a call that shows before it runs: its name and
    argument count, and unknown symbols anywhere in it (packetdrill rejects
    these when it reads the script)."""
    problem = call_problem(call)
    if problem:
        return [problem]
    problems = [f"unknown symbol: '{name}'" for expr in (*call.args, call.result)
                for name in symbols_in(expr) if not symbols.is_known(name)]
    if call.errno is not None and call.errno not in symbols.ERRNO:
        problems.append(f"unknown errno symbol: '{call.errno}'")
    return problems


def result_problems(call: s.Syscall, expected: int, result: int, err: int) -> list[str]:
    """The call's return value and errno against the script's (`expected` is
    the script's result, evaluated); a call that makes a descriptor matches
    any non-negative result, which the script's number then names."""
    if CALLS[call.name].returns_fd and expected >= 0:
        if result < 0:
            return [f"Expected non-negative result but got {result} with errno {err} ({os.strerror(err)})"]
    elif result != expected:
        if result < 0:
            return [f"Expected result {expected} but got {result} with errno {err} ({os.strerror(err)})"]
        return [f"Expected result {expected} but got {result}"]
    if call.errno is None:
        return []
    want = symbols.ERRNO.get(call.errno)
    if want is None:
        return [f"unknown symbol: '{call.errno}'"]
    if result >= 0:
        return [f"Expected errno {call.errno} ({want}) but the call succeeded"]
    if err != want:
        return [f"Expected errno {call.errno} ({want}) but got {symbols.errno_name(err)} ({err}): {os.strerror(err)}"]
    return []


def symbols_in(expr: s.Expr) -> Iterator[str]:
    """The symbol names an expression uses, nested ones included."""
    if isinstance(expr, s.Symbol):
        yield expr.name
    elif isinstance(expr, s.BitOr):
        for operand in expr.operands:
            yield from symbols_in(operand)
    elif isinstance(expr, s.ListExpr):
        for item in expr.items:
            yield from symbols_in(item)
    elif isinstance(expr, s.Struct):
        for f in expr.fields:
            yield from symbols_in(f.value)
            if f.arg is not None:
                yield from symbols_in(f.arg)
    elif isinstance(expr, s.Call):
        for arg in expr.args:
            yield from symbols_in(arg)
