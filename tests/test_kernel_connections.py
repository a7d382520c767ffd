"""Several connections in one script, told apart by the ports its lines name:
a listener with two children, driven in turn, on the real kernel (root)."""

from __future__ import annotations


import pytest

from kernel_runs import run_text, run_with_timing_retries
from tcptest.runner import RunRequest

pytestmark = pytest.mark.root("runs scripts against the kernel: needs root")

TWO_CHILDREN = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 2) = 0

+0 < 40001>8080 S 0:0(0) win 65535 <mss 1000>
+0 > 8080>40001 S. 0:0(0) ack 1 <...>
+0 < 40002>8080 S 500:500(0) win 65535 <mss 1000>
+0 > 8080>40002 S. 0:0(0) ack 501 <...>
+0 < 40002>8080 . 1:1(0) ack 1 win 257
+0 < 40001>8080 . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
+0 accept(3, ..., ...) = 5

// 4 is the connection from 40002 (its handshake ended first), 5 the one from 40001
+0 write(4, ..., 20) = 20
+0 > 8080>40002 P. 1:21(20) ack 1
+0 write(5, ..., 10) = 10
+0 > 8080>40001 P. 1:11(10) ack 1
+0 < 40001>8080 . 1:1(0) ack 11 win 257
+0 < 40002>8080 P. 1:101(100) ack 21 win 257
+0 read(4, ..., 100) = 100
+0 > 8080>40002 . 21:21(0) ack 101
"""


@pytest.mark.parametrize("ip_version", ["ipv4", "ipv6", "ipv4-mapped-ipv6"])
def test_two_connections_of_one_listener_in_one_script(tmp_path, ip_version):
    script = tmp_path / "two_children.pkt"
    script.write_text(TWO_CHILDREN)
    verdict = run_with_timing_retries(RunRequest(str(script), (("ip_version", ip_version), ("unexpected", "fail"))))
    assert verdict.passed, verdict.error


def test_a_segment_expected_on_the_wrong_connection_fails_there(tmp_path):
    verdict = run_text(tmp_path / "two_children.pkt",
                       TWO_CHILDREN.replace("+0 > 8080>40001 P. 1:11(10)", "+0 > 8080>40002 P. 1:11(10)"))
    assert not verdict.passed
    assert verdict.line == 19, verdict.error
    assert "actual packet: > 8080>40002 P. 1:21(20)" in verdict.error
