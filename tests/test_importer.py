"""`tcptest import`: a capture of one connection becomes a script; the
capture of a passing run gives a script that passes (root), and a made-up
capture shows the numbering, the calls and the errors (no root)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from tcptest import cli, wire
from tcptest.errors import CaptureError
from tcptest.importer import Endpoint, import_capture, parse_endpoint
from tcptest.parser import parse_script
from tcptest.pcap import PcapWriter
from tcptest.runner import RunRequest, run
from tcptest.script import Mss, Nop, Sack, SackPermitted

from kernel_runs import WIDE_TOLERANCE, run_with_timing_retries

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
CLIENT, SERVER = ("10.0.0.1", 5555), ("10.0.0.2", 80)
CLIENT_ISN, SERVER_ISN = 1_000_000, 4_000_000_000


def segment(source, destination, flags, seq, ack=0, payload=b"", window=1000, options=()):
    ip = wire.IpHeader(4, source[0], destination[0])
    tcp = wire.TcpHeader(source[1], destination[1], seq % 2**32, ack % 2**32, flags, window, options=options)
    return wire.encode_tcp(ip, tcp, payload)


def write_capture(path, frames):
    with PcapWriter(path) as capture:
        for at, frame in frames:
            capture.write(frame, 1_700_000_000 + at)


@pytest.fixture
def capture(tmp_path):
    """A client's connection to a server on port 80: handshake, the server's
    300 bytes in two segments, a SACK from the client, the server's FIN.
    An unrelated segment of another connection comes first."""
    c, s_ = CLIENT_ISN, SERVER_ISN
    ack, psh, fin = wire.ACK, wire.PSH | wire.ACK, wire.FIN | wire.ACK
    frames = [
        (0.0, segment(("10.9.9.9", 1), SERVER, wire.ACK, 5, 5)),
        (0.5, segment(CLIENT, SERVER, wire.SYN, c, options=(Mss(1460), Nop(), Nop(),
                                                            SackPermitted()))),
        (0.5001, segment(SERVER, CLIENT, wire.SYN | wire.ACK, s_, c + 1, options=(Mss(1400),))),
        (0.52, segment(CLIENT, SERVER, ack, c + 1, s_ + 1)),
        (0.62, segment(SERVER, CLIENT, psh, s_ + 1, c + 1, b"x" * 200)),
        (0.6201, segment(SERVER, CLIENT, psh, s_ + 201, c + 1, b"y" * 100)),
        (0.7, segment(CLIENT, SERVER, ack, c + 1, s_ + 1, options=(
            Nop(), Nop(), Sack(((s_ + 201, s_ + 301),)), ))),
        (0.9, segment(SERVER, CLIENT, fin, s_ + 301, c + 1)),
    ]
    path = tmp_path / "c.pcap"
    write_capture(path, frames)
    return path


def test_the_server_side_gets_a_listener_and_relative_numbers(capture):
    text = import_capture(str(capture))
    lines = text.splitlines()
    assert lines[2:4] == ["--ip_version=ipv4", "--bind_port=80"]
    assert lines[5:] == [
        "    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3",
        "   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0",
        "   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0",
        "   +0 bind(3, ..., ...) = 0",
        "   +0 listen(3, 1) = 0",
        "   +0 < S 0:0(0) win 1000 <mss 1460,nop,nop,sackOK>",
        "   +0 > S. 0:0(0) ack 1 <mss 1400>",
        "+0.02 < . 1:1(0) ack 1 win 1000",
        " +0.1 accept(3, ..., ...) = 4",
        "   +0 write(4, ..., 300) = 300",
        "   +0 > P. 1:201(200) ack 1",
        "   +0 > P. 201:301(100) ack 1",
        "+0.08 < . 1:1(0) ack 1 win 1000 <nop,nop,sack 201:301>",
        " +0.2 shutdown(4, SHUT_WR) = 0",
        "   +0 > F. 301:301(0) ack 1",
    ]
    parse_script(text, "imported.pkt")


def test_the_client_side_gets_a_connect(capture):
    text = import_capture(str(capture), parse_endpoint("10.0.0.1:5555"))
    lines = text.splitlines()
    assert "--connect_port=80" in lines
    assert lines[lines.index("    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3") + 1:][:4] == [
        "   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0",
        "   +0 connect(3, ..., ...) = -1 EINPROGRESS",
        "   +0 > S 0:0(0) <mss 1460,nop,nop,sackOK>",
        "   +0 < S. 0:0(0) ack 1 win 1000 <mss 1400>",
    ]
    assert "+0.08 > . 1:1(0) ack 1 <nop,nop,sack 201:301>" in lines
    assert "write" not in text  # the client sent no data


def test_what_cannot_be_imported_says_why(tmp_path, capture):
    with pytest.raises(CaptureError, match="no SYN to or from 10.0.0.3:80"):
        import_capture(str(capture), parse_endpoint("10.0.0.3:80"))
    bogus = tmp_path / "x.pcap"
    bogus.write_text("not a capture")
    with pytest.raises(CaptureError, match="x.pcap: cannot read the capture"):
        import_capture(str(bogus))
    with pytest.raises(CaptureError, match="ADDRESS:PORT"):
        parse_endpoint("10.0.0.1")
    assert parse_endpoint("[fd3d::2]:8080") == Endpoint(ipaddress.ip_address("fd3d::2"), 8080)


def test_import_command_prints_the_script(capture, capsys):
    assert cli.main(["import", str(capture), "--init", "./defaults.sh"]) == 0
    out = capsys.readouterr().out
    assert "\n`./defaults.sh`\n" in out and out.endswith("   +0 > F. 301:301(0) ack 1\n")
    assert cli.main(["import"]) == 2


@pytest.mark.root("runs scripts against the kernel: needs root")
@pytest.mark.parametrize("name", ["handshake/passive-open.pkt", "handshake/active-open.pkt",
                                  "data/delayed-ack.pkt", "rst/close-unread-data.pkt"])
def test_the_capture_of_a_passing_run_imports_to_a_passing_script(tmp_path, name):
    options = (("ip_version", "ipv4"), WIDE_TOLERANCE)
    ran = run_with_timing_retries(RunRequest(str(SCRIPTS / name), options, str(tmp_path)))
    assert ran.passed, ran.error
    imported = tmp_path / "imported.pkt"
    imported.write_text(import_capture(ran.pcap, init=str(SCRIPTS / "defaults.sh")))
    verdict = run_with_timing_retries(RunRequest(str(imported), options))
    assert verdict.passed, f"{verdict.error}\n{imported.read_text()}"
    assert run(RunRequest(str(imported), (("dry_run", None),))).passed


def test_an_ethernet_capture_reads_as_the_raw_one(tmp_path, capture):
    from scapy.utils import RawPcapReader, RawPcapWriter

    ethernet = tmp_path / "eth.pcap"
    writer = RawPcapWriter(str(ethernet), linktype=1)
    writer.write_header(None)
    header = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    for frame, meta in RawPcapReader(str(capture)):
        writer.write_packet(header + frame, sec=meta.sec, usec=meta.usec)
    writer.close()
    assert import_capture(str(ethernet)).splitlines()[2:] == import_capture(str(capture)).splitlines()[2:]


NO_INIT = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <...>
 +.01 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 110 ecr 0>
   +0 accept(3, ..., ...) = 4
   +0 write(4, ..., 1000) = 1000
   +0 > P. 1:1001(1000) ack 1 <...>
 +.01 < . 1:1(0) ack 1001 win 257 <nop,nop,TS val 120 ecr 0>
   +0 < F. 1:1(0) ack 1001 win 257 <nop,nop,TS val 120 ecr 0>
   +0 > . 1001:1001(0) ack 2 <...>
   +0 close(4) = 0
   +0 > F. 1001:1001(0) ack 2 <...>
 +.01 < . 2:2(0) ack 1002 win 257 <nop,nop,TS val 130 ecr 0>
"""


@pytest.mark.root("runs scripts against the kernel: needs root")
def test_a_run_with_no_init_command_imports_to_a_script_that_passes_as_it_is(tmp_path):
    options = (("ip_version", "ipv4"), WIDE_TOLERANCE)
    script = tmp_path / "plain.pkt"
    script.write_text(NO_INIT)
    ran = run_with_timing_retries(RunRequest(str(script), options, str(tmp_path)))
    assert ran.passed, ran.error
    text = import_capture(ran.pcap)
    # The shutdown goes just before the FIN it caused, at whatever time the capture gives it.
    assert re.search(r"\n *\+[0-9.]+ shutdown\(4, SHUT_WR\) = 0\n   \+0 > F\. 1001:1001\(0\) ack 2 <nop,nop,TS val",
                     text), text
    imported = tmp_path / "imported.pkt"
    imported.write_text(text)
    verdict = run_with_timing_retries(RunRequest(str(imported), options))
    assert verdict.passed, f"{verdict.error}\n{text}"
