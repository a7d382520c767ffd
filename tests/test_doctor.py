"""tcptest doctor: what it reports for machines described as facts, what --fix
does (with the host-changing calls replaced), and a real probe of this host."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest

from tcptest import cli, doctor
from tcptest.doctor import HostFacts, NamespaceFacts

READY = HostFacts(
    euid=0,
    capabilities=frozenset(range(41)),
    tun_errno=None,
    namespace=NamespaceFacts(congestion_controls=("reno", "bbr", "cubic"),
                             qdisc_errors=(("pfifo", None), ("fq", None))),
    available_congestion_controls=("reno", "bbr", "cubic"),
    allowed_congestion_controls=("reno", "bbr", "cubic"),
    hz=1000,
    hz_source="CONFIG_HZ in /proc/config.gz",
    tools=tuple((name, f"/usr/sbin/{name}") for name, *_ in doctor.TOOLS),
)
NO_CUBIC = replace(READY, allowed_congestion_controls=("reno", "bbr"),
                   namespace=replace(READY.namespace, congestion_controls=("reno", "bbr")))


def by_name(facts: HostFacts) -> dict[str, doctor.Check]:
    return {check.name: check for check in doctor.diagnose(facts)}


def test_a_ready_machine_passes_every_check():
    checks = doctor.diagnose(READY)
    assert [check.status for check in checks] == ["ok"] * len(checks)
    assert doctor.ready(checks)
    assert doctor.format_checks(checks).splitlines()[-1] == "ready"
    assert doctor.skip_reason("ipv6", checks) is None


def test_without_root_it_says_to_run_as_root_and_tests_skip():
    checks = by_name(replace(READY, euid=1000, capabilities=frozenset(range(12))))
    privileges = checks["privileges"]
    assert privileges.status == "fail"
    assert "uid 1000 without CAP_NET_ADMIN and CAP_SYS_ADMIN" in privileges.found
    assert "run as root" in privileges.remedy
    assert not doctor.ready(list(checks.values()))
    reason = doctor.skip_reason("ipv4", list(checks.values()))
    assert reason is not None and "CAP_NET_ADMIN" in reason and "run as root" in reason


def test_cap_net_admin_alone_is_not_enough_for_a_namespace():
    check = by_name(replace(READY, euid=1000, capabilities=frozenset({doctor.CAP_NET_ADMIN})))["privileges"]
    assert check.status == "fail" and "without CAP_SYS_ADMIN" in check.found


def test_missing_tun_is_a_problem_that_fix_can_try():
    check = by_name(replace(READY, tun_errno=errno.ENOENT))["tun"]
    assert check.status == "fail"
    assert check.found == "/dev/net/tun: No such file or directory"
    assert check.fix == "load_tun" and "modprobe tun" in check.remedy


def test_tun_closed_to_this_user_asks_for_root_not_a_module():
    check = by_name(replace(READY, tun_errno=errno.EACCES))["tun"]
    assert (check.status, check.found) == ("fail", "/dev/net/tun: Permission denied")
    assert check.fix is None and check.remedy == "run as root"


def test_no_namespace_leaves_out_what_only_a_namespace_can_tell():
    facts = replace(READY, namespace=NamespaceFacts(error="cannot create a network namespace: needs root"))
    checks = by_name(facts)
    assert checks["namespaces"].status == "fail"
    assert "needs root" in checks["namespaces"].found
    assert not {"ipv6", "congestion control", "qdisc pfifo"} & set(checks)
    assert "needs root" in doctor.skip_reason("ipv4", list(checks.values()))


def test_without_ipv6_only_the_ipv6_runs_skip():
    facts = replace(READY, namespace=replace(READY.namespace, ipv6_error="the kernel has no IPv6"))
    checks = list(by_name(facts).values())
    assert by_name(facts)["ipv6"].status == "fail"
    assert doctor.skip_reason("ipv4", checks) is None
    assert "no IPv6" in doctor.skip_reason("ipv6", checks)
    assert "no IPv6" in doctor.skip_reason("ipv4-mapped-ipv6", checks)


def test_cubic_not_allowed_in_namespaces_names_the_sysctl_to_set():
    check = by_name(NO_CUBIC)["congestion control"]
    assert check.status == "fail"
    assert check.found == "a new namespace may use: reno bbr (not cubic)"
    assert 'net.ipv4.tcp_allowed_congestion_control="reno bbr cubic"' in check.remedy
    assert check.fix == "allow_congestion_controls"


def test_pfifo_is_needed_but_fq_only_warns():
    facts = replace(READY, namespace=replace(READY.namespace, qdisc_errors=(
        ("pfifo", "tc: unknown qdisc"), ("fq", "tc: unknown qdisc"))))
    checks = by_name(facts)
    assert checks["qdisc pfifo"].status == "fail"
    assert checks["qdisc fq"].status == "warn"
    assert checks["qdisc fq"].fix == "load_sch_fq"
    only_fq = replace(READY, namespace=replace(READY.namespace, qdisc_errors=(
        ("pfifo", None), ("fq", "tc: unknown qdisc"))))
    assert doctor.ready(doctor.diagnose(only_fq))


@pytest.mark.parametrize("hz, status", [(1000, "ok"), (250, "warn"), (None, "warn")])
def test_hz_other_than_1000_warns_about_timing(hz, status):
    check = by_name(replace(READY, hz=hz))["HZ"]
    assert check.status == status
    if hz == 250:
        assert "4 ms jiffies" in check.remedy and "--tolerance_usecs" in check.remedy


def test_missing_tools_fail_or_warn_by_need():
    tools = tuple((name, None if name in ("tc", "tcpdump") else path) for name, path in READY.tools)
    checks = by_name(replace(READY, tools=tools))
    assert checks["tool tc"].status == "fail" and checks["tool tc"].remedy == "apt-get install iproute2"
    assert checks["tool tcpdump"].status == "warn" and "pcap" in checks["tool tcpdump"].found
    assert checks["tool ip"].status == "ok"


def test_report_lists_problems_with_remedies():
    text = doctor.format_checks(doctor.diagnose(replace(NO_CUBIC, hz=250)))
    assert "fail  congestion control" in text
    assert "-> sysctl -w net.ipv4.tcp_allowed_congestion_control" in text
    assert text.splitlines()[-1] == ("not ready: 1 problem(s), 1 warning(s); "
                                     "`tcptest doctor --fix` can try 1 of them")


# ---------------------------------------------------------------- --fix


@pytest.fixture
def host_changes(monkeypatch):
    """Record the host changes --fix would make instead of making them."""
    made: list[tuple] = []
    monkeypatch.setattr(doctor, "_write_sysctl", lambda name, value: made.append(("sysctl", name, value)))
    monkeypatch.setattr(doctor, "_modprobe", lambda module: made.append(("modprobe", module)) or f"loaded {module}")
    return made


def test_fix_adds_cubic_to_the_allowed_list(host_changes):
    results = doctor.apply_fixes(NO_CUBIC, doctor.diagnose(NO_CUBIC))
    assert host_changes == [("sysctl", "net/ipv4/tcp_allowed_congestion_control", "reno bbr cubic")]
    assert [(check.name, done) for check, _, done in results] == [("congestion control", True)]


def test_fix_loads_cubic_first_when_the_kernel_lacks_it(host_changes):
    facts = replace(NO_CUBIC, available_congestion_controls=("reno", "bbr"))
    doctor.apply_fixes(facts, doctor.diagnose(facts))
    assert host_changes == [("modprobe", "tcp_cubic"),
                            ("sysctl", "net/ipv4/tcp_allowed_congestion_control", "reno bbr cubic")]


def test_fix_reports_what_it_could_not_do(monkeypatch):
    def refuse(module):
        raise doctor.FixFailed(f"cannot load {module}: modprobe not found")
    monkeypatch.setattr(doctor, "_modprobe", refuse)
    facts = replace(READY, tun_errno=errno.ENOENT)
    [(check, what, done)] = doctor.apply_fixes(facts, doctor.diagnose(facts))
    assert (check.name, done) == ("tun", False)
    assert what == "cannot load tun: modprobe not found"


def test_doctor_fix_probes_again_and_exits_0_once_fixed(host_changes, capsys):
    probes = iter([NO_CUBIC, READY])
    assert doctor.main(["--fix"], probe_host=lambda: next(probes)) == 0
    out = capsys.readouterr().out
    assert out.startswith("fixed congestion control: set net.ipv4.tcp_allowed_congestion_control = reno bbr cubic")
    assert out.rstrip().endswith("ready")


def test_doctor_without_fix_changes_nothing_and_exits_1(host_changes, capsys):
    assert doctor.main([], probe_host=lambda: NO_CUBIC) == 1
    assert host_changes == []
    assert "not ready" in capsys.readouterr().out


def test_doctor_rejects_unknown_arguments(capsys):
    assert cli.main(["doctor", "--fixit"]) == 2
    assert "tcptest doctor takes only --fix" in capsys.readouterr().err


# ---------------------------------------------------------------- this host


root_only = pytest.mark.root("probing namespaces needs root")


@root_only
def test_real_probe_of_this_host():
    facts = doctor.probe()
    checks = by_name(facts)
    for name in ("privileges", "tun", "namespaces", "ipv6", "qdisc pfifo"):
        assert checks[name].status == "ok", checks[name]
    # The namespace may choose exactly what the host allows (and has).
    assert set(facts.namespace.congestion_controls) == (
        set(facts.allowed_congestion_controls) & set(facts.available_congestion_controls))
    assert facts.hz in doctor.KNOWN_HZ


@root_only
def test_measured_hz_agrees_with_the_kernel_config(monkeypatch):
    configured, source = doctor._kernel_hz()
    if configured is None:
        pytest.skip("no kernel config to compare with")
    monkeypatch.setattr(doctor, "_kernel_config_paths", lambda: ())
    measured, how = doctor._kernel_hz()
    assert how.startswith("measured")
    assert measured == configured


@root_only
def test_doctor_command_on_this_host(capsys):
    status = cli.main(["doctor"])
    out = capsys.readouterr().out
    assert ("ok    namespaces" in out) and (status == (0 if out.splitlines()[-1].startswith("ready") else 1))
