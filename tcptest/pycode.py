"""`%{ python }%` blocks: run at their event, with the socket's TCP_INFO.

packetdrill runs every block after the script ends, from snapshots; running
each block when its event comes means an assertion fails at its own time and
line, and later events are not run on a connection already known to be wrong.
All blocks of a script share one namespace, as in packetdrill.
"""

from __future__ import annotations

import textwrap
import traceback
from typing import Mapping

from .errors import RunFailure
from .source import Location

# The kernel's TCP states (include/net/tcp_states.h) and congestion-avoidance
# states, and TCPI_OPT_* bits (include/uapi/linux/tcp.h), as packetdrill exports them.
TCP_STATES = {
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12,
}
CONSTANTS = {
    **TCP_STATES,
    "TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4,
    "TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
    "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32, "TCPI_OPT_USEC_TS": 64,
    "TCPI_OPT_TFO_CHILD": 128,
}


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
