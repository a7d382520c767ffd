"""Damaged scripts never crash the parser: only ScriptError, with a location
inside the file and a printable message.

Damage is done to real corpus scripts, token by token (delete, duplicate,
swap), by cutting lines, and by inserting odd bytes, NUL and invalid UTF-8
included, which reach the parser through read_script like a user's file would.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcptest.errors import ScriptError
from tcptest.cache import read_script
from tcptest.parser import parse_script

CORPUS = Path(__file__).parents[1].parent / "shared/corpus/kselftest"
SCRIPTS = sorted(CORPUS.glob("*.pkt"))
TEXTS = [path.read_bytes() for path in SCRIPTS]

pytestmark = pytest.mark.skipif(not SCRIPTS, reason=f"no corpus at {CORPUS}")

ODD_BYTES = [
    b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"\x1b", b"\r", b"\t", b"\x0b", b"\xc2\xa0",
    b"`", b'"', b"%{", b"}%", b"/*", b"*/", b"//", b"#", b"(", b")", b"[", b"]", b"{", b"}",
    b"<", b">", b"...", b"~", b"*", b"+", b"-", b".", b":", b"=", b"|", b",", b"\\",
    b"0x", b"-1", b".5", b"99999999999999999999", b"1" * 5000, b"S.", b"win", b"--mss=1",
]
TOKEN = re.compile(rb"\S+")


def _damage(text: bytes, operations) -> bytes:
    lines = text.split(b"\n")
    for kind, where, other, odd in operations:
        index = where % len(lines)
        tokens = TOKEN.findall(lines[index])
        if kind == "delete line":
            del lines[index]
            if not lines:
                lines = [b""]
            continue
        if kind == "duplicate line":
            lines.insert(index, lines[index])
            continue
        if kind == "cut":
            lines[index] = lines[index][: other % (len(lines[index]) + 1)]
            continue
        if kind == "insert":
            line = lines[index]
            at = other % (len(line) + 1)
            lines[index] = line[:at] + odd + line[at:]
            continue
        if not tokens:
            continue
        i, j = where % len(tokens), other % len(tokens)
        if kind == "delete token":
            del tokens[i]
        elif kind == "duplicate token":
            tokens.insert(i, tokens[i])
        elif kind == "swap tokens":
            tokens[i], tokens[j] = tokens[j], tokens[i]
        lines[index] = b" ".join(tokens)
    return b"\n".join(lines)


operation = st.tuples(
    st.sampled_from(["delete token", "duplicate token", "swap tokens", "cut", "insert", "delete line", "duplicate line"]),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(ODD_BYTES),
)


def _check_error(error: ScriptError, text: str, path: str) -> None:
    assert error.loc.path == path
    assert 1 <= error.loc.line <= text.count("\n") + 1
    assert error.loc.col >= 1
    assert error.message
    rendered = str(error)
    assert rendered.startswith(f"{path}:{error.loc.line}:{error.loc.col}: error: ")
    assert "\x00" not in rendered


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.integers(min_value=0, max_value=max(len(TEXTS) - 1, 0)),
    operations=st.lists(operation, min_size=1, max_size=4),
)
def test_damaged_corpus_scripts_raise_only_script_errors(script, operations):
    data = _damage(TEXTS[script], operations)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "damaged.pkt")
        Path(path).write_bytes(data)
        try:
            read_script(path)
        except ScriptError as error:
            _check_error(error, data.decode("utf-8", "replace"), path)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text_raises_only_script_errors(text):
    try:
        parse_script(text, "random.pkt")
    except ScriptError as error:
        _check_error(error, text, "random.pkt")


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["0", "+0", "+.1", "*", "~", "...", "<", ">", "S.", "P.6", "1:1(0)", "ack", "win", "1",
             "<mss", "1460>", "socket(", ")", "=", "-1", "EAGAIN", "(note)", "`cmd`", "%{ x }%",
             "[", "]", "{", "}", ",", "|", "\n", "udp", "icmp", "unreachable", "[ect0]", "FO"]
        ),
        max_size=40,
    )
)
def test_token_soup_raises_only_script_errors(tokens):
    text = " ".join(tokens)
    try:
        parse_script(text, "soup.pkt")
    except ScriptError as error:
        _check_error(error, text, "soup.pkt")
