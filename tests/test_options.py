"""Run options: packetdrill's defaults where a script or the command line
says nothing."""

from __future__ import annotations

import pytest

from tcptest.errors import TcptestError
from tcptest.options import OptionError, RunOptions, apply_option


@pytest.mark.parametrize("options, prefix_len", [
    (RunOptions(ip_version="ipv4"), 24),  # 192.0.2.0/24, packetdrill's default remote prefix
    (RunOptions(ip_version="ipv6"), 32),  # 2001:db8::/32
    (RunOptions(ip_version="ipv4", remote_ip="192.0.2.1"), None),  # the address itself
    (RunOptions(ip_version="ipv6", remote_ip="fd3d:fa7b:d17d::1"), None),
])
def test_the_route_through_the_gateway_is_packetdrills(options, prefix_len):
    assert options.remote_prefix_len == prefix_len


def test_defines_are_checked_but_act_only_when_the_script_is_read():
    with pytest.raises(OptionError, match="--define needs NAME=VALUE"):
        apply_option(RunOptions(), "define", "TFO_COOKIE")
    assert apply_option(RunOptions(), "D", "TFO_COOKIE=00") == RunOptions()


def test_a_bad_option_is_one_of_tcptests_errors():
    assert issubclass(OptionError, TcptestError)
