"""Scripts on other kernels (`tcptest run --kernel ...`, pytest's
`--tcptest-kernel`): each kernel but `host` boots in a VM (host.vm), where
tcptest runs the planned requests and writes its results into the shared
folder; the host reads them back, and the summary is a matrix of runs by
kernels.

The guest runs exactly the requests the host planned (`python -m
tcptest.kernels --guest SHARE` reads them from SHARE/requests.json), so a
script runs with the same options on every kernel. Under TCG a VM is several
times slower, so the tolerance is scaled, as the kernel's runner scales it on
slow machines, and the results say by how much.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from . import results
from .errors import SetupError
from .options import RunOptions

# The kernel's runner uses 14000 us (4000 x 3.5) on slow machines; under TCG
# here tcptest itself runs 15 to 50 ms late (Python is 5 to 10 times slower):
# of 7 scripts, 5 failed on their own lateness at 14000 us, 2 at 40000 us.
TCG_TOLERANCE_SCALE = 10.0
# Runs at once inside a VM (it has 2 CPUs): the pytest plugin's choice.
VM_JOBS = 2


def run_on_kernels(specs: Sequence[str], paths: Sequence[str], command_line: tuple, jobs: int,
                   repeat: int, say: Callable[[str], None]) -> results.Results:
    """Every script on every kernel, one kernel after the other; prints each
    run's line as it ends (prefixed with its kernel) and then the matrix."""
    from . import batch
    from .host import vm

    requests = batch.plan(paths, command_line)
    kernels = [None if spec == "host" else vm.resolve(spec) for spec in specs]  # fail early on a bad one
    parts = [run_here(requests, jobs, repeat, say) if kernel is None
             else run_in_vm(kernel, requests, jobs, repeat, say) for kernel in kernels]
    merged = results.merge(parts)
    say(matrix_text(merged))
    return merged


def run_here(requests: Sequence, jobs: int, repeat: int, say: Callable[[str], None],
             label: str = "host") -> results.Results:
    from .batch import repeated, run_all
    from .report import result_line

    verdicts = run_all(repeated(requests, repeat), jobs,
                       lambda index, verdict: say(f"[{label}] {result_line(verdict)}"))
    return results.Results((results.this_kernel(label),), results.group_attempts(verdicts, repeat, label))


def tolerance_for(request, kvm: bool):
    """The request a VM runs, and what changed: under TCG the run's own
    tolerance (the script's, or the command line's, else the default) times
    TCG_TOLERANCE_SCALE, given on the command line, which wins."""
    if kvm:
        return request, None
    from .errors import TcptestError
    from .runner import load

    try:
        base = load(request)[1].tolerance_usecs
    except TcptestError:  # the guest's run will say what is wrong with the script
        base = RunOptions().tolerance_usecs
    scaled = round(base * TCG_TOLERANCE_SCALE)
    return replace(request, command_line=request.command_line + (("tolerance_usecs", str(scaled)),)), scaled


def tolerance_note() -> str:
    default = RunOptions().tolerance_usecs
    return (f"tolerance x{TCG_TOLERANCE_SCALE:g} under TCG: each run's --tolerance_usecs times "
            f"{TCG_TOLERANCE_SCALE:g} ({default} -> {round(default * TCG_TOLERANCE_SCALE)} by default), "
            "as the kernel's runner raises it on slow machines")


def run_in_vm(kernel, requests: Sequence, jobs: int, repeat: int,
              say: Callable[[str], None]) -> results.Results:
    """Boot `kernel` (a host.vm.KernelImage), run the requests inside, and
    return what the guest saved."""
    from .host import vm

    kvm, why = vm.kvm_usable(kernel.image)
    label = kernel.release
    machine = "vm (kvm)" if kvm else "vm (tcg)"
    say(f"[{label}] booting {kernel.image} with virtme-ng, {'KVM' if kvm else f'TCG ({why})'}")
    with vm.Guest() as guest:
        share = Path(guest.share)
        scaled = [tolerance_for(request, kvm)[0] for request in requests]
        note = None if kvm else tolerance_note()
        if note:
            say(f"[{label}] {note}")
        (share / "requests.json").write_text(json.dumps({
            "jobs": jobs, "repeat": repeat, "label": label, "machine": machine, "tolerance_note": note,
            "requests": [{"path": r.path, "command_line": [list(pair) for pair in r.command_line]}
                         for r in scaled]}))
        status, stderr = guest.run(kernel, guest_command(guest.share), kvm, lambda line: say(f"[{label}] {line}"))
        saved = share / "results.json"
        if not saved.exists():
            tail = "\n".join(stderr.strip().splitlines()[-10:])
            raise SetupError(f"the VM with {kernel.image} ended (status {status}) without results"
                             + (f"; vng said:\n{tail}" if tail else ""))
        return results.load(saved)


def guest_command(share: str) -> str:
    """The shell command the guest runs: load the modules runs need, then
    this very tcptest (the same Python and package) on the requests."""
    from .host.vm import GUEST_MODULES

    package_root = Path(__file__).resolve().parents[1]
    modules = " ".join(GUEST_MODULES)
    return (f"for m in {modules}; do modprobe -q $m || echo \"tcptest: cannot load the $m module\"; done; "
            f"unset TMPDIR; cd {shlex.quote(os.getcwd())} && "
            f"PYTHONPATH={shlex.quote(str(package_root))} exec {shlex.quote(sys.executable)} -m tcptest.kernels "
            f"--guest {shlex.quote(share)}")


def guest_main(share: str) -> int:
    """Inside the VM: run the requests of SHARE/requests.json, a line each as
    it ends, and save the results to SHARE/results.json."""
    from .batch import repeated, run_all
    from .report import result_line
    from .runner import RunRequest

    asked = json.loads(Path(share, "requests.json").read_text())
    requests = [RunRequest(r["path"], tuple(tuple(pair) for pair in r["command_line"])) for r in asked["requests"]]
    repeat = asked["repeat"]
    verdicts = run_all(repeated(requests, repeat), asked["jobs"],
                       lambda index, verdict: print(result_line(verdict), flush=True))
    kernel = results.this_kernel(asked["label"], asked["machine"], asked["tolerance_note"])
    results.save(Path(share, "results.json"),
                 results.Results((kernel,), results.group_attempts(verdicts, repeat, asked["label"])))
    return 0


# ---------------------------------------------------------------- the matrix


def matrix_text(outcome: results.Results) -> str:
    """Runs by kernels: `ok`, `FAIL`, or the pass rate when runs repeated;
    then each failure's first error, each kernel's counts and the total."""
    labels = [kernel.label for kernel in outcome.kernels]
    cells: dict[str, dict[str, results.RunResult]] = {}
    for run in outcome.runs:
        cells.setdefault(run.key, {})[run.kernel] = run
    width = max([len(key) for key in cells] + [3])
    widths = [max(len(label), 5) for label in labels]
    lines = ["  ".join([f"{'run':<{width}}", *(f"{label:<{w}}" for label, w in zip(labels, widths))]).rstrip()]
    for key, row in cells.items():
        lines.append("  ".join([f"{key:<{width}}", *(f"{_cell(row.get(label)):<{w}}"
                                                     for label, w in zip(labels, widths))]).rstrip())
    lines.append("")
    for run in outcome.runs:
        if not run.passed:
            lines.append(f"FAIL {run.key} on {run.kernel}: {run.first_error}")
    for kernel in outcome.kernels:
        mine = [run for run in outcome.runs if run.kernel == kernel.label]
        passed = sum(run.passed for run in mine)
        extra = f"; {kernel.tolerance_note}" if kernel.tolerance_note else ""
        lines.append(f"{kernel.label} ({kernel.machine}): {passed} passed, {len(mine) - passed} failed{extra}")
    passed = sum(run.passed for run in outcome.runs)
    lines.append(f"{passed} passed, {len(outcome.runs) - passed} failed")
    return "\n".join(lines)


def _cell(run: results.RunResult | None) -> str:
    if run is None:
        return "-"
    if len(run.attempts) > 1:
        return run.pass_rate
    return "ok" if run.passed else "FAIL"


if __name__ == "__main__":
    if sys.argv[1:2] != ["--guest"] or len(sys.argv) != 3:
        sys.exit("usage: python -m tcptest.kernels --guest SHARE (run by tcptest run --kernel, in the VM)")
    sys.exit(guest_main(sys.argv[2]))
