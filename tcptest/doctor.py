"""`tcptest doctor`: is this machine ready to run scripts, and if not, how to
make it so.

Looking and judging are kept apart: `probe()` is the only part that touches the
system and returns plain `HostFacts`; `diagnose(facts)` turns them into
`Check`s without touching anything, so tests can describe any machine.
`apply_fixes()` makes host changes, and only `tcptest doctor --fix` calls it.
"""

from __future__ import annotations

import errno
import functools
import gzip
import os
import re
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

Status = Literal["ok", "warn", "fail"]

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21

# Set by defaults.sh, the init command of every kernel selftest script.
NEEDED_CONGESTION_CONTROLS = ("cubic",)
# (kind, needed): pfifo is set by defaults.sh; fq by a few scripts only.
QDISCS = (("pfifo", True), ("fq", False))
# (tool, needed, Debian package, what calls it)
TOOLS = (
    ("ip", True, "iproute2", "init commands (ip tcp_metrics in defaults.sh)"),
    ("tc", True, "iproute2", "init commands (tc qdisc in defaults.sh)"),
    ("sysctl", True, "procps", "init commands (defaults.sh)"),
    ("nstat", False, "iproute2", "scripts that read TCP counters"),
    ("ethtool", False, "ethtool", "scripts that change device offloads"),
    ("tcpdump", False, "tcpdump", "reading the pcaps that --pcap writes"),
)
KNOWN_HZ = (100, 250, 300, 1000)

# The checks that stop every run; ipv6 stops the IPv6 runs.
BLOCKING_CHECKS = ("privileges", "tun", "namespaces")


@dataclass(frozen=True, slots=True)
class NamespaceFacts:
    """What a fresh network namespace offers; `error` says why none could be made."""

    error: str | None = None
    ipv6_error: str | None = None
    congestion_controls: tuple[str, ...] = ()  # the ones it may choose as default
    qdisc_errors: tuple[tuple[str, str | None], ...] = ()  # (kind, why it cannot be used)


@dataclass(frozen=True, slots=True)
class HostFacts:
    euid: int
    capabilities: frozenset[int]  # effective capability numbers
    tun_errno: int | None  # why /dev/net/tun did not open, None when it did
    namespace: NamespaceFacts
    available_congestion_controls: tuple[str, ...]
    allowed_congestion_controls: tuple[str, ...]
    hz: int | None
    hz_source: str
    tools: tuple[tuple[str, str | None], ...]  # (name, path or None)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    found: str
    remedy: str = ""  # what the user can do when status is not ok
    fix: str | None = None  # the key of the FIXES entry `--fix` can apply


# ---------------------------------------------------------------- probing


def probe() -> HostFacts:
    """Look at this machine (forks one child into a new network namespace)."""
    tools = tuple((name, shutil.which(name)) for name, *_ in TOOLS)
    tun_errno = _tun_errno()
    hz, hz_source = _kernel_hz()
    return HostFacts(
        euid=os.geteuid(),
        capabilities=_effective_capabilities(),
        tun_errno=tun_errno,
        namespace=_probe_namespace(tun_errno is None, dict(tools).get("tc")),
        available_congestion_controls=_sysctl_words("net/ipv4/tcp_available_congestion_control"),
        allowed_congestion_controls=_sysctl_words("net/ipv4/tcp_allowed_congestion_control"),
        hz=hz,
        hz_source=hz_source,
        tools=tools,
    )


def _effective_capabilities() -> frozenset[int]:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return frozenset()
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", status, re.M)
    mask = int(match.group(1), 16) if match else 0
    return frozenset(bit for bit in range(64) if mask >> bit & 1)


def _tun_errno() -> int | None:
    from .host.tun import tun_open_error

    error = tun_open_error()
    return error.errno if error is not None else None


def _sysctl_words(name: str) -> tuple[str, ...]:
    try:
        return tuple(Path("/proc/sys", name).read_text().split())
    except OSError:
        return ()


def _probe_namespace(tun_works: bool, tc_path: str | None) -> NamespaceFacts:
    from .errors import TcptestError
    from .host.isolation import run_isolated

    try:
        return run_isolated(lambda: _inside_namespace(tun_works, tc_path), timeout=30)
    except (TcptestError, RuntimeError) as exc:
        return NamespaceFacts(error=str(exc))


def _inside_namespace(tun_works: bool, tc_path: str | None) -> NamespaceFacts:
    """Runs in the forked child, alone in its new namespace."""
    return NamespaceFacts(
        ipv6_error=_ipv6_error(),
        congestion_controls=tuple(
            name for name in _sysctl_words("net/ipv4/tcp_available_congestion_control")
            if _may_choose_congestion_control(name)),
        qdisc_errors=_qdisc_errors(tun_works, tc_path),
    )


def _ipv6_error() -> str | None:
    if not Path("/proc/sys/net/ipv6").exists():
        return "the kernel has no IPv6 (CONFIG_IPV6 off, or booted with ipv6.disable=1)"
    from .host.namespace import ipv6_loopback_error

    exc = ipv6_loopback_error()
    if exc is not None:
        disabled = _sysctl_words("net/ipv6/conf/default/disable_ipv6") == ("1",)
        hint = " (net.ipv6.conf.default.disable_ipv6 is 1)" if disabled else ""
        return f"cannot bind an IPv6 socket to ::1 in a namespace: {exc.strerror}{hint}"
    return None


def _may_choose_congestion_control(name: str) -> bool:
    """A namespace other than the host's may choose only what the host's
    tcp_allowed_congestion_control lists; the kernel answers EPERM otherwise."""
    try:
        Path("/proc/sys/net/ipv4/tcp_congestion_control").write_text(name)
    except OSError:
        return False
    return True


def _qdisc_errors(tun_works: bool, tc_path: str | None) -> tuple[tuple[str, str | None], ...]:
    if not tun_works or not tc_path:
        missing = "TUN" if not tun_works else "the tc tool"
        return tuple((kind, f"not checked: needs {missing}") for kind, _ in QDISCS)
    from .host.tun import bare_tun_device

    with bare_tun_device() as device:
        results = []
        for kind, _ in QDISCS:
            done = subprocess.run([tc_path, "qdisc", "replace", "dev", device, "root", kind],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True)
            why = done.stderr.strip() or f"exit status {done.returncode}"
            results.append((kind, None if done.returncode == 0 else f"tc qdisc replace ... {kind}: {why}"))
        return tuple(results)


def _kernel_hz() -> tuple[int | None, str]:
    """CONFIG_HZ from the kernel's config when it can be read, else measured:
    jiffies (in /proc/timer_list) counted over a fifth of a second."""
    for path in _kernel_config_paths():
        try:
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode(errors="replace")
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        match = re.search(r"^CONFIG_HZ=(\d+)$", text, re.M)
        if match:
            return int(match.group(1)), f"CONFIG_HZ in {path}"
    try:
        first, started = _jiffies(), time.monotonic()
        time.sleep(0.2)
        ticks, elapsed = _jiffies() - first, time.monotonic() - started
    except (OSError, ValueError):
        return None, "no kernel config and no jiffies in /proc/timer_list"
    measured = ticks / elapsed
    return min(KNOWN_HZ, key=lambda hz: abs(hz - measured)), f"measured {measured:.0f} jiffies/s"


def _kernel_config_paths() -> tuple[Path, ...]:
    return (Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}"))


def _jiffies() -> int:
    text = Path("/proc/timer_list").read_text()
    return max(int(n) for n in re.findall(r"^jiffies: (\d+)", text, re.M))


# ---------------------------------------------------------------- judging


def diagnose(facts: HostFacts) -> list[Check]:
    """What the facts mean for a run, most fundamental first."""
    checks = [_privileges(facts), _tun(facts), _namespaces(facts)]
    ns = facts.namespace
    if ns.error is None:
        checks.append(Check("ipv6", "ok", "IPv6 works in a namespace") if ns.ipv6_error is None
                      else Check("ipv6", "fail", ns.ipv6_error,
                                 "boot without ipv6.disable=1, or run only --ip_version=ipv4"))
        checks.append(_congestion_controls(facts))
        checks.extend(_qdiscs(facts))
    checks.append(_hz(facts))
    checks.extend(_tools(facts))
    return checks


def _privileges(facts: HostFacts) -> Check:
    missing = [name for name, bit in (("CAP_NET_ADMIN", CAP_NET_ADMIN),
                                      ("CAP_SYS_ADMIN", CAP_SYS_ADMIN))
               if bit not in facts.capabilities]
    who = "root" if facts.euid == 0 else f"uid {facts.euid}"
    if not missing:
        return Check("privileges", "ok", f"{who} with CAP_NET_ADMIN and CAP_SYS_ADMIN")
    return Check("privileges", "fail", f"{who} without {' and '.join(missing)}",
                 "run as root (sudo tcptest ...): a run creates a network namespace and a TUN device")


def _tun(facts: HostFacts) -> Check:
    if facts.tun_errno is None:
        return Check("tun", "ok", "/dev/net/tun opens")
    found = f"/dev/net/tun: {os.strerror(facts.tun_errno)}"
    if facts.tun_errno in (errno.EACCES, errno.EPERM):
        return Check("tun", "fail", found, "run as root")
    return Check("tun", "fail", found,
                 "load the tun module (modprobe tun), or a kernel with CONFIG_TUN", fix="load_tun")


def _namespaces(facts: HostFacts) -> Check:
    if facts.namespace.error is None:
        return Check("namespaces", "ok", "a new network namespace can be made")
    return Check("namespaces", "fail", facts.namespace.error,
                 "run as root, on a kernel with CONFIG_NET_NS (in a container: --privileged)")


def _congestion_controls(facts: HostFacts) -> Check:
    allowed = facts.namespace.congestion_controls
    missing = [cc for cc in NEEDED_CONGESTION_CONTROLS if cc not in allowed]
    found = f"a new namespace may use: {' '.join(allowed) or 'none'}"
    if not missing:
        return Check("congestion control", "ok", found)
    wanted = " ".join(dict.fromkeys(facts.allowed_congestion_controls + tuple(missing)))
    return Check("congestion control", "fail", f"{found} (not {', '.join(missing)})",
                 f"sysctl -w net.ipv4.tcp_allowed_congestion_control=\"{wanted}\" "
                 "(the kernel selftests' defaults.sh sets cubic)", fix="allow_congestion_controls")


def _qdiscs(facts: HostFacts) -> list[Check]:
    needed = dict(QDISCS)
    checks = []
    for kind, error in facts.namespace.qdisc_errors:
        if error is None:
            checks.append(Check(f"qdisc {kind}", "ok", "tc can attach it"))
        else:
            module = "sch_fifo" if kind == "pfifo" else f"sch_{kind}"
            checks.append(Check(
                f"qdisc {kind}", "fail" if needed.get(kind) else "warn", error,
                f"modprobe {module}, or a kernel with CONFIG_NET_SCH_{kind.upper()}"
                + ("" if needed.get(kind) else " (only scripts that use it need it)"),
                fix=None if error.startswith("not checked") else f"load_{module}"))
    return checks


def _hz(facts: HostFacts) -> Check:
    if facts.hz is None:
        return Check("HZ", "warn", f"unknown: {facts.hz_source}",
                     "timer-driven timings may need a larger --tolerance_usecs")
    found = f"{facts.hz} ({facts.hz_source})"
    if facts.hz == 1000:
        return Check("HZ", "ok", found)
    return Check("HZ", "warn", found,
                 f"the kernel's selftests assume HZ=1000; with {1000 // facts.hz} ms jiffies some "
                 "timings may need --tolerance_usecs=14000, as the kernel's runner uses on slow machines")


def _tools(facts: HostFacts) -> list[Check]:
    where = dict(facts.tools)
    checks = []
    for name, needed, package, used_by in TOOLS:
        path = where.get(name)
        if path:
            checks.append(Check(f"tool {name}", "ok", path))
        else:
            checks.append(Check(f"tool {name}", "fail" if needed else "warn",
                                f"not found on PATH (used by {used_by})",
                                f"apt-get install {package}"))
    return checks


def diagnose_vm(facts) -> list[Check]:
    """The VM path of `run --kernel` (facts: host.vm.VmFacts)."""
    checks = [
        Check("vm qemu", "ok", facts.qemu) if facts.qemu else
        Check("vm qemu", "fail", "no qemu-system-x86_64 on PATH", "apt-get install qemu-system-x86"),
        Check("vm virtme-ng", "ok", facts.vng) if facts.vng else
        Check("vm virtme-ng", "fail", "no vng beside this Python or on PATH",
              "pip install virtme-ng (tcptest's vm extra: pip install 'tcptest[vm]')"),
        Check("vm busybox", "ok", facts.busybox) if facts.busybox else
        Check("vm busybox", "fail", "no busybox (virtme-ng builds the guest's initramfs with it)",
              "apt-get install busybox-static"),
    ]
    if not facts.images:
        checks.append(Check("vm kernels", "fail", "no /boot/vmlinuz-* to boot (a tree or an image file "
                            "still works with --kernel PATH)", "apt-get install linux-image-amd64 (Debian's 6.1)"))
    for release, image, missing in facts.images:
        checks.append(Check(f"vm kernel {release}", "fail" if missing else "ok",
                            f"{image}: no {', '.join(missing)} module in /lib/modules/{release}" if missing
                            else f"{image}, modules in /lib/modules/{release}",
                            f"install the modules of {release} (its linux-image package)"))
    if facts.kvm is not None:
        usable, why = facts.kvm
        checks.append(Check("vm kvm", "ok", why) if usable else Check(
            "vm kvm", "warn", f"KVM unusable: {why}",
            "VMs run under TCG, several times slower; run --kernel scales the tolerance under TCG"))
    return checks


def ready(checks: Sequence[Check]) -> bool:
    return all(check.status != "fail" for check in checks)


# ---------------------------------------------------------------- for the pytest plugin


@functools.cache
def _host_checks() -> tuple[Check, ...]:
    return tuple(diagnose(probe()))


def skip_reason(ip_version: str, checks: Sequence[Check] | None = None) -> str | None:
    """Why no script can run here for `ip_version` (probed once per process), or None."""
    blocking = BLOCKING_CHECKS + (("ipv6",) if ip_version != "ipv4" else ())
    for check in _host_checks() if checks is None else checks:
        if check.name in blocking and check.status == "fail":
            return f"tcptest cannot run here: {check.found}; {check.remedy} (see `tcptest doctor`)"
    return None


# ---------------------------------------------------------------- fixing


def _write_sysctl(name: str, value: str) -> None:
    try:
        Path("/proc/sys", name).write_text(value)
    except OSError as exc:
        unknown = " (a value the kernel does not know)" if exc.errno == errno.ENOENT else ""
        raise FixFailed(f"cannot set {name.replace('/', '.')}: {exc.strerror}{unknown}") from None


def _modprobe(module: str) -> str:
    modprobe = shutil.which("modprobe") or shutil.which("modprobe", path="/sbin:/usr/sbin")
    if modprobe is None:
        raise FixFailed(f"cannot load {module}: modprobe not found (apt-get install kmod)")
    done = subprocess.run([modprobe, module], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise FixFailed(f"modprobe {module}: {done.stderr.strip() or f'status {done.returncode}'}")
    return f"loaded the {module} module"


def _load_tun(facts: HostFacts) -> str:
    done = _modprobe("tun")
    if not Path("/dev/net/tun").exists() and Path("/sys/class/misc/tun/dev").exists():
        major, minor = Path("/sys/class/misc/tun/dev").read_text().split(":")
        Path("/dev/net").mkdir(exist_ok=True)
        os.mknod("/dev/net/tun", 0o600 | stat.S_IFCHR, os.makedev(int(major), int(minor)))
        done += " and made /dev/net/tun"
    return done


def _allow_congestion_controls(facts: HostFacts) -> str:
    missing = [cc for cc in NEEDED_CONGESTION_CONTROLS if cc not in facts.namespace.congestion_controls]
    loaded = []
    for cc in missing:
        if cc not in facts.available_congestion_controls:
            _modprobe(f"tcp_{cc}")
            loaded.append(cc)
    allowed = " ".join(dict.fromkeys(facts.allowed_congestion_controls + tuple(missing)))
    _write_sysctl("net/ipv4/tcp_allowed_congestion_control", allowed)
    return (f"set net.ipv4.tcp_allowed_congestion_control = {allowed}"
            + (f" (loaded {', '.join(loaded)})" if loaded else "")
            + "; until reboot: to keep it, add that line to /etc/sysctl.d/90-tcptest.conf")


class FixFailed(Exception):
    """A host change --fix tried could not be made; the message says why."""


FIXES: dict[str, Callable[[HostFacts], str]] = {
    "load_tun": _load_tun,
    "allow_congestion_controls": _allow_congestion_controls,
    "load_sch_fifo": lambda facts: _modprobe("sch_fifo"),
    "load_sch_fq": lambda facts: _modprobe("sch_fq"),
}


def apply_fixes(facts: HostFacts, checks: Sequence[Check]) -> list[tuple[Check, str, bool]]:
    """Make the host changes the checks ask for; (check, what happened, done) each."""
    results = []
    for check in checks:
        if check.status == "ok" or check.fix is None:
            continue
        try:
            results.append((check, FIXES[check.fix](facts), True))
        except (FixFailed, OSError) as exc:
            results.append((check, str(exc), False))
    return results


# ---------------------------------------------------------------- the command


def format_checks(checks: Sequence[Check]) -> str:
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status:<4}  {check.name:<{width}}  {check.found}")
        if check.status != "ok" and check.remedy:
            lines.append(f"{'':<4}  {'':<{width}}  -> {check.remedy}")
    problems = sum(check.status == "fail" for check in checks)
    warnings = sum(check.status == "warn" for check in checks)
    if problems:
        fixable = sum(check.status == "fail" and check.fix is not None for check in checks)
        hint = f"; `tcptest doctor --fix` can try {fixable} of them" if fixable else ""
        lines.append(f"not ready: {problems} problem(s), {warnings} warning(s){hint}")
    else:
        lines.append(f"ready ({warnings} warning(s))" if warnings else "ready")
    return "\n".join(lines)


def main(argv: Sequence[str], probe_host: Callable[[], HostFacts] = probe) -> int:
    """`tcptest doctor [--fix]`: 0 when a run can work here, 1 otherwise."""
    from .options import OptionError

    unknown = [arg for arg in argv if arg not in ("--fix", "--vm")]
    if unknown:
        raise OptionError(f"tcptest doctor takes only --fix and --vm, not {' '.join(unknown)}")
    facts = probe_host()
    checks = diagnose(facts)
    if "--vm" in argv:
        from .host import vm

        vm_checks = diagnose_vm(vm.probe())
        checks += vm_checks
    if "--fix" in argv:
        results = apply_fixes(facts, checks)
        for check, what, done in results:
            print(f"{'fixed' if done else 'could not fix'} {check.name}: {what}")
        if any(done for _, _, done in results):
            facts = probe_host()
            checks = diagnose(facts) + (vm_checks if "--vm" in argv else [])
        elif not results:
            print("nothing to fix")
    print(format_checks(checks))
    return 0 if ready(checks) else 1
