"""Verdicts as text, TAP, KTAP and JSON, on made-up verdicts."""

from __future__ import annotations

import json

import pytest

from tcptest import report
from tcptest.engine import Lateness
from tcptest.runner import Verdict

SCRIPT = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
"""
ERROR = ("{path}:5: error handling packet: bad value in outbound TCP option (kind=2): "
         "expected: mss 1460 actual: mss 1440\n"
         "script packet: > S. 0:0(0) ack 1 <mss 1460>\n"
         "actual packet: > S. 0:0(0) ack 1 win 65535 <mss 1440>")


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "handshake.pkt"
    path.write_text(SCRIPT)
    return str(path)


@pytest.fixture
def failed(script):
    return Verdict(script, "ipv6", False, error=ERROR.format(path=script), line=5,
                   duration=0.25, pcap="/pcaps/handshake.ipv6.pcap")


@pytest.fixture
def passed(script):
    return Verdict(script, "ipv4", True, duration=0.125, warnings=("packet mismatch ignored",))


def test_result_lines(passed, failed):
    assert report.result_line(passed) == "ok handshake.pkt[ipv4] (0.12 s)"
    assert report.result_line(failed) == (
        f"FAIL handshake.pkt[ipv6] (0.25 s): {failed.error.splitlines()[0]}")


def test_failure_text_shows_the_error_then_the_script_around_its_line(failed):
    error = failed.error.splitlines()
    lines = report.failure_text(failed).splitlines()
    assert lines[0] == error[0]
    assert lines[1:6] == [
        "  3 | +0 listen(3, 1) = 0",
        "  4 | +0 < S 0:0(0) win 65535 <mss 1000>",
        "> 5 | +0 > S. 0:0(0) ack 1 <mss 1460>",
        "  6 | +0 < . 1:1(0) ack 1 win 257",
        "  7 | +0 accept(3, ..., ...) = 4",
    ]
    assert lines[6:8] == error[1:] == ["script packet: > S. 0:0(0) ack 1 <mss 1460>",
                                       "actual packet: > S. 0:0(0) ack 1 win 65535 <mss 1440>"]
    assert lines[-1] == "pcap: /pcaps/handshake.ipv6.pcap"


def test_failure_text_without_a_line_or_a_readable_script(script):
    no_line = Verdict(script, "ipv4", False, error="cannot create a network namespace",
                      warnings=("slow",))
    assert report.failure_text(no_line) == "cannot create a network namespace\nwarning: slow"
    gone = Verdict("/nonexistent/x.pkt", "ipv4", False, error="x.pkt:3: boom", line=3)
    assert report.failure_text(gone) == "x.pkt:3: boom"


def test_text_closing_lists_failures_then_the_summary_line(passed, failed):
    text = report.text_closing([passed, failed, passed])
    assert text.splitlines()[-1] == "2 passed, 1 failed"
    assert text.startswith(f"FAIL handshake.pkt[ipv6]\n{report.failure_text(failed)}\n")
    assert report.text_closing([passed]) == "1 passed, 0 failed"


def test_ktap_as_the_kernel_selftests_print_it(passed, failed):
    lines = report.tap_header("ktap", 2) + report.tap_result("ktap", 1, passed) \
        + report.tap_result("ktap", 2, failed) + report.tap_footer("ktap", [passed, failed])
    reason = failed.error.splitlines()[0]
    assert lines == [
        "KTAP version 1",
        "1..2",
        "# warning: packet mismatch ignored",
        "ok 1 handshake.pkt[ipv4]",
        *[f"# {line}" for line in failed.error.splitlines()],
        "# pcap: /pcaps/handshake.ipv6.pcap",
        f"not ok 2 handshake.pkt[ipv6] # {reason}",
        "# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0",
    ]


def test_tap_puts_diagnostics_after_the_result(failed):
    lines = report.tap_header("tap", 1) + report.tap_result("tap", 1, failed)
    assert lines[:3] == ["TAP version 13", "1..1", f"not ok 1 handshake.pkt[ipv6] # {failed.error.splitlines()[0]}"]
    assert lines[3] == f"# {failed.error.splitlines()[0]}"
    assert report.tap_footer("tap", [failed]) == []


def test_tap_escapes_hashes_and_reasons_that_read_as_directives(script):
    odd = Verdict(script.replace("handshake", "a#b"), "ipv4", False, error="skipped a beat")
    [line, *_] = report.tap_result("tap", 3, odd)
    assert line == "not ok 3 a\\#b.pkt[ipv4] # error: skipped a beat"


def test_json_report(passed, failed):
    document = json.loads(report.json_report([passed, failed]))
    assert (document["passed"], document["failed"]) == (1, 1)
    assert [result["name"] for result in document["results"]] == ["handshake.pkt[ipv4]", "handshake.pkt[ipv6]"]
    assert document["results"][1] == {
        "name": "handshake.pkt[ipv6]", "path": failed.path, "ip_version": "ipv6", "passed": False,
        "error": failed.error, "line": 5, "warnings": [], "duration": 0.25,
        "pcap": "/pcaps/handshake.ipv6.pcap", "late_start": False, "setup_failed": False,
        "lateness": [], "timeline": None}
    assert document["results"][0]["warnings"] == ["packet mismatch ignored"]


LATE = ("{path}:4: tcptest was late: the inbound packet due at 0.000000 sec left at 0.005300 sec, "
        "5.300 ms late (tolerance 4.000 ms); not the kernel's doing: the machine kept tcptest "
        "from running on time")


def test_every_own_event_lateness_goes_into_the_json_and_comes_back(script):
    late = Verdict(script, "ipv4", False, error=LATE.format(path=script), line=4, late_start=True,
                   lateness=(Lateness(1, "system call", 120), Lateness(4, "inbound packet", 5300)))
    document = json.loads(report.json_report([late]))
    assert document["results"][0]["lateness"] == [
        {"line": 1, "kind": "system call", "usecs": 120}, {"line": 4, "kind": "inbound packet", "usecs": 5300}]
    assert document["results"][0]["late_start"] is True
    again = report.verdict_from_dict(document["results"][0])
    assert again.lateness == late.lateness and again.late_start


def test_the_summary_names_the_latest_own_event_of_all_runs(script, passed):
    early = Verdict(script, "ipv4", True, lateness=(Lateness(1, "system call", 80),))
    late = Verdict(script, "ipv6", True, lateness=(Lateness(3, "Python code", 900), Lateness(4, "command", 20)))
    lines = report.text_closing([early, late, passed]).splitlines()
    assert lines[-2:] == ["tcptest's own lateness: worst 0.900 ms, handshake.pkt[ipv6] line 3 (Python code)",
                          "3 passed, 0 failed"]
