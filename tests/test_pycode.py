"""pycode: the names %{ }% blocks start with, and how a failing block is
reported (its own line, the exception, the values it tested)."""

from __future__ import annotations

import pickle

import pytest

from tcptest.errors import RunFailure
from tcptest.pycode import CONSTANTS, TCP_STATES, CaState, PythonBlocks, TcpState
from tcptest.source import Location


def script_file(tmp_path, text: str) -> str:
    path = tmp_path / "blocks.pkt"
    path.write_text(text)
    return str(path)


def block_of(text: str) -> str:
    """The text between the first %{ and }%, as the parser hands it over."""
    return text[text.index("%{") + 2:text.index("}%")]


# ------------------------------------------------------------- the constants


def test_states_are_ints_that_print_their_names():
    assert TcpState.TCP_TIME_WAIT == 6 and TcpState(7) is TcpState.TCP_CLOSE
    assert {TcpState.TCP_ESTABLISHED: "x"}[1] == "x"  # hashes as the int
    assert str(TcpState.TCP_CLOSE) == repr(TcpState.TCP_CLOSE) == "TCP_CLOSE"
    assert f"{TcpState.TCP_LISTEN}" == "TCP_LISTEN"
    assert f"{TcpState.TCP_LISTEN:d} {TcpState.TCP_LISTEN:#x}" == "10 0xa"
    assert str(CaState.TCP_CA_Loss) == "TCP_CA_Loss" and CaState.TCP_CA_Loss == 4
    assert pickle.loads(pickle.dumps(TcpState.TCP_SYN_RECV)) is TcpState.TCP_SYN_RECV


def test_packetdrills_names_are_all_there_with_their_values():
    packetdrill = {
        "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
        "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
        "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
        "TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4,
        "TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
    }
    for name, value in packetdrill.items():
        assert CONSTANTS[name] == value, name
    assert TCP_STATES["TCP_NEW_SYN_RECV"] is TcpState.TCP_NEW_SYN_RECV
    assert type(CONSTANTS["TCP_CLOSING"]) is TcpState and type(CONSTANTS["TCPI_OPT_SACK"]) is int


def test_tcpi_state_is_bound_as_a_state_and_old_comparisons_still_hold():
    blocks = PythonBlocks()
    blocks.run("assert tcpi_state == TCP_CLOSE == 7 and tcpi_ca_state == TCP_CA_Open",
               Location("x.pkt", 1), {"tcpi_state": 7, "tcpi_ca_state": 0})
    assert blocks.namespace["tcpi_state"] is TcpState.TCP_CLOSE
    assert blocks.namespace["tcpi_ca_state"] is CaState.TCP_CA_Open
    blocks.run("assert tcpi_state == 99", Location("x.pkt", 1), {"tcpi_state": 99})  # unknown: kept


def test_blocks_share_one_namespace():
    blocks = PythonBlocks({"extra": 5})
    blocks.run("seen = extra + 1", Location("x.pkt", 1), {})
    blocks.run("assert seen == 6", Location("x.pkt", 2), {})


# ------------------------------------------------------------------ failures


def test_a_failed_state_check_names_its_line_and_the_actual_state(tmp_path):
    text = ("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
            "+0 %{ assert conn_state == TCP_TIME_WAIT, conn_state }%\n")
    path = script_file(tmp_path, text)
    with pytest.raises(RunFailure) as failure:
        PythonBlocks().run(block_of(text), Location(path, 2), {"conn_state": TcpState.TCP_CLOSE})
    error = failure.value
    assert error.loc.line == 2
    assert str(error).splitlines()[0] == f"{path}:2: error in Python code: AssertionError: TCP_CLOSE"
    assert "assert conn_state == TCP_TIME_WAIT, conn_state" in error.detail  # the script's own line
    assert "conn_state = TCP_CLOSE" in error.detail


def test_a_bare_assert_still_shows_the_values_it_tested_but_not_the_constants(tmp_path):
    text = "+0 %{ assert conn_state == TCP_LAST_ACK and tcpi_rto > 0 }%\n"
    path = script_file(tmp_path, text)
    with pytest.raises(RunFailure) as failure:
        PythonBlocks().run(block_of(text), Location(path, 1),
                           {"conn_state": TcpState.TCP_CLOSE_WAIT, "tcpi_rto": 200000})
    headline = str(failure.value).splitlines()[0]
    assert headline.endswith("error in Python code: AssertionError (conn_state = TCP_CLOSE_WAIT, "
                             "tcpi_rto = 200000)")
    assert "TCP_LAST_ACK =" not in failure.value.detail


def test_the_failing_line_of_a_block_written_below_its_time(tmp_path):
    text = ("// a comment\n"
            "+0 %{\n"
            "assert sockets == (), sockets\n"
            "assert conn_state == TCP_ESTABLISHED\n"
            "}%\n")
    path = script_file(tmp_path, text)
    with pytest.raises(RunFailure) as failure:
        PythonBlocks().run(block_of(text), Location(path, 2),
                           {"sockets": (), "conn_state": TcpState.TCP_SYN_RECV})
    assert failure.value.loc.line == 4
    assert str(failure.value).startswith(f"{path}:4: error in Python code: AssertionError (conn_state = "
                                         "TCP_SYN_RECV)")


def test_other_exceptions_and_syntax_errors_name_their_line(tmp_path):
    text = "+0 %{\n  x = 1\n  y = undefined_name\n}%\n+0 %{ if True\n}%\n"
    path = script_file(tmp_path, text)
    with pytest.raises(RunFailure) as failure:
        PythonBlocks().run(block_of(text), Location(path, 1), {})
    assert failure.value.loc.line == 3
    assert "NameError: name 'undefined_name' is not defined" in str(failure.value).splitlines()[0]
    second = text[text.index("%{", 10) + 2:text.rindex("}%")]
    with pytest.raises(RunFailure) as failure:
        PythonBlocks().run(second, Location(path, 5), {})
    assert failure.value.loc.line == 5
    assert "SyntaxError" in str(failure.value).splitlines()[0]
