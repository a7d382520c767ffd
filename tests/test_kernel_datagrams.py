"""UDP both ways and ICMP out, on the real kernel (root)."""

from __future__ import annotations


import pytest

from kernel_runs import run_text, run_with_timing_retries
from tcptest.runner import RunRequest

pytestmark = pytest.mark.root("runs scripts against the kernel: needs root")

UDP_BOTH_WAYS = """\
0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3
+0 bind(3, ..., ...) = 0
+0 < 40000>8080 udp (10)
+0 read(3, ..., 100) = 10
+0 connect(3, ..., ...) = 0
+0 write(3, ..., 20) = 20
+0 > udp (20)
"""

# A datagram to a port nobody listens on: the kernel answers port unreachable
# (the name means the same in ICMPv4 and ICMPv6).
ICMP_OUT = "0 < 40000>9999 udp (10)\n+0 > icmp unreachable port_unreachable\n"


@pytest.mark.parametrize("ip_version", ["ipv4", "ipv6"])
@pytest.mark.parametrize("text", [UDP_BOTH_WAYS, ICMP_OUT], ids=["udp in and out", "icmp port unreachable out"])
def test_datagrams_both_ways(tmp_path, text, ip_version):
    script = tmp_path / "datagrams.pkt"
    script.write_text(text)
    verdict = run_with_timing_retries(RunRequest(str(script), (("ip_version", ip_version),)))
    assert verdict.passed, verdict.error


def test_a_wrong_udp_length_is_named(tmp_path):
    verdict = run_text(tmp_path / "udp.pkt", UDP_BOTH_WAYS.replace("> udp (20)", "> udp (21)"))
    assert verdict.line == 7 and "live packet payload: expected 21 bytes vs actual 20 bytes" in verdict.error


def test_a_wrong_icmp_code_is_named(tmp_path):
    verdict = run_text(tmp_path / "icmp.pkt", ICMP_OUT.replace("port_unreachable", "host_unreachable"))
    assert verdict.line == 2 and "live packet field icmp_code: expected: 1 (0x1) vs actual: 3 (0x3)" in verdict.error
