"""Saved results (`tcptest run --results FILE.json`): every run's verdict on
each kernel, with what is needed to compare it later with another kernel's or
another day's (`tcptest compare`, `--baseline`): the first error, how many of
its attempts passed (`--repeat N`), the kernel's release and config, and the
tcptest version.

The document is `--format=json`'s (a top-level `results` list of run
objects, so `tcptest explain` reads it too), with `kernels` and per-run
`run`, `kernel`, `attempts`, `passes` and `errors` added. Passing runs keep
no timeline, so that a file of a whole suite stays small.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import __version__
from .errors import TcptestError

if TYPE_CHECKING:
    from .runner import Verdict

FORMAT = "tcptest-results/1"


@dataclass(frozen=True, slots=True)
class KernelInfo:
    """The kernel the runs ran on, as it describes itself."""

    label: str  # how the runs name it: "host", or the release of a VM's kernel
    release: str  # uname -r
    version: str = ""  # uname -v (build number and date)
    config_sha256: str | None = None  # of its .config, when it can be read
    hz: int | None = None  # CONFIG_HZ
    machine: str = "host"  # "host", or how the VM ran it: "vm (kvm)", "vm (tcg)"
    tolerance_note: str | None = None  # how the VM run scaled the tolerance, when it did


@dataclass(frozen=True, slots=True)
class RunResult:
    """One script under one IP version on one kernel, run one or more times."""

    kernel: str  # KernelInfo.label
    attempts: tuple[Verdict, ...]

    @property
    def key(self) -> str:
        """The run's name across files: `scripts/close/x.pkt[ipv4]`."""
        first = self.attempts[0]
        return f"{first.path}[{first.ip_version}]"

    @property
    def passes(self) -> int:
        return sum(verdict.passed for verdict in self.attempts)

    @property
    def passed(self) -> bool:
        return self.passes == len(self.attempts)

    @property
    def flaky(self) -> bool:
        return 0 < self.passes < len(self.attempts)

    @property
    def verdict(self) -> Verdict:
        """The attempt that stands for the run: its first failure, else its first pass."""
        return next((v for v in self.attempts if not v.passed), self.attempts[0])

    @property
    def first_error(self) -> str | None:
        return None if self.verdict.passed else first_error_line(self.verdict.error)

    @property
    def pass_rate(self) -> str:
        return f"{self.passes}/{len(self.attempts)}"


@dataclass(frozen=True, slots=True)
class Results:
    kernels: tuple[KernelInfo, ...]
    runs: tuple[RunResult, ...]
    tcptest_version: str = __version__
    created: str = ""


def first_error_line(error: str | None) -> str:
    lines = (error or "").strip().splitlines()
    return lines[0] if lines else "failed"


def group_attempts(verdicts: Sequence[Verdict], repeat: int, kernel: str) -> tuple[RunResult, ...]:
    """Runs from verdicts in the order `repeated` planned them (each request
    `repeat` times in a row)."""
    return tuple(RunResult(kernel, tuple(verdicts[start:start + repeat]))
                 for start in range(0, len(verdicts), repeat))


# ---------------------------------------------------------------- this kernel


def this_kernel(label: str = "host", machine: str = "host", tolerance_note: str | None = None) -> KernelInfo:
    """The running kernel: release, build, and a digest and HZ of its config."""
    uname = os.uname()
    config = _kernel_config(uname.release)
    hz = re.search(r"^CONFIG_HZ=(\d+)$", config or "", re.M)
    return KernelInfo(label=label, release=uname.release, version=uname.version,
                      config_sha256=hashlib.sha256(config.encode()).hexdigest() if config else None,
                      hz=int(hz.group(1)) if hz else None, machine=machine,
                      tolerance_note=tolerance_note)


def _kernel_config(release: str) -> str | None:
    for path in (Path("/proc/config.gz"), Path(f"/boot/config-{release}")):
        try:
            raw = path.read_bytes()
            return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode(errors="replace")
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
    return None


# ---------------------------------------------------------------- the document


def to_document(results: Results) -> dict:
    from .report import verdict_dict

    entries = []
    for run in results.runs:
        entry = verdict_dict(run.verdict)
        if run.verdict.passed:
            entry["timeline"] = None
        entry.update(run=run.key, kernel=run.kernel, attempts=len(run.attempts), passes=run.passes,
                     errors=[first_error_line(v.error) for v in run.attempts if not v.passed])
        entries.append(entry)
    passed = sum(run.passed for run in results.runs)
    return {"format": FORMAT, "tcptest_version": results.tcptest_version,
            "created": results.created or _now(),
            "kernels": [_kernel_dict(kernel) for kernel in results.kernels],
            "passed": passed, "failed": len(results.runs) - passed, "results": entries}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _kernel_dict(kernel: KernelInfo) -> dict:
    return {name: getattr(kernel, name) for name in KernelInfo.__slots__}


def from_document(document: dict, path: str = "results") -> Results:
    """The inverse of to_document; also reads plain `--format=json` output
    (one attempt per run, on a kernel called "unknown")."""
    from .report import verdict_from_dict

    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise TcptestError(f"{path}: not a tcptest results file (no `results` list): "
                           "write one with tcptest run --results FILE.json")
    try:
        kernels = tuple(KernelInfo(**kernel) for kernel in document.get("kernels") or ())
        runs = []
        for entry in document["results"]:
            standing = verdict_from_dict(entry)
            passes = int(entry.get("passes", standing.passed))
            errors = list(entry.get("errors") or ([first_error_line(standing.error)] if not standing.passed else []))
            # Only the run's standing attempt is kept whole; the others come
            # back with their first error line, which is what comparisons read.
            others = [replace(standing, passed=True, error=None, line=None, timeline=None)] * (passes - standing.passed)
            others += [replace(standing, passed=False, error=error, timeline=None)
                       for error in (errors if standing.passed else errors[1:])]
            runs.append(RunResult(entry.get("kernel") or "unknown", (standing, *others)))
    except (KeyError, TypeError, ValueError) as err:
        raise TcptestError(f"{path}: not a tcptest results file: {type(err).__name__}: {err}") from None
    if not kernels:
        kernels = tuple(KernelInfo(label, "unknown") for label in dict.fromkeys(run.kernel for run in runs))
    return Results(kernels, tuple(runs), str(document.get("tcptest_version") or "unknown"),
                   str(document.get("created") or ""))


def save(path: str | Path, results: Results) -> None:
    Path(path).write_text(json.dumps(to_document(results), indent=1) + "\n", encoding="utf-8")


def load(path: str | Path) -> Results:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise TcptestError(f"{path}: cannot read it: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise TcptestError(f"{path}:{err.lineno}: not JSON: {err.msg}") from None
    return from_document(document, str(path))


def merge(parts: Sequence[Results]) -> Results:
    """Results of several kernels as one document (the matrix of `--kernel`)."""
    return Results(tuple(k for part in parts for k in part.kernels),
                   tuple(run for part in parts for run in part.runs))
