"""host/diag.py: decoding sock_diag answers, finding a script's connection,
listen queues; and, as root, the whole dump on real sockets inside a
namespace that run_isolated creates (loopback only)."""

from __future__ import annotations

import errno
import socket
import struct
import subprocess
import time

import pytest

from tcptest.errors import SetupError
from tcptest.host import diag, run_isolated
from tcptest.symbols import TcpState

root_only = pytest.mark.root("needs root (a network namespace of its own)")


def message(state: int, family: int, src: str, sport: int, dst: str, dport: int,
            rqueue: int = 0, wqueue: int = 0, timer: int = 0, retrans: int = 0, expires: int = 0) -> bytes:
    """An inet_diag_msg as the kernel lays it out (addresses in 16 bytes)."""
    def raw(address: str) -> bytes:
        return socket.inet_pton(family, address).ljust(16, b"\0")

    return (struct.pack("=BBBB", family, state, timer, retrans) + struct.pack(">HH", sport, dport)
            + raw(src) + raw(dst) + struct.pack("=I", 0) + bytes(8)
            + struct.pack("=IIIII", expires, rqueue, wqueue, 0, 12345))


def entry(state: TcpState, local_port: int, remote_port: int, rqueue: int = 0, wqueue: int = 0):
    return diag.SocketEntry(state=state, family=socket.AF_INET, local_address="192.168.0.2",
                            local_port=local_port, remote_address="192.0.2.1", remote_port=remote_port,
                            rqueue=rqueue, wqueue=wqueue, timer="none", expires_ms=0, retransmits=0)


# ------------------------------------------------------------------ decoding


def test_decodes_an_ipv4_request_socket():
    raw = message(3, socket.AF_INET, "192.168.0.2", 8080, "192.0.2.1", 40000, timer=1, retrans=2,
                  expires=1984)
    got = diag._decode(raw)
    assert got.state is TcpState.TCP_SYN_RECV
    assert (got.local_address, got.local_port) == ("192.168.0.2", 8080)
    assert (got.remote_address, got.remote_port) == ("192.0.2.1", 40000)
    assert (got.timer, got.expires_ms, got.retransmits) == ("retransmit", 1984, 2)
    assert str(got) == ("TCP_SYN_RECV 192.168.0.2:8080 192.0.2.1:40000 rqueue 0 wqueue 0 "
                        "timer retransmit 1984 ms")


def test_decodes_ipv6_and_shows_mapped_ipv4_addresses_dotted():
    raw = message(6, socket.AF_INET6, "::ffff:192.168.0.2", 8080, "2001:db8::1", 40000, timer=3,
                  expires=60000)
    got = diag._decode(raw)
    assert got.state is TcpState.TCP_TIME_WAIT and got.family == socket.AF_INET6
    assert got.local_address == "::ffff:192.168.0.2"
    assert got.remote_address == "2001:db8::1"
    assert str(got).startswith("TCP_TIME_WAIT [::ffff:192.168.0.2]:8080 [2001:db8::1]:40000")


def test_a_request_socket_reads_syn_recv_whatever_number_it_comes_with():
    got = diag._decode(message(12, socket.AF_INET, "10.0.0.1", 8080, "10.0.0.2", 40000))
    assert got.state is TcpState.TCP_SYN_RECV


def test_a_state_newer_than_the_table_stays_a_number():
    got = diag._decode(message(42, socket.AF_INET, "10.0.0.1", 1, "10.0.0.2", 2))
    assert got.state == 42 and not isinstance(got.state, TcpState)


# ------------------------------------------------- the script's connection


def test_the_connection_is_found_by_its_ports_from_either_end():
    ours = entry(TcpState.TCP_ESTABLISHED, 8080, 40000)
    theirs = entry(TcpState.TCP_FIN_WAIT2, 40000, 8080)
    listener = entry(TcpState.TCP_LISTEN, 8080, 0)
    assert diag.connection_entry((listener, theirs, ours), (8080, 40000)) is ours
    assert diag.connection_entry((listener, theirs), (8080, 40000)) is theirs
    assert diag.connection_entry((listener,), (8080, 40000)) is None
    assert diag.connection_entry((listener, ours), None) is None


def test_conn_state_is_close_when_the_kernel_has_no_socket(monkeypatch):
    monkeypatch.setattr(diag, "tcp_sockets", lambda: (entry(TcpState.TCP_LISTEN, 8080, 0),))
    values = diag.code_values((8080, 40000))
    assert values["conn_state"] is TcpState.TCP_CLOSE
    assert values["conn_socket"] is None
    values = diag.code_values(None)
    assert values["conn_state"] is TcpState.TCP_CLOSE


def test_listen_queue_counts_the_accept_queue_and_the_half_open_connections():
    sockets = (
        entry(TcpState.TCP_LISTEN, 8080, 0, rqueue=2, wqueue=1),
        entry(TcpState.TCP_SYN_RECV, 8080, 40001),
        entry(TcpState.TCP_SYN_RECV, 8080, 40002),
        entry(TcpState.TCP_SYN_RECV, 9090, 40003),  # another listener's
        entry(TcpState.TCP_LISTEN, 9090, 0, rqueue=0, wqueue=5),
    )
    queue = diag.listen_queue_of(sockets, 8080)
    assert queue == (2, 1, 2)
    assert (queue.accepted, queue.limit, queue.syn_recv) == (2, 1, 2)
    assert queue.full  # Linux: full once it holds more than the backlog
    assert not diag.listen_queue_of(sockets, 9090).full


def test_listen_queue_without_a_port_needs_exactly_one_listener():
    one = (entry(TcpState.TCP_LISTEN, 8080, 0, wqueue=10),)
    assert diag.listen_queue_of(one) == (0, 10, 0)
    with pytest.raises(LookupError, match="expected one listening socket in the namespace, found none"):
        diag.listen_queue_of(())
    two = one + (entry(TcpState.TCP_LISTEN, 9090, 0),)
    with pytest.raises(LookupError, match="found TCP_LISTEN 192.168.0.2:8080 .*, "
                                          "TCP_LISTEN 192.168.0.2:9090"):
        diag.listen_queue_of(two)
    with pytest.raises(LookupError, match="on port 7070"):
        diag.listen_queue_of(two, 7070)


def test_a_kernel_without_the_original_request_gets_one_request_per_family(monkeypatch):
    def refused(sock):
        raise OSError(errno.EINVAL, "Invalid argument")

    asked = []

    def per_family(sock, family):
        asked.append(family)
        return [entry(TcpState.TCP_LISTEN, 8080 if family == socket.AF_INET else 9090, 0)]

    monkeypatch.setattr(diag, "dump_both_families", refused)
    monkeypatch.setattr(diag, "dump_family", per_family)
    assert [e.local_port for e in diag.tcp_sockets()] == [8080, 9090]
    assert asked == [socket.AF_INET, socket.AF_INET6]


def test_no_socket_diagnostics_is_a_setup_error_that_says_why(monkeypatch):
    def refused(sock):
        raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")

    monkeypatch.setattr(diag, "dump_both_families", refused)
    with pytest.raises(SetupError, match=r"sock_diag: Protocol not supported.*CONFIG_INET_DIAG"):
        diag.tcp_sockets()


# ------------------------------------------------ real sockets, as root


def _loopback_up() -> None:
    subprocess.run(["ip", "link", "set", "dev", "lo", "up"], check=True)


def _wait_for(predicate, what: str, timeout: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.005)
    raise AssertionError(f"{what} never seen: {diag.tcp_sockets()}")


def _states_through_a_close(family: int, listen_address: str, connect_address: str) -> dict:
    """A connection on loopback, closed by the client first: what the
    blocks would see at each step (runs inside the isolated namespace)."""
    _loopback_up()
    seen = {}
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((listen_address, 8080))
        listener.listen(3)
        seen["idle listener"] = diag.code_values(None)["listen_queue"]()
        client = socket.socket(family, socket.SOCK_STREAM)
        client.connect((connect_address, 8080))
        client_port = client.getsockname()[1]
        pair = (8080, client_port)
        _wait_for(lambda: diag.listen_queue_of(diag.tcp_sockets()).accepted == 1, "a queued connection")
        values = diag.code_values(pair)
        seen["queued"] = (values["conn_state"], values["listen_queue"](), values["listen_queue"](8080))
        seen["addresses"] = {(e.local_address, e.remote_address) for e in values["sockets"] if e.remote_port}
        server, _ = listener.accept()
        server.sendall(b"x" * 100)
        _wait_for(lambda: (e := diag.connection_entry(diag.tcp_sockets(), (client_port, 8080)))
                  and e.rqueue == 100, "100 unread bytes")
        seen["unread"] = diag.code_values((client_port, 8080))["conn_socket"].rqueue
        client.close()  # with 100 bytes unread: a RST, and both ends are gone
        seen["after reset"] = _wait_for(
            lambda: diag.code_values(pair)["conn_state"] == TcpState.TCP_CLOSE and "gone", "the reset")
        server.close()

        client = socket.socket(family, socket.SOCK_STREAM)
        client.connect((connect_address, 8080))
        client_port = client.getsockname()[1]
        server, _ = listener.accept()
        client.close()  # the client closes first: FIN_WAIT2 here, CLOSE_WAIT there
        # (the server acknowledges the FIN after its delayed-ACK timer)
        _wait_for(lambda: diag.code_values((client_port, 8080))["conn_state"] == TcpState.TCP_FIN_WAIT2,
                  "FIN_WAIT2")
        seen["client half-closed"] = (diag.code_values((client_port, 8080))["conn_state"],
                                      diag.code_values((8080, client_port))["conn_state"])
        server.close()
        client_after = _wait_for(
            lambda: (e := diag.connection_entry(diag.tcp_sockets(), (client_port, 8080)))
            and e.state == TcpState.TCP_TIME_WAIT and e, "TIME_WAIT")
        seen["time wait"] = (client_after.state, client_after.timer, client_after.expires_ms)
        seen["server side"] = [str(e) for e in diag.tcp_sockets()
                               if (e.local_port, e.remote_port) == (8080, client_port)]
        seen["either end"] = diag.code_values((8080, client_port))["conn_state"]
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, diag.NETLINK_SOCK_DIAG) as sock:
            both = diag.dump_both_families(sock)
            per_family = diag.dump_family(sock, socket.AF_INET) + diag.dump_family(sock, socket.AF_INET6)
        def without_time(entries):  # a timer's remaining time moves between two dumps
            return sorted((e.state, e.family, e.local_address, e.local_port, e.remote_address,
                           e.remote_port, e.rqueue, e.wqueue, e.timer) for e in entries)
        seen["same dumps"] = without_time(both) == without_time(per_family)
    return seen


@root_only
@pytest.mark.parametrize("family, listen_address, connect_address, shown", [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1", "127.0.0.1"),
    (socket.AF_INET6, "::1", "::1", "::1"),
    (socket.AF_INET6, "::", "::ffff:127.0.0.1", "::ffff:127.0.0.1"),
], ids=["ipv4", "ipv6", "ipv4-mapped-ipv6"])
def test_states_of_real_sockets_through_a_close(family, listen_address, connect_address, shown):
    seen = run_isolated(lambda: _states_through_a_close(family, listen_address, connect_address), timeout=60)
    assert seen["idle listener"] == (0, 3, 0)
    conn_state, queue, same_queue = seen["queued"]
    assert conn_state is TcpState.TCP_ESTABLISHED
    assert queue == same_queue == (1, 3, 0)
    assert seen["addresses"] == {(shown, shown)}
    assert seen["unread"] == 100
    assert seen["after reset"] == "gone"
    # The orphaned client's FIN_WAIT2 is a timewait minisock: no descriptor shows it.
    assert seen["client half-closed"] == (TcpState.TCP_FIN_WAIT2, TcpState.TCP_CLOSE_WAIT)
    state, timer, expires = seen["time wait"]
    assert state is TcpState.TCP_TIME_WAIT and timer == "time_wait" and 55_000 < expires <= 60_000
    assert seen["server side"] == []  # its LAST_ACK ended with the client's ACK
    assert seen["either end"] is TcpState.TCP_TIME_WAIT  # the port pair still names the client's end
    assert seen["same dumps"]


def _one_request_per_block() -> tuple[int, int]:
    _loopback_up()
    sent = []
    real_send = socket.socket.send

    class Counting(socket.socket):
        def send(self, data, *args):
            sent.append(len(data))
            return real_send(self, data, *args)

    original = diag.socket.socket
    diag.socket.socket = Counting
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 8080))
            listener.listen(1)
            values = diag.code_values((8080, 1))
    finally:
        diag.socket.socket = original
    return len(sent), len(values["sockets"])


@root_only
def test_a_block_costs_one_netlink_request():
    requests, sockets = run_isolated(_one_request_per_block, timeout=60)
    assert (requests, sockets) == (1, 1)


def _counters() -> tuple[dict[str, int], dict[str, int]]:
    _loopback_up()
    before = diag.nstat()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 8080))
        listener.listen(1)
        with socket.create_connection(("127.0.0.1", 8080)):
            pass
    return before, diag.nstat()


@root_only
def test_nstat_counts_from_the_namespace_creation():
    before, after = run_isolated(_counters, timeout=60)
    assert before["TcpActiveOpens"] == 0 and before["TcpPassiveOpens"] == 0
    assert after["TcpActiveOpens"] == 1 and after["TcpPassiveOpens"] == 1
    assert "TcpExtSyncookiesSent" in after and "Ip6InReceives" in after
