"""The features the kernel's own selftests lean on, each checked by running
one of those scripts the way the kernel's runner does (its addresses, defines
and slow-machine tolerance), on the real kernel (root). The whole corpus, with
packetdrill's verdicts beside ours, is `benchmarks/kselftest.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kernel_runs import run_with_timing_retries
from tcptest.runner import RunRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from kselftest import CORPUS, KERNEL_ARGS, command_line, upstream_verdicts  # noqa: E402

pytestmark = [
    pytest.mark.root("runs scripts against the kernel: needs root"),
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no kselftest corpus at {CORPUS}"),
]

FEATURES = {
    "recvmsg with TCP_CM_INQ control messages": "tcp_inq_server.pkt",
    "sendmsg, recvmsg and TCP_INQ on a client": "tcp_inq_client.pkt",
    "epoll edge-triggered with MSG_ZEROCOPY": "tcp_zerocopy_epoll_edge.pkt",
    "epoll one-shot": "tcp_zerocopy_epoll_oneshot.pkt",
    "MSG_ZEROCOPY completions on MSG_ERRQUEUE": "tcp_zerocopy_basic.pkt",
    "pipe and splice": "tcp_splice_tcp_splice_loop_test.pkt",
    "open and sendfile": "tcp_sendfile_sendfile-simple.pkt",
    "SO_TIMESTAMPING and scm_timestamping": "tcp_timestamping_server.pkt",
    "Fast Open server with cookies (FO)": "tcp_fastopen_server_basic-rw.pkt",
    "Fast Open experimental option (FOEXP)": "tcp_fastopen_server_experimental_option.pkt",
    "Fast Open client with MSG_FASTOPEN and zero-copy": "tcp_zerocopy_fastopen-client.pkt",
    "TCP MD5 signatures (TCP_MD5SIG, md5 option)": "tcp_md5_md5-only-on-client-ack.pkt",
    "ICMP injection with a quoted segment": "tcp_fastopen_server_icmp-before-accept.pkt",
    "--mss: GSO injection of large segments": "tcp_ooo_rcv_mss.pkt",
    "--tcp_ts_tick_usecs: outbound TS val": "tcp_ts_recent_fin_tsval.pkt",
    "IP ECN codepoints ([ect0]) and ECE/CWR": "tcp_ecn_ecn-uses-ect0.pkt",
    "IP TOS": "tcp_sack_sack-route-refresh-ip-tos.pkt",
    "AccECN script read and run": "tcp_accecn_acc_ecn_disabled.pkt",
    "bad pointers reach the kernel (EFAULT)": "tcp_syscall_bad_arg_fastopen-invalid-buf-ptr.pkt",
    "blocking accept": "tcp_blocking_blocking-accept.pkt",
    "tcp_info in Python blocks": "tcp_tcp_info_tcp-info-last_data_recv.pkt",
}
SLOW_MACHINE = ("tolerance_usecs", "14000")  # what the kernel's runner adds on slow machines


UPSTREAM = upstream_verdicts() if CORPUS.is_dir() else {}
RUNS = [(feature, script, version) for feature, script in FEATURES.items()
        for version in ("ipv4", "ipv6") if UPSTREAM.get((script, version), ("",))[0] == "pass"]


@pytest.mark.parametrize("feature,script,ip_version", RUNS, ids=[f"{f}-{v}" for f, _, v in RUNS])
def test_feature(feature, script, ip_version):
    options = command_line(KERNEL_ARGS[ip_version]) + (SLOW_MACHINE,)
    verdict = run_with_timing_retries(RunRequest(str(CORPUS / script), options))
    assert verdict.passed, verdict.error
