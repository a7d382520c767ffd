"""Wrong expectations are caught: passing kernel selftests, each with one
expected value of an outbound line changed, must fail at that line with the
field named. Runs against the real kernel (root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_runs import WIDE_TOLERANCE
from tcptest.runner import RunRequest, run

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "kselftest"

pytestmark = [
    pytest.mark.root("runs scripts against the kernel: needs root"),
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no kselftest corpus at {CORPUS}"),
]

# A wide tolerance keeps a loaded machine from failing unchanged lines; the
# timing mutation below is 160 ms off, far beyond it.
OPTIONS = (("ip_version", "ipv4"), WIDE_TOLERANCE)

# (script, line, text on that line, replacement, what the error must say)
MUTATIONS = [
    ("tcp_basic_server.pkt", 16, "ack 1 <", "ack 2 <",
     "live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)"),
    ("tcp_basic_server.pkt", 25, "> . 1:1(0)", "> . 2:2(0)",
     "live packet field tcp_seq: expected: 2 (0x2) vs actual: 1 (0x1)"),
    ("tcp_basic_server.pkt", 25, "> . 1:1(0)", "> P. 1:1(0)",
     "live packet field tcp_psh: expected: 1 (0x1) vs actual: 0 (0x0)"),
    ("tcp_basic_server.pkt", 25, "ack 1001", "ack 1001 win 999",
     "live packet field tcp_window: expected: 999 (0x3e7)"),
    ("tcp_basic_server.pkt", 16, "wscale 8>", "wscale 7>",
     "bad value in outbound TCP option (kind=3): expected: wscale 7 actual: wscale 8"),
    ("tcp_basic_server.pkt", 16, "<mss 1460,nop,nop,sackOK,nop,wscale 8>", "<mss 1460,nop,nop,sackOK>",
     "error handling packet: live packet field ipv4_total_length: expected: 48 (0x30) vs actual: 52 (0x34)\n"
     "live packet TCP options: expected: <mss 1460,nop,nop,sackOK> vs actual: "
     "<mss 1460,nop,nop,sackOK,nop,wscale 8>"),
    ("tcp_basic_client.pkt", 18, "1:1001(1000)", "1:1002(1001)",
     "live packet payload: expected 1001 bytes vs actual 1000 bytes"),
    ("tcp_basic_server.pkt", 30, "+.04 >", "+.2 >",
     "error handling packet: timing error: expected outbound packet at 0.2"),
]


def _mutated(tmp_path: Path, script: str, line: int, old: str, new: str) -> Path:
    lines = (CORPUS / script).read_text().splitlines(keepends=True)
    assert old in lines[line - 1], f"{script}:{line} no longer reads {old!r}: {lines[line - 1]!r}"
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    target = tmp_path / script
    target.write_text("".join(lines))
    (tmp_path / "defaults.sh").symlink_to(CORPUS / "defaults.sh")  # the init command's helper
    return target


@pytest.mark.parametrize("script", sorted({m[0] for m in MUTATIONS}))
def test_the_unchanged_scripts_pass(script):
    verdict = run(RunRequest(str(CORPUS / script), OPTIONS))
    assert verdict.passed, verdict.error


@pytest.mark.parametrize("script,line,old,new,message", MUTATIONS,
                         ids=[f"{m[0]}:{m[1]}:{m[3]}" for m in MUTATIONS])
def test_a_changed_expectation_fails_at_its_line_naming_the_field(tmp_path, script, line, old, new, message):
    path = _mutated(tmp_path, script, line, old, new)
    verdict = run(RunRequest(str(path), OPTIONS))
    assert not verdict.passed
    assert verdict.line == line, verdict.error
    assert message in verdict.error
