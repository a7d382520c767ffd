"""`%{ python }%` blocks: run at their event, with the socket's TCP_INFO.

packetdrill runs every block after the script ends, from snapshots; running
each block when its event comes means an assertion fails at its own time and
line, and later events are not run on a connection already known to be wrong.
All blocks of a script share one namespace, as in packetdrill.
"""

from __future__ import annotations

import ast
import enum
import textwrap
import traceback
from typing import Mapping

from . import symbols
from .errors import RunFailure
from .source import Location

class _NamedInt(enum.IntEnum):
    """An int that prints as its constant's name, so that
    `assert conn_state == TCP_TIME_WAIT, conn_state` fails with
    `AssertionError: TCP_CLOSE` rather than `7`; it still compares, hashes
    and computes as the plain number old scripts expect."""

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return self.name if not spec else format(int(self), spec)


# The kernel's TCP states (include/net/tcp_states.h) and congestion-avoidance
# states (include/uapi/linux/tcp.h); their names live in symbols.py.
TcpState = _NamedInt("TcpState", {name: value for name, value in symbols.TCP_INFO_CONSTANTS.items()
                                  if name.startswith("TCP_") and not name.startswith("TCP_CA_")})
CaState = _NamedInt("CaState", {name: value for name, value in symbols.TCP_INFO_CONSTANTS.items()
                                if name.startswith("TCP_CA_")})

TCP_STATES: dict[str, TcpState] = dict(TcpState.__members__)
CONSTANTS: dict[str, int] = {
    **symbols.TCP_INFO_CONSTANTS, **TCP_STATES, **CaState.__members__,
}
# TCP_INFO fields that hold one of the above, bound as the named type.
_NAMED_FIELDS = {"tcpi_state": TcpState, "tcpi_ca_state": CaState}


class PythonBlocks:
    """The namespace all of a script's blocks share."""

    def __init__(self, extra: Mapping[str, object] | None = None):
        self.namespace: dict[str, object] = {"__name__": "__tcptest_script__", **CONSTANTS}
        if extra:
            self.namespace.update(extra)

    def run(self, code: str, loc: Location, values: Mapping[str, object]) -> None:
        """Run one block with `values` (tcpi_* and any other live names) bound."""
        self.namespace.update(values)
        source = textwrap.dedent(code).strip("\n").rstrip()
        # packetdrill appends more code after each block, so a last line ending
        # in a continuation backslash is harmless there; drop it here.
        source = source.removesuffix("\\")
        # Line numbers in tracebacks point into the script.
        padded = "\n" * max(loc.line - 1, 0) + source
        try:
            compiled = compile(padded, loc.path, "exec")
            exec(compiled, self.namespace)  # noqa: S102 - running the user's own check is the point
        except Exception as exc:  # any failure of the user's code is the script failing
            lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
            detail = "".join(line for line in lines if "tcptest/pycode.py" not in line).rstrip()
            raise RunFailure(loc, "error in Python code", detail) from None
