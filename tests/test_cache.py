"""What tcptest keeps between processes: the built parser, and scripts as
last read, used again only when nothing that made them has changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tcptest import cache, parser
from tcptest.cache import grammar_path, read_script
from tcptest.errors import ScriptError
from tcptest.parser import parse_script
from tcptest.script import Integer, String

CHECKOUT = Path(__file__).resolve().parents[1]


def test_a_script_is_read_leniently(tmp_path):
    path = tmp_path / "odd.pkt"
    path.write_bytes(b"0 close(3) = 0 // caf\xe9\n+0 f(\"\xff\") = 0\n")
    script = read_script(path)
    assert script.path == str(path)
    assert script.events[1].action.args == (String("\xef\xbf\xbd"),)  # U+FFFD, as UTF-8 bytes


def test_a_missing_script(tmp_path):
    with pytest.raises(ScriptError) as info:
        read_script(tmp_path / "missing.pkt")
    assert "cannot read the script" in info.value.message
    assert str(info.value).startswith(f"{tmp_path / 'missing.pkt'}:1:")


# ---------------------------------------------------------------- read scripts

@pytest.fixture
def parses(tmp_path, monkeypatch):
    """The cache in tmp_path, and a count of the parses read_script makes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made = []

    def counted(text, path, defines=None):
        made.append(path)
        return parse_script(text, path, defines)

    monkeypatch.setattr(parser, "parse_script", counted)
    return made


def _saved(tmp_path):
    return sorted(p.name for p in (tmp_path / "cache" / "tcptest").glob("script-*"))


def test_a_script_read_again_comes_from_the_cache_until_its_text_changes(tmp_path, parses):
    path = tmp_path / "t.pkt"
    path.write_text("0 close(3) = 0\n")
    first = read_script(path)
    assert read_script(path) == first and len(parses) == 1
    assert len(_saved(tmp_path)) == 1
    path.write_text("0 close(4) = 0\n")
    assert read_script(path).events[0].action.args == (Integer(4),)
    assert len(parses) == 2 and len(_saved(tmp_path)) == 1  # the same slot, written again


def test_defines_and_the_path_as_written_are_part_of_what_made_a_script(tmp_path, parses, monkeypatch):
    path = tmp_path / "t.pkt"
    path.write_text("0 close(FD) = 0\n")
    assert read_script(path, {"FD": "3"}).events[0].action.args == (Integer(3),)
    assert read_script(path, {"FD": "4"}).events[0].action.args == (Integer(4),)
    monkeypatch.chdir(tmp_path)
    assert read_script("t.pkt", {"FD": "3"}).path == "t.pkt"
    assert len(parses) == 3
    assert read_script(path, {"FD": "3"}).events[0].action.args == (Integer(3),) and len(parses) == 3


def test_scripts_sharing_a_slot_never_take_each_others_tree(tmp_path, parses, monkeypatch):
    monkeypatch.setattr(cache, "_SCRIPT_SLOTS", 1)
    a, b = tmp_path / "a.pkt", tmp_path / "b.pkt"
    a.write_text("0 close(3) = 0\n")
    b.write_text("0 close(3) = 0\n")
    assert read_script(a).path == str(a)
    assert read_script(b).path == str(b)
    assert read_script(a).path == str(a)
    assert len(parses) == 3 and len(_saved(tmp_path)) == 1


def test_a_change_of_tcptest_reads_scripts_again(tmp_path, parses, monkeypatch):
    path = tmp_path / "t.pkt"
    path.write_text("0 close(3) = 0\n")
    read_script(path)
    stamp = cache._code_stamp()
    assert cache._code_stamp.__wrapped__() == stamp  # worked out again, the same code: the same stamp
    monkeypatch.setattr(cache, "_code_stamp", lambda: (stamp, "another tcptest"))
    read_script(path)
    assert len(parses) == 2


def test_a_script_with_errors_is_not_kept(tmp_path, parses):
    path = tmp_path / "t.pkt"
    path.write_text("0 close(3) = \n")
    with pytest.raises(ScriptError):
        read_script(path)
    assert _saved(tmp_path) == []
    with pytest.raises(ScriptError):
        read_script(path)
    assert len(parses) == 2


def test_a_damaged_file_is_read_again_and_an_unwritable_folder_means_no_cache(tmp_path, parses, monkeypatch):
    path = tmp_path / "t.pkt"
    path.write_text("0 close(3) = 0\n")
    first = read_script(path)
    (saved,) = (tmp_path / "cache" / "tcptest").glob("script-*")
    saved.write_bytes(saved.read_bytes()[:-20])
    assert read_script(path) == first and len(parses) == 2
    assert read_script(path) == first and len(parses) == 2  # written whole again
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # cannot be a folder
    assert read_script(path) == first and len(parses) == 3
    assert not list((tmp_path / "cache" / "tcptest").glob(".*"))  # no half-written file left


def test_a_process_reading_a_script_read_before_does_not_import_lark(tmp_path):
    path = tmp_path / "t.pkt"
    path.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n")
    code = ("import sys; from tcptest.cache import read_script; "
            f"print(len(read_script({str(path)!r}).events), 'lark' in sys.modules)")
    env = {"PYTHONPATH": str(CHECKOUT), "XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}

    def run():
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout

    assert run() == "2 True\n"
    assert run() == "2 False\n"


# ---------------------------------------------------------------- the parser cache

CACHED_SCRIPT = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0) win 65535 <mss 1460>\n"


def _parse_with(lark, text: str):
    reader = parser._Reader.__new__(parser._Reader)
    reader.lark, reader.names = lark, parser._get_reader().names
    saved, parser._reader = parser._reader, reader
    try:
        return parse_script(text, "t.pkt")
    finally:
        parser._reader = saved


def test_the_built_parser_is_cached_and_the_cached_one_parses_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    grammar = grammar_path().read_text()
    built = parser._build_lark(grammar)
    (cached,) = (tmp_path / "tcptest").iterdir()
    assert cached.name.startswith("parser-") and cached.suffix == ".pickle"
    loaded = parser._build_lark(grammar)
    assert list((tmp_path / "tcptest").iterdir()) == [cached]  # loaded, not written again
    assert _parse_with(loaded, CACHED_SCRIPT) == _parse_with(built, CACHED_SCRIPT) == parse_script(CACHED_SCRIPT, "t.pkt")
    assert parser._build_lark(grammar + "\n// another grammar\n") is not None
    assert len(list((tmp_path / "tcptest").iterdir())) == 2  # a new grammar, a new file


def test_a_damaged_cache_file_is_built_again_and_an_unwritable_folder_means_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    grammar = grammar_path().read_text()
    parser._build_lark(grammar)
    (cached,) = (tmp_path / "tcptest").iterdir()
    cached.write_bytes(b"not a pickle")
    assert _parse_with(parser._build_lark(grammar), CACHED_SCRIPT) == parse_script(CACHED_SCRIPT, "t.pkt")
    assert cached.read_bytes() != b"not a pickle"
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # cannot be a folder
    assert _parse_with(parser._build_lark(grammar), CACHED_SCRIPT) == parse_script(CACHED_SCRIPT, "t.pkt")
