#!/usr/bin/env python3
"""Writes scripts/state-event/: one script per cell of the state-event matrix
(a kind of segment sent to a connection in one TCP state, with its sequence
number at one place of the receive window), each asserting what Linux
answers, the state the connection is in after it and the counters that move.

    generate.py                          write the scripts (the same files every time)
    generate.py --check                  exit 1 if a script on disk differs from what it would write
    generate.py table LABEL=RESULTS...   write README.md's table from saved runs, a column per label

What Linux does in each cell is the model below (`linux`); the RFC text each
cell checks, and where Linux departs from it, is `rfc`. A script that
fails on a kernel is a cell whose model is wrong for that kernel.
"""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- the matrix

# Segment kinds: file name, flags as a script writes them.
KINDS = {
    "ack": ".", "fin": "F", "fin-ack": "F.", "rst": "R", "rst-ack": "R.",
    "syn": "S", "syn-ack": "S.", "syn-fin": "SF", "no-flags": "-",
}
PORT, PEER_PORT = 8080, 40000
POSITIONS = ("outside-left", "left-edge", "inside", "right-edge", "outside-right")
# How far inside the window the "inside" segment starts.
INSIDE = 1000
# The options of every SYN the peer sends (the handshake's, so a SYN that opens
# a new connection gets the SYN-ACK the suite knows).
SYN_OPTIONS = "<mss 1460,sackOK,nop,nop,nop,wscale 7>"
SYN_ACK_OPTIONS = "<mss 1460,nop,nop,sackOK,nop,wscale 8>"

# The kernel's receive windows (RCV.WND), as the setups below pin them: the
# request socket's is its SYN-ACK's; the child of the handshake starts with
# its own, not a multiple of the scale (2**8), until it sends a segment, and
# from then on it is what that segment advertises (win 1050, scaled).
SYN_ACK_WINDOW = 65535
CHILD_WINDOW = 268640
ADVERTISED_WINDOW = 1050 << 8

LISTENER = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
"""
SYN_RECV = LISTENER + f"""\
   +0 < S 0:0(0) win 65535 {SYN_OPTIONS}
   +0 > S. 0:0(0) ack 1 win 65535 {SYN_ACK_OPTIONS}
"""
ESTABLISHED = SYN_RECV + """\
   +0 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
"""
FIN_WAIT1 = ESTABLISHED + """\
   +0 close(4) = 0
   +0 > F. 1:1(0) ack 1 win 1050
"""
CLOSE_WAIT = ESTABLISHED + """\
   +0 < F. 1:1(0) ack 1 win 257
   +0 > . 1:1(0) ack 2 win 1050
"""


@dataclass(frozen=True)
class State:
    """A state the kernel's end is brought to: how, which peer seq it expects
    next (RCV.NXT, None where there is no window), the right edge of its
    window (RCV.NXT + RCV.WND, as it last advertised it), and the ack a
    peer's segment carries (what the kernel has sent, SND.NXT)."""

    name: str
    setup: str
    rcv_nxt: int | None
    right_edge: int | None
    ack: int
    conn_state: str
    fin_in_flight: bool = False  # the kernel's FIN waits for its ACK: rto-min.sh keeps it from being resent

    @property
    def init(self) -> str:
        return "`../../defaults.sh\n ../rto-min.sh`" if self.fin_in_flight else "`../../defaults.sh`"

    @property
    def named_ports(self) -> bool:
        """Whether segment lines name their ports: all but SYN_SENT's, whose
        local port the kernel picks. A SYN with a new ISN then stays on the
        same connection instead of opening another, as a peer's would."""
        return self.name != "SYN_SENT"

    @property
    def folder(self) -> str:
        return self.name.lower().replace("_", "-")


STATES = (
    State("CLOSED", "    0 %{ assert sockets == (), sockets }%\n", None, None, 1000, "TCP_CLOSE"),
    State("LISTEN", LISTENER, None, None, 1000, "TCP_LISTEN"),
    State("SYN_SENT", """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
""", None, None, 1, "TCP_SYN_SENT"),
    State("SYN_RECV", SYN_RECV, 1, 1 + SYN_ACK_WINDOW, 1, "TCP_SYN_RECV"),
    State("ESTABLISHED", ESTABLISHED, 1, 1 + CHILD_WINDOW, 1, "TCP_ESTABLISHED"),
    State("FIN_WAIT1", FIN_WAIT1, 1, 1 + ADVERTISED_WINDOW, 2, "TCP_FIN_WAIT1", fin_in_flight=True),
    State("FIN_WAIT2", FIN_WAIT1 + "   +0 < . 1:1(0) ack 2 win 257\n", 1, 1 + ADVERTISED_WINDOW, 2, "TCP_FIN_WAIT2"),
    State("CLOSE_WAIT", CLOSE_WAIT, 2, 2 + ADVERTISED_WINDOW, 1, "TCP_CLOSE_WAIT"),
    State("CLOSING", FIN_WAIT1 + """\
   +0 < F. 1:1(0) ack 1 win 257
   +0 > . 2:2(0) ack 2 win 1050
""", 2, 2 + ADVERTISED_WINDOW, 2, "TCP_CLOSING", fin_in_flight=True),
    State("LAST_ACK", CLOSE_WAIT + """\
   +0 close(4) = 0
   +0 > F. 1:1(0) ack 2 win 1050
""", 2, 2 + ADVERTISED_WINDOW, 2, "TCP_LAST_ACK", fin_in_flight=True),
    State("TIME_WAIT", FIN_WAIT1 + """\
   +0 < F. 1:1(0) ack 2 win 257
   +0 > . 2:2(0) ack 2 win 1050
""", 2, 2 + ADVERTISED_WINDOW, 2, "TCP_TIME_WAIT"),
)


@dataclass(frozen=True)
class Cell:
    """A kind of segment sent to a state, at a place of its window."""

    state: State
    kind: str
    position: str | None  # None where the state has no window

    @property
    def flags(self) -> str:
        return KINDS[self.kind]

    @property
    def seq(self) -> int:
        """The segment's seq, relative to the peer's ISN (0, so also absolute)."""
        nxt, right = self.state.rcv_nxt, self.state.right_edge
        if nxt is None:
            return 0
        return {"outside-left": nxt - 1, "left-edge": nxt, "inside": nxt + INSIDE,
                "right-edge": right, "outside-right": right + 1}[self.position]

    @property
    def path(self) -> Path:
        name = self.kind if self.position is None else f"{self.kind}-{self.position}"
        return Path(self.state.folder) / f"{name}.pkt"

    def segment(self) -> str:
        seq, flags = self.seq, self.flags
        parts = [f"{inbound(self.state)}{flags} {seq}:{seq}(0)"]
        if "." in flags:
            parts.append(f"ack {self.state.ack}")
        parts.append("win 0" if "R" in flags else "win 65535" if "S" in flags else "win 257")
        if "S" in flags:
            parts.append(SYN_OPTIONS)
        return " ".join(parts)


def cells() -> list[Cell]:
    every = []
    for state in STATES:
        positions = POSITIONS if state.rcv_nxt is not None else (None,)
        every += [Cell(state, kind, position) for kind in KINDS for position in positions]
    return every


def inbound(state: State) -> str:
    return f"< {PEER_PORT}>{PORT} " if state.named_ports else "< "


def outbound(state: State) -> str:
    return f"> {PORT}>{PEER_PORT} " if state.named_ports else "> "


def setup(state: State) -> str:
    """The state's setup lines, with ports where the state names them."""
    return state.setup.replace("< ", inbound(state)).replace("> ", outbound(state))


# ---------------------------------------------------------------- what Linux does

@dataclass(frozen=True)
class Outcome:
    """What a cell's segment leads to: the segment sent back (script text
    after `> `; only Linux's names one), what it is, the state after, the
    counters that move (nstat names and how much; only Linux's), and why: in
    the kernel's terms for Linux, a key of RFC_TEXT for the RFC."""

    answer: str | None
    answer_kind: str  # "nothing", "ACK", "challenge ACK", "RST", "SYN-ACK"
    state: str
    counters: tuple[tuple[str, int], ...]
    why: str

    @property
    def on_the_wire(self) -> str:
        """The answer as the peer sees it: a challenge ACK is an ACK."""
        return "ACK" if self.answer_kind == "challenge ACK" else self.answer_kind


def outcome(answer: str | None, kind: str, state: str, why: str, **counters: int) -> Outcome:
    return Outcome(answer, kind, state, tuple(sorted(counters.items())), why)


def segment_length(flags: str) -> int:
    """Sequence numbers the segment takes: one for SYN, one for FIN."""
    return ("S" in flags) + ("F" in flags)


def linux(cell: Cell) -> Outcome:
    """What Linux does, from the code paths the segment takes (tcp_input.c,
    tcp_minisocks.c, tcp_ipv4.c)."""
    state = cell.state.name
    if state == "CLOSED":
        return _linux_closed(cell)
    if state == "LISTEN":
        return _linux_listen(cell)
    if state == "SYN_SENT":
        return _linux_syn_sent(cell)
    if state == "SYN_RECV":
        return _linux_request(cell)
    if state in ("FIN_WAIT2", "TIME_WAIT"):
        return _linux_timewait(cell)
    return _linux_full(cell)


def _reset_for(cell: Cell) -> str:
    """The RST answering a segment: seq = its ack, or seq 0 acknowledging it."""
    if "." in cell.flags:
        return f"R {cell.state.ack}:{cell.state.ack}(0)"
    return f"R. 0:0(0) ack {cell.seq + segment_length(cell.flags)}"


def _ack(cell: Cell, options: str = "", fin: bool = False) -> str:
    """The kernel's ACK, of RCV.NXT, or of the peer's FIN at RCV.NXT (`fin`)."""
    state = cell.state
    acked = state.rcv_nxt + fin
    return f". {state.ack}:{state.ack}(0) ack {acked}" + (f" {options}" if options else "")


def _linux_closed(cell: Cell) -> Outcome:
    if "R" in cell.flags:
        return outcome(None, "nothing", "TCP_CLOSE", "no socket; a RST is never answered")
    return outcome(_reset_for(cell), "RST", "TCP_CLOSE", "no socket for it: a RST", TcpOutRsts=1)


def _linux_listen(cell: Cell) -> Outcome:
    flags = cell.flags
    if "R" in flags:
        return outcome(None, "nothing", "TCP_CLOSE", "tcp_rcv_state_process(): a RST to a listener is dropped")
    if "." in flags:
        return outcome(_reset_for(cell), "RST", "TCP_CLOSE", "an ACK to a listener: RST", TcpOutRsts=1)
    if flags == "S":
        return outcome(f"S. 0:0(0) ack 1 {SYN_ACK_OPTIONS}", "SYN-ACK", "TCP_SYN_RECV",
                       "a SYN to a listener: a request socket and its SYN-ACK")
    if flags == "SF":
        return outcome(None, "nothing", "TCP_CLOSE", "tcp_rcv_state_process(): a SYN with FIN is dropped")
    return outcome(None, "nothing", "TCP_CLOSE", "no SYN, no ACK: dropped")


SYN_SENT_SYN_ACK = "S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>"


def _linux_syn_sent(cell: Cell) -> Outcome:
    flags = cell.flags
    if flags == "R.":
        return outcome(None, "nothing", "TCP_CLOSE", "a RST with an acceptable ACK: ECONNREFUSED",
                       TcpAttemptFails=1)
    if flags == "S.":
        return outcome(". 1:1(0) ack 1", "ACK", "TCP_ESTABLISHED", "the SYN-ACK: ESTABLISHED",
                       TcpCurrEstab=1, TcpExtTCPDelivered=1)
    if "S" in flags:
        return outcome(SYN_SENT_SYN_ACK, "SYN-ACK", "TCP_SYN_RECV",
                       "simultaneous open: SYN_RECV, its SYN again with an ACK"
                       + (" (the FIN is not processed)" if "F" in flags else ""))
    if flags == "R":
        return outcome(None, "nothing", "TCP_SYN_SENT", "a RST without ACK is dropped")
    return outcome(None, "nothing", "TCP_SYN_SENT", "neither SYN nor RST: dropped")


def _tw_in_window(cell: Cell) -> bool:
    """tcp_in_window() of request and timewait sockets: the segment starts at
    RCV.NXT, or overlaps the window, or is empty at its right edge."""
    seq, end = cell.seq, cell.seq + segment_length(cell.flags)
    nxt, right = cell.state.rcv_nxt, cell.state.right_edge
    return seq == nxt or (end > nxt and seq < right) or (seq == right == end)


def _linux_request(cell: Cell) -> Outcome:
    """tcp_check_req(): the segment meets the request socket of SYN_RECV."""
    flags, seq = cell.flags, cell.seq
    if "S" in flags and "." not in flags and "R" not in flags and seq == 0:
        return outcome(f"S. 0:0(0) ack 1 {SYN_ACK_OPTIONS}", "SYN-ACK", "TCP_SYN_RECV",
                       "the SYN again (its ISN): the SYN-ACK is sent again",
                       TcpRetransSegs=1, TcpExtTCPSynRetrans=1)
    if not _tw_in_window(cell):
        if "R" in flags:
            return outcome(None, "nothing", "TCP_SYN_RECV", "outside the window: dropped")
        return outcome(_ack(cell), "ACK", "TCP_SYN_RECV", "outside the window: an ACK")
    if "R" in flags:
        if seq == cell.state.rcv_nxt:
            return outcome(None, "nothing", "TCP_CLOSE", "a RST at RCV.NXT: the request socket is removed",
                           TcpAttemptFails=1, TcpExtEmbryonicRsts=1)
        return outcome(_ack(cell), "challenge ACK", "TCP_SYN_RECV", "a RST in the window: challenge ACK",
                       TcpExtTCPChallengeACK=1)
    if "S" in flags:
        return outcome(_reset_for(cell), "RST", "TCP_CLOSE",
                       "a SYN in the window: embryonic reset, a RST and the request socket removed",
                       TcpAttemptFails=1, TcpOutRsts=1, TcpExtEmbryonicRsts=1)
    if "." not in flags:
        return outcome(None, "nothing", "TCP_SYN_RECV", "no ACK: dropped")
    # The ACK completes the handshake: the child socket takes the segment.
    opened = {"TcpPassiveOpens": 1, "TcpCurrEstab": 1}
    if "F" not in flags:
        return outcome(None, "nothing", "TCP_ESTABLISHED", "the ACK completes the handshake",
                       TcpExtTCPPureAcks=1, **opened)
    if seq == cell.state.rcv_nxt:
        return outcome(_ack(cell, fin=True), "ACK", "TCP_CLOSE_WAIT",
                       "the ACK completes the handshake, the FIN closes the peer's side", **opened)
    return outcome(_ack(cell, f"<nop,nop,sack {seq}:{seq + 1}>"), "ACK", "TCP_ESTABLISHED",
                   "the ACK completes the handshake; the FIN is out of order: queued, a duplicate ACK with SACK",
                   TcpExtTCPOFOQueue=1, **opened)


def _linux_timewait(cell: Cell) -> Outcome:
    """tcp_timewait_state_process(): FIN_WAIT2 after close() and TIME_WAIT are
    timewait sockets, with rules of their own."""
    flags, seq, nxt = cell.flags, cell.seq, cell.state.rcv_nxt
    here = cell.state.conn_state
    if cell.state.name == "FIN_WAIT2":
        if not _tw_in_window(cell):
            return outcome(_ack(cell), "ACK", here, "outside the window: an ACK, even for a RST")
        if "R" in flags:
            return outcome(None, "nothing", "TCP_CLOSE", "any RST in the window ends it, no challenge ACK")
        if "S" in flags and seq >= nxt:
            return outcome(_reset_for(cell), "RST", "TCP_CLOSE", "a SYN at or after RCV.NXT: RST",
                           TcpOutRsts=1)
        if "." not in flags or segment_length(flags) == 0 or seq + segment_length(flags) <= nxt:
            return outcome(None, "nothing", here, "nothing new: dropped")
        if seq != nxt:
            return outcome(_reset_for(cell), "RST", "TCP_CLOSE",
                           "a FIN after RCV.NXT counts as data after close(): RST", TcpOutRsts=1)
        return outcome(_ack(cell, fin=True), "ACK", "TCP_TIME_WAIT",
                       "the FIN: TIME_WAIT, and its ACK")
    empty = segment_length(flags) == 0
    if seq == nxt and (empty or "R" in flags):
        if "R" in flags:
            return outcome(None, "nothing", "TCP_CLOSE",
                           "a RST at RCV.NXT ends TIME_WAIT (TIME_WAIT assassination, tcp_rfc1337=0)")
        return outcome(None, "nothing", here, "a bare segment at RCV.NXT: nothing to answer")
    if "S" in flags and "R" not in flags and "." not in flags and seq > nxt:
        if "F" in flags:
            return outcome(None, "nothing", "TCP_CLOSE",
                           "a SYN after RCV.NXT ends TIME_WAIT for a new connection; the listener drops SYN+FIN")
        return outcome(f"S. 0:0(0) ack {seq + 1} {SYN_ACK_OPTIONS}", "SYN-ACK", "TCP_SYN_RECV",
                       "a SYN after RCV.NXT ends TIME_WAIT and opens a new connection")
    if "R" in flags:
        return outcome(None, "nothing", here, "a RST not at RCV.NXT: dropped, no challenge ACK")
    return outcome(_ack(cell), "ACK", here, "every other segment: the ACK of TIME_WAIT")


def _full_acceptable(cell: Cell) -> bool:
    """tcp_sequence(): the segment does not end before RCV.NXT and does not
    start after the window."""
    end = cell.seq + segment_length(cell.flags)
    return end >= cell.state.rcv_nxt and cell.seq <= cell.state.right_edge


# Where the ACK of our FIN (every ACK-bearing segment here acknowledges
# everything sent) takes each state, and the counters that move with it.
ACKED = {
    "ESTABLISHED": ("TCP_ESTABLISHED", {}),
    "CLOSE_WAIT": ("TCP_CLOSE_WAIT", {}),
    "FIN_WAIT1": ("TCP_FIN_WAIT2", {"TcpExtTW": 1, "TcpExtTCPDelivered": 1}),
    "CLOSING": ("TCP_TIME_WAIT", {"TcpExtTW": 1, "TcpExtTCPDelivered": 1}),
    "LAST_ACK": ("TCP_CLOSE", {"TcpExtTCPDelivered": 1}),
}


def _linux_full(cell: Cell) -> Outcome:
    """tcp_rcv_established() / tcp_rcv_state_process() on a full socket."""
    flags, seq, name = cell.flags, cell.seq, cell.state.name
    nxt, right, here = cell.state.rcv_nxt, cell.state.right_edge, cell.state.conn_state
    if not any(bit in flags for bit in "SR."):
        return outcome(None, "nothing", here, "no ACK, RST or SYN: dropped before any other check")
    resets = {"TcpEstabResets": 1, "TcpCurrEstab": -1} if name in ("ESTABLISHED", "CLOSE_WAIT") else {}
    if "R" in flags:
        if seq == nxt or (seq == nxt - 1 and name in ("CLOSE_WAIT", "CLOSING", "LAST_ACK")):
            why = "a RST at RCV.NXT resets the connection" if seq == nxt else \
                "a RST at RCV.NXT - 1, the seq of the peer's FIN, resets too (tcp_reset_check())"
            return outcome(None, "nothing", "TCP_CLOSE", why, **resets)
        if not _full_acceptable(cell):
            return outcome(None, "nothing", here, "a RST outside the window: dropped")
        return outcome(_ack(cell), "challenge ACK", here, "a RST in the window: challenge ACK",
                       TcpExtTCPChallengeACK=1)
    if "S" in flags:
        errors = {"TcpInErrs": 1} if name == "ESTABLISHED" else {}
        return outcome(_ack(cell), "challenge ACK", here, "a SYN, wherever it is: challenge ACK",
                       TcpExtTCPChallengeACK=1, TcpExtTCPSYNChallenge=1, **errors)
    if not _full_acceptable(cell):
        beyond = {"TcpExtBeyondWindow": 1} if seq > right else {}
        return outcome(_ack(cell), "ACK", here, "not acceptable: a duplicate ACK", **beyond)
    after, counters = ACKED[name]
    if "F" not in flags:
        return outcome(None, "nothing", after, "the ACK is taken", TcpExtTCPPureAcks=1, **counters)
    if name == "FIN_WAIT1":
        # With a FIN on it, the ACK of ours leaves a full FIN_WAIT2 socket
        # behind, not a timewait one (tcp_rcv_state_process()).
        counters = {"TcpExtTCPDelivered": 1}
    if name in ("CLOSING", "LAST_ACK"):
        return outcome(None, "nothing", after, "the ACK is taken; a FIN after the peer's first one is ignored",
                       **counters)
    if seq < nxt:
        return outcome(_ack(cell, f"<nop,nop,sack {seq}:{seq + 1}>"), "ACK", after,
                       "the ACK is taken; the FIN is old: a D-SACK for it (RFC 2883)",
                       TcpExtDelayedACKLost=1, TcpExtTCPDSACKOldSent=1, **counters)
    if name == "CLOSE_WAIT":
        return outcome(None, "nothing", after, "a FIN after the peer's first one is ignored", **counters)
    if name == "FIN_WAIT1" and seq > nxt:
        return outcome(_reset_for(cell), "RST", "TCP_CLOSE",
                       "the ACK is taken; a FIN after RCV.NXT counts as data after close(): RST",
                       TcpOutRsts=1, TcpExtTCPAbortOnData=1, **counters)
    if seq == right:
        return outcome(_ack(cell), "ACK", after,
                       "the ACK is taken; the FIN lies beyond the window: dropped, an ACK", **counters)
    if seq > nxt:
        return outcome(_ack(cell, f"<nop,nop,sack {seq}:{seq + 1}>"), "ACK", after,
                       "the FIN is out of order: queued, a duplicate ACK with SACK", TcpExtTCPOFOQueue=1,
                       **counters)
    if name == "FIN_WAIT1":
        return outcome(_ack(cell, fin=True), "ACK", "TCP_TIME_WAIT",
                       "the ACK of our FIN and the peer's FIN: TIME_WAIT", TcpExtTW=1, **counters)
    return outcome(_ack(cell, fin=True), "ACK", "TCP_CLOSE_WAIT",
                   "the peer's FIN: CLOSE_WAIT", **counters)


# ---------------------------------------------------------------- what the RFCs say

# The text each cell checks: RFC 9293's event processing (section 3.10.7),
# with RFC 5961's answers to RSTs and SYNs, which RFC 9293 recommends.
RFC_TEXT = {
    "closed": ("RFC 9293 3.10.7.1", "An incoming segment not containing a RST causes a RST to be sent in "
               "response ... If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>"
               "<CTL=RST,ACK>. If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>"),
    "closed-rst": ("RFC 9293 3.10.7.1", "An incoming segment containing a RST is discarded."),
    "listen-rst": ("RFC 9293 3.10.7.2", "first, check for a RST: An incoming RST segment could not be valid "
                   "since it could not have been sent in response to anything sent by this incarnation of the "
                   "connection. An incoming RST should be ignored."),
    "listen-ack": ("RFC 9293 3.10.7.2", "second, check for an ACK: Any acknowledgment is bad if it arrives on a "
                   "connection still in the LISTEN state. An acceptable reset segment should be formed for any "
                   "arriving ACK-bearing segment. The RST should be formatted as follows: <SEQ=SEG.ACK><CTL=RST>"),
    "listen-syn": ("RFC 9293 3.10.7.2", "third, check for a SYN: ... a SYN segment sent of the form: "
                   "<SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> ... Note that any other incoming control or data "
                   "(combined with SYN) will be processed in the SYN-RECEIVED state"),
    "listen-other": ("RFC 9293 3.10.7.2", "fourth, other data or control: ... Any other control or "
                     "text-bearing segment (not containing SYN) must have an ACK and thus would have been "
                     "discarded by the ACK processing in the second step ... drop the segment and return."),
    "syn-sent-rst": ("RFC 9293 3.10.7.3", "second, check the RST bit: If the ACK was acceptable, then signal "
                     "to the user 'error: connection reset', drop the segment, enter CLOSED state ... "
                     "Otherwise (no ACK), drop the segment and return."),
    "syn-sent-syn-ack": ("RFC 9293 3.10.7.3", "fourth, check the SYN bit: ... If SND.UNA > ISS (our SYN has "
                         "been ACKed), change the connection state to ESTABLISHED, form an ACK segment "
                         "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."),
    "syn-sent-syn": ("RFC 9293 3.10.7.3", "fourth, check the SYN bit: ... Otherwise, enter SYN-RECEIVED, form "
                     "a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it."),
    "syn-sent-other": ("RFC 9293 3.10.7.3", "fifth, if neither of the SYN or RST bits is set, then drop the "
                       "segment and return."),
    "unacceptable": ("RFC 9293 3.10.7.4", "first, check sequence number: ... If an incoming segment is not "
                     "acceptable, an acknowledgment should be sent in reply (unless the RST bit is set, if so "
                     "drop the segment and return)"),
    "rst-exact": ("RFC 5961 3.2", "If the RST bit is set and the sequence number exactly matches the next "
                  "expected sequence number (RCV.NXT), then TCP MUST reset the connection."),
    "rst-window": ("RFC 5961 3.2", "If the RST bit is set and the sequence number does not exactly match the "
                   "next expected sequence value, yet is within the current receive window, TCP MUST send an "
                   "acknowledgment (challenge ACK)"),
    "syn": ("RFC 5961 4.2", "If the SYN bit is set, irrespective of the sequence number, TCP MUST send an ACK "
            "(also referred to as challenge ACK) to the remote peer"),
    "time-wait-syn": ("RFC 1122 4.2.2.13", "it MAY accept a new SYN from the remote TCP to reopen the connection "
                      "directly from TIME-WAIT state, if it: (1) assigns its initial sequence number for the new "
                      "connection to be larger than the largest sequence number it used on the previous "
                      "connection incarnation"),
    "no-ack": ("RFC 9293 3.10.7.4", "fifth, check the ACK field: if the ACK bit is off, drop the segment and "
               "return"),
    "ack": ("RFC 9293 3.10.7.4", "fifth, check the ACK field: ... SYN-RECEIVED: If SND.UNA < SEG.ACK =< "
            "SND.NXT, then enter ESTABLISHED state ... FIN-WAIT-1: if the FIN segment is now acknowledged, then "
            "enter FIN-WAIT-2 ... CLOSING: if the ACK acknowledges our FIN, then enter the TIME-WAIT state ... "
            "LAST-ACK: If our FIN is now acknowledged, delete the TCB, enter the CLOSED state"),
    "fin": ("RFC 9293 3.10.7.4", "eighth, check the FIN bit: ... advance RCV.NXT over the FIN, and send an "
            "acknowledgment for the FIN."),
    "fin-out-of-order": ("RFC 9293 3.10.7.4, RFC 5681 4.2", "segments with higher beginning sequence numbers "
                         "SHOULD be held for later processing; A TCP receiver SHOULD send an immediate duplicate "
                         "ACK when an out-of-order segment arrives."),
}

# Where the acknowledgment of everything sent takes each synchronized state.
RFC_ACKED = {"SYN_RECV": "TCP_ESTABLISHED", "FIN_WAIT1": "TCP_FIN_WAIT2", "CLOSING": "TCP_TIME_WAIT",
             "LAST_ACK": "TCP_CLOSE"}
# Where the peer's FIN at RCV.NXT takes each state (after the ACK on it).
RFC_FIN = {"TCP_ESTABLISHED": "TCP_CLOSE_WAIT", "TCP_FIN_WAIT2": "TCP_TIME_WAIT"}


def rfc(cell: Cell) -> Outcome:
    """What RFC 9293 with RFC 5961 says, the answer by kind only."""
    flags, name, here = cell.flags, cell.state.name, cell.state.conn_state
    if name == "CLOSED":
        if "R" in flags:
            return outcome(None, "nothing", "TCP_CLOSE", "closed-rst")
        return outcome(None, "RST", "TCP_CLOSE", "closed")
    if name == "LISTEN":
        if "R" in flags:
            return outcome(None, "nothing", "TCP_CLOSE", "listen-rst")
        if "." in flags:
            return outcome(None, "RST", "TCP_CLOSE", "listen-ack")
        if "S" in flags:
            return outcome(None, "SYN-ACK", "TCP_SYN_RECV", "listen-syn")
        return outcome(None, "nothing", "TCP_CLOSE", "listen-other")
    if name == "SYN_SENT":
        if "R" in flags:
            return outcome(None, "nothing", "TCP_CLOSE" if "." in flags else here, "syn-sent-rst")
        if flags == "S.":
            return outcome(None, "ACK", "TCP_ESTABLISHED", "syn-sent-syn-ack")
        if "S" in flags:
            return outcome(None, "SYN-ACK", "TCP_SYN_RECV", "syn-sent-syn")
        return outcome(None, "nothing", here, "syn-sent-other")
    return _rfc_synchronized(cell)


def rfc_acceptable(cell: Cell) -> bool:
    """RFC 9293 3.10.7.4's four cases, for a window that is not zero."""
    seq, length = cell.seq, segment_length(cell.flags)
    nxt, right = cell.state.rcv_nxt, cell.state.right_edge
    if length == 0:
        return nxt <= seq < right
    return nxt <= seq < right or nxt <= seq + length - 1 < right


def _rfc_synchronized(cell: Cell) -> Outcome:
    flags, seq, name = cell.flags, cell.seq, cell.state.name
    nxt, here = cell.state.rcv_nxt, cell.state.conn_state
    if name == "TIME_WAIT" and "S" in flags and "R" not in flags and "." not in flags and seq > nxt:
        return outcome(None, "SYN-ACK", "TCP_SYN_RECV", "time-wait-syn")
    if not rfc_acceptable(cell):
        if "R" in flags:
            return outcome(None, "nothing", here, "unacceptable")
        if "S" in flags:
            return outcome(None, "challenge ACK", here, "syn")
        return outcome(None, "ACK", here, "unacceptable")
    if "R" in flags:
        if seq == nxt:
            return outcome(None, "nothing", "TCP_CLOSE", "rst-exact")
        return outcome(None, "challenge ACK", here, "rst-window")
    if "S" in flags:
        return outcome(None, "challenge ACK", here, "syn")
    if "." not in flags:
        return outcome(None, "nothing", here, "no-ack")
    after = RFC_ACKED.get(name, here)
    if "F" not in flags or after == "TCP_CLOSE":
        return outcome(None, "nothing", after, "ack")
    if seq > nxt:
        return outcome(None, "ACK", after, "fin-out-of-order")
    return outcome(None, "ACK", RFC_FIN.get(after, after), "fin")


# ---------------------------------------------------------------- the scripts

HEADER = "// Generated by generate.py: change that, not this file (README.md has the whole matrix)."
# Counters that every segment moves, or that a timer or the time since boot
# moves, so that what a cell moves cannot be told from them.
UNCHECKED = ("TcpInSegs", "TcpOutSegs", "TcpExtDelayedACKs", "TcpExtSyncookiesFailed")
# The matrix is about what the kernel answers, not when: a busy machine must
# not fail a cell on timing, so every line may come half a second late (no
# timer of the kernel's fires that soon in a cell: SYNs and SYN-ACKs are
# resent after 1 s, FINs after 3 s with rto-min.sh).
TOLERANCE = "--tolerance_usecs=500000"
# How long a cell listens after its segment before it checks the state: past
# the 40 ms delayed-ACK timer, so that "nothing" means no answer at all.
SILENCE = ".05"
KIND_NAMES = {
    "ack": "ACK", "fin": "FIN without ACK", "fin-ack": "FIN-ACK", "rst": "RST without ACK",
    "rst-ack": "RST-ACK", "syn": "SYN", "syn-ack": "SYN-ACK", "syn-fin": "SYN-FIN", "no-flags": "no flags",
}


def where(cell: Cell) -> str:
    """The segment's seq and where it lies, in words."""
    nxt, right, seq = cell.state.rcv_nxt, cell.state.right_edge, cell.seq
    if nxt is None:
        return f"seq {seq}"
    place = {"outside-left": f"RCV.NXT - 1, just left of the window [{nxt}, {right})",
             "left-edge": f"RCV.NXT, the left edge of the window [{nxt}, {right})",
             "inside": f"RCV.NXT + {INSIDE}, inside the window [{nxt}, {right})",
             "right-edge": f"RCV.NXT + RCV.WND, the right edge of the window [{nxt}, {right})",
             "outside-right": f"RCV.NXT + RCV.WND + 1, just right of the window [{nxt}, {right})",
             }[cell.position]
    return f"seq {seq} = {place}"


def state_name(conn_state: str) -> str:
    return conn_state.removeprefix("TCP_")


def conforms(cell: Cell) -> bool:
    """Whether Linux sends what the RFC says (a challenge ACK is an ACK) and
    leaves the connection in the state it says."""
    mine, theirs = linux(cell), rfc(cell)
    return (mine.on_the_wire, mine.state) == (theirs.on_the_wire, theirs.state)


def _wrap(text: str, prefix: str = "// ", width: int = 78) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent=prefix,
                         break_on_hyphens=False)


def _spoken(outcome_: Outcome) -> str:
    """The answer with its article: "an ACK", "a RST", "nothing"."""
    kind = outcome_.answer_kind
    return kind if kind == "nothing" else f"{'an' if kind == 'ACK' else 'a'} {kind}"


def script(cell: Cell) -> str:
    """The cell's script."""
    mine, theirs = linux(cell), rfc(cell)
    reference, quote = RFC_TEXT[theirs.why]
    answer = "sends nothing back" if mine.answer is None else f"answers with {_spoken(mine)} ({mine.answer})"
    comment = [
        *_wrap(f"State-event matrix: {KIND_NAMES[cell.kind]} ({cell.flags}) to {cell.state.name}, "
               f"{where(cell)}."),
        *_wrap(f"Linux {answer}, and the connection is {state_name(mine.state)} after it: {mine.why}."),
        *_wrap(f'{reference}: "{quote}"'),
        *_wrap(f"The RFC says: {_spoken(theirs)}, {state_name(theirs.state)}. Linux "
               + ("conforms." if conforms(cell) else "departs from it.")),
        HEADER,
    ]
    counters = "{" + ", ".join(f'"{name}": {count}' for name, count in mine.counters) + "}"
    lines = [*comment, "", "--unexpected=fail", TOLERANCE, cell.state.init, "",
             setup(cell.state).rstrip("\n"), "",
             f"// {KIND_NAMES[cell.kind]}, {where(cell)}.",
             " +.01 %{ before = nstat() }%",
             f"   +0 {cell.segment()}"]
    if mine.answer is not None:
        lines.append(f"   +0 {outbound(cell.state)}{mine.answer}")
    lines += [
        f"  +{SILENCE} %{{",
        f"assert conn_state == {mine.state}, conn_state",
        f"unchecked = {UNCHECKED!r}".replace("'", '"'),
        "moved = {name: count - before.get(name, 0) for name, count in nstat().items()",
        "         if name.startswith(\"Tcp\") and name not in unchecked and count != before.get(name, 0)}",
        f"assert moved == {counters}, moved",
        "}%",
    ]
    return "\n".join(lines) + "\n"


def scripts() -> dict[Path, str]:
    return {cell.path: script(cell) for cell in cells()}


def write(root: Path) -> None:
    for path, text in scripts().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def differences(root: Path) -> list[str]:
    """What --check reports: scripts missing, changed, or there but not generated."""
    wanted = scripts()
    problems = [f"{path}: differs from what generate.py writes" if (root / path).exists()
                else f"{path}: missing" for path, text in wanted.items()
                if not (root / path).exists() or (root / path).read_text() != text]
    problems += [f"{path.relative_to(root)}: not generated by generate.py"
                 for path in sorted(root.rglob("*.pkt")) if path.relative_to(root) not in wanted]
    return problems


# ---------------------------------------------------------------- the README table

TABLE_START = "<!-- matrix: written by `generate.py table`, from saved runs; do not edit -->"
TABLE_END = "<!-- end of matrix -->"
IP_VERSIONS = ("ipv4", "ipv6", "ipv4-mapped-ipv6")


def load_runs(results: Path) -> dict[str, dict[str, bool]]:
    """cell path -> IP version -> passed, from what `tcptest run --format=json` wrote."""
    runs: dict[str, dict[str, bool]] = {}
    for run in json.loads(results.read_text())["results"]:
        parts = Path(run["path"]).parts
        if HERE.name in parts:  # the path as the run was given it, from wherever it ran
            cell = Path(*parts[len(parts) - parts[::-1].index(HERE.name):])
            runs.setdefault(str(cell), {})[run["ip_version"]] = bool(run["passed"])
    return runs


def _result(runs: dict[str, bool] | None, ran: list[str]) -> str:
    """A cell's result on one kernel, over the IP versions that kernel's run covered."""
    if not runs:
        return "not run"
    failed = [version for version in ran if runs.get(version) is False]
    missing = [version for version in ran if version not in runs]
    if failed:
        return "**FAIL** " + ", ".join(failed)
    return "pass" + (f" (not run: {', '.join(missing)})" if missing else "")


def _answer(outcome_: Outcome) -> str:
    return outcome_.answer_kind if outcome_.answer is None else f"{outcome_.answer_kind} `{outcome_.answer}`"


def _counters(outcome_: Outcome) -> str:
    return ", ".join(f"{name.removeprefix('TcpExt')} {count:+d}" for name, count in outcome_.counters) or "–"


def table(columns: list[tuple[str, dict[str, dict[str, bool]]]]) -> str:
    """The matrix as Markdown: a table per state, a result column per kernel."""
    every = cells()
    lines = [TABLE_START, ""]
    covered = [[version for version in IP_VERSIONS if any(version in by_version for by_version in runs.values())]
               for _, runs in columns]
    for (label, runs), ran in zip(columns, covered):
        passed = sum(1 for cell in every if _result(runs.get(str(cell.path)), ran).startswith("pass"))
        lines.append(f"- **{label}**: {passed} of {len(every)} cells pass in {', '.join(ran)}.")
    departing = sum(1 for cell in every if not conforms(cell))
    lines += [f"- Linux departs from the RFCs in {departing} of {len(every)} cells.", ""]
    for state in STATES:
        lines += [f"### {state.name}", "",
                  "| segment | seq | Linux answers | state after | counters | the RFC says | "
                  + " | ".join(label for label, _ in columns) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(columns)]
        for cell in (cell for cell in every if cell.state is state):
            theirs = rfc(cell)
            said = f"{theirs.answer_kind}, {state_name(theirs.state)}" + \
                ("" if conforms(cell) else " (**departs**)")
            seq = str(cell.seq) if cell.position is None else f"{cell.position.replace('-', ' ')} ({cell.seq})"
            mine = linux(cell)
            row = [f"[{KIND_NAMES[cell.kind]}]({cell.path})", seq, _answer(mine),
                   state_name(mine.state), _counters(mine), said,
                   *(_result(runs.get(str(cell.path)), ran) for (_, runs), ran in zip(columns, covered))]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines.append(TABLE_END)
    return "\n".join(lines)


def write_table(readme: Path, columns: list[tuple[str, dict[str, dict[str, bool]]]]) -> None:
    text = readme.read_text()
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    readme.write_text(text[:start] + table(columns) + text[end:])


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problems = differences(HERE)
        for problem in problems:
            print(f"scripts/state-event/{problem}", file=sys.stderr)
        if problems:
            print("run scripts/state-event/generate.py to write them again", file=sys.stderr)
        return 1 if problems else 0
    if argv and argv[0] == "table":
        columns = []
        for spec in argv[1:]:
            label, sep, results = spec.partition("=")
            if not sep or not label:
                print(f"generate.py table: {spec!r} is not LABEL=RESULTS.json", file=sys.stderr)
                return 2
            columns.append((label, load_runs(Path(results))))
        if not columns:
            print("generate.py table: give at least one LABEL=RESULTS.json", file=sys.stderr)
            return 2
        write_table(HERE / "README.md", columns)
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    write(HERE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
