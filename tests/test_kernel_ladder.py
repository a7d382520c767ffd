"""A failing run against the real kernel, drawn: its ladder diagram, its
annotated pcapng (read back by tcpdump, tshark and scapy), `tcptest explain`
of its saved JSON, and the HTML report opened in headless Chromium (root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from kernel_runs import WIDE_TOLERANCE, run_with_timing_retries
from tcptest import cli, ladder
from tcptest import timeline as tl
from tcptest.runner import RunRequest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs scripts against the kernel: needs root")

# The application closes first; the peer's FIN crosses nothing. The kernel
# acknowledges the peer's FIN with ack 2; the last line says 3.
CLOSE = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
+0 close(4) = 0
+0 > F. 1:1(0) ack 1
+0 < F. 1:1(0) ack 2 win 257
+0 > . 2:2(0) ack 3
"""
FAILING_LINE = 12


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ladder")
    path = folder / "close.pkt"
    path.write_text(CLOSE)
    (folder / "caps").mkdir()
    verdict = run_with_timing_retries(RunRequest(str(path), (("ip_version", "ipv4"), WIDE_TOLERANCE),
                                                 pcap_dir=str(folder / "caps")))
    assert not verdict.passed and verdict.line == FAILING_LINE, verdict.error
    return verdict


def test_the_ladder_of_a_failing_run_shows_the_exchange_in_order(failed):
    lines = ladder.text(failed.timeline).splitlines()
    # (mark or line, arrow, label), the kernel's windows as W: its own business
    arrows = [(line.split()[0], "▶" if "▶" in line else "◀",
               re.sub(r"win \d+", "win W", line.split("│")[1].strip("─▶◀ ")) if "◀" in line
               else line.split("│")[1].strip("─▶◀ "))
              for line in lines if "▶" in line or "◀" in line]
    assert arrows == [
        ("5", "▶", "S 0:0(0) win 65535 <mss 1460>"),
        ("6", "◀", "S. 0:0(0) ack 1 win W <mss 1460>"),
        ("7", "▶", ". 1:1(0) ack 1 win 257"),
        ("10", "◀", "F. 1:1(0) ack 1 win W"),
        ("11", "▶", "F. 1:1(0) ack 2 win 257"),
        (">>", "◀", ". 2:2(0) ack 2 win W"),
    ]
    states = []  # rows with a state beside a lifeline: "peer's|kernel's"
    for line in lines:
        parts = line.split("│")
        if len(parts) != 3 or parts[1].strip():
            continue
        left, right = parts[0].split(), parts[2].strip()
        if len(left) <= 1 and all(re.fullmatch(r"[A-Z_0-9]+", word) for word in [*left, right] if word):
            states.append(f"{''.join(left)}|{right}")
    assert states == ["SYN_SENT|", "ESTABLISHED|SYN_RECV", "|ESTABLISHED", "CLOSE_WAIT|FIN_WAIT_1",
                      "LAST_ACK|TIME_WAIT", "CLOSED|"]
    marked = [line for line in lines if line.startswith(">>")]
    assert len(marked) == 2 and f" {FAILING_LINE} " in marked[0] and "ack 2" in marked[0]
    assert any("expected: > . 2:2(0) ack 3" in line for line in lines)
    assert "error: error handling packet: live packet field tcp_ack_seq: expected: 3 (0x3) vs actual: 2 (0x2)" \
        in marked[1]


def test_the_timeline_of_a_failing_run_has_each_segment_and_state(failed):
    timeline = failed.timeline
    wires = timeline.of_type(tl.WireSegment)
    assert [(w.line, w.segment.direction, w.segment.flags, w.status) for w in wires] == [
        (5, "<", "S", "sent"), (6, ">", "S.", "matched"), (7, "<", ".", "sent"),
        (10, ">", "F.", "matched"), (11, "<", "F.", "sent"), (12, ">", ".", "mismatched")]
    assert wires[-1].segment.ack == 2 and wires[-1].expected == "> . 2:2(0) ack 3"
    states = [(st.side, st.state) for st in timeline.of_type(tl.StateChange)]
    assert states == [
        ("peer", "SYN_SENT"), ("kernel", "SYN_RECV"), ("peer", "ESTABLISHED"), ("kernel", "ESTABLISHED"),
        ("kernel", "FIN_WAIT_1"), ("peer", "CLOSE_WAIT"), ("peer", "LAST_ACK"), ("kernel", "TIME_WAIT"),
        ("peer", "CLOSED")]
    calls = [(ev.line, ev.result) for ev in timeline.of_type(tl.ScriptEvent) if ev.kind == "call"]
    assert calls == [(1, "3"), (2, "0"), (3, "0"), (4, "0"), (8, "4"), (9, "0")]
    events = timeline.of_type(tl.ScriptEvent)
    assert all(ev.at >= ev.scheduled for ev in events if ev.scheduled is not None)
    assert [entry.at for entry in timeline.entries[:-1]] == sorted(entry.at for entry in timeline.entries[:-1])


def test_the_pcapng_opens_in_tcpdump_and_its_comments_name_the_lines(failed):
    pcapng = failed.pcap.replace(".pcap", ".pcapng")
    shown = subprocess.run(["tcpdump", "-nr", pcapng], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 6 and "Flags [F.]" in shown.stdout
    from scapy.utils import rdpcap

    comments = [[c.decode() for c in packet.comments] for packet in rdpcap(pcapng)]
    assert comments[0] == ["line 5: < S 0:0(0) win 65535 <mss 1460> (sent by the script)"]
    assert comments[1] == ["line 6: expected > S. 0:0(0) ack 1 <mss 1460>: matched"]
    assert comments[5][0].startswith("line 12: expected > . 2:2(0) ack 3: MISMATCH, actual > . 2:2(0) ack 2 ")
    assert comments[5][1] == "live packet field tcp_ack_seq: expected: 3 (0x3) vs actual: 2 (0x2)"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_reads_the_comments(failed):
    pcapng = failed.pcap.replace(".pcap", ".pcapng")
    shown = subprocess.run(["tshark", "-r", pcapng, "-T", "fields", "-e", "frame.comment"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 6
    assert lines[2] == "line 7: < . 1:1(0) ack 1 win 257 (sent by the script)"
    assert lines[3] == "line 10: expected > F. 1:1(0) ack 1: matched"
    assert lines[5].startswith("line 12: expected > . 2:2(0) ack 3: MISMATCH")


def test_explain_draws_the_saved_run_again(failed, tmp_path, capsys):
    from tcptest import report

    saved = tmp_path / "results.json"
    saved.write_text(report.json_report([failed]))
    assert json.loads(saved.read_text())["results"][0]["timeline"]["type"] == "Timeline"
    assert cli.main(["explain", str(saved)]) == 0
    out = capsys.readouterr().out
    assert ladder.text(failed.timeline) in out


# ------------------------------------------------------------ the HTML report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(tmp_path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its stdout. The whole
    process group goes on a time-out."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium; CI has it)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0
    return out


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    (folder / "close.pkt").write_text(CLOSE)
    (folder / "open.pkt").write_text(CLOSE.split("+0 accept")[0])
    status = cli.main(["run", "--ip_version=ipv4", "--tolerance_usecs=500000", "--report", str(folder / "html"),
                       str(folder / "close.pkt"), str(folder / "open.pkt")])
    assert status == 1
    return folder / "html"


def test_the_report_opens_in_chromium_with_every_run_and_the_svg(report_dir, tmp_path):
    index = chromium(tmp_path, "--dump-dom", (report_dir / "index.html").as_uri())
    assert "tcptest: 1 passed, 1 failed" in index
    assert index.count('<tr class="run') == 2
    assert "close.pkt[ipv4]" in index and "open.pkt[ipv4]" in index
    assert os.uname().release in index
    [page] = report_dir.glob("runs/close.ipv4-*.html")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="ladder"' in dom
    assert f'<g class="segment mismatched" data-line="{FAILING_LINE}">' in dom
    assert f'id="line-{FAILING_LINE}"' in dom
    assert 'href="../pcap/close.ipv4.pcapng"' in dom and (report_dir / "pcap" / "close.ipv4.pcapng").exists()
    shot = tmp_path / "page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1600", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
