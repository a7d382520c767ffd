"""How fast tcptest reads scripts: the one-off cost of building the parser, and
lines per second over the kernel corpus in a warm process.

    python benchmarks/bench_parse.py [--seconds 5]

Goal: at least 20,000 lines/s warm. The parser is built once per process, on
first use, and not cached on disk.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpus/kselftest"
KERNEL_DEFINES = {
    "TFO_COOKIE": "3021b9d889017eeb",
    "TFO_COOKIE_ZERO": "b7c12350a90dc8f5",
    "CMSG_LEVEL_IP": "SOL_IP",
    "CMSG_TYPE_RECVERR": "IP_RECVERR",
}

# Run in a fresh interpreter: import time, then the first parse (which builds
# the parser) minus a second, warm parse of the same text.
_COLD_START = """
import time
t0 = time.perf_counter()
from tcptest.parser import parse_script
t1 = time.perf_counter()
parse_script("0 close(3) = 0\\n", "cold.pkt")
t2 = time.perf_counter()
parse_script("0 close(3) = 0\\n", "cold.pkt")
t3 = time.perf_counter()
print(t1 - t0, (t2 - t1) - (t3 - t2))
"""


def cold_start(runs: int) -> tuple[float, float]:
    imports, builds = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _COLD_START], check=True, capture_output=True, text=True)
        imported, built = map(float, out.stdout.split())
        imports.append(imported)
        builds.append(built)
    return statistics.median(imports), statistics.median(builds)


def warm_throughput(seconds: float) -> tuple[float, float, int]:
    from tcptest.parser import parse_script

    scripts = [(str(path), path.read_text()) for path in sorted(CORPUS.glob("*.pkt"))]
    if not scripts:
        sys.exit(f"no corpus at {CORPUS}")
    lines = sum(text.count("\n") for _, text in scripts)
    size = sum(len(text) for _, text in scripts)
    for path, text in scripts:  # warm up: build the parser, fill caches
        parse_script(text, path, KERNEL_DEFINES)
    rounds = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for path, text in scripts:
            parse_script(text, path, KERNEL_DEFINES)
        rounds += 1
    elapsed = time.perf_counter() - start
    return lines * rounds / elapsed, size * rounds / elapsed, len(scripts)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seconds", type=float, default=5.0, help="how long to parse the corpus over and over")
    options.add_argument("--cold-runs", type=int, default=5, help="fresh interpreters to time the parser build in")
    args = options.parse_args()

    imported, built = cold_start(args.cold_runs)
    lines_per_second, bytes_per_second, count = warm_throughput(args.seconds)
    print(f"import tcptest.parser (with lark): {imported * 1000:.1f} ms (median of {args.cold_runs})")
    print(f"parser build, once per process:    {built * 1000:.1f} ms (median of {args.cold_runs})")
    print(f"warm parse of {count} corpus scripts: {lines_per_second:,.0f} lines/s ({bytes_per_second / 1e6:.2f} MB/s)")
    if lines_per_second < 20_000:
        print("below the 20,000 lines/s goal")


if __name__ == "__main__":
    main()
