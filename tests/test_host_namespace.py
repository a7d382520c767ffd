"""run_isolated and the network namespace it creates, against the real kernel.

Needs root. Every namespace here is made by run_isolated (or by a plain
unshare in a forked child), so nothing touches the host's network."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tcptest.errors import RunFailure, ScriptError, SetupError
from tcptest.host import enter_new_network_namespace, in_own_network_namespace, run_isolated
from tcptest.host.namespace import OWN_SOCKET_TABLE_BUCKETS, network_namespace_id
from tcptest.source import Location

pytestmark = pytest.mark.root("needs root")

REPO = Path(__file__).resolve().parents[1]


def process_is_gone(pid: int, wait: float = 10.0) -> bool:
    """Whether `pid` exits (zombies count as gone) within `wait` seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], wait)[0])
    finally:
        os.close(pidfd)


def processes_in_network_namespace(namespace_id: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "net").st_ino == namespace_id:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return found


def start_background_sleep() -> int:
    """What a backtick command `sleep 1000 &` leaves behind: its pid."""
    shell = subprocess.run(
        ["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(shell.stdout)


def test_returns_the_value_from_a_new_namespace_with_loopback_up():
    def body():
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return network_namespace_id(), socket.if_nameindex(), in_own_network_namespace()

    namespace_id, interfaces, own = run_isolated(body)

    assert namespace_id != network_namespace_id()
    assert interfaces == [(1, "lo")]
    assert own is True
    assert in_own_network_namespace() is False


def test_the_namespace_has_a_small_tcp_socket_table_of_its_own():
    """So that a sock_diag dump (a `%{ }%` block) walks the run's sockets, not
    the host's whole table; tcp_ehash_entries reads negative when shared."""
    if not Path("/proc/sys/net/ipv4/tcp_child_ehash_entries").exists():
        pytest.skip("this kernel has no per-namespace TCP socket tables (Linux 6.1 on)")

    def body():
        return int(Path("/proc/sys/net/ipv4/tcp_ehash_entries").read_text())

    host_setting = Path("/proc/sys/net/ipv4/tcp_child_ehash_entries").read_text()
    assert run_isolated(body) == OWN_SOCKET_TABLE_BUCKETS
    assert Path("/proc/sys/net/ipv4/tcp_child_ehash_entries").read_text() == host_setting


def test_large_results_come_back_whole():
    payload = bytes(range(256)) * 8192  # 2 MiB, far more than a pipe holds
    assert run_isolated(lambda: payload) == payload


@pytest.mark.parametrize(
    "error",
    [
        ScriptError(Location("a.pkt", 3, 7), "unknown symbol: 'X'", "+0 foo(X)"),
        RunFailure(Location("b.pkt", 9), "Timed out waiting for packet", "script packet: S 0:0(0)"),
        RunFailure(None, "no location"),
        SetupError("no TUN"),
    ],
)
def test_tcptest_errors_come_back_as_themselves(error):
    def body():
        raise error

    with pytest.raises(type(error)) as caught:
        run_isolated(body)

    assert caught.value is not error
    assert vars(caught.value) == vars(error)
    assert str(caught.value) == str(error)


def test_other_exceptions_become_runtime_errors_with_the_traceback():
    def fails_deep_inside():
        return 1 / 0

    with pytest.raises(RuntimeError) as caught:
        run_isolated(fails_deep_inside)

    text = str(caught.value)
    assert "ZeroDivisionError: division by zero" in text
    assert "fails_deep_inside" in text


def test_a_value_that_cannot_be_pickled_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        run_isolated(lambda: lambda: None)


def test_a_child_killed_by_a_signal_is_a_run_failure():
    def body():
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(RunFailure, match="killed by SIGKILL without sending a result"):
        run_isolated(body)


def test_a_child_that_exits_without_a_result_is_a_run_failure():
    with pytest.raises(RunFailure, match="exited with status 3 without sending a result"):
        run_isolated(lambda: os._exit(3))


def test_processes_left_running_are_killed_and_the_namespace_goes():
    def body():
        return start_background_sleep(), network_namespace_id()

    sleeper, namespace_id = run_isolated(body)

    assert process_is_gone(sleeper)
    assert processes_in_network_namespace(namespace_id) == []


def test_a_run_over_its_timeout_is_killed_with_everything_it_started():
    read_fd, write_fd = os.pipe()

    def body():
        os.write(write_fd, b"%d\n" % start_background_sleep())
        signal.pause()

    try:
        with pytest.raises(RunFailure, match="did not finish within 0.5 s"):
            run_isolated(body, timeout=0.5)
        sleeper = int(os.read(read_fd, 100))
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert process_is_gone(sleeper)


def test_a_run_over_its_timeout_says_where_it_was():
    # CI's VM step saw runs killed at the 300 s timeout with no clue where
    # they hung: the message now carries the child's stacks.
    def waits_for_ever_in_here():
        select.select([], [], [])

    with pytest.raises(RunFailure, match="did not finish within 0.5 s") as caught:
        run_isolated(waits_for_ever_in_here, timeout=0.5)
    assert str(caught.value).splitlines()[0] == "the isolated run did not finish within 0.5 s and was killed"
    assert "where its threads were" in caught.value.detail
    assert "in waits_for_ever_in_here" in caught.value.detail


def test_runs_from_several_threads_at_once():
    parent_namespace = network_namespace_id()

    def run(number):
        return run_isolated(lambda: (number * 2, network_namespace_id()))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(12)))

    assert [doubled for doubled, _ in results] == [number * 2 for number in range(12)]
    assert all(namespace != parent_namespace for _, namespace in results)


def test_ctrl_c_kills_the_run_and_raises_keyboard_interrupt():
    program = textwrap.dedent(
        """
        import signal, subprocess, sys
        from tcptest.host import run_isolated

        def body():
            sleeper = subprocess.Popen(["sleep", "1000"])
            print(sleeper.pid, flush=True)
            signal.pause()

        run_isolated(body)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as runner:
        sleeper = int(runner.stdout.readline())
        runner.send_signal(signal.SIGINT)
        _, stderr = runner.communicate(timeout=30)

    assert "KeyboardInterrupt" in stderr
    assert runner.returncode != 0
    assert process_is_gone(sleeper)


def test_a_run_dies_with_its_parent():
    program = textwrap.dedent(
        """
        import os, signal
        from tcptest.host import run_isolated

        def body():
            print(os.getpid(), flush=True)
            signal.pause()

        run_isolated(body)
        """
    )
    command = [sys.executable, "-c", program]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as runner:
        child = int(runner.stdout.readline())
        runner.kill()

    assert process_is_gone(child)


def test_without_root_the_namespace_error_says_so():
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            enter_new_network_namespace()
            os.write(write_fd, b"no error")
        except SetupError as error:
            os.write(write_fd, str(error).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        message = reader.read().decode()
    os.waitpid(pid, 0)
    assert message.startswith("cannot create a network namespace: ")
    assert "needs root" in message
