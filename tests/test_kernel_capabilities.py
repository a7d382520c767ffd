"""cap_set() on the real kernel (root): a capability dropped by the script is
gone for the calls after it, blocking ones included, and comes back when set."""

from __future__ import annotations


import pytest

from kernel_runs import run_text

pytestmark = pytest.mark.root("runs scripts against the kernel: needs root")

# TCP_REPAIR needs CAP_NET_ADMIN and nothing else.
DROP_AND_RESTORE = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_TCP, TCP_REPAIR, [1], 4) = 0
+0 cap_set(CAP_EFFECTIVE, CAP_NET_ADMIN, CAP_CLEAR) = 0
+0 setsockopt(3, SOL_TCP, TCP_REPAIR, [0], 4) = -1 EPERM (Operation not permitted)
+0...0 setsockopt(3, SOL_TCP, TCP_REPAIR, [0], 4) = -1 EPERM (Operation not permitted)
+0 cap_set(CAP_NET_ADMIN, CAP_SET, CAP_EFFECTIVE) = 0
+0 setsockopt(3, SOL_TCP, TCP_REPAIR, [0], 4) = 0
"""


def _run(tmp_path, text: str):
    return run_text(tmp_path / "caps.pkt", text)


def test_a_dropped_capability_is_gone_until_set_again(tmp_path):
    verdict = _run(tmp_path, DROP_AND_RESTORE)
    assert verdict.passed, verdict.error


def test_without_the_drop_the_call_succeeds_and_the_line_says_so(tmp_path):
    verdict = _run(tmp_path, DROP_AND_RESTORE.replace(
        "+0 cap_set(CAP_EFFECTIVE, CAP_NET_ADMIN, CAP_CLEAR) = 0\n", ""))
    assert verdict.line == 3, verdict.error
    assert "Expected result -1 but got 0" in verdict.error


def test_a_capability_not_permitted_cannot_be_made_effective(tmp_path):
    verdict = _run(tmp_path, "0 cap_set(CAP_EFFECTIVE, CAP_NET_RAW, CAP_CLEAR) = 0\n"
                             "+0 cap_set(CAP_PERMITTED, CAP_NET_RAW, CAP_CLEAR) = 0\n"
                             "+0 cap_set(CAP_EFFECTIVE, CAP_NET_RAW, CAP_SET) = -1 EPERM\n"
                             "+0 cap_set(CAP_EFFECTIVE, CAP_NET_RAW, CAP_SET) = 0\n")
    assert verdict.line == 4 and "errno 1 (Operation not permitted)" in verdict.error, verdict.error


def test_a_bad_capability_set_number_is_refused_by_the_call(tmp_path):
    verdict = _run(tmp_path, "0 cap_set(7, CAP_NET_ADMIN, CAP_SET) = 0\n")
    assert verdict.line == 1 and "errno 22 (Invalid argument)" in verdict.error, verdict.error
