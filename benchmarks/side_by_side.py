"""tcptest beside upstream packetdrill on the kernel's selftests, run as the
kernel's runner runs them: one `unshare -n TOOL <runner's args> script.pkt`
process per script and IP version, from the corpus folder, J at a time.

    python benchmarks/side_by_side.py [--rounds 3] [-j 2] [--batch-jobs N ...]
        [--scripts GLOB ...] [--packetdrill PATH] [--no-batch] [--json OUT]

Rounds alternate the order of the tools (packetdrill first in odd rounds) so
that neither always runs on a machine warmed or loaded by the other. Then
tcptest runs the same runs in one process (`tcptest run -j N`, the in-process
batch) at each `--batch-jobs` N. Printed: passes per round, flips (runs whose
verdict changed between rounds), wall per round, where the two tools'
per-run walls differ, the fixed cost of one process (a two-line script),
and the lateness tail (p99, max) of tcptest's own events (injections, call
starts, commands, Python blocks), with how many runs failed on timing.
packetdrill does not report its own lateness; its timing failures are
counted from its errors. Without packetdrill (`--packetdrill ''` or none at
../shared/tools/packetdrill) only tcptest runs.

Leaves nothing behind: the corpus's set_sysctls.py writes
/tmp/sysctl_restore_<PACKETDRILL_PID>.sh, which a script removes only when
it reaches its end; the ones of packetdrill's processes are removed here
(tcptest removes its own). Needs root.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fixed_cost import TWO_LINES, UPSTREAM, checkout_environment, median_process_time, tcptest_command
from kselftest import CORPUS, KERNEL_ARGS, command_line, upstream_verdicts

from tcptest.batch import run_all
from tcptest.runner import RunRequest

RUN_TIMEOUT_SECS = 300
FIXED_COST_RUNS = 7
TIMING_WORDS = ("timing error", "tcptest was late", "did not return by", "Bad timestamp")


@dataclass
class Outcome:
    """One run of one script and IP version by one tool."""

    script: str
    ip_version: str
    passed: bool
    error: str  # first line
    lateness_usecs: tuple[int, ...] = ()  # tcptest's own events; none for packetdrill
    worst: str = ""  # tcptest's latest event: "line N (kind)"
    wall: float = 0.0  # the process's, in seconds; none for the in-process batch

    @property
    def key(self) -> tuple[str, str]:
        return (self.script, self.ip_version)

    @property
    def timing(self) -> bool:
        return not self.passed and any(words in self.error for words in TIMING_WORDS)


def restore_file(pid: int) -> Path:
    return Path(f"/tmp/sysctl_restore_{pid}.sh")


def run_packetdrill(packetdrill: str, script: str, version: str) -> Outcome:
    started = time.monotonic()
    process = subprocess.Popen(["unshare", "-n", packetdrill, *KERNEL_ARGS[version], script], cwd=CORPUS,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, errors = process.communicate(timeout=RUN_TIMEOUT_SECS)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
        errors = f"killed after {RUN_TIMEOUT_SECS} s\n" + errors
    finally:
        restore_file(process.pid).unlink(missing_ok=True)  # unshare execs packetdrill: same pid
    wall = time.monotonic() - started
    first = next((line for line in errors.splitlines() if line.strip()), "")
    return Outcome(script, version, process.returncode == 0, first, wall=wall)


def run_tcptest(script: str, version: str) -> Outcome:
    """A `tcptest run` process, with --format=json to read back its lateness
    (what the kernel's runner sends to /dev/null)."""
    command = ["unshare", "-n", *tcptest_command(), "run", "--format=json", *KERNEL_ARGS[version], script]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=CORPUS, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS,
                              env=checkout_environment())
    except subprocess.TimeoutExpired:
        return Outcome(script, version, False, f"killed after {RUN_TIMEOUT_SECS} s", wall=RUN_TIMEOUT_SECS)
    wall = time.monotonic() - started
    try:
        (result,) = json.loads(done.stdout)["results"]
    except (ValueError, KeyError):
        first = next((line for line in done.stderr.splitlines() if line.strip()), "no output")
        return Outcome(script, version, False, f"tcptest exited {done.returncode}: {first}", wall=wall)
    error = (result["error"] or "").strip().splitlines()
    lateness = result.get("lateness") or ()
    worst = max(lateness, key=lambda late: late["usecs"], default=None)
    return Outcome(script, version, bool(result["passed"]), error[0] if error else "",
                   tuple(late["usecs"] for late in lateness),
                   f"line {worst['line']} ({worst['kind']})" if worst else "", wall)


def one_round(tool, runs: list[tuple[str, str]], jobs: int) -> tuple[list[Outcome], float]:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(lambda run: tool(*run), runs))
    return outcomes, time.monotonic() - started


def batch_round(runs: list[tuple[str, str]], jobs: int) -> tuple[list[Outcome], float]:
    """The same runs in this one process (what `tcptest run -j N` does)."""
    requests = [RunRequest(str(CORPUS / script), command_line(KERNEL_ARGS[version])) for script, version in runs]
    started = time.monotonic()
    cwd = os.getcwd()
    os.chdir(CORPUS)
    try:
        verdicts = run_all(requests, jobs, on_result=lambda index, verdict: None)
    finally:
        os.chdir(cwd)
    wall = time.monotonic() - started
    return [Outcome(script, version, verdict.passed, (verdict.error or "").strip().split("\n")[0],
                    tuple(late.usecs for late in verdict.lateness),
                    f"line {verdict.worst_lateness.line} ({verdict.worst_lateness.kind})"
                    if verdict.worst_lateness else "")
            for (script, version), verdict in zip(runs, verdicts)], wall


def tail(values: list[int]) -> str:
    if not values:
        return "no events"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"median {statistics.median(ordered) / 1000:.3f} ms, p99 {p99 / 1000:.3f} ms, "
            f"max {ordered[-1] / 1000:.3f} ms over {len(ordered)} events")


def flips(rounds: list[list[Outcome]]) -> list[tuple[str, str]]:
    """The runs whose verdict was not the same in every round."""
    seen: dict[tuple[str, str], set[bool]] = {}
    for outcomes in rounds:
        for outcome in outcomes:
            seen.setdefault(outcome.key, set()).add(outcome.passed)
    return sorted(key for key, verdicts in seen.items() if len(verdicts) > 1)


def print_latest(rounds: list[list[Outcome]], count: int = 5) -> None:
    """The runs whose latest own event was latest, and which event it was."""
    latest = sorted((o for outcomes in rounds for o in outcomes if o.lateness_usecs),
                    key=lambda o: -max(o.lateness_usecs))[:count]
    for o in latest:
        print(f"  latest: {max(o.lateness_usecs) / 1000:.3f} ms, {o.script} {o.ip_version} {o.worst}")


def wall_gaps(tcptest: list[list[Outcome]], packetdrill: list[list[Outcome]]) -> dict[str, object]:
    """Where the wall differs: each run's process wall, tcptest's median over
    the rounds minus packetdrill's, summed by how the run ended in the last
    round (both passed, both failed, otherwise), with the runs that differ most."""
    def medians(rounds: list[list[Outcome]]) -> dict[tuple[str, str], float]:
        walls: dict[tuple[str, str], list[float]] = {}
        for outcomes in rounds:
            for o in outcomes:
                walls.setdefault(o.key, []).append(o.wall)
        return {key: statistics.median(values) for key, values in walls.items()}

    def kind(key: tuple[str, str]) -> str:
        ours, theirs = last_tcptest[key], last_packetdrill[key]
        if ours.passed and theirs.passed:
            return "both passed"
        if not ours.passed and not theirs.passed:
            return "both failed"
        return "otherwise"

    ours, theirs = medians(tcptest), medians(packetdrill)
    last_tcptest = {o.key: o for o in tcptest[-1]}
    last_packetdrill = {o.key: o for o in packetdrill[-1]}
    gaps = {key: ours[key] - theirs[key] for key in ours if key in theirs}
    by_kind: dict[str, list[float]] = {}
    for key, gap in gaps.items():
        by_kind.setdefault(kind(key), []).append(gap)
    return {"summed_secs": {name: [len(values), sum(values)] for name, values in sorted(by_kind.items())},
            "largest": [[*key, gap] for key, gap in sorted(gaps.items(), key=lambda item: -item[1])[:5]]}


def print_wall_gaps(gaps: dict[str, object]) -> None:
    print("  per-run wall, tcptest minus packetdrill (median over rounds), summed: "
          + "; ".join(f"{name} ({count} runs) {total:+.1f} s" for name, (count, total) in gaps["summed_secs"].items()))
    for script, version, gap in gaps["largest"]:
        print(f"  largest: {gap * 1000:+.0f} ms, {script} {version}")


def fixed_costs(packetdrill: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "two_lines.pkt"
        script.write_text(TWO_LINES)
        costs = {"tcptest": median_process_time([*tcptest_command(), "run", "--ip_version=ipv4", str(script)],
                                                FIXED_COST_RUNS, checkout_environment())}
        if packetdrill:
            costs["packetdrill"] = median_process_time([packetdrill, "--ip_version=ipv4", str(script)],
                                                       FIXED_COST_RUNS)
    return costs


def leftovers(before: set[Path]) -> list[Path]:
    return sorted(set(Path("/tmp").glob("sysctl_restore_*.sh")) - before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-j", type=int, default=2, help="processes at a time, as the kernel's runner (default 2)")
    parser.add_argument("--batch-jobs", type=int, nargs="*", default=None,
                        help="-j values for the in-process batch (default: the same as -j)")
    parser.add_argument("--scripts", nargs="+", default=["*"], help="globs on script names (default: all)")
    parser.add_argument("--packetdrill", default=str(UPSTREAM) if UPSTREAM.exists() else "",
                        help="upstream packetdrill ('' for none; default ../shared/tools/packetdrill)")
    parser.add_argument("--no-batch", action="store_true", help="skip the in-process batch")
    parser.add_argument("--json", help="write every outcome and the figures here")
    args = parser.parse_args()

    runs = sorted(key for key in upstream_verdicts() if any(fnmatch.fnmatch(key[0], glob) for glob in args.scripts))
    if not runs:
        print(f"no script of {CORPUS} matches {' '.join(args.scripts)}", file=sys.stderr)
        return 2
    before = set(Path("/tmp").glob("sysctl_restore_*.sh"))
    tools = {"tcptest": run_tcptest}
    if args.packetdrill:
        tools["packetdrill"] = lambda script, version: run_packetdrill(args.packetdrill, script, version)
    results: dict[str, list[list[Outcome]]] = {name: [] for name in tools}
    walls: dict[str, list[float]] = {name: [] for name in tools}
    print(f"{len(runs)} runs, {args.rounds} rounds, -j {args.j}: {', '.join(tools)}", flush=True)
    for number in range(1, args.rounds + 1):
        order = sorted(tools, reverse=number % 2 == 0)  # packetdrill first in odd rounds
        for name in order:
            outcomes, wall = one_round(tools[name], runs, args.j)
            results[name].append(outcomes)
            walls[name].append(wall)
            print(f"round {number} {name}: {sum(o.passed for o in outcomes)} passed of {len(outcomes)}, "
                  f"{sum(o.timing for o in outcomes)} on timing, {wall:.1f} s", flush=True)

    figures: dict[str, dict] = {}
    costs = fixed_costs(args.packetdrill or None)
    print()
    for name in tools:
        flipped = flips(results[name])
        late = [usecs for outcomes in results[name] for o in outcomes for usecs in o.lateness_usecs]
        figures[name] = {"passes": [sum(o.passed for o in outcomes) for outcomes in results[name]],
                         "timing_failures": [sum(o.timing for o in outcomes) for outcomes in results[name]],
                         "flips": [list(key) for key in flipped], "walls": walls[name],
                         "fixed_cost": costs[name], "lateness": tail(late) if name == "tcptest" else None}
        print(f"{name}: passes per round {figures[name]['passes']}, timing failures "
              f"{figures[name]['timing_failures']}, {len(flipped)} flips, wall per round "
              + ", ".join(f"{wall:.1f} s" for wall in walls[name]) + f", fixed cost {costs[name] * 1000:.0f} ms")
        for script, version in flipped:
            errors = {o.error for outcomes in results[name] for o in outcomes
                      if o.key == (script, version) and not o.passed}
            print(f"  flip {script} {version}: {' | '.join(sorted(errors))}")
        if name == "tcptest":
            print(f"  lateness of its own events: {figures[name]['lateness']}")
            print_latest(results[name])
    if "packetdrill" in tools:
        ratio = statistics.median(walls["tcptest"]) / statistics.median(walls["packetdrill"])
        print(f"tcptest/packetdrill: wall {ratio:.2f}x at -j {args.j}, fixed cost "
              f"{costs['tcptest'] / costs['packetdrill']:.2f}x")
        figures["wall_gaps"] = wall_gaps(results["tcptest"], results["packetdrill"])
        print_wall_gaps(figures["wall_gaps"])

    if not args.no_batch:
        for jobs in args.batch_jobs or [args.j]:
            outcomes, wall = batch_round(runs, jobs)
            late = [usecs for o in outcomes for usecs in o.lateness_usecs]
            figures[f"batch -j {jobs}"] = {"passes": sum(o.passed for o in outcomes), "wall": wall,
                                          "timing_failures": sum(o.timing for o in outcomes),
                                          "lateness": tail(late)}
            versus = (f" ({wall / statistics.median(walls['packetdrill']):.2f}x packetdrill's -j {args.j})"
                      if "packetdrill" in tools else "")
            print(f"tcptest in one process, -j {jobs}: {figures[f'batch -j {jobs}']['passes']} passed, "
                  f"{figures[f'batch -j {jobs}']['timing_failures']} on timing, {wall:.1f} s{versus}; "
                  f"lateness {tail(late)}", flush=True)
            results[f"batch -j {jobs}"] = [outcomes]
            print_latest([outcomes])

    left = leftovers(before)
    if left:
        print(f"left in /tmp by runs beside this benchmark, or killed ones: {', '.join(map(str, left))}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"figures": figures, "outcomes": {name: [[asdict(o) for o in outcomes] for outcomes in rounds]
                                              for name, rounds in results.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
