"""`tcptest run --update`: a script with wrong expectations about what the
kernel sends comes out passing, every other byte as it was; a failure on the
script's own side leaves the file alone. Against the real kernel (root), and
the pieces without it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernel_runs import WIDE_TOLERANCE
from tcptest import cli, update
from tcptest.errors import UpdateError
from tcptest.runner import RunRequest, Verdict, run
from tcptest.timeline import Failure, Timeline

DEFAULTS = Path(__file__).resolve().parents[1] / "scripts" / "defaults.sh"
RIGHT = f"""\
// A passive open and a little data, with comments to keep.
--unexpected=fail
`{DEFAULTS}`

    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
   +0 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
   +0 < P. 1:101(100) ack 1 win 257
   +0 > . 1:1(0) ack 101    // the ACK of the data
   +0 read(4, ..., 100) = 100
   +0 write(4, ..., 50) = 50
   +0 > P. 1:51(50) ack 101 win 1049
   +0 < . 101:101(0) ack 51 win 257
"""
# Three wrong guesses of the kernel's side: the SYN-ACK's wscale and the
# ACK's number (mismatches), the data it sends (missing), what read returns.
WRONG = (RIGHT.replace("wscale 8>", "wscale 6>")
         .replace("ack 101    //", "ack 100    //")
         .replace("   +0 > P. 1:51(50) ack 101 win 1049\n", "")
         .replace("= 100\n", "= 99\n"))


def options():
    return (("ip_version", "ipv4"), WIDE_TOLERANCE)


def at_once(text):
    """The text with the small delays a loaded machine adds written +0."""
    return re.sub(r"^ *\+0\.0[0-9]+ ", "   +0 ", text, flags=re.MULTILINE)


@pytest.mark.root("runs scripts against the kernel: needs root")
def test_update_rewrites_what_the_kernel_did_and_keeps_the_rest(tmp_path, capsys):
    script = tmp_path / "wrong.pkt"
    script.write_text(WRONG)
    assert not run(RunRequest(str(script), options())).passed
    before, after = update.update_script(str(script), options())
    assert before == WRONG
    assert at_once(after) == RIGHT
    assert script.read_text() == WRONG  # update_script writes nothing
    assert cli.main(["run", "--update", "--tolerance_usecs=20000", "--ip_version=ipv4", str(script)]) == 0
    out = capsys.readouterr().out
    assert "-   +0 > . 1:1(0) ack 100    // the ACK of the data\n" in out
    assert "+   +0 > P. 1:51(50) ack 101 win 1049\n" in out
    assert out.endswith(f"{script}: updated, and it passes\n")
    assert at_once(script.read_text()) == RIGHT
    assert run(RunRequest(str(script), options())).passed
    assert list(tmp_path.iterdir()) == [script]  # no temporary file left


@pytest.mark.root("runs scripts against the kernel: needs root")
def test_update_retimes_an_outbound_line_that_came_at_another_time(tmp_path):
    script = tmp_path / "late.pkt"
    script.write_text(RIGHT.replace("   +0 > . 1:1(0) ack 101", "+0.2 > . 1:1(0) ack 101"))
    assert at_once(update.update_script(str(script), options())[1]) == at_once(RIGHT.replace(
        "   +0 > . 1:1(0) ack 101", "+0 > . 1:1(0) ack 101"))


@pytest.mark.root("runs scripts against the kernel: needs root")
def test_a_segment_a_later_line_took_before_its_turn_is_inserted_where_it_came(tmp_path):
    # Without the ACK of the data, the next outbound line (after read and
    # write) takes that ACK: it came before the read, so it is inserted
    # there, and the line keeps its own segment.
    script = tmp_path / "quick.pkt"
    script.write_text(RIGHT.replace("   +0 > . 1:1(0) ack 101    // the ACK of the data\n", ""))
    after = at_once(update.update_script(str(script), options())[1])
    window = re.search(r"> \. 1:1\(0\) ack 101 win (\d+)\n", after).group(1)
    assert after == RIGHT.replace("ack 101    // the ACK of the data", f"ack 101 win {window}")


@pytest.mark.root("runs scripts against the kernel: needs root")
def test_update_takes_out_an_outbound_line_the_kernel_never_sent(tmp_path):
    script = tmp_path / "none.pkt"
    script.write_text(RIGHT.replace("   +0 accept(3, ..., ...) = 4\n", "   +0 accept(3, ..., ...) = 4\n"
                                    "+0.01 > . 1:1(0) ack 1  // no: nothing to acknowledge\n"
                                    "+0.01 < P. 1:101(100) ack 1 win 257\n", 1)
                      .replace("   +0 < P. 1:101(100) ack 1 win 257\n", "", 1))
    after = update.update_script(str(script), options())[1]
    assert after == RIGHT.replace("   +0 < P. 1:101(100) ack 1 win 257", "+0.02 < P. 1:101(100) ack 1 win 257")


@pytest.mark.root("runs scripts against the kernel: needs root")
def test_a_failure_on_the_scripts_side_leaves_the_file_untouched(tmp_path, capsys):
    script = tmp_path / "mine.pkt"
    text = WRONG.replace("win 257\n   +0 accept", "win 257\n   +0 %{ assert tcpi_state == 0 }%\n   +0 accept")
    script.write_text(text)
    with pytest.raises(UpdateError, match=r"mine.pkt:12: error in Python code.*\n(.*\n)*.*mine.pkt is unchanged"):
        update.update_script(str(script), options())
    assert cli.main(["run", "--update", "--ip_version=ipv4", str(script)]) == 1
    assert "fix it by hand" in capsys.readouterr().err
    assert script.read_text() == text


@pytest.mark.parametrize("message, result", [
    ("runtime error in connect call: Expected result 0 but got -1 with errno 111 (Connection refused)",
     "-1 ECONNREFUSED"),
    ("runtime error in read call: Expected result 10 but got 7", "7"),
    ("runtime error in accept call: Expected non-negative result but got -1 with errno 11 (Resource "
     "temporarily unavailable)", "-1 EAGAIN"),
    ("runtime error in read call: Expected errno EAGAIN (11) but got EINTR (4): Interrupted system call",
     "-1 EINTR"),
    ("runtime error in read call: Expected errno EAGAIN (11) but the call succeeded", None),
])
def test_a_calls_actual_result_is_read_from_its_error(message, result):
    assert update._actual_result(message) == result


def test_a_call_result_is_rewritten_in_place_and_a_note_stays(tmp_path):
    script = tmp_path / "c.pkt"
    script.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                      "+0 connect(3, {sa_family=AF_INET}, 16) = 0   (a note)  // why\n")
    failure = Failure(1, 2, None, "runtime error in connect call: Expected result 0 but got -1 with "
                                  "errno 111 (Connection refused)")
    verdicts = iter([Verdict(str(script), "ipv4", False, error="c.pkt:2: refused", line=2,
                             timeline=Timeline((failure,))),
                     Verdict(str(script), "ipv4", True, timeline=Timeline(())),
                     Verdict(str(script), "ipv4", True, timeline=Timeline(()))])
    before, after = update.update_script(str(script), (("ip_version", "ipv4"),), lambda request: next(verdicts))
    assert after.splitlines()[1] == "+0 connect(3, {sa_family=AF_INET}, 16) = -1 ECONNREFUSED   (a note)  // why"


def test_update_takes_no_flags_of_a_plain_run(tmp_path, capsys):
    assert cli.main(["run", "--update", "-j", "2", str(tmp_path / "x.pkt")]) == 2
    assert "--update takes no -j" in capsys.readouterr().err


def test_a_script_that_is_not_there_is_an_update_error(tmp_path):
    with pytest.raises(UpdateError, match="missing.pkt: cannot read the script"):
        update.update_script(str(tmp_path / "missing.pkt"))


def test_a_script_that_does_not_parse_is_reported_and_left_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tcptest.doctor.skip_reason", lambda ip_version, checks=None: None)
    script = tmp_path / "bad.pkt"
    script.write_text("0 nonsense(\n")
    assert cli.main(["run", "--update", str(script)]) == 1
    assert "bad.pkt:1:12: error: unexpected end of file" in capsys.readouterr().err
    assert script.read_text() == "0 nonsense(\n"
