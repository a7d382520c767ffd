"""Verdicts compared: two saved results (`tcptest compare A.json B.json`:
another kernel, or the same one another day), and one run against a baseline
of known failures (`tcptest run --baseline FILE`).

Two failures are "the same" when their first error lines agree once times
are left out (`0.104213 sec` varies from run to run; a line number, a field
or a value does not): that is `signature`. Only this module judges; the CLI
prints what it returns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import TcptestError
from .results import Results, RunResult, first_error_line

_TIME = re.compile(r"\d+\.\d+")


def signature(first_error: str) -> str:
    """A first error line with its times (decimal numbers) written `*`."""
    return _TIME.sub("*", first_error)


def glob_matches(pattern: str, text: str) -> bool:
    """`*` matches anything; every other character only itself (errors hold
    brackets, which fnmatch would read as character classes)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), text, re.S) is not None


# ---------------------------------------------------------------- compare


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # one of KINDS
    key: str
    before: RunResult | None
    after: RunResult | None


KINDS = {
    "regression": "passed, now fails",
    "fixed": "failed, now passes",
    "fails differently": "failed, now fails with another error",
    "flaky": "passed in some attempts only",
    "new": "only in the second file",
    "gone": "only in the first file",
}


@dataclass(frozen=True, slots=True)
class Comparison:
    before_label: str
    after_label: str
    changes: tuple[Change, ...]
    same: int  # runs with the same verdict (and the same error) in both

    def of_kind(self, kind: str) -> list[Change]:
        return [change for change in self.changes if change.kind == kind]

    @property
    def regressed(self) -> bool:
        return bool(self.of_kind("regression"))


def _keyed(results: Results, with_kernel: bool) -> dict[str, RunResult]:
    return {(f"{run.key} on {run.kernel}" if with_kernel else run.key): run for run in results.runs}


def _label(results: Results, path: str) -> str:
    releases = dict.fromkeys(kernel.release for kernel in results.kernels)
    return ", ".join(releases) if releases else path


def compare(before: Results, after: Results, before_path: str = "A", after_path: str = "B") -> Comparison:
    """What changed from `before` to `after`, run by run. Files of one kernel
    each are matched by run; files of several (a `--kernel` matrix) by run and kernel."""
    with_kernel = len(before.kernels) > 1 or len(after.kernels) > 1
    old, new = _keyed(before, with_kernel), _keyed(after, with_kernel)
    changes, same = [], 0
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key), new.get(key)
        kind = _change_kind(a, b)
        if kind is None:
            same += 1
        else:
            changes.append(Change(kind, key, a, b))
    return Comparison(_label(before, before_path), _label(after, after_path), tuple(changes), same)


def _change_kind(a: RunResult | None, b: RunResult | None) -> str | None:
    if a is None or b is None:
        return "new" if a is None else "gone"
    if a.flaky or b.flaky:
        return "flaky"
    if a.passed and not b.passed:
        return "regression"
    if b.passed and not a.passed:
        return "fixed"
    if not a.passed and signature(a.first_error) != signature(b.first_error):
        return "fails differently"
    return None


def comparison_text(comparison: Comparison) -> str:
    """Each change with both verdicts, grouped by kind, then the counts."""
    lines = [f"A: {comparison.before_label}", f"B: {comparison.after_label}"]
    for kind, meaning in KINDS.items():
        changes = comparison.of_kind(kind)
        if not changes:
            continue
        lines.append(f"\n{kind} ({meaning}): {len(changes)}")
        for change in changes:
            lines.append(f"  {change.key}")
            for side, run in (("A", change.before), ("B", change.after)):
                if run is not None:
                    lines.append(f"    {side}: {describe(run)}")
    counts = ", ".join(f"{len(comparison.of_kind(kind))} {kind}" for kind in KINDS
                       if comparison.of_kind(kind))
    lines.append(f"\n{len(comparison.changes) + comparison.same} runs: {comparison.same} the same"
                 + (f", {counts}" if counts else ""))
    return "\n".join(lines)


def describe(run: RunResult) -> str:
    """`ok`, `FAIL: first error`, with the pass rate when it ran more than once."""
    rate = f" ({run.pass_rate} passed)" if len(run.attempts) > 1 else ""
    return f"ok{rate}" if run.passed else f"FAIL{rate}: {run.first_error}"


# ---------------------------------------------------------------- baseline


@dataclass(frozen=True, slots=True)
class KnownFailure:
    """A run expected to fail with this first error (`*` globs in each field)."""

    run: str  # `scripts/close/x.pkt[ipv4]`, `scripts/close/x.pkt[*]`
    error: str  # the first error line, times written `*`
    kernel: str = "*"  # the release(s) it applies to: `6.1.*`
    why: str = ""

    def applies(self, run: RunResult, release: str) -> bool:
        return glob_matches(self.run, run.key) and glob_matches(self.kernel, release)

    @property
    def names_one_script(self) -> bool:
        """`s/x.pkt[*]` does; `s/state-event/*` and the catch-all `*` cover
        many, and expect no run in particular to fail."""
        return "*" not in self.run.split("[", 1)[0]


def load_baseline(path: str) -> tuple[KnownFailure, ...]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return tuple(KnownFailure(**entry) for entry in document["known_failures"])
    except OSError as err:
        raise TcptestError(f"{path}: cannot read the baseline: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise TcptestError(f"{path}:{err.lineno}: the baseline is not JSON: {err.msg}") from None
    except (KeyError, TypeError) as err:
        raise TcptestError(f"{path}: not a baseline ({{\"known_failures\": [{{\"run\": ..., \"error\": ..., "
                           f"\"kernel\": ..., \"why\": ...}}]}}): {type(err).__name__}: {err}") from None


@dataclass(frozen=True, slots=True)
class BaselineJudgement:
    expected: list[tuple[RunResult, KnownFailure]] = field(default_factory=list)  # failed as known
    different: list[tuple[RunResult, KnownFailure]] = field(default_factory=list)  # known, other error
    unexpected: list[RunResult] = field(default_factory=list)  # not in the baseline
    now_passing: list[tuple[RunResult, KnownFailure]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.different and not self.unexpected


def judge(results: Results, baseline: Sequence[KnownFailure]) -> BaselineJudgement:
    """Each run against the baseline. A failed run is as expected when an
    entry for it (its run, its kernel) matches the first error of every
    attempt that failed; entries are tried in order, so an entry for many
    scripts (`"run": "*"`, say for timing errors in a slow VM) can follow the
    particular ones. Only an entry that names one script expects its run to
    fail: a run that passes is news for it alone, and a run that fails
    otherwise than entries for many scripts say is a new failure."""
    releases = {kernel.label: kernel.release for kernel in results.kernels}
    judgement = BaselineJudgement()
    for run in results.runs:
        entries = [entry for entry in baseline if entry.applies(run, releases.get(run.kernel, run.kernel))]
        particular = [entry for entry in entries if entry.names_one_script]
        errors = [signature(first_error_line(v.error)) for v in run.attempts if not v.passed]
        if not errors:
            if particular:
                judgement.now_passing.append((run, particular[0]))
            continue
        matching = [entry for entry in entries if all(glob_matches(entry.error, error) for error in errors)]
        if matching:
            judgement.expected.append((run, matching[0]))
        elif particular:
            judgement.different.append((run, particular[0]))
        else:
            judgement.unexpected.append(run)
    return judgement


def judgement_text(judgement: BaselineJudgement) -> str:
    lines = []
    for run in judgement.unexpected:
        lines.append(f"new failure (not in the baseline): {run.key} on {run.kernel}: {run.first_error}")
    for run, known in judgement.different:
        lines.append(f"known failure fails differently: {run.key} on {run.kernel}\n"
                     f"  baseline: {known.error}\n  now:      {signature(run.first_error or '')}")
    for run, known in judgement.now_passing:
        lines.append(f"known failure passed: {run.key} on {run.kernel}"
                     f"{' (' + known.why + ')' if known.why else ''}: take it out of the baseline")
    lines.append(f"baseline: {len(judgement.expected)} known failure(s) as expected, "
                 f"{len(judgement.now_passing)} now passing, {len(judgement.different)} failing "
                 f"differently, {len(judgement.unexpected)} new")
    return "\n".join(lines)


def baseline_document(results: Results, why: str = "") -> dict:
    """A baseline that expects every failure of `results` as it failed
    (`tcptest baseline RESULTS.json`), for the kernel it ran on."""
    releases = {kernel.label: kernel.release for kernel in results.kernels}
    return {"known_failures": [
        {"run": run.key, "kernel": releases.get(run.kernel, run.kernel),
         "error": signature(run.first_error or ""), "why": why}
        for run in results.runs if not run.passed]}
