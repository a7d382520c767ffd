"""tcptest's own connection-management suite (scripts/): every script passes
under every IP version on this kernel; and a state check that is wrong
fails at its line, naming the state the connection is really in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kernel_runs import WIDE_TOLERANCE, run_with_timing_retries
from tcptest.options import IP_VERSIONS
from tcptest.runner import RunRequest, run

pytestmark = pytest.mark.root("runs scripts against the kernel: needs root")

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
SCRIPTS = sorted(SCRIPTS_DIR.rglob("*.pkt"))
MATRIX_DIR = SCRIPTS_DIR / "state-event"  # generated: scripts/state-event/README.md


def test_the_suite_is_there():
    assert len(SCRIPTS) >= 30
    readme = (SCRIPTS_DIR / "README.md").read_text()
    for script in SCRIPTS:
        if MATRIX_DIR in script.parents:
            continue  # listed in the matrix's own README (tests/test_state_event.py)
        name = str(script.relative_to(SCRIPTS_DIR))
        assert name in readme, f"{name} is not listed in scripts/README.md"


@pytest.mark.parametrize("ip_version", IP_VERSIONS)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(SCRIPTS_DIR)))
def test_script_passes(script: Path, ip_version: str):
    verdict = run_with_timing_retries(RunRequest(str(script), (("ip_version", ip_version),)))
    assert verdict.passed, verdict.error
    assert not verdict.warnings, verdict.warnings



def copy_with(tmp_path: Path, name: str, old: str, new: str) -> tuple[Path, int]:
    """A copy of a suite script with one line changed, next to a copy of
    defaults.sh; returns its path and the changed line's number."""
    (tmp_path / "defaults.sh").write_bytes((SCRIPTS_DIR / "defaults.sh").read_bytes())
    shutil.copymode(SCRIPTS_DIR / "defaults.sh", tmp_path / "defaults.sh")
    text = (SCRIPTS_DIR / name).read_text()
    assert text.count(old) == 1, old
    line = text[:text.index(old)].count("\n") + 1
    (tmp_path / "topic").mkdir()
    path = tmp_path / "topic" / Path(name).name
    path.write_text(text.replace(old, new))
    return path, line


@pytest.mark.parametrize("ip_version", IP_VERSIONS)
def test_a_wrong_expected_state_fails_at_its_line_naming_the_actual_state(tmp_path, ip_version):
    # After the peer's FIN, the kernel's socket is in TIME_WAIT; claim CLOSING.
    path, line = copy_with(tmp_path, "close/active-close.pkt",
                           "assert conn_state == TCP_TIME_WAIT, conn_state",
                           "assert conn_state == TCP_CLOSING, conn_state")
    verdict = run(RunRequest(str(path), (("ip_version", ip_version), WIDE_TOLERANCE)))
    assert not verdict.passed
    assert verdict.line == line
    assert verdict.error.splitlines()[0] == \
        f"{path}:{line}: error in Python code: AssertionError: TCP_TIME_WAIT"


def test_a_wrong_tcpi_state_fails_the_same_way(tmp_path):
    path, line = copy_with(tmp_path, "handshake/passive-open.pkt",
                           "+0 %{ assert tcpi_state == TCP_ESTABLISHED and listen_queue().accepted == 0 }%",
                           "+0 %{ assert tcpi_state == TCP_SYN_RECV }%")
    verdict = run(RunRequest(str(path), (("ip_version", "ipv4"), WIDE_TOLERANCE)))
    assert not verdict.passed
    assert verdict.line == line
    assert verdict.error.splitlines()[0].endswith(
        "error in Python code: AssertionError (tcpi_state = TCP_ESTABLISHED)")
