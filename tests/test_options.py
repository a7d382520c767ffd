"""Run options: packetdrill's defaults where a script or the command line
says nothing."""

from __future__ import annotations

import pytest

from tcptest.options import RunOptions


@pytest.mark.parametrize("options, prefix_len", [
    (RunOptions(ip_version="ipv4"), 24),  # 192.0.2.0/24, packetdrill's default remote prefix
    (RunOptions(ip_version="ipv6"), 32),  # 2001:db8::/32
    (RunOptions(ip_version="ipv4", remote_ip="192.0.2.1"), None),  # the address itself
    (RunOptions(ip_version="ipv6", remote_ip="fd3d:fa7b:d17d::1"), None),
])
def test_the_route_through_the_gateway_is_packetdrills(options, prefix_len):
    assert options.remote_prefix_len == prefix_len
