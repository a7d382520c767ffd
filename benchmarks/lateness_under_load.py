"""tcptest's own lateness with the machine busy: `--load N` Python processes
starting up again and again beside the runs (what the kernel's runner does
between runs: each new `tcptest` process spends ~130 ms of CPU importing),
while one `tcptest run -j 2 --repeat R` runs a few corpus scripts (ipv4, the
kernel runner's arguments). Prints the lateness tail of tcptest's own events
(injections, call starts, commands, Python blocks) and how many runs failed
on tcptest's lateness, on the kernel's timing, or otherwise.

    python benchmarks/lateness_under_load.py [--load 2] [--repeat 10] [--scripts NAME ...]

Needs root. The start-ups are killed when it ends.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from fixed_cost import checkout_environment, tcptest_command
from kselftest import CORPUS, KERNEL_ARGS

# Scripts whose runs were seen failing on tcptest's own lateness.
SCRIPTS = ["tcp_zerocopy_closed.pkt", "tcp_basic_client.pkt", "tcp_eor_no-coalesce-large.pkt",
           "tcp_ooo-before-and-after-accept.pkt", "tcp_fastopen_server_fin-close-socket.pkt",
           "tcp_inq_client.pkt", "tcp_zerocopy_epoll_edge.pkt", "tcp_sack_sack-route-refresh-ip-tos.pkt"]
START_UP = "while True: subprocess.run([sys.executable, '-c', 'import tcptest.cli, tcptest.parser, asyncio, email'])"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=2, help="busy start-up loops beside the runs (default 2)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--scripts", nargs="+", default=SCRIPTS)
    args = parser.parse_args()

    loops = [subprocess.Popen([sys.executable, "-c", f"import subprocess, sys\n{START_UP}"],
                              start_new_session=True) for _ in range(args.load)]
    try:
        done = subprocess.run([*tcptest_command(), "run", "-j", "2", "--repeat", str(args.repeat),
                               "--format=json", *KERNEL_ARGS["ipv4"], *args.scripts],
                              cwd=CORPUS, capture_output=True, text=True, env=checkout_environment())
    finally:
        for loop in loops:
            subprocess.run(["pkill", "-KILL", "-s", str(loop.pid)])
            loop.wait()
    results = json.loads(done.stdout)["results"]
    lateness = sorted(late["usecs"] for result in results for late in result.get("lateness") or ())
    failed = [result for result in results if not result["passed"]]
    own = [r for r in failed if "tcptest was late" in r["error"]]
    kernel = [r for r in failed if r not in own and ("timing error" in r["error"] or "did not return by" in r["error"])]
    print(f"{len(results)} runs, load {args.load}: {len(lateness)} own events, "
          f"median {lateness[len(lateness) // 2] / 1000:.3f} ms, "
          f"p99 {lateness[int(len(lateness) * 0.99)] / 1000:.3f} ms, max {lateness[-1] / 1000:.3f} ms; "
          f"over 2 ms {sum(late > 2000 for late in lateness)}, over 3.5 ms {sum(late > 3500 for late in lateness)}")
    print(f"failed: {len(own)} on tcptest's lateness, {len(kernel)} on the kernel's timing, "
          f"{len(failed) - len(own) - len(kernel)} otherwise")
    for result in failed:
        print(f"  {result['name']}: {result['error'].splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
