"""Ladder diagrams, the HTML report and `tcptest explain`, from timelines the
engine recorded against the fake kernel (no root; the kernel's own are in
test_kernel_ladder.py)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from test_timeline import SCRIPT, ResultKernel, close_reactions, record
from tcptest import cli, html_report, ladder, report
from tcptest.runner import Verdict

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def failed(tmp_path):
    """A run that fails at line 11: the kernel acks 1, the script says 2."""
    path = tmp_path / "close.pkt"
    path.write_text(SCRIPT)
    timeline, failure = record(SCRIPT, ResultKernel(close_reactions(ack_of_fin=1)))
    return Verdict(str(path), "ipv4", False, error=str(failure), line=failure.loc.line, timeline=timeline)


def test_rows_put_segments_calls_and_states_in_time_order(failed):
    rows = ladder.rows(failed.timeline)
    kinds = [(row.kind, row.line, row.direction or row.peer_state or row.kernel_state or row.label)
             for row in rows]
    assert kinds[:9] == [
        ("action", 1, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 -> 0"),  # the fake returns 0
        ("action", 2, "bind(3, ..., ...) = 0"),
        ("action", 3, "listen(3, 1) = 0"),
        ("segment", 4, "<"), ("state", None, "SYN_SENT"),
        ("segment", 5, ">"), ("state", None, "ESTABLISHED"),
        ("segment", 6, "<"), ("state", None, "ESTABLISHED"),
    ]
    assert (rows[7].peer_state, rows[6].kernel_state) == ("", "SYN_RECV")
    marked = [row for row in rows if row.failed]
    assert [(row.kind, row.line) for row in marked] == [("segment", 11), ("failure", 11)]
    assert marked[0].label == ". 2:2(0) ack 1 win 65535"
    assert marked[0].notes == ("expected: > . 2:2(0) ack 2",
                               "live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)")


def test_text_draws_arrows_each_way_and_marks_the_failing_line(failed):
    drawing = ladder.text(failed.timeline)
    lines = drawing.splitlines()
    assert "peer 192.0.2.1" in lines[0] and "kernel 192.168.0.2" in lines[0]
    syn = next(i for i, line in enumerate(lines) if "─ S 0:0(0) win 65535 <mss 1000> ─" in line)
    syn_ack = next(i for i, line in enumerate(lines) if "S. 0:0(0) ack 1 win 65535 <mss 1460> ─│" in line)
    assert syn < syn_ack
    assert lines[syn].rstrip().endswith("▶│") and "│◀" in lines[syn_ack]
    [failing] = [line for line in lines if line.startswith(">>") and "◀" in line]
    assert re.match(r">>\s+11\s+0\.100080\s+0\.100120 ", failing)
    assert ". 2:2(0) ack 1 win 65535" in failing
    assert "expected: > . 2:2(0) ack 2" in drawing
    assert lines[-1].startswith("states: derived")
    assert "\x1b[" not in drawing
    coloured = ladder.text(failed.timeline, colour=True)
    assert "\x1b[31;1m" in coloured and ANSI.sub("", coloured) == drawing


def test_text_keeps_the_last_rows_of_a_long_run(failed):
    drawing = ladder.text(failed.timeline, last=3)
    assert f"... {len(ladder.rows(failed.timeline)) - 3} earlier rows" in drawing
    assert "socket(" not in drawing and drawing.count(">>") == 2


def test_the_svg_is_well_formed_with_one_arrow_per_segment(failed):
    image = ladder.svg(failed.timeline)
    root = ET.fromstring(image)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    groups = root.findall(".//svg:g", ns)
    segments = [g for g in groups if g.get("class", "").startswith("segment")]
    assert [g.get("data-line") for g in segments] == ["4", "5", "6", "9", "10", "11"]
    assert segments[-1].get("class") == "segment mismatched"
    states = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "state"]
    assert states[:4] == ["SYN_SENT", "ESTABLISHED", "SYN_RECV", "ESTABLISHED"]  # peer, then kernel
    assert root.findall(".//svg:rect[@class='failed']", ns)


def test_a_failure_shows_its_ladder_under_it(failed):
    text = report.failure_text(failed)
    error, _, drawing = text.partition("\n\n")
    assert error.startswith("t.pkt:11: error handling packet")
    assert "> 11 | +0 > . 2:2(0) ack 2" in error
    assert drawing.splitlines()[0].lstrip().startswith("line")


def test_the_html_page_highlights_the_failing_line_and_holds_the_svg(failed, tmp_path):
    page = html_report.write_page(tmp_path / "runs", failed)
    content = open(page).read()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="ladder"' in content
    assert "&lt; S 0:0(0)" not in content.split("<h2>Script</h2>")[0].split("<svg")[0]
    script = content.split("<h2>Script</h2>")[1]
    assert '<a href="#line-11"' in script and script.count('<span class="hll">') == 1
    failing = script.split('<span class="hll">')[1].split("\n")[0]
    assert 'class="nl">+0</span>' in failing and 'class="kt">.</span>' in failing


def test_the_index_lists_every_run(failed, tmp_path):
    passed = Verdict(failed.path.replace("close", "ok"), "ipv6", True, duration=0.5)
    index = html_report.write_report(tmp_path / "report", [passed, failed])
    content = open(index).read()
    assert "1 passed, 1 failed" in content
    assert content.count('<tr class="run') == 2
    assert f'href="runs/{html_report.page_name(failed)}"' in content
    assert (tmp_path / "report" / "runs" / html_report.page_name(passed)).exists()


def saved(tmp_path, verdicts, shape="run json"):
    path = tmp_path / "results.json"
    if shape == "run json":
        path.write_text(report.json_report(verdicts))
    else:  # issue 11's --results file: run objects with kernel fields, under `results`
        runs = [{**report.verdict_dict(v), "kernel": "6.18.0"} for v in verdicts]
        path.write_text(json.dumps({"kernel": {"release": "6.18.0"}, "results": runs}))
    return path


@pytest.mark.parametrize("shape", ["run json", "results file"])
def test_explain_draws_a_saved_failure_again(failed, tmp_path, capsys, shape):
    path = saved(tmp_path, [Verdict("ok.pkt", "ipv4", True), failed], shape)
    assert cli.main(["explain", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FAIL close.pkt[ipv4]")
    assert "ok.pkt" not in out
    assert out.replace(str(tmp_path), "") .count(">>") == 2
    assert ladder.text(failed.timeline) in out


def test_explain_all_and_by_name(failed, tmp_path, capsys):
    path = saved(tmp_path, [Verdict("ok.pkt", "ipv4", True), failed])
    assert cli.main(["explain", "--all", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ok ok.pkt[ipv4]" in out and "(no timeline saved for this run)" in out
    assert cli.main(["explain", str(path), "nothing*"]) == 1
    assert "no run named nothing*" in capsys.readouterr().err


def test_explain_writes_the_html_report_of_saved_runs(failed, tmp_path, capsys):
    path = saved(tmp_path, [failed])
    assert cli.main(["explain", "--report", str(tmp_path / "html"), str(path)]) == 0
    assert f"report: {tmp_path}/html/index.html" in capsys.readouterr().out
    assert "class=\"ladder\"" in (tmp_path / "html" / "runs" / html_report.page_name(failed)).read_text()


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("{", "not JSON"),
    ('{"results": [{"name": "x"}]}', "not a tcptest results file"),
])
def test_explain_says_what_is_wrong_with_a_file(tmp_path, capsys, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert cli.main(["explain", str(path)]) == 2
    assert message in capsys.readouterr().err
