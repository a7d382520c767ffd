"""`tcptest check`, `run` and `doctor`: the command-line front door."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import TcptestError
from .options import OPTION_NAMES, OptionError, RunOptions, apply_option, split_option
from .report import FORMATS

USAGE = """\
tcptest check [-D NAME=VALUE] SCRIPT|DIR...
tcptest run [-j N] [--format=text|tap|ktap|json] [--pcap DIR] [--report DIR]
            [--PACKETDRILL_OPTION=VALUE ...] [-D NAME=VALUE] [-v] SCRIPT|DIR...
            [--results FILE.json] [--repeat N] [--baseline FILE] [--kernel IMAGE|TREE|RELEASE|host ...]
tcptest run --update [--PACKETDRILL_OPTION=VALUE ...] [-D NAME=VALUE] SCRIPT...
tcptest compare A.json B.json
tcptest baseline [--why TEXT] RESULTS.json
tcptest explain [--all] [--report DIR] RESULTS.json [NAME...]
tcptest doctor [--fix] [--vm]
tcptest fmt [--check] SCRIPT|DIR...
tcptest import CAPTURE.pcap [--local ADDR:PORT] [--init COMMAND] > SCRIPT.pkt

run: each script runs once per IP version it allows (ipv4, ipv6,
ipv4-mapped-ipv6, or the one its --ip_version= line names), or only the one
--ip_version= names on the command line. Exit 0 when every run passes, 1 when
one fails, 2 for a usage error. --update rewrites each script's outbound
lines and call results with what the kernel did, shows the diff, and leaves a
script whose own side failed untouched. --report DIR writes an HTML report there
(index.html: every run; a page per run with its ladder diagram).
--results saves every run's verdict, kernel and first error; --repeat N runs
each N times (its pass rate); --baseline FILE: exit 0 when only its known
failures fail, as it says they fail. --kernel runs the scripts in a VM booted
with that kernel (virtme-ng), once per --kernel; `host` is this machine's.
compare: what passed and fails now, was fixed, fails differently, is flaky;
exit 1 on a regression. baseline: a baseline that expects RESULTS' failures.
explain: draws the ladder diagram of saved runs (--format=json output) again:
the failed ones, or --all, or those NAME matches (a glob or part of a name).
fmt: rewrites scripts in the canonical layout, comments kept; --check
only lists those it would change (exit 1 if any).
import: writes a script for the first connection of a capture (pcap or
pcapng); --local names the side under test (default: the one that got the SYN),
--init the command that set the host up as when it was captured.
doctor: checks what a run needs on this machine; --fix makes the host changes
it can (allow cubic in namespaces, load tun); --vm checks what run --kernel needs.

packetdrill options: """ + " ".join(f"--{name}" for name in OPTION_NAMES)


def _split_defines(argv: Sequence[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Pull packetdrill-style options (`--name=value`, `-D N=V`, `-v`) out of argv;
    what is left are script paths and tcptest's own flags."""
    options: list[tuple[str, str | None]] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "-D":
            value = next(args, None)
            if value is None:
                raise OptionError("-D needs NAME=VALUE")
            options.append(("define", value))
        elif arg.startswith("-D") and len(arg) > 2:
            options.append(("define", arg[2:]))
        elif arg == "-v":
            options.append(("verbose", None))
        elif arg.startswith("--") and split_option(arg)[0] in OPTION_NAMES:
            options.append(split_option(arg))
        else:
            rest.append(arg)
    return options, rest


def _scripts(paths: Sequence[str]) -> list[str]:
    """Script paths; folders stand for the `*.pkt` files below them."""
    found: list[str] = []
    for path in paths:
        p = Path(path)
        found.extend(sorted(str(f) for f in p.rglob("*.pkt")) if p.is_dir() else [path])
    return found


def cmd_check(argv: Sequence[str]) -> int:
    from .cache import read_script

    options, rest = _split_defines(argv)
    for name, value in options:  # validate, and reject options check has no use for
        if name != "define":
            raise OptionError(f"tcptest check takes only -D NAME=VALUE, not --{name}")
    defines = dict(v.partition("=")[::2] for _, v in options)
    paths = _scripts(rest)
    if not paths:
        raise OptionError("tcptest check needs at least one script")
    failed = 0
    for path in paths:
        try:
            read_script(path, defines)
        except TcptestError as err:
            failed += 1
            print(err, file=sys.stderr)
    print(f"{len(paths) - failed} valid, {failed} invalid")
    return 1 if failed else 0


@dataclass(frozen=True, slots=True)
class RunFlags:
    """tcptest's own flags of `tcptest run` (packetdrill's are options)."""

    jobs: int = 1
    output_format: str = "text"
    pcap_dir: str | None = None
    report_dir: str | None = None
    results_path: str | None = None
    repeat: int = 1
    baseline_path: str | None = None
    kernels: tuple[str, ...] = ()


_RUN_FLAGS = {"-j": "jobs", "--jobs": "jobs", "--format": "output_format", "--pcap": "pcap_dir",
              "--report": "report_dir", "--results": "results_path", "--repeat": "repeat",
              "--baseline": "baseline_path", "--kernel": "kernels"}


def _run_flags(args: Sequence[str]) -> tuple[RunFlags, list[str]]:
    """Take `-j N`, `--format F` and `--pcap DIR` (also written `-jN`,
    `--jobs=N`, `--format=F`, `--pcap=DIR`) out of `args`; the rest, and all
    after `--`, are script paths."""
    given: dict[str, str] = {}
    kernels: list[str] = []  # --kernel may be given more than once
    paths: list[str] = []
    args = iter(args)
    for arg in args:
        if arg == "--":
            paths.extend(args)
            break
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        elif arg.startswith("-j") and len(arg) > 2:
            name, value = "-j", arg[2:]
        else:
            name, value = arg, None
        if name in _RUN_FLAGS:
            value = next(args, None) if value is None else value
            if not value:
                raise OptionError(f"{name} needs a value")
            given[_RUN_FLAGS[name]] = value
            kernels += [value] if name == "--kernel" else []
        elif arg.startswith("-") and arg != "-":
            raise OptionError(f"unknown option {arg}")
        else:
            paths.append(arg)
    output_format = given.get("output_format", "text")
    if output_format not in FORMATS:
        raise OptionError(f"--format takes one of {', '.join(FORMATS)}, got {output_format!r}")
    report_dir = given.get("report_dir")
    pcap_dir = given.get("pcap_dir") or (str(Path(report_dir) / "pcap") if report_dir else None)
    repeat = given.get("repeat", "1")
    if not repeat.isdigit() or int(repeat) < 1:
        raise OptionError(f"--repeat takes a number of runs of each script, got {repeat!r}")
    if kernels and (output_format != "text" or pcap_dir):
        raise OptionError("--kernel writes text only, and no --pcap or --report (yet)")
    return RunFlags(_jobs(given.get("jobs", "1")), output_format, pcap_dir, report_dir,
                    given.get("results_path"), int(repeat), given.get("baseline_path"),
                    tuple(kernels)), paths


def _jobs(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise OptionError(f"-j takes a number of parallel runs (or auto), got {text!r}")
    return int(text)


def cmd_run(argv: Sequence[str]) -> int:
    from . import batch, report

    options, rest = _split_defines(argv)
    check = RunOptions()
    for name, value in options:
        check = apply_option(check, name, value)  # fail early on a bad option
    update = "--update" in rest
    flags, paths = _run_flags([arg for arg in rest if arg != "--update"])
    if update and flags != RunFlags():
        raise OptionError("--update takes no -j, --format, --pcap, --report, --results, --repeat, "
                          "--baseline or --kernel")
    paths = _scripts(paths)
    if not paths:
        raise OptionError("tcptest run needs at least one script")
    if update:
        from .update import update_files

        return update_files(paths, tuple(options))
    if flags.kernels:
        from . import kernels

        return _conclude(flags, kernels.run_on_kernels(flags.kernels, paths, tuple(options), flags.jobs,
                                                       flags.repeat, print))
    if flags.pcap_dir:
        Path(flags.pcap_dir).mkdir(parents=True, exist_ok=True)
    requests = batch.repeated(batch.plan(paths, tuple(options), flags.pcap_dir), flags.repeat)
    output = flags.output_format
    progress = batch.ProgressLine(len(requests))
    progress.enabled = progress.enabled and not check.verbose  # the trace owns the screen
    if output in ("tap", "ktap"):
        progress.print("\n".join(report.tap_header(output, len(requests))))

    def on_result(index: int, verdict) -> None:
        if output == "text":
            progress.print(report.result_line(verdict))
            for warning in verdict.warnings if verdict.passed else ():  # a failure shows them in full below
                progress.print(f"warning: {verdict.name}: {warning}")
        elif output in ("tap", "ktap"):
            progress.print("\n".join(report.tap_result(output, index + 1, verdict)))

    run_one = _run_traced if check.verbose else None
    verdicts = batch.run_all(requests, flags.jobs, on_result, progress.update, run_one)
    progress.clear()
    if flags.report_dir:
        from . import html_report

        index = html_report.write_report(flags.report_dir, verdicts)
        print(f"report: {index}", file=sys.stderr if output != "text" else sys.stdout)
    if output == "text":
        print(report.text_closing(verdicts, use_colour(sys.stdout)))
    else:
        if output == "json":
            print(report.json_report(verdicts))
        else:
            for line in report.tap_footer(output, verdicts):
                print(line)
        print(report.summary_line(verdicts), file=sys.stderr)
    if any(verdict.setup_failed for verdict in verdicts):  # the host is probed only then
        from . import doctor

        reason = doctor.skip_reason("ipv4")
        if reason:
            print(reason, file=sys.stderr)
    if not (flags.results_path or flags.baseline_path or flags.repeat > 1):
        return 0 if all(verdict.passed for verdict in verdicts) else 1  # nothing to save, judge or rate
    from . import results

    runs = results.group_attempts(verdicts, flags.repeat, "host")
    return _conclude(flags, results.Results((results.this_kernel(),), runs),
                     sys.stdout if output == "text" else sys.stderr)


def _conclude(flags: RunFlags, outcome, stream=None) -> int:
    """After the runs: pass rates, the results file, the baseline's verdict,
    and the exit status."""
    from . import regression, results

    stream = stream or sys.stdout
    several = len(outcome.kernels) > 1
    if flags.repeat > 1:
        for run in outcome.runs:
            on = f" on {run.kernel}" if several else ""
            print(f"pass rate {run.pass_rate} {run.verdict.name}{on}", file=stream)
    if flags.results_path:
        results.save(flags.results_path, outcome)
        print(f"results: {flags.results_path}", file=stream)
    if flags.baseline_path:
        judgement = regression.judge(outcome, regression.load_baseline(flags.baseline_path))
        print(regression.judgement_text(judgement), file=stream)
        return 0 if judgement.ok else 1
    return 0 if all(run.passed for run in outcome.runs) else 1


def use_colour(stream) -> bool:
    """ANSI colours on a terminal, unless NO_COLOR is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def cmd_explain(argv: Sequence[str]) -> int:
    from . import report

    show_all = "--all" in argv
    args = [arg for arg in argv if arg != "--all"]
    report_dir = None
    if "--report" in args:
        at = args.index("--report")
        if at + 1 >= len(args):
            raise OptionError("--report needs a value")
        report_dir = args[at + 1]
        del args[at:at + 2]
    unknown = [arg for arg in args if arg.startswith("-")]
    if unknown:
        raise OptionError(f"unknown option {unknown[0]}")
    if not args:
        raise OptionError("tcptest explain needs a results file (what tcptest run --format=json writes)")
    verdicts = report.load_results(args[0])
    chosen = report.select(verdicts, args[1:], show_all)
    if not chosen:
        print(f"{args[0]}: no run to draw ({len(verdicts)} run(s), none failed; --all draws them all)"
              if not args[1:] else f"{args[0]}: no run named {' or '.join(args[1:])}", file=sys.stderr)
        return 1
    colour = use_colour(sys.stdout)
    for verdict in chosen:
        print(report.explain_text(verdict, colour))
    if report_dir:
        from . import html_report

        print(f"report: {html_report.write_report(report_dir, chosen)}")
    return 0


def cmd_compare(argv: Sequence[str]) -> int:
    from . import regression, results

    if len(argv) != 2 or any(arg.startswith("-") for arg in argv):
        raise OptionError("tcptest compare takes two results files (tcptest run --results FILE.json)")
    comparison = regression.compare(results.load(argv[0]), results.load(argv[1]), argv[0], argv[1])
    print(regression.comparison_text(comparison))
    return 1 if comparison.regressed else 0


def cmd_baseline(argv: Sequence[str]) -> int:
    import json

    from . import regression, results

    args, why = list(argv), ""
    if "--why" in args:
        at = args.index("--why")
        why = args[at + 1] if at + 1 < len(args) else ""
        del args[at:at + 2]
    if len(args) != 1 or args[0].startswith("-"):
        raise OptionError("tcptest baseline takes one results file (tcptest run --results FILE.json)")
    print(json.dumps(regression.baseline_document(results.load(args[0]), why), indent=1))
    return 0


def cmd_doctor(argv: Sequence[str]) -> int:
    from . import doctor

    return doctor.main(argv)


def cmd_fmt(argv: Sequence[str]) -> int:
    from .formatter import format_text
    from .source import read_source

    check = "--check" in argv
    args = [arg for arg in argv if arg != "--check"]
    unknown = [arg for arg in args if arg.startswith("-")]
    if unknown:
        raise OptionError(f"unknown option {unknown[0]}")
    paths = _scripts(args)
    if not paths:
        raise OptionError("tcptest fmt needs at least one script")
    changed = failed = 0
    for path in paths:
        try:
            text = read_source(path)
            formatted = format_text(text, path)
            if formatted != text and not check:
                Path(path).write_text(formatted, encoding="utf-8")
        except (OSError, TcptestError) as err:
            failed += 1
            print(err, file=sys.stderr)
            continue
        if formatted != text:
            changed += 1
            print(f"{'would reformat' if check else 'reformatted'} {path}")
    print(f"{changed} {'to reformat' if check else 'reformatted'}, {len(paths) - changed - failed} unchanged"
          + (f", {failed} invalid" if failed else ""))
    return 1 if failed or (check and changed) else 0


def cmd_import(argv: Sequence[str]) -> int:
    from .importer import import_capture, parse_endpoint

    args = list(argv)
    given = {}
    for flag in ("--local", "--init"):
        if flag in args:
            at = args.index(flag)
            if at + 1 >= len(args):
                raise OptionError(f"{flag} needs a value")
            given[flag] = args[at + 1]
            del args[at:at + 2]
    local = parse_endpoint(given["--local"]) if "--local" in given else None
    unknown = [arg for arg in args if arg.startswith("-")]
    if unknown:
        raise OptionError(f"unknown option {unknown[0]}")
    if len(args) != 1:
        raise OptionError("tcptest import takes one capture")
    print(import_capture(args[0], local, given.get("--init")), end="")
    return 0


def _run_traced(request):
    """One run with `-v`: every event printed as it happens, named by its run."""
    from . import batch
    from .runner import run

    name = batch.request_name(request)
    return run(request, lambda text: print(f"{name}: {text}", flush=True))


COMMANDS = {"check": cmd_check, "run": cmd_run, "doctor": cmd_doctor, "explain": cmd_explain,
            "fmt": cmd_fmt, "import": cmd_import, "compare": cmd_compare, "baseline": cmd_baseline}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except TcptestError as err:  # OptionError too: a usage error
        print(f"tcptest: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tcptest: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tcptest run ... | head`): say nothing more,
        # and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def entry() -> None:
    """The `tcptest` command: main(), then exit without tearing the
    interpreter down (20 ms of every run's process; nothing is left to do)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
