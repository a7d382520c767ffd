"""`tcptest run` on many scripts: options, output formats and exit codes, with
the runner replaced by a fake (and once for real, as root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcptest import cli, doctor, runner
from tcptest.runner import Verdict

BODY = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n"


@pytest.fixture
def scripts(tmp_path):
    """good.pkt runs with all three IP versions; bad.pkt only with ipv4 and
    fails (with the fake runner) at its line 3."""
    (tmp_path / "good.pkt").write_text(BODY)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.pkt").write_text("--ip_version=ipv4\n" + BODY)
    return tmp_path


@pytest.fixture
def runs(monkeypatch):
    """Replace the runner; return the requests it was given."""
    requests = []

    def fake_run(request, trace=None):
        requests.append(request)
        version = dict(request.command_line).get("ip_version", "ipv4")
        if Path(request.path).name == "bad.pkt":
            return Verdict(request.path, version, False, line=3, duration=0.5,
                           error=f"{request.path}:3: error handling packet: expected ack 1\n"
                                 "script packet: > . 1:1(0) ack 1\nactual packet: > . 1:1(0) ack 2")
        return Verdict(request.path, version, True, duration=0.25)

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(doctor, "skip_reason", lambda ip_version, checks=None: None)
    return requests


def test_text_lists_runs_then_failures_then_the_summary(scripts, runs, capsys):
    assert cli.main(["run", str(scripts)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "ok good.pkt[ipv4] (0.25 s)",
        "ok good.pkt[ipv6] (0.25 s)",
        "ok good.pkt[ipv4-mapped-ipv6] (0.25 s)",
        f"FAIL bad.pkt[ipv4] (0.50 s): {scripts}/sub/bad.pkt:3: error handling packet: expected ack 1",
    ]
    assert out[4:6] == ["FAIL bad.pkt[ipv4]", f"{scripts}/sub/bad.pkt:3: error handling packet: expected ack 1"]
    assert "> 3 | +0 close(3) = 0" in out
    assert "actual packet: > . 1:1(0) ack 2" in out
    assert out[-1] == "3 passed, 1 failed"


def test_warnings_follow_a_passing_run_and_come_once_with_a_failure(scripts, monkeypatch, capsys):
    def fake_run(request, trace=None):
        passed = Path(request.path).name == "good.pkt"
        return Verdict(request.path, "ipv4", passed, line=None if passed else 3, error=None if passed else
                       f"{request.path}:3: boom", warnings=(f"{request.path}:1: command printed:\nhi",))

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(doctor, "skip_reason", lambda ip_version, checks=None: None)
    cli.main(["run", "--ip_version=ipv4", str(scripts)])
    out = capsys.readouterr().out
    assert f"ok good.pkt[ipv4] (0.00 s)\nwarning: good.pkt[ipv4]: {scripts}/good.pkt:1: command printed:\nhi" in out
    assert out.count(f"{scripts}/sub/bad.pkt:1: command printed:\nhi") == 1
    assert f"warning: {scripts}/sub/bad.pkt:1: command printed:\nhi" in out  # in the failure's full text


def test_exit_0_when_every_run_passes(scripts, runs, capsys):
    assert cli.main(["run", str(scripts / "good.pkt")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "3 passed, 0 failed"


def test_ip_version_on_the_command_line_runs_only_that_one(scripts, runs, capsys):
    assert cli.main(["run", "--ip_version=ipv6", str(scripts)]) == 1
    assert [(Path(r.path).name, r.command_line) for r in runs] == [
        ("good.pkt", (("ip_version", "ipv6"),)), ("bad.pkt", (("ip_version", "ipv6"),))]
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 1 failed"


def test_packetdrill_options_and_defines_reach_every_run(scripts, runs):
    cli.main(["run", "--tolerance_usecs=10000", "-D", "X=1", "-DY=2", str(scripts / "sub")])
    assert runs[0].command_line == (("tolerance_usecs", "10000"), ("define", "X=1"), ("define", "Y=2"),
                                    ("ip_version", "ipv4"))


@pytest.mark.parametrize("jobs", [["-j", "3"], ["-j3"], ["--jobs=3"], ["--jobs", "auto"]])
def test_parallel_runs_print_the_same_as_serial_ones(scripts, runs, capsys, jobs):
    cli.main(["run", str(scripts)])
    serial = capsys.readouterr().out
    assert cli.main(["run", *jobs, str(scripts)]) == 1
    assert capsys.readouterr().out == serial


def test_ktap(scripts, runs, capsys):
    assert cli.main(["run", "--format=ktap", str(scripts)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[:2] == ["KTAP version 1", "1..4"]
    results = [line for line in lines if not line.startswith("#")]
    assert results[2:] == [
        "ok 1 good.pkt[ipv4]", "ok 2 good.pkt[ipv6]", "ok 3 good.pkt[ipv4-mapped-ipv6]",
        f"not ok 4 bad.pkt[ipv4] # {scripts}/sub/bad.pkt:3: error handling packet: expected ack 1"]
    assert "# actual packet: > . 1:1(0) ack 2" in lines
    assert lines[-1] == "# Totals: pass:3 fail:1 xfail:0 xpass:0 skip:0 error:0"
    assert captured.err.splitlines()[-1] == "3 passed, 1 failed"


def test_tap(scripts, runs, capsys):
    assert cli.main(["run", "--format", "tap", str(scripts / "good.pkt")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "TAP version 13", "1..3", "ok 1 good.pkt[ipv4]", "ok 2 good.pkt[ipv6]",
        "ok 3 good.pkt[ipv4-mapped-ipv6]"]


def test_json(scripts, runs, capsys):
    assert cli.main(["run", "--format=json", str(scripts)]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert (document["passed"], document["failed"]) == (3, 1)
    assert document["results"][3]["name"] == "bad.pkt[ipv4]"
    assert document["results"][3]["line"] == 3
    assert captured.err.strip() == "3 passed, 1 failed"


def test_pcap_dir_is_made_and_given_to_every_run(scripts, runs, tmp_path):
    cli.main(["run", "--pcap", str(tmp_path / "caps"), str(scripts / "good.pkt")])
    assert (tmp_path / "caps").is_dir()
    assert {request.pcap_dir for request in runs} == {str(tmp_path / "caps")}


@pytest.mark.parametrize("argv, message", [
    (["run"], "needs at least one script"),
    (["run", "-j", "0", "x.pkt"], "-j takes a number"),
    (["run", "-j"], "-j needs a value"),
    (["run", "--format=xml", "x.pkt"], "--format takes one of text, tap, ktap, json"),
    (["run", "--frobnicate", "x.pkt"], "unknown option --frobnicate"),
    (["run", "--tolerance_usecs=soon", "x.pkt"], "bad value for --tolerance_usecs"),
    (["run", "--pcap"], "--pcap needs a value"),
    (["launch"], "tcptest run"),
])
def test_usage_errors_exit_2(runs, capsys, argv, message):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert runs == []


def test_help_exits_0(capsys):
    assert cli.main(["run", "--help"]) == 0
    assert "tcptest doctor [--fix]" in capsys.readouterr().out


def test_the_host_is_diagnosed_only_after_a_setup_failure(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.pkt").write_text("0 `true`\n")
    probes = []
    monkeypatch.setattr(doctor, "skip_reason", lambda ip_version, checks=None: probes.append(ip_version)
                        or "tcptest cannot run here: uid 1000 without CAP_NET_ADMIN; run as root")
    outcome = {"setup_failed": False}

    def fake_run(request, trace=None):
        return Verdict(request.path, "ipv4", not outcome["setup_failed"], **outcome)

    monkeypatch.setattr(runner, "run", fake_run)
    assert cli.main(["run", str(tmp_path)]) == 0
    assert probes == []  # not on the success path: it builds a namespace and a TUN device
    outcome["setup_failed"] = True
    assert cli.main(["run", str(tmp_path)]) == 1
    assert "run as root" in capsys.readouterr().err
    assert probes == ["ipv4"]


# ---------------------------------------------------------------- for real


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


@pytest.mark.root("runs scripts in namespaces: needs root")
def test_real_runs_with_pcaps(tmp_path, capsys):
    (tmp_path / "handshake.pkt").write_text(HANDSHAKE)
    (tmp_path / "wrong.pkt").write_text(HANDSHAKE.replace("ack 1 <mss 1460>", "ack 1 <mss 1200>"))
    # A generous tolerance: a loaded machine must not turn the mss mismatch into a timing error.
    status = cli.main(["run", "-j", "2", "--ip_version=ipv4", "--tolerance_usecs=500000",
                       "--pcap", str(tmp_path / "caps"),
                       str(tmp_path / "handshake.pkt"), str(tmp_path / "wrong.pkt")])
    out = capsys.readouterr().out
    assert status == 1, out
    assert out.splitlines()[-1] == "1 passed, 1 failed"
    assert "expected: mss 1200 actual: mss 1460" in out
    assert f"pcap: {tmp_path}/caps/wrong.ipv4.pcap" in out
    assert f"pcapng: {tmp_path}/caps/wrong.ipv4.pcapng" in out
    assert sorted(path.name for path in (tmp_path / "caps").iterdir()) == [
        "handshake.ipv4.pcap", "handshake.ipv4.pcapng", "wrong.ipv4.pcap", "wrong.ipv4.pcapng"]
