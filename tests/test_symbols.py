"""The symbol table: values against the platform's own constants, and every
symbol the kselftest corpus passes to a system call is known."""

from __future__ import annotations

import errno
import os
import re
import select
import socket
from pathlib import Path

import pytest

from tcptest import symbols
from tcptest.calls import CALLS

CORPUS = Path(__file__).parents[1].parent / "shared/corpus/kselftest"


@pytest.mark.parametrize("module", [socket, select, os, errno], ids=lambda m: m.__name__)
def test_values_agree_with_python_platform_constants(module):
    checked = 0
    for name, value in symbols.SYMBOLS.items():
        theirs = getattr(module, name, None)
        if isinstance(theirs, int) and not isinstance(theirs, bool):
            assert value == theirs, name
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("name, value", [
    ("TCP_INQ", 36), ("TCP_CM_INQ", 36), ("SO_ZEROCOPY", 60), ("MSG_ZEROCOPY", 0x4000000),
    ("SO_EE_ORIGIN_ZEROCOPY", 5), ("SO_EE_ORIGIN_TIMESTAMPING", 4),
    ("SO_EE_CODE_ZEROCOPY_COPIED", 1), ("SCM_TIMESTAMPING", 37), ("SO_TIMESTAMPING", 37),
    ("SOF_TIMESTAMPING_TX_SCHED", 256), ("SOF_TIMESTAMPING_OPT_ID", 128),
    ("SOF_TIMESTAMPING_SOFTWARE", 16), ("SCM_TSTAMP_SND", 0), ("SCM_TSTAMP_SCHED", 1),
    ("SCM_TSTAMP_ACK", 2), ("TCP_FASTOPEN", 23), ("TCP_FASTOPEN_CONNECT", 30),
    ("TCP_FASTOPEN_KEY", 33), ("TCP_FASTOPEN_NO_COOKIE", 34), ("TCP_MD5SIG", 14),
    ("TCP_USER_TIMEOUT", 18), ("TCP_NOTSENT_LOWAT", 25), ("TCP_CONGESTION", 13),
    ("MSG_FASTOPEN", 0x20000000), ("MSG_EOR", 0x80), ("MSG_MORE", 0x8000),
    ("MSG_ERRQUEUE", 0x2000), ("MSG_TRUNC", 0x20), ("SIOCINQ", 0x541B), ("FIONREAD", 0x541B),
    ("SIOCOUTQ", 0x5411), ("SIOCOUTQNSD", 0x894B), ("EPOLLET", 1 << 31),
    ("EPOLLONESHOT", 1 << 30), ("EPOLLEXCLUSIVE", 1 << 28), ("SOCK_NONBLOCK", 0o4000),
    ("O_NONBLOCK", 0o4000), ("O_RDWR", 2), ("F_SETFL", 4), ("F_GETFL", 3),
    ("IP_MTU_DISCOVER", 10), ("IP_PMTUDISC_DONT", 0), ("IP_FREEBIND", 15), ("SO_MARK", 36),
    ("SHUT_WR", 1), ("AF_UNSPEC", 0), ("NULL", 0), ("TCP_ESTABLISHED", 1), ("TCP_CLOSE", 7),
    ("TCP_CA_Loss", 4), ("TCPI_OPT_SYN_DATA", 32), ("SK_MEMINFO_RCVBUF", 1),
    ("EINPROGRESS", 115), ("EAGAIN", 11), ("EWOULDBLOCK", 11), ("ENOMSG", 42),
])
def test_linux_values(name, value):
    assert symbols.lookup(name) == value


def test_unknown_symbol_is_none():
    assert symbols.lookup("SO_NO_SUCH_OPTION") is None
    assert not symbols.is_known("SO_NO_SUCH_OPTION")


@pytest.mark.parametrize("version, level, kind", [
    ("ipv4", 0, 11), ("ipv6", 41, 25), ("ipv4-mapped-ipv6", 41, 25),
])
def test_error_queue_names_follow_the_socket_family(version, level, kind):
    assert symbols.lookup("CMSG_LEVEL_IP", version) == level
    assert symbols.lookup("CMSG_TYPE_RECVERR", version) == kind


def test_flag_names():
    assert symbols.flag_names(symbols.POLL_EVENTS["POLLIN"] | symbols.POLL_EVENTS["POLLOUT"],
                              symbols.POLL_EVENTS) == "POLLIN|POLLOUT"
    assert symbols.flag_names(0, symbols.POLL_EVENTS) == "0"
    assert symbols.flag_names(0x4 | 0x8000_0000_0, symbols.POLL_EVENTS) == "POLLOUT|0x800000000"
    assert symbols.flag_names(0x2020, symbols.MSG_FLAGS) == "MSG_TRUNC|MSG_ERRQUEUE"


def test_errno_name():
    assert symbols.errno_name(11) == "EAGAIN"
    assert symbols.errno_name(104) == "ECONNRESET"


# ------------------------------------------------------ corpus coverage

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_BLOCKS = re.compile(r"`.*?`|%\{.*?\}%", re.S)


def _calls(text: str):
    """(name, argument text, text after `=`) of every system call."""
    text = _BLOCKS.sub(" ", _COMMENTS.sub(" ", text))
    names = "|".join(CALLS)
    for match in re.finditer(rf"\b({names})\(", text):
        depth, index = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            index += 1
        after = re.match(r"\s*=\s*[-\w]+\s*([A-Z][A-Z0-9_]*)?", text[index:])
        yield match.group(1), text[match.end(): index - 1], after.group(1) if after else None


def test_every_symbol_the_corpus_passes_to_a_call_is_known():
    if not CORPUS.is_dir():
        pytest.skip("no corpus beside the repository")
    seen = set()
    for path in sorted(CORPUS.glob("*.pkt")):
        for name, args, errno_name in _calls(path.read_text()):
            seen.add(name)
            for word in re.findall(r"(?<![\w\"\\])[A-Z][A-Z0-9_]+\b", args):
                assert symbols.is_known(word), f"{path.name}: {name}(...{word}...)"
            if errno_name:
                assert errno_name in symbols.ERRNO, f"{path.name}: {name} = {errno_name}"
    assert {"socket", "recvmsg", "epoll_wait", "splice", "sendfile"} <= seen
