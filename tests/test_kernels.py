"""`--kernel`: which kernel a spec names, the tolerance a TCG VM gets, the
guest's side (requests in, results out), the matrix, and the reaper that
leaves nothing behind when tcptest dies. No VM is booted here: CI's VM step
(.ci/run) boots Debian's 6.1 and runs the suite in it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcptest import cli, kernels, results, runner
from tcptest.errors import SetupError
from tcptest.host import vm
from tcptest.results import KernelInfo, Results, RunResult
from tcptest.runner import RunRequest, Verdict


def fake_bzimage(path: Path, version: str) -> Path:
    """The setup header bytes image_release reads: "HdrS" at 0x202, the
    version string's offset (less 0x200) at 0x20E."""
    data = bytearray(0x400)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x300 - 0x200).to_bytes(2, "little")
    data[0x300:0x300 + len(version)] = version.encode()
    path.write_bytes(bytes(data))
    return path


def test_an_image_file_is_named_by_the_release_in_its_header(tmp_path):
    image = fake_bzimage(tmp_path / "bzImage", "6.13.0-rc1+ (dev@box) #3 SMP")
    assert vm.resolve(str(image)) == vm.KernelImage(str(image), str(image), "6.13.0-rc1+")
    (tmp_path / "plain").write_bytes(b"\0" * 0x300)
    assert vm.image_release(str(tmp_path / "plain")) is None


def test_a_tree_is_its_bzimage_and_a_tree_without_one_says_build_it(tmp_path):
    with pytest.raises(SetupError, match="no arch/x86/boot/bzImage.*vng --build"):
        vm.resolve(str(tmp_path))
    (tmp_path / "arch" / "x86" / "boot").mkdir(parents=True)
    fake_bzimage(tmp_path / "arch" / "x86" / "boot" / "bzImage", "6.14.0 (x) #1")
    kernel = vm.resolve(str(tmp_path))
    assert (kernel.release, kernel.tree, kernel.modules_dir) == ("6.14.0", str(tmp_path), None)


def test_an_unknown_release_lists_the_installed_ones(tmp_path, monkeypatch):
    (tmp_path / "vmlinuz-6.1.0-57-amd64").write_bytes(b"")
    monkeypatch.setattr(vm, "BOOT", tmp_path)
    with pytest.raises(SetupError, match=r"--kernel 9\.9 is no kernel image.*: 6\.1\.0-57-amd64; "):
        vm.resolve("9.9")


def test_a_release_prefix_finds_the_newest_installed_kernel_of_that_series(tmp_path, monkeypatch):
    for release in ("6.1.0-57-amd64", "6.1.0-100-amd64", "6.12.0-1-amd64"):
        (tmp_path / f"vmlinuz-{release}").write_bytes(b"")
    monkeypatch.setattr(vm, "BOOT", tmp_path)
    assert vm.resolve("6.1") == vm.KernelImage("6.1", f"{tmp_path}/vmlinuz-6.1.0-100-amd64", "6.1.0-100-amd64")
    assert vm.resolve("6.12").release == "6.12.0-1-amd64"
    assert vm.resolve("6.1.0-57-amd64").release == "6.1.0-57-amd64"


def test_tcg_scales_each_runs_own_tolerance_and_says_by_how_much(tmp_path):
    scale = kernels.TCG_TOLERANCE_SCALE
    (tmp_path / "plain.pkt").write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    (tmp_path / "loose.pkt").write_text("--tolerance_usecs=500000\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    plain = RunRequest(str(tmp_path / "plain.pkt"), (("ip_version", "ipv4"),))
    assert kernels.tolerance_for(plain, kvm=True) == (plain, None)
    request, scaled = kernels.tolerance_for(plain, kvm=False)
    assert request.command_line == (("ip_version", "ipv4"), ("tolerance_usecs", str(round(4000 * scale))))
    assert kernels.tolerance_for(RunRequest(str(tmp_path / "loose.pkt")), kvm=False)[1] == round(500000 * scale)
    given = RunRequest(str(tmp_path / "loose.pkt"), (("tolerance_usecs", "10000"),))
    assert kernels.tolerance_for(given, kvm=False)[1] == round(10000 * scale)  # the command line's wins
    assert kernels.tolerance_for(RunRequest(str(tmp_path / "missing.pkt")), kvm=False)[1] == round(4000 * scale)
    assert f"tolerance x{scale:g} under TCG: each run's --tolerance_usecs times {scale:g} (4000 -> " \
        in kernels.tolerance_note()


def test_the_guest_loads_the_modules_and_runs_this_tcptest():
    command = kernels.guest_command("/tmp/tcptest-vm-x")
    assert command.startswith("for m in tun sch_fq; do modprobe -q $m")
    assert "-m tcptest.kernels --guest /tmp/tcptest-vm-x" in command
    assert sys.executable in command and f"cd {os.getcwd()}" in command


def test_the_guest_runs_the_requests_it_is_given_and_saves_their_results(tmp_path, monkeypatch, capsys):
    def fake_run(request, trace=None):
        version = dict(request.command_line)["ip_version"]
        return Verdict(request.path, version, version == "ipv4", error=None if version == "ipv4" else "x:1: e")

    monkeypatch.setattr(runner, "run", fake_run)
    requests = [RunRequest("s/a.pkt", (("ip_version", "ipv4"), ("tolerance_usecs", "40000"))),
                RunRequest("s/a.pkt", (("ip_version", "ipv6"),))]
    (tmp_path / "requests.json").write_text(json.dumps({
        "jobs": 2, "repeat": 2, "label": "6.1.0-57-amd64", "machine": "vm (tcg)", "tolerance_note": "x3.5",
        "requests": [{"path": r.path, "command_line": [list(p) for p in r.command_line]} for r in requests]}))
    assert kernels.guest_main(str(tmp_path)) == 0
    assert capsys.readouterr().out.splitlines() == ["ok a.pkt[ipv4] (0.00 s)"] * 2 + [
        "FAIL a.pkt[ipv6] (0.00 s): x:1: e"] * 2
    saved = results.load(tmp_path / "results.json")
    assert [(run.key, run.kernel, run.pass_rate) for run in saved.runs] == [
        ("s/a.pkt[ipv4]", "6.1.0-57-amd64", "2/2"), ("s/a.pkt[ipv6]", "6.1.0-57-amd64", "0/2")]
    assert (saved.kernels[0].machine, saved.kernels[0].tolerance_note) == ("vm (tcg)", "x3.5")


def test_the_matrix_has_a_column_per_kernel():
    def run(name, kernel, *passed):
        return RunResult(kernel, tuple(Verdict(f"s/{name}", "ipv4", p, error=None if p else "s/x:3: e")
                                       for p in passed))

    outcome = Results((KernelInfo("host", "6.18"), KernelInfo("6.1.0-57-amd64", "6.1.0-57-amd64", machine="vm (tcg)",
                                                                tolerance_note="x3.5")),
                      (run("a.pkt", "host", True), run("b.pkt", "host", True),
                       run("a.pkt", "6.1.0-57-amd64", True), run("b.pkt", "6.1.0-57-amd64", False)))
    assert kernels.matrix_text(outcome).splitlines() == [
        "run            host   6.1.0-57-amd64",
        "s/a.pkt[ipv4]  ok     ok",
        "s/b.pkt[ipv4]  ok     FAIL",
        "",
        "FAIL s/b.pkt[ipv4] on 6.1.0-57-amd64: s/x:3: e",
        "host (host): 2 passed, 0 failed",
        "6.1.0-57-amd64 (vm (tcg)): 1 passed, 1 failed; x3.5",
        "3 passed, 1 failed"]


def test_run_kernel_takes_no_pcap_and_no_other_format(tmp_path):
    (tmp_path / "a.pkt").write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    assert cli.main(["run", "--kernel", "6.1", "--format=json", str(tmp_path)]) == 2
    assert cli.main(["run", "--kernel", "6.1", "--pcap", str(tmp_path), str(tmp_path)]) == 2


# ---------------------------------------------------------------- nothing left behind

OWNER = """
import os, subprocess, sys, time
from tcptest.host import vm
with vm.Guest() as guest:
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    os.write(guest._reaper, f"{child.pid}\\n".encode())
    print(guest.share, child.pid, flush=True)
    time.sleep(60)
"""


def test_a_killed_tcptest_leaves_no_vm_and_no_temporary_folder():
    """SIGKILL, which no handler sees: the reaper ends the VM's process group
    (here a sleep stands for vng and qemu) and removes the share."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    share, pid = owner.stdout.readline().split()
    assert Path(share).is_dir()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    for _ in range(100):
        if not Path(share).exists() and not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(share).exists()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_guest_that_ends_normally_leaves_nothing_and_the_reaper_kills_nothing(tmp_path):
    with vm.Guest() as guest:
        share = guest.share
        keeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
        os.write(guest._reaper, f"{keeper.pid}\n".encode())
    assert not Path(share).exists()
    time.sleep(0.5)
    assert keeper.poll() is None  # "done" told the reaper to leave the group alone
    keeper.kill()
    keeper.wait()


# ---------------------------------------------------------------- doctor --vm


def test_doctor_vm_says_what_is_missing_and_how_to_get_it():
    from tcptest import doctor

    facts = vm.VmFacts(qemu=None, vng="/opt/tcptest/bin/vng", busybox=None,
                       images=(("6.1.0-57-amd64", "/boot/vmlinuz-6.1.0-57-amd64", ("tun",)),),
                       kvm=(False, "qemu with KVM did not start the kernel within 3 s (it hangs here)"))
    checks = {check.name: check for check in doctor.diagnose_vm(facts)}
    assert (checks["vm qemu"].status, checks["vm qemu"].remedy) == ("fail", "apt-get install qemu-system-x86")
    assert checks["vm virtme-ng"].status == "ok"
    assert checks["vm busybox"].remedy == "apt-get install busybox-static"
    assert checks["vm kernel 6.1.0-57-amd64"].found == \
        "/boot/vmlinuz-6.1.0-57-amd64: no tun module in /lib/modules/6.1.0-57-amd64"
    assert checks["vm kvm"].status == "warn" and "TCG" in checks["vm kvm"].remedy
    none = doctor.diagnose_vm(vm.VmFacts("/usr/bin/qemu-system-x86_64", "vng", "busybox", (), None))
    assert [(c.name, c.status) for c in none][-1] == ("vm kernels", "fail")


def test_the_modules_a_guest_needs_are_found_built_in_or_as_files(tmp_path, monkeypatch):
    kernel = vm.KernelImage("x", "/boot/vmlinuz-x", "x")
    monkeypatch.setattr(vm.KernelImage, "modules_dir", property(lambda self: tmp_path))
    assert vm.missing_modules(kernel) == vm.GUEST_MODULES  # no modules.builtin: nothing known
    (tmp_path / "modules.builtin").write_text("kernel/net/sched/sch_fq.ko\n")
    (tmp_path / "kernel" / "drivers" / "net").mkdir(parents=True)
    assert vm.missing_modules(kernel) == ("tun",)
    (tmp_path / "kernel" / "drivers" / "net" / "tun.ko.xz").write_bytes(b"")
    assert vm.missing_modules(kernel) == ()
