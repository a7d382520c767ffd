"""Planning runs per IP version, running them in parallel with results in
order, and the progress line."""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path

from tcptest import batch
from tcptest.runner import RunRequest, Verdict

BODY = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n"


def write_scripts(folder: Path) -> dict[str, str]:
    scripts = {"any": BODY, "v6": "--ip_version=ipv6\n" + BODY, "broken": "0 socket(..., SOCK_STREAM\n"}
    paths = {}
    for name, text in scripts.items():
        (folder / f"{name}.pkt").write_text(text)
        paths[name] = str(folder / f"{name}.pkt")
    return paths


def test_plan_runs_each_script_with_the_ip_versions_it_allows(tmp_path):
    paths = write_scripts(tmp_path)
    requests = batch.plan([paths["any"], paths["v6"], paths["broken"]], (("tolerance_usecs", "9000"),), "pcaps")
    assert [batch.request_name(request) for request in requests] == [
        "any.pkt[ipv4]", "any.pkt[ipv6]", "any.pkt[ipv4-mapped-ipv6]", "v6.pkt[ipv6]",
        "broken.pkt[ipv4]",  # runs once, to report why it cannot be read
    ]
    assert requests[1].command_line == (("tolerance_usecs", "9000"), ("ip_version", "ipv6"))
    assert requests[4].command_line == (("tolerance_usecs", "9000"),)
    assert {request.pcap_dir for request in requests} == {"pcaps"}


def test_ip_version_on_the_command_line_runs_only_that_one(tmp_path):
    paths = write_scripts(tmp_path)
    requests = batch.plan([paths["any"], paths["v6"]], (("ip_version", "ipv4"),))
    assert [batch.request_name(request) for request in requests] == ["any.pkt[ipv4]", "v6.pkt[ipv4]"]
    assert all(request.command_line == (("ip_version", "ipv4"),) for request in requests)


def verdict_for(request: RunRequest, passed: bool = True) -> Verdict:
    return Verdict(request.path, batch.request_ip_version(request), passed)


def test_results_come_in_request_order_whatever_finishes_first():
    requests = [RunRequest(f"s{index}.pkt", (("ip_version", "ipv4"),)) for index in range(4)]
    last_done = threading.Event()
    finished: list[str] = []

    def run_one(request):
        if request.path == "s0.pkt":
            last_done.wait(10)  # the first request finishes last
        if request.path == "s3.pkt":
            last_done.set()
        finished.append(request.path)
        return verdict_for(request, passed=request.path != "s2.pkt")

    released: list[tuple[int, str]] = []
    progress: list[tuple[int, int, int]] = []
    verdicts = batch.run_all(requests, 4, lambda index, verdict: released.append((index, verdict.path)),
                             lambda done, passed, failed, running: progress.append((done, passed, failed)),
                             run_one)
    assert finished[-1] == "s0.pkt"
    assert released == [(0, "s0.pkt"), (1, "s1.pkt"), (2, "s2.pkt"), (3, "s3.pkt")]
    assert [verdict.path for verdict in verdicts] == ["s0.pkt", "s1.pkt", "s2.pkt", "s3.pkt"]
    assert progress[-1] == (4, 3, 1)


def test_jobs_runs_that_many_at_once():
    requests = [RunRequest(f"s{index}.pkt") for index in range(3)]
    together = threading.Barrier(3, timeout=10)

    def run_one(request):
        together.wait()  # breaks (and the run fails) unless all three run at once
        return verdict_for(request)

    verdicts = batch.run_all(requests, 3, lambda index, verdict: None, None, run_one)
    assert all(verdict.passed for verdict in verdicts), [verdict.error for verdict in verdicts]


def test_one_at_a_time_with_one_job():
    threads = []

    def run_one(request):
        threads.append(threading.get_ident())
        return verdict_for(request)

    batch.run_all([RunRequest(f"s{index}.pkt") for index in range(5)], 1, lambda *_: None, None, run_one)
    assert len(threads) == 5 and len(set(threads)) == 1  # one worker thread: one run at a time


def test_a_run_that_raises_becomes_a_failed_verdict_and_the_rest_go_on():
    def run_one(request):
        if request.path == "bad.pkt":
            raise RuntimeError("the isolated run raised an exception")
        return verdict_for(request)

    verdicts = batch.run_all([RunRequest("bad.pkt"), RunRequest("good.pkt")], 2, lambda *_: None, None, run_one)
    assert [(verdict.name, verdict.passed) for verdict in verdicts] == [
        ("bad.pkt[ipv4]", False), ("good.pkt[ipv4]", True)]
    assert verdicts[0].error == "internal error: the isolated run raised an exception"


def test_a_run_that_exits_fails_alone_instead_of_leaving_the_batch_waiting():
    def run_one(request):
        if request.path == "exits.pkt":
            sys.exit("exit from inside a run")
        return verdict_for(request)

    verdicts = batch.run_all([RunRequest("exits.pkt"), RunRequest("good.pkt")], 1, lambda *_: None, None, run_one,
                             tick=0.01)
    assert [(verdict.name, verdict.passed) for verdict in verdicts] == [
        ("exits.pkt[ipv4]", False), ("good.pkt[ipv4]", True)]


def test_no_requests_no_threads():
    before = threading.active_count()
    assert batch.run_all([], 4, lambda *_: None, None, verdict_for) == []
    assert threading.active_count() == before


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_redraws_in_place_and_steps_aside_for_output(capsys):
    screen = Terminal()
    progress = batch.ProgressLine(3, screen)
    progress.update(1, 1, 0, ["a.pkt[ipv6]"])
    assert screen.getvalue().startswith("\r\x1b[K[1/3] 1 passed, 0 failed, 0 s - running a.pkt[ipv6]")
    progress.print("ok a.pkt[ipv4]")
    assert capsys.readouterr().out == "ok a.pkt[ipv4]\n"
    # cleared before the line was printed, then drawn again
    assert screen.getvalue().count("\r\x1b[K") == 3
    progress.clear()
    assert screen.getvalue().endswith("\r\x1b[K")


def test_no_progress_line_when_not_a_terminal(capsys):
    stream = io.StringIO()
    progress = batch.ProgressLine(3, stream)
    progress.update(1, 1, 0, [])
    progress.print("ok a.pkt[ipv4]")
    progress.clear()
    assert stream.getvalue() == ""
    assert capsys.readouterr().out == "ok a.pkt[ipv4]\n"
