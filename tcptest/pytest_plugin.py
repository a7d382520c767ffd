"""pytest plugin: `pytest path/` runs the `*.pkt` scripts below `path`, each as
one test per IP version it allows (`tcp_basic_server.pkt[ipv6]`).

pytest loads this module in every run of every project where tcptest is
installed, so it stays passive: it only claims `*.pkt` files, and imports the
parser and runner, and probes the host, only once it has one. Scripts come only from the paths pytest
is given (or `testpaths`), like any test file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from .options import IP_VERSIONS


@dataclass(frozen=True, slots=True)
class Settings:
    """What the command line and the ini file ask of every script."""

    ip_versions: tuple[str, ...] | None  # None: every version a script allows
    command_line: tuple[tuple[str, str | None], ...]  # packetdrill options and defines
    pcap_dir: str | None  # None: a temporary folder of the session
    kernels: tuple[tuple[str, object], ...] = ()  # (label, host.vm.KernelImage or None for "host")


SETTINGS = pytest.StashKey[Settings]()
PCAP_DIR = pytest.StashKey[str]()
KERNEL_RUNS = pytest.StashKey[dict]()  # kernel label -> {run key: results.RunResult}


class TcptestWarning(UserWarning):
    """A warning a script run reported (e.g. a non-fatal packet mismatch)."""


class ScriptFailed(Exception):
    """A run's verdict was a failure; repr_failure shows it."""

    def __init__(self, verdict, page: str | None = None):
        super().__init__(verdict.error)
        self.verdict = verdict
        self.page = page  # the run's HTML page (ladder diagram, script, captures)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tcptest", "tcptest: packetdrill scripts (*.pkt) as tests")
    group.addoption("--tcptest-ip-versions", metavar="LIST",
                    help="IP versions to run, comma-separated, of: " + ",".join(IP_VERSIONS)
                    + " (default: each version a script allows)")
    group.addoption("--tcptest-option", action="append", default=[], metavar="--NAME=VALUE",
                    help="a packetdrill option for every script, written with '=': "
                    "--tcptest-option=--tolerance_usecs=10000 (repeatable)")
    group.addoption("--tcptest-define", action="append", default=[], metavar="NAME=VALUE",
                    help="a -D define for every script (repeatable)")
    group.addoption("--tcptest-pcap-dir", metavar="DIR",
                    help="keep the pcap of every failed test here "
                    "(default: a temporary folder of the session)")
    group.addoption("--tcptest-kernel", action="append", default=[], metavar="IMAGE|TREE|RELEASE|host",
                    help="run every script on this kernel, booted in a VM with virtme-ng (host: this "
                    "machine's); repeatable; test ids name it: close.pkt[ipv4-6.1.0-57-amd64]")
    parser.addini("tcptest_ip_versions", "IP versions to run (comma or space separated)",
                  type="args", default=[])
    parser.addini("tcptest_options", "packetdrill options for every script (--NAME=VALUE ...)",
                  type="args", default=[])
    parser.addini("tcptest_defines", "defines for every script (NAME=VALUE ...)",
                  type="args", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SETTINGS] = settings_from(config)


def settings_from(config: pytest.Config) -> Settings:
    """Read and check the options; the command line adds to the ini file's
    options and defines, and replaces its IP versions."""
    from .options import OptionError, RunOptions, apply_option, split_option

    versions_text = config.getoption("tcptest_ip_versions")
    words = versions_text.replace(",", " ").split() if versions_text is not None else [
        word for entry in config.getini("tcptest_ip_versions") for word in entry.split(",") if word]
    unknown = [word for word in words if word not in IP_VERSIONS]
    if unknown:
        raise pytest.UsageError(f"tcptest: unknown IP version {', '.join(unknown)}; "
                                f"choose from {', '.join(IP_VERSIONS)}")
    command_line: list[tuple[str, str | None]] = []
    for text in [*config.getini("tcptest_options"), *config.getoption("tcptest_option")]:
        if not text.startswith("-"):
            raise pytest.UsageError(f"tcptest: an option is written --NAME=VALUE, got {text!r}")
        command_line.append(split_option(text))
    for text in [*config.getini("tcptest_defines"), *config.getoption("tcptest_define")]:
        command_line.append(("define", text))
    check = RunOptions()
    for name, value in command_line:
        try:
            check = apply_option(check, name, value)
        except OptionError as err:
            raise pytest.UsageError(f"tcptest: {err}") from None
    return Settings(tuple(dict.fromkeys(words)) or None, tuple(command_line),
                    config.getoption("tcptest_pcap_dir"), _kernels(config.getoption("tcptest_kernel")))


def _kernels(specs) -> tuple[tuple[str, object], ...]:
    from .errors import TcptestError
    from .host import vm

    kernels = []
    for spec in dict.fromkeys(specs):
        try:
            kernel = None if spec == "host" else vm.resolve(spec)
        except TcptestError as err:
            raise pytest.UsageError(f"tcptest: {err}") from None
        kernels.append(("host" if kernel is None else kernel.release, kernel))
    return tuple(kernels)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".pkt":
        return ScriptFile.from_parent(parent, path=file_path)
    return None


class ScriptFile(pytest.File):
    """A `.pkt` script: one test per IP version it runs with."""

    def collect(self):
        from .batch import ip_versions
        from .doctor import skip_reason

        settings = self.config.stash[SETTINGS]
        for version in ip_versions(str(self.path), settings.command_line):
            if settings.ip_versions is not None and version not in settings.ip_versions:
                continue
            for label, kernel in settings.kernels or ((None, None),):
                item = ScriptItem.from_parent(self, name=f"{self.path.name}[{version}{'-' + label if label else ''}]",
                                              ip_version=version, kernel=label)
                reason = skip_reason(version) if kernel is None else None  # the host is probed once per process
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                yield item

    def repr_failure(self, excinfo):
        from .errors import TcptestError

        if isinstance(excinfo.value, TcptestError):
            return str(excinfo.value)  # a script error names file:line itself
        return super().repr_failure(excinfo)


class ScriptItem(pytest.Item):
    """One run of one script with one IP version, in a namespace of its own."""

    def __init__(self, *, ip_version: str, kernel: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ip_version = ip_version
        self.kernel = kernel  # the label of a --tcptest-kernel, None without any

    def request(self, pcap_dir: str | None = None):
        from .runner import RunRequest

        command_line = self.config.stash[SETTINGS].command_line
        if dict(command_line).get("ip_version") != self.ip_version:
            command_line += (("ip_version", self.ip_version),)
        return RunRequest(str(self.path), command_line, pcap_dir=pcap_dir)

    def runtest(self) -> None:
        from .runner import run

        if self.kernel not in (None, "host"):
            verdict = _verdict_in_vm(self)
        else:
            verdict = run(self.request(_pcap_dir(self.config)))
        for warning in verdict.warnings:
            warnings.warn_explicit(TcptestWarning(f"{verdict.name}: {warning}"),
                                   TcptestWarning, str(self.path), verdict.line or 0)
        if verdict.passed:
            if verdict.pcap:  # only failures keep their capture
                Path(verdict.pcap).unlink(missing_ok=True)
                Path(verdict.pcap).with_suffix(".pcapng").unlink(missing_ok=True)
            return
        if verdict.pcap:
            self.user_properties.append(("pcap", verdict.pcap))
        from .html_report import write_page

        page = write_page(_pcap_dir(self.config), verdict)
        self.user_properties.append(("report", page))
        raise ScriptFailed(verdict, page)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScriptFailed):
            from .report import failure_text

            failed = excinfo.value
            text = failure_text(failed.verdict)
            return f"{text}\nreport: {failed.page}" if failed.page else text
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        # The script, from its top (line numbers here count from 0). Not the
        # bare name as the domain: pytest shows a domain that ends the node id
        # with its dots turned into "::" (tcp_x::pkt[ipv4]).
        return self.path, 0, f"tcptest {self.name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """With pytest-html, a failed script's report entry links its page and
    shows its ladder diagram."""
    outcome = yield
    report = outcome.get_result()
    html_plugin = item.config.pluginmanager.getplugin("html")
    if html_plugin is None or call.excinfo is None or not isinstance(call.excinfo.value, ScriptFailed):
        return
    failed = call.excinfo.value
    extras = list(getattr(report, "extras", []))
    if failed.page:
        extras.append(html_plugin.extras.url(Path(failed.page).as_uri(), name="tcptest report"))
    if failed.verdict.timeline is not None:
        from .ladder import svg

        extras.append(html_plugin.extras.html(f'<div class="tcptest-ladder">{svg(failed.verdict.timeline)}</div>'))
    report.extras = extras


def _verdict_in_vm(item: ScriptItem):
    """This item's verdict on its VM kernel. The first item of a kernel boots
    it once for all the items of that kernel this process has."""
    from .errors import TcptestError

    runs = item.config.stash.setdefault(KERNEL_RUNS, {})
    if item.kernel not in runs:
        from .kernels import VM_JOBS, run_in_vm

        kernel = dict(item.config.stash[SETTINGS].kernels)[item.kernel]
        mine = [other for other in item.session.items
                if isinstance(other, ScriptItem) and other.kernel == item.kernel]
        try:
            outcome = run_in_vm(kernel, [other.request() for other in mine], jobs=VM_JOBS, repeat=1,
                                say=lambda line: None)
            runs[item.kernel] = {run.key: run for run in outcome.runs}
        except TcptestError as err:  # the VM did not work: each of its items says so, none boots it again
            runs[item.kernel] = err
    if isinstance(runs[item.kernel], TcptestError):
        raise runs[item.kernel]
    return runs[item.kernel][f"{item.request().path}[{item.ip_version}]"].verdict


def _pcap_dir(config: pytest.Config) -> str:
    """The folder for pcaps: --tcptest-pcap-dir, else one made for this session
    (per xdist worker) under pytest's base temporary directory."""
    if PCAP_DIR not in config.stash:
        chosen = config.stash[SETTINGS].pcap_dir
        if chosen:
            os.makedirs(chosen, exist_ok=True)
        else:
            # pytest offers its tmp_path_factory to fixtures only; plain Items
            # reach it through the config, as pytest's own tmpdir plugin sets it.
            chosen = str(config._tmp_path_factory.mktemp("tcptest-pcap"))
        config.stash[PCAP_DIR] = chosen
    return config.stash[PCAP_DIR]
