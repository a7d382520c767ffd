"""host/rtnl.py's requests against the real kernel, on a bare tun0 in a
namespace of run_isolated's, read back with `ip`."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import time

import pytest

from tcptest.host import run_isolated
from tcptest.host.rtnl import RTN_LOCAL, RTN_UNICAST, Rtnetlink, RtnetlinkError
from tcptest.host.tun import bare_tun_device

pytestmark = pytest.mark.root("needs root")


def _ip(*args: str) -> list:
    return json.loads(subprocess.run(["ip", "-json", *args], check=True, capture_output=True, text=True).stdout)


def _configure_a_link(family: str, local: str, prefix: int, remote: str, gateway: str) -> dict:
    with bare_tun_device() as name:
        return _configure(name, family, local, prefix, remote, gateway)


def _configure(name: str, family: str, local: str, prefix: int, remote: str, gateway: str) -> dict:
    index = socket.if_nametoindex(name)
    with Rtnetlink() as rtnl:
        rtnl.set_link(index, mtu=1400)
        rtnl.add_address(index, local, prefix, 0x02 if family == "inet6" else 0)  # IFA_F_NODAD
        rtnl.set_link(index, up=True)
        rtnl.add_route(remote, 128 if family == "inet6" else 32, gateway, index)
        try:
            rtnl.add_address(index, local, prefix)
        except RtnetlinkError as exc:
            again = exc.errno
        deadline = time.monotonic() + 5  # an IPv6 address's local route comes a moment later
        while rtnl.route_type(local) != RTN_LOCAL and time.monotonic() < deadline:
            time.sleep(0.001)
        types = (rtnl.route_type(local), rtnl.route_type(remote))
    link = _ip("link", "show", name)[0]
    (address,) = [a for a in _ip("-f", family, "address", "show", name)[0]["addr_info"] if a["local"] == local]
    routes = _ip("-f", family, "route", "show", remote)
    return {"mtu": link["mtu"], "up": "UP" in link["flags"], "address": (address["local"], address["prefixlen"]),
            "routes": [(r["dst"], r.get("gateway"), r["dev"]) for r in routes], "again": again,
            "types": types}


@pytest.mark.parametrize("family, local, prefix, remote, gateway", [
    ("inet", "192.168.0.1", 16, "192.0.2.1", "192.168.0.2"),
    ("inet6", "fd3d:fa7b:d17d::1", 48, "2001:db8::1", "fd3d:fa7b:d17d:8888::1"),
])
def test_link_address_route_and_lookup_as_ip_shows_them(family, local, prefix, remote, gateway):
    seen = run_isolated(lambda: _configure_a_link(family, local, prefix, remote, gateway), timeout=30)
    assert seen == {"mtu": 1400, "up": True, "address": (local, prefix),
                    "routes": [(remote, gateway, "tun0")], "again": errno.EEXIST,
                    "types": (RTN_LOCAL, RTN_UNICAST)}
