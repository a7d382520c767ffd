"""The Pygments lexer: every script of the corpus lexed whole, without an
Error token; the tokens a reader scans for; the entry point Pygments finds."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from tcptest.lexer import PacketdrillLexer

from test_render import SCRIPTS

OWN_SCRIPTS = sorted((Path(__file__).parents[1] / "scripts").rglob("*.pkt"))


def tokens(text):
    return [(kind, value) for kind, value in PacketdrillLexer().get_tokens(text) if value.strip()]


@pytest.mark.parametrize("path", SCRIPTS + OWN_SCRIPTS, ids=lambda path: path.name)
def test_scripts_lex_whole_without_errors(path):
    text = path.read_text()
    lexed = list(PacketdrillLexer().get_tokens_unprocessed(text))
    assert "".join(value for _, _, value in lexed) == text
    assert [value for _, kind, value in lexed if kind in Error] == []


def test_the_parts_of_an_event_get_their_own_tokens():
    line = tokens("+0.1 < [ect0] S. 0:0(0) ack 1 win 65535 <mss 1460> // syn\n")
    assert (Name.Label, "+0.1") in line and (Operator, "<") in line and (Name.Builtin, "ect0") in line
    assert (Keyword.Type, "S.") in line and (Number.Integer, "0:0(0)") in line
    assert (Keyword, "ack") in line and (Keyword, "mss") in line and (Comment.Single, "// syn") in line
    call = tokens("   +0...0.1 connect(3, ..., ...) = -1 ECONNREFUSED (refused)\n")
    assert call[0] == (Name.Label, "+0...0.1") and (Name.Function, "connect") in call
    assert (Name.Exception, "ECONNREFUSED") in call
    other = tokens('--tolerance_usecs=10000\n`./defaults.sh`\n0 %{ assert tcpi_rto == 200 }%\n')
    assert other[:2] == [(Name.Attribute, "--tolerance_usecs=10000"), (String.Backtick, "`./defaults.sh`")]
    assert (Keyword, "assert") in other  # Python inside %{ }%


def test_pyproject_registers_the_lexer_for_pygments():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["pygments.lexers"]["packetdrill"]
    assert target == f"{PacketdrillLexer.__module__}:{PacketdrillLexer.__name__}"


def test_an_installed_tcptest_gives_pygments_the_lexer():
    found = [point for point in importlib.metadata.entry_points(group="pygments.lexers")
             if point.name == "packetdrill"]
    if not found:
        pytest.skip("the installed tcptest predates the lexer's entry point (reinstall it)")
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    assert found[0].value == "tcptest.lexer:PacketdrillLexer"
    assert get_lexer_by_name("packetdrill").name == "packetdrill"
    assert get_lexer_for_filename("x.pkt").name == "packetdrill"
