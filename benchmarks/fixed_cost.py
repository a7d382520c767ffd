"""The fixed cost of one run: a two-line script, run N times by one process
(as `tcptest run` does for many scripts) and once per fresh `tcptest run`
process (as the kernel's runner does), beside upstream packetdrill's.

    python benchmarks/fixed_cost.py [-n 50] [--packetdrill PATH]

Where a fresh process's time goes: `python -X importtime -m tcptest run ...`
for the imports, cProfile for the rest. Needs root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tcptest.runner import RunRequest, run

TWO_LINES = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n"
REPO = Path(__file__).resolve().parents[1]
UPSTREAM = REPO.parent / "shared" / "tools" / "packetdrill"


def tcptest_command() -> list[str]:
    """This checkout's tcptest, as a fresh process: `python -m tcptest` with
    the checkout first on the path (the `tcptest` on PATH may be another's)."""
    return [sys.executable, "-m", "tcptest"]


def checkout_environment() -> dict[str, str]:
    """This checkout first on the path, and bytecode written as an installed
    package has it: without, every process compiles every module again."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def median_process_time(command: list[str], times: int, env: dict[str, str] | None = None) -> float:
    """The median wall time of `times` runs of `command`."""
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, env=env)
        taken.append(time.perf_counter() - started)
    return statistics.median(taken)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--packetdrill", default=str(UPSTREAM) if UPSTREAM.exists() else None,
                        help="upstream packetdrill to compare with (default: ../shared/tools/packetdrill)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "two_lines.pkt"
        script.write_text(TWO_LINES)
        request = RunRequest(str(script), (("ip_version", "ipv4"),))
        run(request)  # warm up: imports, the parser
        in_process, failures = [], []
        for _ in range(args.n):
            started = time.perf_counter()
            verdict = run(request)
            in_process.append(time.perf_counter() - started)
            if not verdict.passed:  # a busy machine: counted, not fatal
                failures.append(verdict.error)
        fresh_runs = max(7, args.n // 10)
        fresh = median_process_time([*tcptest_command(), "run", "--ip_version=ipv4", str(script)],
                                    fresh_runs, checkout_environment())
        upstream = (median_process_time([args.packetdrill, "--ip_version=ipv4", str(script)], fresh_runs)
                    if args.packetdrill else None)
    print(f"one process, {args.n} runs: median {statistics.median(in_process) * 1000:.1f} ms, "
          f"max {max(in_process) * 1000:.1f} ms per run"
          + (f"; {len(failures)} failed, the first with: {failures[0]}" if failures else ""))
    print(f"a fresh `tcptest run` each time, {fresh_runs} runs: median {fresh * 1000:.1f} ms "
          f"(includes Python start-up and imports)")
    if upstream is not None:
        print(f"a fresh packetdrill each time, {fresh_runs} runs: median {upstream * 1000:.1f} ms "
              f"(tcptest/packetdrill: {fresh / upstream:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
