"""Every script of the kernel's packetdrill suite reads, with the defines the
kernel's runner passes (ipv4 and ipv6 sets) and without any."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tcptest.cache import read_script
from tcptest.script import FastOpen, Symbol

CORPUS = Path(__file__).parents[1].parent / "shared/corpus/kselftest"
SCRIPTS = sorted(CORPUS.glob("*.pkt"))

IPV4_DEFINES = {
    "TFO_COOKIE": "3021b9d889017eeb",
    "TFO_COOKIE_ZERO": "b7c12350a90dc8f5",
    "CMSG_LEVEL_IP": "SOL_IP",
    "CMSG_TYPE_RECVERR": "IP_RECVERR",
}
IPV6_DEFINES = {
    "TFO_COOKIE": "c1d1e9742a47a9bc",
    "TFO_COOKIE_ZERO": "82af1a8f9a205c34",
    "CMSG_LEVEL_IP": "SOL_IPV6",
    "CMSG_TYPE_RECVERR": "IPV6_RECVERR",
}

pytestmark = pytest.mark.skipif(not SCRIPTS, reason=f"no corpus at {CORPUS}")


def test_the_corpus_is_all_there():
    assert len(SCRIPTS) == 160


@pytest.mark.parametrize("defines", [IPV4_DEFINES, IPV6_DEFINES, None], ids=["ipv4", "ipv6", "none"])
def test_every_script_parses(defines):
    for path in SCRIPTS:
        script = read_script(path, defines)
        assert script.path == str(path)
        assert script.events, path
        assert script.events[0].loc.line >= 1


def _names(node, found):
    """Every Symbol name and FastOpen cookie in a tree."""
    if isinstance(node, Symbol):
        found.add(node.name)
    elif isinstance(node, FastOpen):
        found.add(node.cookie)
    elif isinstance(node, (tuple, list)):
        for item in node:
            _names(item, found)
    elif dataclasses.is_dataclass(node):
        for field in dataclasses.fields(node):
            _names(getattr(node, field.name), found)
    return found


def test_defines_are_applied_across_the_corpus():
    with_defines, without = set(), set()
    for path in SCRIPTS:
        _names(read_script(path, IPV4_DEFINES).events, with_defines)
        _names(read_script(path, None).events, without)
    assert {"TFO_COOKIE", "TFO_COOKIE_ZERO", "CMSG_LEVEL_IP", "CMSG_TYPE_RECVERR"} <= without
    assert not {"TFO_COOKIE", "TFO_COOKIE_ZERO", "CMSG_LEVEL_IP", "CMSG_TYPE_RECVERR"} & with_defines
    assert {"3021b9d889017eeb", "b7c12350a90dc8f5", "SOL_IP", "IP_RECVERR"} <= with_defines
