"""`tcptest fmt`: the canonical layout, comments where they were, the same
tree, and a second pass that changes nothing (over the kernel's selftests)."""

from __future__ import annotations

import pytest

from tcptest import cli
from tcptest.formatter import format_text
from tcptest.parser import parse_script, parse_with_spans
from tcptest.source import TokenSpan

from test_render import KERNEL_DEFINES, SCRIPTS, without_locations

MESSY = """\


// A comment at the top.
--tolerance_usecs=10000   // why so loose


`../defaults.sh`
0 socket(..., SOCK_STREAM, IPPROTO_TCP)=3
+0   setsockopt(3, SOL_SOCKET,
                SO_REUSEADDR, [1], 4) = 0  /* inline */
  // own line, indented



+.1   < S 0:0(0)   win 65535 <mss 1460>
+0 recvmsg(4, {msg_name(...)=..., // a comment inside an event
   msg_flags=0}, 0) = 0
+0 > S. 0:0(0) ack 1 <mss TFO_MSS>
+0...0.1 accept(3,...,...) = 4
// trailing
"""

FORMATTED = """\
// A comment at the top.
--tolerance_usecs=10000   // why so loose

`../defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0  /* inline */
  // own line, indented

 +0.1 < S 0:0(0) win 65535 <mss 1460>
+0 recvmsg(4, {msg_name(...)=..., // a comment inside an event
   msg_flags=0}, 0) = 0
   +0 > S. 0:0(0) ack 1 <mss 1460>
+0...0.1 accept(3, ..., ...) = 4
// trailing
"""


def test_canonical_layout_keeps_comments_and_blank_lines():
    text = MESSY.replace("TFO_MSS", "1460")
    assert format_text(text, "m.pkt") == FORMATTED
    assert format_text(FORMATTED, "m.pkt") == FORMATTED


def test_an_event_with_a_defined_name_stays_as_written():
    text = "--define=ONE=1\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0  write(3, ..., ONE) = ONE\n"
    assert format_text(text, "d.pkt").splitlines()[1:] == [
        "    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", "+0  write(3, ..., ONE) = ONE"]


def test_token_spans_cover_the_tokens_as_written():
    text = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 // c\n+0 close(X) = 0\n"
    parsed = parse_script(text, "t.pkt", {"X": "3"})  # first: a parse kept from before still gives spans
    script, spans = parse_with_spans(text, "t.pkt", {"X": "3"})
    assert script == parsed
    assert [text[span.start:span.end] for span in spans][:3] == ["0", "socket", "("]
    assert "// c" not in [text[span.start:span.end] for span in spans]
    assert TokenSpan("INT", text.index("X"), text.index("X") + 1, True) in spans


@pytest.mark.skipif(not SCRIPTS, reason="no kernel selftest corpus")
def test_corpus_formats_idempotently_to_the_same_tree():
    for path in SCRIPTS:
        text = path.read_text()
        formatted = format_text(text, str(path))
        assert format_text(formatted, str(path)) == formatted, path
        for defines in (None, KERNEL_DEFINES):
            assert without_locations(parse_script(formatted, str(path), defines)) == \
                without_locations(parse_script(text, str(path), defines)), path


def test_fmt_command_rewrites_and_check_only_reports(tmp_path, capsys):
    script = tmp_path / "a.pkt"
    script.write_text(MESSY.replace("TFO_MSS", "1460"))
    assert cli.main(["fmt", "--check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"would reformat {script}", "1 to reformat, 0 unchanged"]
    assert cli.main(["fmt", str(script)]) == 0
    assert script.read_text() == FORMATTED
    assert cli.main(["fmt", "--check", str(script)]) == 0
    (tmp_path / "bad.pkt").write_text("0 nonsense(\n")
    assert cli.main(["fmt", str(tmp_path)]) == 1
    assert "bad.pkt:" in capsys.readouterr().err


def test_a_long_call_breaks_its_structs_one_field_a_line():
    text = ("0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 0}], msg_flags=MSG_ERRQUEUE, msg_control=["
            "{cmsg_level=SOL_IP, cmsg_type=IP_RECVERR, cmsg_data={ee_errno=0, ee_origin=SO_EE_ORIGIN_ZEROCOPY}}]},"
            " MSG_ERRQUEUE) = 0\n+0 write(4, ..., 10) = 10\n")
    assert format_text(text, "long.pkt") == """\
    0 recvmsg(4, {msg_name(...)=...,
                  msg_iov(1)=[{..., 0}],
                  msg_flags=MSG_ERRQUEUE,
                  msg_control=[{cmsg_level=SOL_IP,
                                cmsg_type=IP_RECVERR,
                                cmsg_data={ee_errno=0, ee_origin=SO_EE_ORIGIN_ZEROCOPY}}]}, MSG_ERRQUEUE) = 0
   +0 write(4, ..., 10) = 10
"""
