"""The plan: a script checked and prepared for one run's options, before the
clock starts."""

from __future__ import annotations

import pytest

from tcptest.errors import ScriptError
from tcptest.options import RunOptions
from tcptest.parser import parse_script
from tcptest.plan import make_plan


def plan(text: str, ip_version: str = "ipv4"):
    return make_plan(parse_script(text, "t.pkt"), RunOptions(ip_version=ip_version))


def test_icmp_names_resolve_for_the_runs_ip_version():
    text = "0 < icmp unreachable port_unreachable\n+0 > icmp unreachable port_unreachable\n"
    assert plan(text, "ipv4").icmp_numbers == {0: (3, 3), 1: (3, 3)}
    assert plan(text, "ipv6").icmp_numbers == {0: (1, 4), 1: (1, 4)}
    assert plan(text, "ipv4-mapped-ipv6").wire_version == 4


def test_an_icmp_name_of_the_other_ip_version_fails_at_its_line_before_the_run():
    with pytest.raises(ScriptError) as error:
        plan("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n+0 < icmp packet_too_big mtu 1280\n", "ipv4")
    assert error.value.loc.line == 2 and "unknown ICMPv4 type 'packet_too_big'" in str(error.value)


def test_calls_tcptest_cannot_make_fail_at_their_line_before_the_run():
    with pytest.raises(ScriptError, match=r"^t.pkt:2:1: error: unknown symbol: 'SO_BOGUS'"):
        plan("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 setsockopt(3, SOL_SOCKET, SO_BOGUS, [1], 4) = 0\n")


def test_ports_named_anywhere_make_a_multi_connection_plan():
    assert not plan("0 < S 0:0(0) win 1\n+0 > S. 0:0(0) ack 1\n").names_ports
    assert plan("0 < 40001>8080 S 0:0(0) win 1\n+0 > S. 0:0(0) ack 1\n").names_ports


def test_each_event_knows_whether_the_next_outbound_line_is_flexible():
    text = ("0 < S 0:0(0) win 1\n"
            "+0 > S. 0:0(0) ack 1\n"
            "+0 < . 1:1(0) ack 1 win 1\n"
            "+0 write(4, ..., 10) = 10\n"
            "* > P. 1:11(10) ack 1\n"
            "+0 close(4) = 0\n"
            "+0.1~+0.2 > F. 11:11(0) ack 1\n"
            "+0 < . 1:1(0) ack 12 win 1\n")
    assert plan(text).next_outbound_is_flexible == (False, False, True, True, True, True, True, False)
