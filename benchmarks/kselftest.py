"""Run the kernel's packetdrill selftests as the kernel's runner does, and
compare every verdict with upstream packetdrill's (verdicts.tsv).

    python benchmarks/kselftest.py [-j 2] [--only PATTERN] [--json OUT] [--retry-timing]

Prints one line per run that disagrees with packetdrill, the counts, the wall
time, and inbound injection lateness (median, p99) over all runs. With
--retry-timing, runs that packetdrill passes (or flakes on) and that failed
on a timing error alone are run once more afterwards, and the counts are
given again (the first ones are the verdict; the second say whether those
failures were the machine's noise). Needs root.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import statistics
import sys
import time
from pathlib import Path

from tcptest.batch import run_all
from tcptest.runner import RunRequest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "kselftest"

# The arguments of the kernel's runner (corpus README).
KERNEL_ARGS = {
    "ipv4": ["--ip_version=ipv4", "--local_ip=192.168.0.1", "--gateway_ip=192.168.0.1",
             "--netmask_ip=255.255.0.0", "--remote_ip=192.0.2.1",
             "-D", "TFO_COOKIE=3021b9d889017eeb", "-D", "TFO_COOKIE_ZERO=b7c12350a90dc8f5",
             "-D", "CMSG_LEVEL_IP=SOL_IP", "-D", "CMSG_TYPE_RECVERR=IP_RECVERR"],
    "ipv6": ["--ip_version=ipv6", "--mtu=1520", "--local_ip=fd3d:0a0b:17d6::1",
             "--gateway_ip=fd3d:0a0b:17d6:8888::1", "--remote_ip=fd3d:fa7b:d17d::1",
             "-D", "TFO_COOKIE=c1d1e9742a47a9bc", "-D", "TFO_COOKIE_ZERO=82af1a8f9a205c34",
             "-D", "CMSG_LEVEL_IP=SOL_IPV6", "-D", "CMSG_TYPE_RECVERR=IPV6_RECVERR"],
}


def command_line(args: list[str]) -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    it = iter(args)
    for arg in it:
        if arg == "-D":
            out.append(("define", next(it)))
        else:
            name, _, value = arg[2:].partition("=")
            out.append((name, value))
    return tuple(out)


def upstream_verdicts() -> dict[tuple[str, str], tuple[str, str]]:
    table = {}
    for line in (CORPUS / "verdicts.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        script, version, verdict, *note = line.split("\t")
        table[(script, version)] = (verdict, note[0] if note else "")
    return table


def first_line(error: str | None) -> str:
    return error.splitlines()[0].replace(str(CORPUS) + "/", "") if error else ""


def same_cause(ours: str, theirs: str, warnings: tuple[str, ...] = ()) -> bool:
    """Both name the same script line (or none) and the same kind of error:
    the same packet field, a timing error, an init command, a call. A note of
    packetdrill's that is not one of its errors is what a command printed
    (its first line of output): the same cause when a command printed it in
    our run too."""
    line = re.compile(r"\.pkt:(\d+):")
    ours, theirs = first_line(ours), theirs
    if theirs and ".pkt" not in theirs:
        return any(theirs in warning.split("command printed:\n", 1)[-1]
                   for warning in warnings if "command printed:" in warning)
    if "init command" in theirs:  # packetdrill names no line for it; tcptest does
        return "init command" in ours
    ours_line, theirs_line = line.search(ours), line.search(theirs)
    if (ours_line and ours_line.group(1)) != (theirs_line and theirs_line.group(1)):
        return False
    for marker in ("live packet field ", "timing error", "init command", "runtime error in ",
                   "Timed out", "bad value in outbound TCP option", "error in Python code"):
        if marker in theirs:
            key = theirs.split(marker, 1)[1].split(":")[0] if marker.endswith(" ") else ""
            return marker in ours and (not key or key in ours)
    return True


def _timing_only(error: str | None) -> bool:
    first = first_line(error)
    return any(words in first for words in ("timing error", "tcptest was late", "did not return by",
                                            "Bad timestamp"))


def compare(results, upstream) -> int:
    """Print every run that disagrees with packetdrill and the counts; return
    how many runs passed."""
    counts = {"agree": 0, "both_fail_other_cause": 0, "we_fail_they_pass": 0,
              "we_pass_they_fail": 0, "flaky": 0}
    passed = 0
    for (script, version), verdict in results:
        passed += verdict.passed
        theirs, note = upstream[(script, version)]
        if theirs == "flaky":
            counts["flaky"] += 1
            continue
        if (theirs == "pass") == verdict.passed:
            counts["agree"] += 1
            if not verdict.passed and not same_cause(verdict.error or "", note, verdict.warnings):
                counts["both_fail_other_cause"] += 1
                print(f"both_fail_other_cause\t{script}\t{version}\tours: {first_line(verdict.error)}"
                      f"\ttheirs: {note}")
            continue
        kind = "we_fail_they_pass" if theirs == "pass" else "we_pass_they_fail"
        counts[kind] += 1
        print(f"{kind}\t{script}\t{version}\tours: {first_line(verdict.error)}\ttheirs: {note}")
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", type=int, default=2)
    parser.add_argument("--only", default="*", help="glob on script names")
    parser.add_argument("--json", help="write every verdict here")
    parser.add_argument("--retry-timing", action="store_true",
                        help="run timing-only failures once more, and count again")
    args = parser.parse_args()

    upstream = upstream_verdicts()
    runs = sorted(key for key in upstream if fnmatch.fnmatch(key[0], args.only))
    started = time.monotonic()

    requests = [RunRequest(str(CORPUS / script), command_line(KERNEL_ARGS[version]))
                for script, version in runs]
    results = list(zip(runs, run_all(requests, args.j, on_result=lambda index, verdict: None)))
    wall = time.monotonic() - started

    passed = compare(results, upstream)
    print(f"tcptest passed {passed} of {len(results)} runs; packetdrill passed "
          f"{sum(upstream[k][0] == 'pass' for k in runs)}")
    print(f"wall time: {wall:.1f} s with -j {args.j}")
    delays = [late.usecs for _, verdict in results for late in verdict.lateness]
    if delays:
        ordered = sorted(delays)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"lateness of tcptest's own events over {len(delays)} of them: median "
              f"{statistics.median(ordered):.0f} us, p99 {p99} us, max {ordered[-1]} us")
    if args.retry_timing:
        again = [index for index, (key, verdict) in enumerate(results)
                 if not verdict.passed and _timing_only(verdict.error) and upstream[key][0] != "fail"]
        retried = run_all([requests[index] for index in again], args.j, on_result=lambda index, verdict: None)
        for index, verdict in zip(again, retried):
            results[index] = (results[index][0], verdict)
        print(f"after running the {len(again)} timing-only failures once more:")
        passed = compare(results, upstream)
        print(f"tcptest passed {passed} of {len(results)} runs")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"script": s, "ip_version": v, "passed": r.passed, "error": r.error,
              "upstream": upstream[(s, v)][0]} for (s, v), r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
