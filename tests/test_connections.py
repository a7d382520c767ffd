"""The connection table: which connection an inbound line goes to and which one
owns a segment the kernel sent, without an engine or a kernel."""

from tcptest import script as s
from tcptest import wire
from tcptest.connections import EPHEMERAL_PORT_BASE, ConnectionTable


def syn(seq: int = 0, ports: tuple[int | None, int | None] = (None, None)) -> s.TcpSegment:
    return s.TcpSegment("S", seq, seq, 0, window=65535, src_port=ports[0], dst_port=ports[1])


def ack() -> s.TcpSegment:
    return s.TcpSegment(".", 1, 1, 0, ack=1, window=257)


def kernel(flags: int, src: int, dst: int, seq: int = 7) -> wire.TcpHeader:
    return wire.TcpHeader(src_port=src, dst_port=dst, seq=seq, ack=0, flags=flags, window=0)


def test_each_new_syn_opens_a_passive_connection_on_the_next_peer_port():
    table = ConnectionTable(bind_port=8080)
    first = table.for_inbound(syn(0))
    assert table.for_inbound(ack()) is first
    second = table.for_inbound(syn(500))
    assert (first.ports, second.ports) == ((8080, EPHEMERAL_PORT_BASE), (8080, EPHEMERAL_PORT_BASE + 1))
    assert table.current is second and second.seqmap.remote_isn == 500


def test_a_retransmitted_syn_stays_on_its_connection():
    table = ConnectionTable(bind_port=8080)
    first = table.for_inbound(syn(0))
    assert table.for_inbound(syn(0)) is first
    assert len(table.all) == 1


def test_the_kernels_own_syn_opens_an_active_connection_and_its_retransmission_keeps_it():
    table = ConnectionTable(bind_port=8080)
    expected = s.TcpSegment("S", 0, 0, 0)
    conn = table.owner_for_expected(kernel(wire.SYN, 45000, 8080), expected)
    assert conn.active and conn.ports == (45000, 8080)
    conn.seqmap.local_isn_live = 7
    assert table.owner_for_expected(kernel(wire.SYN, 45000, 8080), expected) is conn
    # The peer's SYN-ACK answers it: a simultaneous open would be a plain SYN.
    assert table.for_inbound(s.TcpSegment("S.", 0, 0, 0, ack=1)) is conn
    assert conn.seqmap.remote_isn == 0


def test_segments_of_an_older_connection_are_not_matched_to_an_unnamed_line():
    table = ConnectionTable(bind_port=8080)
    old = table.for_inbound(syn(0))
    table.for_inbound(syn(900))
    data = kernel(wire.ACK, *old.ports)
    assert table.owner(data) is old
    assert table.owner_for_expected(data, s.TcpSegment(".", 1, 1, 0)) is None


def test_lines_that_name_ports_drive_several_connections_at_once():
    table = ConnectionTable(bind_port=8080)
    a = table.for_inbound(syn(0, (40001, 8080)))
    b = table.for_inbound(syn(0, (40002, 8080)))
    assert table.for_inbound(s.TcpSegment(".", 1, 1, 0, ack=1, src_port=40001, dst_port=8080)) is a
    assert table.owner_for_expected(kernel(wire.ACK, 8080, 40002), s.TcpSegment(".", 1, 1, 0, src_port=8080)) is b
    # A new SYN from the peer on a connection that exists keeps the old numbers
    # until the kernel answers it.
    table.for_inbound(syn(777, (40001, 8080)))
    assert (a.seqmap.remote_isn, a.new_remote_isn) == (0, 777)
    # The next unnamed connection takes a peer port no named line used.
    assert table.for_inbound(syn(5)).remote_port == 40003


def test_only_connections_the_kernel_acknowledged_and_nobody_reset_are_still_open():
    table = ConnectionTable(bind_port=8080)
    acked, reset, silent = table.for_inbound(syn(0)), table.for_inbound(syn(1)), table.for_inbound(syn(2))
    acked.last_kernel_ack = reset.last_kernel_ack = 1
    reset.reset = True
    assert table.still_open() == [acked]
    assert silent.last_kernel_ack is None
