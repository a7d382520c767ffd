"""The pytest plugin, driven through pytester: collection, options, failure
reports, skipping, passivity, and real runs against the kernel as root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptest import doctor, runner
from tcptest.runner import Verdict

pytest_plugins = ["pytester"]

BODY = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n"


@pytest.fixture(autouse=True)
def not_an_xdist_worker(monkeypatch):
    """The sessions pytester starts are not xdist workers, even when this one is."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.fixture
def scripts(pytester):
    pytester.makefile(".pkt", any=BODY, v6="--ip_version=ipv6\n" + BODY)
    return pytester


@pytest.fixture
def runs(monkeypatch):
    """Replace the runner (runs fail for scripts named fail*.pkt, writing a
    pcap as the runner does) and the host check; return the requests."""
    requests = []

    def fake_run(request, trace=None):
        requests.append(request)
        version = dict(request.command_line)["ip_version"]
        pcap = Path(request.pcap_dir) / f"{Path(request.path).stem}.{version}.pcap"
        pcap.write_bytes(b"pcap")
        if Path(request.path).name.startswith("fail"):
            return Verdict(request.path, version, False, line=2, pcap=str(pcap),
                           error=f"{request.path}:2: error handling packet: expected ack 1\n"
                                 "script packet: > . 1:1(0) ack 1\nactual packet: > . 1:1(0) ack 2")
        warnings = ("a late packet was forgiven",) if Path(request.path).name.startswith("warn") else ()
        return Verdict(request.path, version, True, pcap=str(pcap), warnings=warnings)

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(doctor, "skip_reason", lambda ip_version, checks=None: None)
    return requests


def collected(result) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_one_test_per_script_and_ip_version_it_allows(scripts):
    result = scripts.runpytest("--collect-only", "-q")
    assert collected(result) == [
        "any.pkt::any.pkt[ipv4]", "any.pkt::any.pkt[ipv6]", "any.pkt::any.pkt[ipv4-mapped-ipv6]",
        "v6.pkt::v6.pkt[ipv6]"]


def test_ip_versions_from_the_command_line(scripts):
    result = scripts.runpytest("--collect-only", "-q", "--tcptest-ip-versions=ipv4,ipv4-mapped-ipv6")
    assert collected(result) == ["any.pkt::any.pkt[ipv4]", "any.pkt::any.pkt[ipv4-mapped-ipv6]"]


def test_ip_versions_from_the_ini_file_and_the_command_line_wins(scripts):
    scripts.makeini("[pytest]\ntcptest_ip_versions = ipv6\n")
    assert collected(scripts.runpytest("--collect-only", "-q")) == [
        "any.pkt::any.pkt[ipv6]", "v6.pkt::v6.pkt[ipv6]"]
    assert collected(scripts.runpytest("--collect-only", "-q", "--tcptest-ip-versions=ipv4")) == [
        "any.pkt::any.pkt[ipv4]"]


def test_ip_version_option_runs_every_script_with_that_one(scripts):
    result = scripts.runpytest("--collect-only", "-q", "--tcptest-option=--ip_version=ipv4")
    assert collected(result) == ["any.pkt::any.pkt[ipv4]", "v6.pkt::v6.pkt[ipv4]"]


def test_options_and_defines_from_ini_and_command_line_reach_the_runner(scripts, runs):
    scripts.makepyprojecttoml("""
        [tool.pytest.ini_options]
        tcptest_options = ["--tolerance_usecs=10000", "--non_fatal=packet"]
        tcptest_defines = ["TFO_COOKIE=abc"]
    """)
    result = scripts.runpytest("-q", "--tcptest-option=--mtu=1520", "--tcptest-define", "X=1",
                               "v6.pkt")
    result.assert_outcomes(passed=1)
    [request] = runs
    assert request.command_line == (
        ("tolerance_usecs", "10000"), ("non_fatal", "packet"), ("mtu", "1520"),
        ("define", "TFO_COOKIE=abc"), ("define", "X=1"), ("ip_version", "ipv6"))
    assert request.path == str(scripts.path / "v6.pkt")


@pytest.mark.parametrize("args, message", [
    (["--tcptest-ip-versions=ipv5"], "unknown IP version ipv5"),
    (["--tcptest-option=--tolerance_usecs=soon"], "bad value for --tolerance_usecs"),
    (["--tcptest-option=tolerance_usecs=1"], "an option is written --NAME=VALUE"),
    (["--tcptest-option=--no_such_thing=1"], "unknown option --no_such_thing"),
    (["--tcptest-define=NOVALUE"], "--define needs NAME=VALUE"),
])
def test_bad_options_are_usage_errors(scripts, args, message):
    result = scripts.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in "\n".join(result.errlines)


def test_a_failure_shows_the_script_the_error_and_keeps_the_pcap(pytester, runs):
    pytester.makefile(".pkt", fail="--ip_version=ipv4\n" + BODY, ok=BODY)
    pcaps = pytester.path / "caps"
    result = pytester.runpytest("--tcptest-pcap-dir", str(pcaps), "--junitxml=junit.xml")
    result.assert_outcomes(passed=3, failed=1)
    path = pytester.path / "fail.pkt"
    result.stdout.fnmatch_lines([
        "*_ tcptest fail.pkt[[]ipv4[]] _*",
        f"{path}:2: error handling packet: expected ack 1",
        "  1 | --ip_version=ipv4",
        "> 2 | 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3",
        "  3 | +0 close(3) = 0",
        "script packet: > . 1:1(0) ack 1",
        "actual packet: > . 1:1(0) ack 2",
        f"pcap: {pcaps}/fail.ipv4.pcap",
        f"report: {pcaps}/fail.ipv4-*.html",
        "FAILED fail.pkt::fail.pkt[[]ipv4[]] - /*",  # with the error's first line, as wide as the screen
    ])
    [page] = pcaps.glob("fail.ipv4-*.html")  # the failure's page
    assert sorted(p.name for p in pcaps.iterdir()) == sorted([page.name, "fail.ipv4.pcap"])  # passed runs' are gone
    assert "fail.pkt[ipv4]" in page.read_text() and 'href="fail.ipv4.pcap"' in page.read_text()
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="fail.pkt[ipv4]"' in junit
    assert f'<property name="pcap" value="{pcaps}/fail.ipv4.pcap" />' in junit


def test_pcaps_go_to_a_session_temporary_folder_by_default(pytester, runs):
    pytester.makefile(".pkt", fail="--ip_version=ipv4\n" + BODY)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    # The report names it; newer pytest repeats the message in its short summary.
    named = {line.removeprefix("pcap: ") for line in result.outlines if line.startswith("pcap: ")}
    assert len(named) == 1, named
    pcap = Path(named.pop())
    assert pcap.name == "fail.ipv4.pcap" and pcap.exists()
    assert pcap.parent.name.startswith("tcptest-pcap")


def test_run_warnings_become_pytest_warnings(pytester, runs):
    pytester.makefile(".pkt", warn="--ip_version=ipv4\n" + BODY)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*TcptestWarning: warn.pkt[[]ipv4[]]: a late packet was forgiven*"])


def test_a_machine_that_cannot_run_skips_with_the_reason(scripts, monkeypatch):
    simulated = doctor.diagnose(doctor.HostFacts(
        euid=1000, capabilities=frozenset(), tun_errno=None,
        namespace=doctor.NamespaceFacts(error="cannot create a network namespace: needs root"),
        available_congestion_controls=(), allowed_congestion_controls=(), hz=250, hz_source="test",
        tools=()))
    monkeypatch.setattr(doctor, "_host_checks", lambda: tuple(simulated))
    result = scripts.runpytest("-rs")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["SKIPPED [[]3[]] any.pkt: tcptest cannot run here: uid 1000 without "
                                 "CAP_NET_ADMIN and CAP_SYS_ADMIN; run as root*",
                                 "SKIPPED [[]1[]] v6.pkt: tcptest cannot run here: *"])


def test_a_script_that_cannot_be_read_is_a_collection_error_naming_its_line(pytester):
    pytester.makefile(".pkt", broken="0 socket(..., SOCK_STREAM\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting broken.pkt*",
                                 f"{pytester.path}/broken.pkt:1:26: error: unexpected end of file*"])
    assert "Traceback" not in result.stdout.str()


def test_python_test_runs_stay_untouched(pytester, monkeypatch):
    """Only .pkt files under the given paths (or testpaths) are collected, and
    nothing probes the host when there are none."""
    def no_probe(*args):
        raise AssertionError("the host was probed")
    monkeypatch.setattr(doctor, "skip_reason", no_probe)
    monkeypatch.setattr(doctor, "probe", no_probe)
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    pytester.mkdir("corpus")
    (pytester.path / "corpus" / "x.pkt").write_text(BODY)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "x.pkt" not in result.stdout.str()


# ---------------------------------------------------------------- for real

root_only = pytest.mark.root("runs scripts in namespaces: needs root")
# These tests are about the plugin, not timing: a loaded machine must not fail them.
LOOSE_TIMING = "--tcptest-option=--tolerance_usecs=500000"

HANDSHAKE = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
"""


@root_only
def test_real_runs_against_the_kernel(pytester):
    pytester.makefile(".pkt", handshake=HANDSHAKE,
                      wrong="--ip_version=ipv4\n" + HANDSHAKE.replace("<mss 1460>", "<mss 1200>"))
    result = pytester.runpytest("--tcptest-ip-versions=ipv4,ipv4-mapped-ipv6", LOOSE_TIMING)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*bad value in outbound TCP option (kind=2): expected: mss 1200 actual: mss 1460*",
                                 "> 7 | +0 > S. 0:0(0) ack 1 <mss 1200>",
                                 "pcap: *wrong.ipv4.pcap"])


@root_only
def test_real_runs_with_xdist_and_junitxml(pytester):
    pytester.makefile(".pkt", handshake=HANDSHAKE, closing=BODY)
    # (over IPv6 the SYN-ACK would carry mss 1440)
    result = pytester.runpytest_subprocess("-n", "2", "--junitxml=junit.xml",
                                           "--tcptest-ip-versions=ipv4,ipv4-mapped-ipv6", LOOSE_TIMING)
    result.assert_outcomes(passed=4)
    junit = (pytester.path / "junit.xml").read_text()
    assert junit.count("<testcase ") == 4 and 'name="handshake.pkt[ipv4-mapped-ipv6]"' in junit


def test_pytest_html_links_a_failures_page(pytester, runs):
    pytest.importorskip("pytest_html")
    pytester.makefile(".pkt", fail="--ip_version=ipv4\n" + BODY)
    pcaps = pytester.path / "caps"
    result = pytester.runpytest("--tcptest-pcap-dir", str(pcaps), "--html=report.html")
    result.assert_outcomes(failed=1)
    [page] = pcaps.glob("fail.ipv4-*.html")
    html = (pytester.path / "report.html").read_text()
    assert page.as_uri() in html and "tcptest report" in html


def test_tcptest_kernel_names_the_kernel_in_each_id_and_boots_each_vm_once(scripts, runs, monkeypatch, tmp_path):
    from tcptest import kernels, results
    from tcptest.host import vm

    image = vm.KernelImage("6.1", "/boot/vmlinuz-6.1.0-57-amd64", "6.1.0-57-amd64")
    monkeypatch.setattr(vm, "resolve", lambda spec: image)
    boots = []

    def fake_run_in_vm(kernel, requests, jobs, repeat, say):
        boots.append((kernel, [Path(r.path).name for r in requests]))
        verdicts = [Verdict(r.path, dict(r.command_line)["ip_version"], dict(r.command_line)["ip_version"] != "ipv6",
                            error="x.pkt:1: differs on 6.1") for r in requests]
        return results.Results((results.KernelInfo(kernel.release, kernel.release),),
                               results.group_attempts(verdicts, 1, kernel.release))

    monkeypatch.setattr(kernels, "run_in_vm", fake_run_in_vm)
    result = scripts.runpytest("-p", "no:randomly", "--tcptest-kernel=host", "--tcptest-kernel=6.1", "-v")
    ids = [line.split(" ")[0] for line in result.outlines if "::" in line and ("PASSED" in line or "FAILED" in line)]
    assert "any.pkt::any.pkt[ipv4-host]" in ids and "any.pkt::any.pkt[ipv4-6.1.0-57-amd64]" in ids
    assert "v6.pkt::v6.pkt[ipv6-6.1.0-57-amd64]" in ids
    assert boots == [(image, ["any.pkt", "any.pkt", "any.pkt", "v6.pkt"])]  # one boot for the 4 runs
    result.assert_outcomes(passed=6, failed=2)  # host: 4 (fake) passes; 6.1: the ipv6 runs fail
    assert "x.pkt:1: differs on 6.1" in result.stdout.str()
