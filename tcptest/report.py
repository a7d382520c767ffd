"""Verdicts as people and CI systems read them: text with the script excerpt
around the failing line, TAP, KTAP (as the kernel's selftests print it) and JSON.

Only formatting lives here: everything is a function of `Verdict`s, so the CLI
and the pytest plugin show a failure the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from . import timeline
from .source import excerpt, read_source

if TYPE_CHECKING:
    from .runner import Verdict

FORMATS = ("text", "tap", "ktap", "json")


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "failed"


def result_line(verdict: Verdict) -> str:
    """One line per run, as it finishes."""
    if verdict.passed:
        return f"ok {verdict.name} ({verdict.duration:.2f} s)"
    return f"FAIL {verdict.name} ({verdict.duration:.2f} s): {first_line(verdict.error)}"


def script_excerpt(verdict: Verdict, context: int = 2) -> str | None:
    """The numbered script lines around the failing one, when there is one."""
    if verdict.line is None:
        return None
    try:
        text = read_source(verdict.path)
    except OSError:
        return None
    if not 1 <= verdict.line <= len(text.splitlines()):
        return None
    return excerpt(text, verdict.line, context)


# A failure's ladder diagram shows this many rows up to the failure.
LADDER_ROWS = 40


def failure_text(verdict: Verdict, colour: bool = False, ladder_rows: int | None = LADDER_ROWS) -> str:
    """A failed run in full, read like a compiler's error: the error line, the
    script around it, the rest of the error (the expected and the actual
    segment), warnings, the pcap to look at, and the ladder diagram of the
    run up to the failure (its last `ladder_rows` rows; None: all of them;
    `colour`: with ANSI colours)."""
    error_lines = (verdict.error or "failed without an error message").rstrip().splitlines()
    parts = error_lines[:1]
    around = script_excerpt(verdict)
    if around:
        parts.append(around)
    parts.extend(error_lines[1:])
    parts.extend(f"warning: {warning}" for warning in verdict.warnings)
    if verdict.pcap:
        parts.append(f"pcap: {verdict.pcap}")
        annotated = Path(verdict.pcap).with_suffix(".pcapng")
        if annotated.exists():
            parts.append(f"pcapng: {annotated} (each packet's comment names its script line)")
    if verdict.timeline is not None and verdict.timeline.entries:
        from . import ladder  # only failures draw one

        parts.extend(["", ladder.text(verdict.timeline, colour, last=ladder_rows)])
    return "\n".join(parts)


def counts(verdicts: Iterable[Verdict]) -> tuple[int, int]:
    passed = failed = 0
    for verdict in verdicts:
        if verdict.passed:
            passed += 1
        else:
            failed += 1
    return passed, failed


def summary_line(verdicts: Iterable[Verdict]) -> str:
    passed, failed = counts(verdicts)
    return f"{passed} passed, {failed} failed"


def worst_lateness_line(verdicts: Iterable[Verdict]) -> str | None:
    """Which of tcptest's own events (injections, call starts, commands,
    Python blocks) was latest of all the runs, and by how much."""
    worst = max(((late, verdict) for verdict in verdicts for late in verdict.lateness),
                key=lambda pair: pair[0].usecs, default=None)
    if worst is None:
        return None
    late, verdict = worst
    return (f"tcptest's own lateness: worst {late.usecs / 1000:.3f} ms, "
            f"{verdict.name} line {late.line} ({late.kind})")


def text_closing(verdicts: Sequence[Verdict], colour: bool = False) -> str:
    """The end of a text run: each failure in full, the worst lateness of our
    own events, then the summary line."""
    parts = [f"FAIL {verdict.name}\n{failure_text(verdict, colour)}\n"
             for verdict in verdicts if not verdict.passed]
    worst = worst_lateness_line(verdicts)
    if worst:
        parts.append(worst)
    parts.append(summary_line(verdicts))
    return "\n".join(parts)


# ---------------------------------------------------------------- TAP and KTAP

# A TAP description must not contain an unescaped '#', and a reason that starts
# with SKIP or TODO would read as a directive.
_DIRECTIVE = re.compile(r"^(skip|todo)", re.I)  # TAP 14 reads "skipped" as SKIP too


def _tap_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("#", "\\#")


def _diagnostics(verdict: Verdict) -> list[str]:
    lines = []
    if not verdict.passed:
        lines.extend((verdict.error or "failed").rstrip().splitlines())
        if verdict.pcap:
            lines.append(f"pcap: {verdict.pcap}")
    lines.extend(f"warning: {warning}" for warning in verdict.warnings)
    return [f"# {line}".rstrip() for line in lines]


def tap_header(kind: str, total: int) -> list[str]:
    return ["KTAP version 1" if kind == "ktap" else "TAP version 13", f"1..{total}"]


def tap_result(kind: str, number: int, verdict: Verdict) -> list[str]:
    """A result line and its `# ` diagnostics: KTAP puts them before the
    result, as kselftest does; TAP after it."""
    name = _tap_escape(verdict.name)
    if verdict.passed:
        line = f"ok {number} {name}"
    else:
        reason = first_line(verdict.error)
        if _DIRECTIVE.match(reason):
            reason = f"error: {reason}"
        line = f"not ok {number} {name} # {reason}"
    diagnostics = _diagnostics(verdict)
    return diagnostics + [line] if kind == "ktap" else [line] + diagnostics


def tap_footer(kind: str, verdicts: Sequence[Verdict]) -> list[str]:
    passed, failed = counts(verdicts)
    if kind == "ktap":
        return [f"# Totals: pass:{passed} fail:{failed} xfail:0 xpass:0 skip:0 error:0"]
    return []


# ---------------------------------------------------------------- JSON


def verdict_dict(verdict: Verdict) -> dict:
    return {
        "name": verdict.name,
        "path": verdict.path,
        "ip_version": verdict.ip_version,
        "passed": verdict.passed,
        "error": verdict.error,
        "line": verdict.line,
        "warnings": list(verdict.warnings),
        "duration": round(verdict.duration, 6),
        "pcap": verdict.pcap,
        "late_start": verdict.late_start,
        "setup_failed": verdict.setup_failed,
        "lateness": [{"line": late.line, "kind": late.kind, "usecs": late.usecs} for late in verdict.lateness],
        "timeline": timeline.to_dict(verdict.timeline) if verdict.timeline is not None else None,
    }


def verdict_from_dict(data: dict) -> Verdict:
    """A run object of `verdict_dict` (keys it does not know are left out)."""
    from .engine import Lateness
    from .runner import Verdict

    saved = data.get("timeline")
    return Verdict(data["path"], data["ip_version"], bool(data["passed"]), error=data.get("error"),
                   line=data.get("line"), warnings=tuple(data.get("warnings") or ()),
                   duration=float(data.get("duration") or 0.0), pcap=data.get("pcap"),
                   timeline=timeline.from_dict(saved) if saved else None,
                   lateness=tuple(Lateness(late["line"], late["kind"], late["usecs"])
                                  for late in data.get("lateness") or ()),
                   late_start=bool(data.get("late_start")), setup_failed=bool(data.get("setup_failed")))


def load_results(path: str) -> list[Verdict]:
    """The runs of a results file: what `--format=json` prints (or any JSON
    with a top-level `results` list of `verdict_dict` objects), or one run object."""
    import json

    from .errors import TcptestError

    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except OSError as err:
        raise TcptestError(f"{path}: cannot read it: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise TcptestError(f"{path}:{err.lineno}: not JSON: {err.msg}") from None
    runs = document.get("results") if isinstance(document, dict) and "results" in document else [document]
    try:
        return [verdict_from_dict(run) for run in runs]
    except (KeyError, TypeError, ValueError) as err:
        raise TcptestError(f"{path}: not a tcptest results file (what tcptest run --format=json "
                           f"writes): {type(err).__name__}: {err}") from None


def select(verdicts: Sequence[Verdict], names: Sequence[str], every: bool = False) -> list[Verdict]:
    """The runs `tcptest explain` draws: those a name matches (a glob, or a
    part of the run's name or path), else all (`every`) or the failed ones."""
    from fnmatch import fnmatch

    if names:
        return [v for v in verdicts
                if any(fnmatch(v.name, name) or name in v.name or name in v.path for name in names)]
    return [v for v in verdicts if every or not v.passed]


def explain_text(verdict: Verdict, colour: bool = False) -> str:
    """A saved run drawn again: its result line, the failure in full, and its
    whole ladder diagram."""
    head = result_line(verdict)
    if not verdict.passed:
        return f"{head}\n{failure_text(verdict, colour, ladder_rows=None)}\n"
    if verdict.timeline is None:
        return f"{head}\n(no timeline saved for this run)\n"
    from . import ladder

    return f"{head}\n{ladder.text(verdict.timeline, colour)}\n"


def json_report(verdicts: Sequence[Verdict]) -> str:
    import json  # here, not at the top: the text format's runs do without (1.8 ms)

    passed, failed = counts(verdicts)
    return json.dumps({"passed": passed, "failed": failed,
                       "results": [verdict_dict(verdict) for verdict in verdicts]}, indent=2)
