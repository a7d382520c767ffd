"""What shell commands print reaches the verdict's warnings, at their line, in
a run that passes and in one that fails (root: the runs are real)."""

from __future__ import annotations


import pytest

from kernel_runs import run_text

pytestmark = pytest.mark.root("runs scripts against the kernel: needs root")

PRINTING = """\
`echo from init; echo to stderr >&2`
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 `echo from line 3`
+0 `true`
+0 close(3) = 0
`echo from cleanup`
"""


def _run(tmp_path, text: str):
    return run_text(tmp_path / "printing.pkt", text)


def test_every_command_that_printed_is_named_with_what_it_printed(tmp_path):
    verdict = _run(tmp_path, PRINTING)
    assert verdict.passed, verdict.error
    path = str(tmp_path / "printing.pkt")
    assert verdict.warnings == (f"{path}:1: command printed:\nfrom init\nto stderr",
                                f"{path}:3: command printed:\nfrom line 3",
                                f"{path}:6: command printed:\nfrom cleanup")


def test_a_failed_run_keeps_what_came_before_its_error(tmp_path):
    verdict = _run(tmp_path, PRINTING.replace("close(3) = 0", "close(3) = -1 EBADF"))
    assert not verdict.passed and verdict.line == 5
    assert [w.split(": command printed:")[0].rsplit(":", 1)[1] for w in verdict.warnings] == ["1", "3", "6"]
