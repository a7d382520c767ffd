"""The fixed cost of one run: a two-line script, run N times by one process
(as `tcptest run` does for many scripts) and once per fresh `tcptest run`.

    python benchmarks/fixed_cost.py [-n 50]

packetdrill's figure on this machine: 0.17 s median per run. Needs root.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tcptest.runner import RunRequest, run

TWO_LINES = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "two_lines.pkt"
        script.write_text(TWO_LINES)
        request = RunRequest(str(script), (("ip_version", "ipv4"),))
        run(request)  # warm up: imports, the parser
        in_process = []
        for _ in range(args.n):
            started = time.perf_counter()
            verdict = run(request)
            in_process.append(time.perf_counter() - started)
            assert verdict.passed, verdict.error
        fresh = []
        for _ in range(max(3, args.n // 10)):
            started = time.perf_counter()
            subprocess.run(["tcptest", "run", "--ip_version=ipv4", str(script)], check=True,
                           stdout=subprocess.DEVNULL)
            fresh.append(time.perf_counter() - started)
    print(f"one process, {args.n} runs: median {statistics.median(in_process) * 1000:.1f} ms, "
          f"max {max(in_process) * 1000:.1f} ms per run")
    print(f"a fresh `tcptest run` each time, {len(fresh)} runs: median "
          f"{statistics.median(fresh) * 1000:.1f} ms (includes Python start-up and imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
