"""The one error hierarchy. Every error a user sees is one of these.

`ScriptError` and `RunFailure` carry a `Location`, so the message can start with
`path:line:` as packetdrill's do.
"""

from __future__ import annotations

from .source import Location


class TcptestError(Exception):
    """Base of every error tcptest reports to a user."""

    # What the run noticed before it failed (unexpected segments, what
    # commands printed); set on the instance, which keeps it across a pickle.
    warnings: tuple[str, ...] = ()
    # What the run did up to the error (a tcptest.timeline.Timeline), set the same way.
    timeline = None
    # How late each of tcptest's own events was up to the error (engine.Lateness), the same way.
    lateness: tuple = ()


class ScriptError(TcptestError):
    """The script cannot be read or planned: a syntax or semantic error."""

    def __init__(self, loc: Location, message: str, source_line: str | None = None):
        super().__init__(loc, message, source_line)  # args match __init__: errors cross a pipe pickled
        self.loc = loc
        self.message = message
        self.source_line = source_line

    def __str__(self) -> str:
        text = f"{self.loc.path}:{self.loc.line}:{self.loc.col}: error: {self.message}"
        if self.source_line is not None:
            line = self.source_line.expandtabs(8)
            prefix = self.source_line[: max(self.loc.col - 1, 0)].expandtabs(8)
            text += f"\n{line}\n{' ' * len(prefix)}^"
        return text


class OptionError(TcptestError):
    """An option name or value is wrong (a usage error); where it came from
    (a script line, the command line) makes it a ScriptError or SetupError."""


class SetupError(TcptestError):
    """The host cannot run a script: no root, no TUN, no namespaces, a bad option."""


class RunFailure(TcptestError):
    """The kernel did something other than what the script says, at `loc`.

    `detail` holds extra lines (script packet vs actual packet, a traceback)."""

    def __init__(self, loc: Location | None, message: str, detail: str = ""):
        super().__init__(loc, message, detail)
        self.loc = loc
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        where = f"{self.loc.path}:{self.loc.line}: " if self.loc else ""
        text = f"{where}{self.message}"
        return f"{text}\n{self.detail}" if self.detail else text


class UpdateError(TcptestError):
    """`tcptest run --update` cannot make the script match the kernel (a line
    on the script's own side failed, say); the script is left as it was."""


class CaptureError(TcptestError):
    """`tcptest import` cannot read the capture, or it holds no TCP connection."""


class LateStart(RunFailure):
    """tcptest itself did not start one of its own events (an injection, a
    call, a command, a Python block) within the tolerance of its time: the
    machine was too busy, the kernel did nothing wrong."""
