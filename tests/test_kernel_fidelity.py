"""Where tcptest used to read or run a script otherwise than upstream
packetdrill does, on the real kernel (root). Each script here passes under
packetdrill on Linux 6.18 (`unshare -n packetdrill --ip_version=ipv4 x.pkt`)."""

from __future__ import annotations

import pytest

from kernel_runs import WIDE_TOLERANCE, run_with_timing_retries
from tcptest.runner import RunRequest

pytestmark = pytest.mark.root("runs scripts against the kernel: needs root")


def run_text(path, text: str, ip_version: str = "ipv4"):
    """Write `text` to `path` and run it with WIDE_TOLERANCE, again on a timing error."""
    path.write_text(text)
    return run_with_timing_retries(RunRequest(str(path), (("ip_version", ip_version), WIDE_TOLERANCE)))

LISTENER = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
"""

# packetdrill takes a Fast Open cookie as long as the option space allows: 38
# bytes for FO, 36 for FOEXP (whose option carries a 2-byte magic). The kernel
# ignores a cookie that long and answers with a plain SYN-ACK.
LONG_COOKIE = LISTENER + """\
+0 < S 0:0(0) win 65535 <{option} {cookie}>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
"""


@pytest.mark.parametrize("option, length", [("FO", 38), ("FOEXP", 36)])
def test_fast_open_cookies_as_long_as_the_option_space(tmp_path, option, length):
    cookie = bytes(range(1, length + 1)).hex()
    verdict = run_text(tmp_path / "cookie.pkt", LONG_COOKIE.format(option=option, cookie=cookie))
    assert verdict.passed, verdict.error


# packetdrill routes the remote address itself through the gateway when
# --remote_ip names it (as the kernel's selftest runner does), so a script can
# change that route; a route's advmss is what the SYN-ACK then announces.
ADVMSS_ROUTE = """\
--remote_ip=192.0.2.1
0 `ip route change 192.0.2.1 via 192.168.0.1 dev tun0 advmss 600`
""" + LISTENER + """\
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 600>
"""


def test_a_script_changes_the_route_to_the_remote_address(tmp_path):
    verdict = run_text(tmp_path / "advmss.pkt", ADVMSS_ROUTE)
    assert verdict.passed, verdict.error


# An ICMP line that quotes no segment quotes the connection's seq 0 (the
# kernel's ISN) without payload, as packetdrill does; that is what makes the
# kernel take it for a connection not yet established. The quote, written or
# not, is looked up by the kernel's ports and checked against its ISN.
SYN_RECV_UNREACHABLE = LISTENER + """\
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.01 < icmp unreachable host_unreachable{quote}
// the request is gone: the peer's ACK finds no connection
+.01 < . 1:1(0) ack 1 win 257
+0 > R 1:1(0)
"""

# SYN-data too big for the path: the kernel sends the SYN again at once, plain,
# with the MSS the ICMP's MTU leaves (800 - 40).
SYN_DATA_FRAG_NEEDED = """\
0 `sysctl -q net.ipv4.tcp_fastopen=0x5`
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 sendto(3, ..., 1000, MSG_FASTOPEN, ..., ...) = 1000
+0 > S 0:1000(1000) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 10>
+.01 < icmp unreachable frag_needed mtu 800{quote}
+0 > S 0:0(0) <mss 760,sackOK,TS val 110 ecr 0,nop,wscale 10>
"""


@pytest.mark.parametrize("text, quote", [
    (SYN_RECV_UNREACHABLE, ""), (SYN_RECV_UNREACHABLE, " [0:0(0)]"),
    (SYN_DATA_FRAG_NEEDED, ""), (SYN_DATA_FRAG_NEEDED, " [0:1000(1000)]"),
], ids=["syn_recv unquoted", "syn_recv quoted", "syn-data unquoted", "syn-data quoted"])
def test_icmp_for_a_connection_not_yet_established(tmp_path, text, quote):
    verdict = run_text(tmp_path / "icmp.pkt", text.format(quote=quote))
    assert verdict.passed, verdict.error


# Upstream packetdrill takes --non_fatal=syscall and never reads it (its
# config flag is set, nowhere tested): a call with the wrong result still
# fails the script there, and so it does here.
def test_non_fatal_syscall_leaves_a_wrong_call_fatal_as_packetdrill_does(tmp_path):
    verdict = run_text(tmp_path / "call.pkt", "--non_fatal=syscall\n" + LISTENER + "+0 write(3, ..., 10) = 10\n")
    assert verdict.line == 6, verdict.error
    assert "runtime error in write call: Expected result 10 but got -1 with errno 32 (Broken pipe)" in verdict.error


# A Fast Open client: a cookie learned on one connection goes out with the
# SYN-data of the next ones, also after a SYN-ACK that acknowledged more than
# the SYN-data (which the client answers with a RST).
FAST_OPEN_CLIENT = """\
0 `sysctl -q net.ipv4.tcp_fastopen=0x1`
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 sendto(3, ..., 0, MSG_FASTOPEN, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 10,FO,nop,nop>
+0 < S. 123:123(0) ack 1 win 14600 <mss 1460,nop,nop,sackOK,nop,wscale 6,FO abcd1234,nop,nop>
+0 > . 1:1(0) ack 1
+0 close(3) = 0
+0 > F. 1:1(0) ack 1
+0 < F. 1:1(0) ack 2 win 92
+0 > . 2:2(0) ack 2

+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 sendto(4, ..., 1000, MSG_FASTOPEN, ..., ...) = 1000
+0 > S 0:1000(1000) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 10,FO abcd1234,nop,nop>
+.01 < S. 1000:1000(0) ack 2001 win 14600 <mss 1460,nop,nop,sackOK,nop,wscale 6>
+0 > R 2001:2001(0)
+0 close(4) = 0

+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 5
+0 fcntl(5, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 sendto(5, ..., 1000, MSG_FASTOPEN, ..., ...) = 1000
+0 > S 0:1000(1000) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 10,FO abcd1234,nop,nop>
"""


def test_a_fast_open_client_keeps_its_cookie_after_an_over_acknowledging_syn_ack(tmp_path):
    verdict = run_text(tmp_path / "fo_client.pkt", "--unexpected=fail\n" + FAST_OPEN_CLIENT)
    assert verdict.passed, verdict.error


# ICMPv6 codes under packetdrill's names: each ends a connection in SYN_SENT
# with the errno the kernel maps it to (icmpv6_err_convert).
ICMPV6_IN_SYN_SENT = """\
0 socket(..., SOCK_STREAM|SOCK_NONBLOCK, IPPROTO_TCP) = 3
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <...>
+.01 < icmp {message}
+.01 getsockopt(3, SOL_SOCKET, SO_ERROR, [{errno}], [4]) = 0
"""


@pytest.mark.parametrize("message, errno", [
    ("unreachable net_unreachable", "ENETUNREACH"),
    ("unreachable no_route", "ENETUNREACH"),
    ("unreachable admin_prohibited", "EACCES"),
    ("unreachable not_neighbour", "EHOSTUNREACH"),
    ("unreachable address_unreachable", "EHOSTUNREACH"),
    ("unreachable port_unreachable", "ECONNREFUSED"),
    ("time_exceeded exceeded_hop_limit", "EHOSTUNREACH"),
    ("time_exceeded exceeded_frag_time", "EHOSTUNREACH"),
    ("parameter_problem header_field", "EPROTO"),
    ("parameter_problem unknown_next_header", "EPROTO"),
    ("parameter_problem unknown_option", "EPROTO"),
    ("type_1 code_4", "ECONNREFUSED"),
])
def test_icmpv6_codes_by_packetdrills_names(tmp_path, message, errno):
    verdict = run_text(tmp_path / "icmpv6.pkt", ICMPV6_IN_SYN_SENT.format(message=message, errno=errno), "ipv6")
    assert verdict.passed, verdict.error
