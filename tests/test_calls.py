"""Checks of a script's system calls that need no kernel: what makes a call
impossible before the run, and whether a result and errno are the script's."""

from __future__ import annotations

import pytest

from tcptest import calls
from tcptest import script as s


def expr(value):
    if value is ...:
        return s.EllipsisExpr()
    if isinstance(value, int):
        return s.Integer(value)
    if isinstance(value, list):
        return s.ListExpr(tuple(expr(v) for v in value))
    return s.Symbol(value)


def call(name, *args, result=0, errno=None) -> s.Syscall:
    return s.Syscall(name, tuple(expr(a) for a in args), expr(result), errno)


@pytest.mark.parametrize("bad, problems", [
    (call("frob"), ["Unknown system call: 'frob'"]),
    (call("listen", 3), ["runtime error in listen call: expected 2 arguments but got 1"]),
    (call("fcntl", 3), ["runtime error in fcntl call: expected 2 or 3 arguments but got 1"]),
    (call("setsockopt", 3, "SOL_SOCKET", "SO_BOGUS", [1], 4), ["unknown symbol: 'SO_BOGUS'"]),
    (call("socket", ..., "SOCK_STREEM", "IPPROTO_TCB", result=3),
     ["unknown symbol: 'SOCK_STREEM'", "unknown symbol: 'IPPROTO_TCB'"]),
    (call("read", 3, ..., 5, result=-1, errno="EBOGUS"), ["unknown errno symbol: 'EBOGUS'"]),
    (call("setsockopt", 3, "SOL_SOCKET", "SO_ZEROCOPY", [1], 4), []),
])
def test_static_problems(bad, problems):
    assert calls.static_problems(bad) == problems


EPIPE, EAGAIN = 32, 11


@pytest.mark.parametrize("checked, expected, result, err, problems", [
    (call("write", 4, ..., 10, result=10), 10, 10, 0, []),
    (call("write", 4, ..., 10, result=10), 10, -1, EPIPE,
     ["Expected result 10 but got -1 with errno 32 (Broken pipe)"]),
    (call("write", 4, ..., 10, result=10), 10, 5, 0, ["Expected result 10 but got 5"]),
    # a call that makes a descriptor: any non-negative number, the script names it
    (call("socket", ..., "SOCK_STREAM", "IPPROTO_TCP", result=3), 3, 7, 0, []),
    (call("accept", 3, ..., ..., result=4), 4, -1, EAGAIN,
     ["Expected non-negative result but got -1 with errno 11 (Resource temporarily unavailable)"]),
    (call("read", 4, ..., 10, result=-1, errno="EAGAIN"), -1, -1, EAGAIN, []),
    (call("read", 4, ..., 10, result=-1, errno="EAGAIN"), -1, -1, EPIPE,
     ["Expected errno EAGAIN (11) but got EPIPE (32): Broken pipe"]),
    (call("close", 4, result=0, errno="EBADF"), 0, 0, 0, ["Expected errno EBADF (9) but the call succeeded"]),
])
def test_result_problems(checked, expected, result, err, problems):
    assert calls.result_problems(checked, expected, result, err) == problems
