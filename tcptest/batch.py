"""Many scripts, many runs: the plan (one run per script and IP version), a
pool of threads each waiting on one isolated run, and the live progress line.

Threads are enough: each `runner.run` forks its own child into its own
namespace and only waits for it, so the parent's threads spend their time
blocked in poll(). They are plain threads and a queue, not
concurrent.futures: that package and the logging it pulls in cost every
`tcptest run` process 11 ms of imports.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, TextIO

from .errors import TcptestError

if TYPE_CHECKING:
    from .runner import RunRequest, Verdict

CommandLine = tuple[tuple[str, str | None], ...]


def repeated(requests: Sequence, repeat: int) -> list:
    """Each request `repeat` times in a row (what results.group_attempts expects)."""
    return [request for request in requests for _ in range(repeat)]


def plan(paths: Sequence[str], command_line: CommandLine,
         pcap_dir: str | None = None) -> list[RunRequest]:
    """One run per script and IP version: the versions a script allows, or only
    the one `--ip_version=` names on the command line. A script that cannot be
    read gets one run, which reports why."""
    from .runner import RunRequest

    forced = dict(command_line).get("ip_version")
    requests = []
    for path in paths:
        try:
            versions: tuple[str | None, ...] = ip_versions(path, command_line)
        except TcptestError:
            versions = (None,)
        for version in versions:
            extra = (("ip_version", version),) if version and not forced else ()
            requests.append(RunRequest(path, command_line + extra, pcap_dir=pcap_dir))
    return requests


def ip_versions(path: str, command_line: CommandLine) -> tuple[str, ...]:
    """The IP versions to run `path` with: the one `--ip_version=` names on the
    command line, else those the script allows (raises when it cannot be read)."""
    from .runner import RunRequest, load, script_ip_versions

    forced = dict(command_line).get("ip_version")
    if forced:
        return (forced,)
    return script_ip_versions(load(RunRequest(path, command_line))[0])


def request_ip_version(request: RunRequest) -> str:
    return dict(request.command_line).get("ip_version") or "ipv4"


def request_name(request: RunRequest) -> str:
    """The name the run's Verdict will have, known before it runs."""
    return f"{Path(request.path).name}[{request_ip_version(request)}]"


def run_all(requests: Sequence[RunRequest], jobs: int,
            on_result: Callable[[int, Verdict], None],
            on_progress: Callable[[int, int, int, list[str]], None] | None = None,
            run_one: Callable[[RunRequest], Verdict] | None = None,
            tick: float = 0.5) -> list[Verdict]:
    """Run every request, `jobs` at a time; return the verdicts in request order.

    `on_result(index, verdict)` is called in request order, as soon as every
    earlier run has finished too, so that output is the same whatever `jobs` is.
    `on_progress(done, passed, failed, running_names)` is called whenever a run
    ends and every `tick` seconds. Both are called from this thread only.
    """
    from .runner import Verdict

    if run_one is None:
        from .runner import run as run_one
    running: dict[int, str] = {}
    lock = threading.Lock()
    unstarted = iter(range(len(requests)))
    stopping = threading.Event()
    finished: queue.SimpleQueue[tuple[int, Verdict]] = queue.SimpleQueue()

    def job(index: int) -> Verdict:
        with lock:
            running[index] = request_name(requests[index])
        try:
            return run_one(requests[index])
        except BaseException as exc:  # noqa: BLE001 - a bug in one run must not end the others
            return Verdict(requests[index].path, request_ip_version(requests[index]), False,
                           error=f"internal error: {exc}")
        finally:
            with lock:
                del running[index]

    def worker() -> None:
        while not stopping.is_set():
            with lock:
                index = next(unstarted, None)
            if index is None:
                return
            finished.put((index, job(index)))

    workers = [threading.Thread(target=worker, name=f"tcptest-run-{number}", daemon=True)
               for number in range(min(max(1, jobs), len(requests)))]
    for thread in workers:
        thread.start()
    verdicts: list[Verdict | None] = [None] * len(requests)
    released = passed = failed = 0
    try:
        while released < len(verdicts):
            try:
                index, verdict = finished.get(timeout=tick)
            except queue.Empty:
                pass
            else:
                verdicts[index] = verdict
                passed, failed = passed + verdict.passed, failed + (not verdict.passed)
            while released < len(verdicts) and verdicts[released] is not None:
                on_result(released, verdicts[released])
                released += 1
            if on_progress:
                with lock:
                    names = [running[index] for index in sorted(running)]
                on_progress(passed + failed, passed, failed, names)
    finally:
        # On Ctrl-C: start nothing new, wait for the runs under way (each
        # kills its own child at its timeout at the latest).
        stopping.set()
        for thread in workers:
            thread.join()
    return [verdict for verdict in verdicts if verdict is not None]


class ProgressLine:
    """One status line redrawn in place at the bottom of a terminal, which
    steps aside for the lines printed above it."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = time.monotonic()
        self.text = ""

    def update(self, done: int, passed: int, failed: int, running: list[str]) -> None:
        elapsed = time.monotonic() - self.started
        text = f"[{done}/{self.total}] {passed} passed, {failed} failed, {elapsed:.0f} s"
        if running:
            text += " - running " + ", ".join(running)
        import shutil  # only for a terminal: its imports (bz2, lzma) cost every run 3.7 ms

        self.text = text[: max(20, shutil.get_terminal_size().columns - 1)]
        self._draw()

    def print(self, text: str, stream: TextIO | None = None) -> None:
        """Print `text` above the progress line."""
        self.clear()
        print(text, file=stream or sys.stdout, flush=True)
        self._draw()

    def clear(self) -> None:
        if self.enabled and self.text:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def _draw(self) -> None:
        if self.enabled and self.text:
            self.stream.write("\r\x1b[K" + self.text)
            self.stream.flush()
