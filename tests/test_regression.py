"""Saved results, `tcptest compare`, `--repeat` and `--baseline`: first on
made-up verdicts, then for real, with a regression made on purpose: the same
scripts under two settings of a sysctl (net.ipv4.tcp_window_scaling, set by
a command-line define) stand in for two kernels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcptest import cli, doctor, regression, results, runner
from tcptest.results import KernelInfo, Results, RunResult
from tcptest.runner import Verdict


def run_result(name: str, *outcomes: str | None, kernel: str = "host") -> RunResult:
    """A run whose attempts passed (None) or failed with that error."""
    return RunResult(kernel, tuple(Verdict(f"s/{name}", "ipv4", error is None, error=error)
                                   for error in outcomes))


def of(*runs: RunResult, release: str = "6.18") -> Results:
    return Results((KernelInfo(runs[0].kernel, release),), runs)


# ---------------------------------------------------------------- results files


def test_a_results_file_keeps_verdicts_attempts_and_the_kernel(tmp_path):
    saved = of(run_result("a.pkt", None, "s/a.pkt:3: timing error\ndetail", None),
               run_result("b.pkt", None))
    results.save(tmp_path / "r.json", saved)
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["format"] == results.FORMAT and document["tcptest_version"]
    assert document["kernels"][0]["release"] == "6.18"
    assert [(e["run"], e["attempts"], e["passes"], e["errors"]) for e in document["results"]] == [
        ("s/a.pkt[ipv4]", 3, 2, ["s/a.pkt:3: timing error"]), ("s/b.pkt[ipv4]", 1, 1, [])]
    loaded = results.load(tmp_path / "r.json")
    assert [(run.key, run.pass_rate, run.first_error) for run in loaded.runs] == [
        ("s/a.pkt[ipv4]", "2/3", "s/a.pkt:3: timing error"), ("s/b.pkt[ipv4]", "1/1", None)]


def test_this_kernel_names_the_running_release():
    import os

    kernel = results.this_kernel()
    assert (kernel.label, kernel.release, kernel.machine) == ("host", os.uname().release, "host")


def test_format_json_output_reads_as_results_of_an_unknown_kernel(tmp_path):
    from tcptest import report

    (tmp_path / "out.json").write_text(report.json_report([Verdict("s/a.pkt", "ipv6", False, error="x:2: e")]))
    loaded = results.load(tmp_path / "out.json")
    assert [(run.key, run.kernel, run.first_error) for run in loaded.runs] == [("s/a.pkt[ipv6]", "unknown", "x:2: e")]
    assert loaded.kernels == (KernelInfo("unknown", "unknown"),)


def test_a_file_that_is_no_results_file_says_so(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(Exception, match="not a tcptest results file"):
        results.load(tmp_path / "x.json")


# ---------------------------------------------------------------- compare


def test_signature_leaves_out_times_only():
    assert regression.signature("x.pkt:5: timing error: expected at 0.100000 sec, got 0.131 sec; ack 1001") == \
        "x.pkt:5: timing error: expected at * sec, got * sec; ack 1001"


def test_globs_take_brackets_literally():
    assert regression.glob_matches("s/x.pkt[*]", "s/x.pkt[ipv6]")
    assert not regression.glob_matches("s/x.pkt[ipv4]", "s/x.pkt[4]")


def test_compare_sorts_every_change_by_kind():
    before = of(run_result("stays.pkt", None), run_result("breaks.pkt", None),
                run_result("mended.pkt", "x:1: e"), run_result("moves.pkt", "x:2: at 0.1 sec"),
                run_result("same-error.pkt", "x:2: at 0.1 sec"), run_result("wobbles.pkt", None, "x:3: e"),
                run_result("gone.pkt", None))
    after = of(run_result("stays.pkt", None), run_result("breaks.pkt", "x:4: e"),
               run_result("mended.pkt", None), run_result("moves.pkt", "x:9: at 0.1 sec"),
               run_result("same-error.pkt", "x:2: at 0.3 sec"), run_result("wobbles.pkt", None, None),
               run_result("new.pkt", None), release="6.1")
    comparison = regression.compare(before, after)
    assert {change.key: change.kind for change in comparison.changes} == {
        "s/breaks.pkt[ipv4]": "regression", "s/mended.pkt[ipv4]": "fixed",
        "s/moves.pkt[ipv4]": "fails differently", "s/wobbles.pkt[ipv4]": "flaky",
        "s/gone.pkt[ipv4]": "gone", "s/new.pkt[ipv4]": "new"}
    assert comparison.same == 2 and comparison.regressed
    text = regression.comparison_text(comparison)
    assert "A: 6.18\nB: 6.1" in text
    assert "regression (passed, now fails): 1\n  s/breaks.pkt[ipv4]\n    A: ok\n    B: FAIL: x:4: e" in text
    assert "    A: FAIL (1/2 passed): x:3: e" in text
    assert text.endswith("8 runs: 2 the same, 1 regression, 1 fixed, 1 fails differently, 1 flaky, 1 new, 1 gone")


def test_compare_exits_1_on_a_regression_only(tmp_path, capsys):
    results.save(tmp_path / "a.json", of(run_result("x.pkt", None), run_result("y.pkt", "e")))
    results.save(tmp_path / "b.json", of(run_result("x.pkt", None), run_result("y.pkt", None)))
    assert cli.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert "fixed (failed, now passes): 1" in capsys.readouterr().out
    assert cli.main(["compare", str(tmp_path / "b.json"), str(tmp_path / "a.json")]) == 1
    assert cli.main(["compare", str(tmp_path / "a.json")]) == 2


# ---------------------------------------------------------------- baseline


def test_a_baseline_sorts_failures_into_known_different_and_new():
    baseline = (regression.KnownFailure("s/known.pkt[*]", "x:5: timing error at * sec", "6.1*", "6.1 backs off"),
                regression.KnownFailure("s/other.pkt[ipv4]", "x:7: e"),
                regression.KnownFailure("s/mended.pkt[ipv4]", "x:1: e", why="was a bug"),
                regression.KnownFailure("s/elsewhere.pkt[ipv4]", "*", kernel="5.*"))
    judgement = regression.judge(of(
        run_result("known.pkt", "x:5: timing error at 0.2 sec", "x:5: timing error at 0.3 sec"),
        run_result("other.pkt", "x:8: e"), run_result("mended.pkt", None),
        run_result("elsewhere.pkt", "x:1: e"), run_result("fine.pkt", None), release="6.1.0-57-amd64"), baseline)
    assert [run.key for run, _ in judgement.expected] == ["s/known.pkt[ipv4]"]
    assert [run.key for run, _ in judgement.different] == ["s/other.pkt[ipv4]"]
    assert [run.key for run in judgement.unexpected] == ["s/elsewhere.pkt[ipv4]"]  # only for 5.x
    assert [run.key for run, _ in judgement.now_passing] == ["s/mended.pkt[ipv4]"]
    assert not judgement.ok
    text = regression.judgement_text(judgement)
    assert "known failure passed: s/mended.pkt[ipv4] on host (was a bug): take it out of the baseline" in text
    assert text.endswith("baseline: 1 known failure(s) as expected, 1 now passing, 1 failing differently, 1 new")


def test_a_baseline_made_from_results_expects_them(tmp_path):
    failed = of(run_result("a.pkt", "x:5: late by 0.016 sec"), run_result("b.pkt", None), release="6.1.0-57-amd64")
    document = regression.baseline_document(failed, "why")
    assert document == {"known_failures": [{"run": "s/a.pkt[ipv4]", "kernel": "6.1.0-57-amd64",
                                            "error": "x:5: late by * sec", "why": "why"}]}
    (tmp_path / "base.json").write_text(json.dumps(document))
    assert regression.judge(failed, regression.load_baseline(str(tmp_path / "base.json"))).ok


@pytest.fixture
def fake_runs(monkeypatch, tmp_path):
    """bad.pkt fails at line 3; flip.pkt fails every other attempt."""
    attempts = []

    def fake_run(request, trace=None):
        attempts.append(request.path)
        name = Path(request.path).name
        passed = name == "good.pkt" or (name == "flip.pkt" and attempts.count(request.path) % 2 == 0)
        return Verdict(request.path, "ipv4", passed, error=None if passed else f"{request.path}:3: boom at 0.5 sec")

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(doctor, "skip_reason", lambda ip_version, checks=None: None)
    for name in ("good.pkt", "bad.pkt", "flip.pkt"):
        (tmp_path / name).write_text("--ip_version=ipv4\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    return tmp_path


def test_repeat_runs_each_script_n_times_and_gives_its_pass_rate(fake_runs, capsys):
    assert cli.main(["run", "--repeat", "2", "--results", str(fake_runs / "r.json"), str(fake_runs)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("pass rate")] == [
        "pass rate 0/2 bad.pkt[ipv4]", "pass rate 1/2 flip.pkt[ipv4]", "pass rate 2/2 good.pkt[ipv4]"]
    assert [run.pass_rate for run in results.load(fake_runs / "r.json").runs] == ["0/2", "1/2", "2/2"]


def test_a_run_that_fails_only_as_the_baseline_expects_exits_0(fake_runs, capsys):
    (fake_runs / "base.json").write_text(json.dumps({"known_failures": [
        {"run": f"{fake_runs}/bad.pkt[ipv4]", "error": f"{fake_runs}/bad.pkt:3: boom at * sec"},
        {"run": f"{fake_runs}/good.pkt[ipv4]", "error": "*", "why": "fixed upstream"}]}))
    argv = ["run", "--baseline", str(fake_runs / "base.json"), str(fake_runs / "bad.pkt"), str(fake_runs / "good.pkt")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"known failure passed: {fake_runs}/good.pkt[ipv4] on host (fixed upstream)" in out
    assert cli.main(argv + [str(fake_runs / "flip.pkt")]) == 1  # a failure the baseline does not know
    assert f"new failure (not in the baseline): {fake_runs}/flip.pkt[ipv4]" in capsys.readouterr().out


def test_a_bad_baseline_is_a_usage_error(fake_runs, capsys):
    (fake_runs / "base.json").write_text("[]")
    assert cli.main(["run", "--baseline", str(fake_runs / "base.json"), str(fake_runs / "good.pkt")]) == 2
    assert "not a baseline" in capsys.readouterr().err


# ---------------------------------------------------------------- for real: two sysctl settings

# The peer offers window scaling; the kernel's SYN-ACK offers it too only
# while net.ipv4.tcp_window_scaling is 1. The setting is a command the script
# runs at +0, given by a define that the command line can replace: the
# "other kernel" is `-D SETTING=...=0`.
PROLOGUE = """--ip_version=ipv4
--define=SETTING=`sysctl -q net.ipv4.tcp_window_scaling=1`
`sh {defaults}`
"""
OPEN = """+0 SETTING
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
"""
SCRIPTS = {
    "scaled.pkt": OPEN + "+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>\n",
    "unscaled.pkt": OPEN + "+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK>\n",
    "either.pkt": OPEN + "+0 > S. 0:0(0) ack 1 <...>\n",
    "wrong-later.pkt": OPEN + "+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>\n"
                              "+0 < . 1:1(0) ack 1 win 257\n+0 accept(3, ..., ...) = 4\n"
                              "+0 %{ assert tcpi_state == TCP_CLOSE }%\n",
}


@pytest.mark.root("runs scripts in namespaces: needs root")
def test_a_sysctl_changed_between_two_runs_shows_as_a_regression(tmp_path, capsys):
    # defaults.sh sets the suite's sysctls (and the buffer sizes that make wscale 8)
    defaults = Path(__file__).resolve().parents[1] / "scripts" / "defaults.sh"
    for name, body in SCRIPTS.items():
        (tmp_path / name).write_text(PROLOGUE.format(defaults=defaults) + body)
    # The verdicts are about segments, not time: a loaded machine must not change them.
    scripts = ["--tolerance_usecs=100000", *sorted(str(tmp_path / name) for name in SCRIPTS)]
    other = ["-D", "SETTING=`sysctl -q net.ipv4.tcp_window_scaling=0`"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli.main(["run", "-j", "2", "--results", str(a), *scripts]) == 1  # wrong-later.pkt
    assert cli.main(["run", "-j", "2", "--results", str(b), *other, *scripts]) == 1
    capsys.readouterr()

    assert cli.main(["compare", str(a), str(b)]) == 1
    comparison = regression.compare(results.load(a), results.load(b))
    assert {Path(change.key).name: change.kind for change in comparison.changes} == {
        "scaled.pkt[ipv4]": "regression", "unscaled.pkt[ipv4]": "fixed",
        "wrong-later.pkt[ipv4]": "fails differently"}
    assert comparison.same == 1  # either.pkt

    baseline = tmp_path / "base.json"
    capsys.readouterr()
    assert cli.main(["baseline", "--why", "window scaling off", str(b)]) == 0
    baseline.write_text(capsys.readouterr().out)
    assert cli.main(["run", "-j", "2", "--baseline", str(baseline), *other, *scripts]) == 0
    assert "baseline: 2 known failure(s) as expected, 0 now passing" in capsys.readouterr().out
    assert cli.main(["run", "-j", "2", "--baseline", str(baseline), *scripts]) == 1
    out = capsys.readouterr().out
    assert f"new failure (not in the baseline): {tmp_path}/unscaled.pkt[ipv4]" in out
    assert f"known failure passed: {tmp_path}/scaled.pkt[ipv4] on host (window scaling off)" in out
    assert f"known failure fails differently: {tmp_path}/wrong-later.pkt[ipv4]" in out


def test_any_entry_of_a_run_may_match_and_a_catch_all_expects_no_run_to_fail():
    baseline = (regression.KnownFailure("s/a.pkt[ipv4]", "x:5: e"),
                regression.KnownFailure("*", "*timing error*", "6.1*", "TCG: late"))
    judgement = regression.judge(of(run_result("a.pkt", "x:2: timing error"), run_result("b.pkt", None),
                                    run_result("c.pkt", "x:4: timing error"), run_result("d.pkt", "x:4: e"),
                                    release="6.1.0"), baseline)
    assert [(run.key, known.why) for run, known in judgement.expected] == [
        ("s/a.pkt[ipv4]", "TCG: late"), ("s/c.pkt[ipv4]", "TCG: late")]
    assert not judgement.now_passing  # b.pkt passing is no news
    assert [run.key for run in judgement.unexpected] == ["s/d.pkt[ipv4]"]  # the catch-all knows no d.pkt


def test_an_entry_for_a_folder_expects_no_run_of_it_to_fail():
    """`s/*` with one error: the runs of s/ that fail so are known; one that
    passes is no news; one that fails otherwise is new (no entry names it),
    unless an entry names its script."""
    baseline = (regression.KnownFailure("s/*", "*win 256*", "6.1*", "6.1's first window"),
                regression.KnownFailure("s/named.pkt[*]", "x:9: e"))
    judgement = regression.judge(of(run_result("a.pkt", "x:3: expected win 1050 vs win 256"),
                                    run_result("b.pkt", None), run_result("c.pkt", "x:4: other"),
                                    run_result("named.pkt", "x:4: other"), release="6.1.0"), baseline)
    assert [run.key for run, _ in judgement.expected] == ["s/a.pkt[ipv4]"]
    assert not judgement.now_passing
    assert [run.key for run in judgement.unexpected] == ["s/c.pkt[ipv4]"]
    assert [run.key for run, _ in judgement.different] == ["s/named.pkt[ipv4]"]
