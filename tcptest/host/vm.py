"""A kernel under test in a VM: virtme-ng (`vng`) boots it in qemu with this
machine's own root filesystem (read-only, with writable overlays), runs one
command inside, and ends. The only code that starts qemu.

qemu uses KVM when it works. /dev/kvm may be there and still not work
(nested virtualisation: qemu hangs before the kernel prints a line), so
`kvm_usable` boots the kernel once with KVM and waits a few seconds for its
first console line; without it the VM runs under TCG, emulated, several
times slower.

Nothing of a VM outlives tcptest: vng and qemu run in a process group of
their own, killed when the run ends, is interrupted or fails; and a small
reaper process, started first, kills that group and removes the temporary
folder if tcptest itself dies (even by SIGKILL): it waits on a pipe that
only tcptest holds open.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import SetupError

# How long a kernel booted with KVM has to print its first console line
# before KVM counts as unusable (it prints it within 0.3 s where KVM works).
KVM_PROBE_SECS = 3.0
# A guest that prints nothing for this long is stuck: each run ends within
# its own timeout (runner.RUN_TIMEOUT_SECS) and prints a line when it does.
SILENCE_SECS = 900.0
GUEST_MEMORY = "2G"
# Modules the runs need that Debian's kernels build as modules.
GUEST_MODULES = ("tun", "sch_fq")
BOOT = Path("/boot")  # where installed kernels are


@dataclass(frozen=True, slots=True)
class KernelImage:
    """A kernel to boot: `spec` as the user wrote it, the image file, its release."""

    spec: str
    image: str
    release: str
    tree: str | None = None  # the built kernel tree it comes from, if any

    @property
    def modules_dir(self) -> Path | None:
        """Where its modules are: a tree's own (vng finds them there), else /lib/modules/RELEASE."""
        return None if self.tree else Path("/lib/modules") / self.release


def resolve(spec: str) -> KernelImage:
    """IMAGE (a bzImage or vmlinuz file), TREE (a built kernel tree) or
    RELEASE (/boot/vmlinuz-RELEASE, or the newest whose release starts
    RELEASE. or RELEASE-: `6.1` is Debian's current 6.1 once installed)."""
    path = Path(spec)
    if path.is_dir():
        image = path / "arch" / "x86" / "boot" / "bzImage"
        if not image.is_file():
            raise SetupError(f"--kernel {spec}: no arch/x86/boot/bzImage in that folder "
                             "(build it first: vng --build)")
        return KernelImage(spec, str(image), image_release(str(image)) or spec, tree=str(path))
    if path.is_file():
        return KernelImage(spec, str(path), image_release(str(path)) or path.name.removeprefix("vmlinuz-"))
    exact = BOOT / f"vmlinuz-{spec}"
    found = [str(exact)] if exact.is_file() else glob.glob(f"{BOOT}/vmlinuz-{glob.escape(spec)}[.-]*")
    if found:
        newest = Path(max(found, key=_version_key))
        return KernelImage(spec, str(newest), newest.name.removeprefix("vmlinuz-"))
    known = ", ".join(Path(p).name.removeprefix("vmlinuz-") for p in installed_images()) or "none"
    raise SetupError(f"--kernel {spec} is no kernel image, tree or release (installed in {BOOT}: {known}; "
                     "Debian's 6.1: apt-get install linux-image-amd64)")


def _version_key(path: str) -> list:
    """6.1.0-100 after 6.1.0-57: numbers compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def installed_images() -> list[str]:
    return sorted(glob.glob(f"{BOOT}/vmlinuz-*"))


def image_release(image: str) -> str | None:
    """The release an x86 bzImage carries in its setup header (the first word
    of its version string), or None when the file is no bzImage."""
    try:
        with open(image, "rb") as f:
            header = f.read(0x210)
            if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
                return None
            f.seek(int.from_bytes(header[0x20E:0x210], "little") + 0x200)
            version = f.read(256).split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return None
    return version.split()[0] if version.strip() else None


# ---------------------------------------------------------------- tools and KVM


def vng_path() -> str | None:
    """virtme-ng's `vng`: beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.is_file() else shutil.which("vng")


def qemu_path() -> str | None:
    return shutil.which("qemu-system-x86_64")


def busybox_path() -> str | None:
    """virtme-ng builds the guest's initramfs with busybox."""
    return shutil.which("busybox") or shutil.which("busybox", path="/usr/bin:/bin:/usr/sbin:/sbin")


@functools.cache
def kvm_usable(image: str) -> tuple[bool, str]:
    """(whether qemu can run `image` with KVM, why not or how it was seen);
    probed once per process."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as err:
        return False, f"/dev/kvm: {err.strerror}"
    qemu = qemu_path()
    if qemu is None:
        return False, "no qemu-system-x86_64"
    # `timeout` ends qemu even if this process dies during the probe.
    probe = subprocess.Popen(
        ["timeout", "-k", "1", str(KVM_PROBE_SECS + 1), qemu, "-accel", "kvm", "-cpu", "host", "-nodefaults", "-display", "none", "-no-reboot",
         "-m", "256", "-serial", "stdio", "-kernel", image,
         "-append", "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    seen, deadline = b"", time.monotonic() + KVM_PROBE_SECS
    try:
        while b"Linux version" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([probe.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(probe.stdout.fileno(), 4096) if ready else b""
            if ready and not chunk:
                break  # qemu ended
            seen += chunk
    finally:
        _kill_group(probe)
    if b"Linux version" in seen:
        return True, "a kernel booted with KVM printed its first line"
    return False, f"qemu with KVM did not start the kernel within {KVM_PROBE_SECS:.0f} s (it hangs here)"


# ---------------------------------------------------------------- running a guest


class Guest:
    """A temporary folder shared with VMs, and the VMs run with it; nothing
    of either is left once the `with` block ends, or tcptest dies."""

    def __enter__(self) -> Guest:
        self.share = tempfile.mkdtemp(prefix="tcptest-vm-")
        self._reaper = _start_reaper(self.share)
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.share, ignore_errors=True)
        os.write(self._reaper, b"done\n")
        os.close(self._reaper)

    def run(self, kernel: KernelImage, command: str, kvm: bool,
            on_line: Callable[[str], None], cpus: int = 2) -> tuple[int, str]:
        """Boot `kernel`, run the shell `command` in it as root, with the
        share writable from the guest at the same path; return its exit status
        and what vng printed on stderr. `on_line` gets each line the guest prints."""
        vng = vng_path()
        if vng is None:
            raise SetupError("--kernel needs virtme-ng: pip install virtme-ng (see tcptest doctor --vm)")
        argv = [vng, "--run", kernel.tree or kernel.image, "--user", "root", "--cpus", str(cpus),
                "--memory", GUEST_MEMORY, "--rwdir", self.share, *([] if kvm else ["--disable-kvm"]),
                "--", command]
        # vng's own temporary files go into the share, which the reaper removes.
        env = dict(os.environ, PATH=f"{Path(vng).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                   TMPDIR=self.share)
        with open(Path(self.share) / "vng.stderr", "w+b") as errors:
            guest = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                     env=env, start_new_session=True)
            try:
                os.write(self._reaper, f"{guest.pid}\n".encode())
                _relay(guest, on_line)
                status = guest.wait()
            finally:
                _kill_group(guest)
            errors.seek(0)
            return status, errors.read().decode(errors="replace")


def _relay(guest: subprocess.Popen, on_line: Callable[[str], None]) -> None:
    """Pass on the guest's lines until it ends, or stop it after SILENCE_SECS of nothing."""
    pending = b""
    while True:
        ready, _, _ = select.select([guest.stdout], [], [], SILENCE_SECS)
        if not ready:
            raise SetupError(f"the VM printed nothing for {SILENCE_SECS:.0f} s: stopped it")
        chunk = os.read(guest.stdout.fileno(), 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            on_line(line.decode(errors="replace").rstrip("\r"))
    if pending.strip():
        on_line(pending.decode(errors="replace"))


def _kill_group(process: subprocess.Popen) -> None:
    """End the process and everything it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
    if process.stdout:
        process.stdout.close()


# Run by a separate Python, in a session of its own: it reads process groups
# to watch until "done" or until the pipe closes (tcptest gone); in the latter
# case it kills the groups and removes the share.
_REAPER = """
import os, shutil, signal, sys, time
lines = sys.stdin.buffer.read().split(b"\\n")
if b"done" not in lines:
    for word in lines:
        if word.strip().isdigit():
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(int(word), sig)
                except OSError:
                    break
                time.sleep(2)
    shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def _start_reaper(share: str) -> int:
    """Start the reaper of `share`; return the write end of its pipe, which
    only this process holds."""
    read_end, write_end = os.pipe()
    subprocess.Popen([sys.executable, "-S", "-c", _REAPER, share], stdin=read_end,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(read_end)
    return write_end


# ---------------------------------------------------------------- for the doctor


@dataclass(frozen=True, slots=True)
class VmFacts:
    qemu: str | None
    vng: str | None
    busybox: str | None
    images: tuple[tuple[str, str, tuple[str, ...]], ...]  # (release, image, modules it lacks)
    kvm: tuple[bool, str] | None  # probed with the first image; None without one


def probe() -> VmFacts:
    images = []
    for image in installed_images():
        kernel = resolve(image)
        images.append((kernel.release, image, missing_modules(kernel)))
    kvm = kvm_usable(images[0][1]) if images and qemu_path() else None
    return VmFacts(qemu_path(), vng_path(), busybox_path(), tuple(images), kvm)


def missing_modules(kernel: KernelImage) -> tuple[str, ...]:
    """Of GUEST_MODULES, those neither built in nor found as a module."""
    where = kernel.modules_dir
    if where is None:
        return ()
    try:
        builtin = (where / "modules.builtin").read_text()
    except OSError:
        return GUEST_MODULES
    return tuple(name for name in GUEST_MODULES
                 if f"/{name}.ko" not in builtin and not list(where.rglob(f"{name}.ko*")))
