"""`%{ python }%` blocks: run at their event, with the socket's TCP_INFO and
the socket diagnostics of host/diag.py (conn_state, sockets, listen_queue).

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
import types
from typing import Mapping

from . import symbols
from .symbols import TCP_STATES, CaState, TcpState
from .errors import RunFailure
from .source import Location


# Every name a block starts with; TCPI_OPT_* stay plain ints (they are bits).
CONSTANTS: dict[str, int] = {**symbols.TCP_INFO_CONSTANTS, **TCP_STATES, **CaState.__members__}
# TCP_INFO fields that hold one of the above, bound as the named type.
_NAMED_FIELDS = {"tcpi_state": TcpState, "tcpi_ca_state": CaState}


class PythonBlocks:
    """The namespace all of a script's blocks share."""

    def __init__(self, extra: Mapping[str, object] | None = None):
        self.namespace: dict[str, object] = {"__name__": "__tcptest_script__", **CONSTANTS}
        if extra:
            self.namespace.update(extra)
        self._compiled: dict[tuple[str, Location], tuple[str, types.CodeType | SyntaxError]] = {}

    def prepare(self, code: str, loc: Location) -> None:
        """Compile a block ahead of its time: compiling takes a few tenths of
        a millisecond, which would make what follows it late."""
        key = (code, loc)
        if key in self._compiled:
            return
        dedented = textwrap.dedent(code)
        source = dedented.lstrip("\n")
        first_line = loc.line + len(dedented) - len(source)  # the block may start below `%{`
        # packetdrill appends more code after each block, so a last line ending
        # in a continuation backslash is harmless there; drop it here.
        source = source.rstrip().removesuffix("\\")
        # Line numbers in tracebacks point into the script.
        padded = "\n" * max(first_line - 1, 0) + source
        try:
            self._compiled[key] = (padded, compile(padded, loc.path, "exec"))
        except SyntaxError as exc:  # reported when the block's time comes, as any failure
            self._compiled[key] = (padded, exc)

    @property
    def prepared(self) -> bool:
        return bool(self._compiled)

    def run(self, code: str, loc: Location, values: Mapping[str, object]) -> None:
        """Run one block with `values` (tcpi_* and any other live names) bound.
        A failure is a RunFailure at the block's line that failed, naming the
        exception and, for an assertion, the values of the names it tested."""
        self.namespace.update(values)
        for name, named in _NAMED_FIELDS.items():
            if name in values:
                self.namespace[name] = _named(named, values[name])
        self.prepare(code, loc)
        padded, compiled = self._compiled[(code, loc)]
        try:
            if isinstance(compiled, SyntaxError):
                raise compiled
            exec(compiled, self.namespace)  # noqa: S102 - running the user's own check is the point
        except Exception as exc:  # any failure of the user's code is the script failing
            raise self._failure(exc, loc, padded) from None

    def _failure(self, exc: Exception, loc: Location, padded: str) -> RunFailure:
        line = _failing_line(exc, loc)
        summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
        tested = _tested_values(padded, line, self.namespace) if isinstance(exc, AssertionError) else []
        if tested and not str(exc):
            summary += f" ({', '.join(tested)})"
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        detail = "".join(text for text in lines if "tcptest/pycode.py" not in text).rstrip()
        if tested:
            detail += "\nvalues tested:\n" + "\n".join(f"  {text}" for text in tested)
        return RunFailure(Location(loc.path, line), f"error in Python code: {summary}", detail)


def _named(named: type[enum.IntEnum], value: object) -> object:
    try:
        return named(value)
    except ValueError:  # a number newer than the table: keep it as it is
        return value


def _failing_line(exc: Exception, loc: Location) -> int:
    """The script line of the statement that raised (the innermost frame of
    the block's own code), else the block's line."""
    if isinstance(exc, SyntaxError) and exc.filename == loc.path and exc.lineno:
        return exc.lineno
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == loc.path]
    return frames[-1].lineno if frames and frames[-1].lineno else loc.line


def _tested_values(padded: str, line: int, namespace: Mapping[str, object]) -> list[str]:
    """`name = value` for the variables the failing statement reads, leaving
    out the constants (TCP_TIME_WAIT says nothing the script does not)."""
    try:
        tree = ast.parse(padded)
    except SyntaxError:
        return []
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)
                  and not hasattr(node, "body")  # the simple statement, not the `if` around it
                  and node.lineno <= line <= (node.end_lineno or node.lineno)]
    statement = statements[-1] if statements else None
    if statement is None:
        return []
    names = dict.fromkeys(node.id for node in ast.walk(statement) if isinstance(node, ast.Name))
    return [f"{name} = {namespace[name]!r}" for name in names
            if name in namespace and CONSTANTS.get(name, _MISSING) is not namespace[name]
            and not callable(namespace[name]) and not isinstance(namespace[name], types.ModuleType)]


_MISSING = object()
