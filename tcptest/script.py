"""The syntax tree of a packetdrill script: frozen, slotted dataclasses.

Every node that a report may point at carries its `Location`.

TIME convention: every time in the tree is an `int` of microseconds
(`USECS_PER_SEC` per second), as packetdrill keeps them, so that arithmetic on
them is exact; `0.100` in a script is 100_000. Digits below a microsecond are
dropped when reading.

Sequence numbers are kept as written (script space); mapping them to the
kernel's space is the runner's business (`seq.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from .source import Location

Direction = Literal["<", ">"]  # "<" inject into the kernel, ">" expect from it

USECS_PER_SEC = 1_000_000


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class EllipsisExpr:
    """`...`: the sensible live value (an address, a buffer, the domain)."""


@dataclass(frozen=True, slots=True)
class Integer:
    value: int
    hex: bool = False  # written as 0x..., rendered back that way


@dataclass(frozen=True, slots=True)
class Symbol:
    """A name resolved at run time: `SOCK_STREAM`, `O_NONBLOCK`, `NULL`."""

    name: str


@dataclass(frozen=True, slots=True)
class String:
    """A C string literal, escapes already decoded; adjacent literals joined.

    `value` holds bytes, one character per byte (U+0000..U+00FF): the exact
    bytes are `value.encode("latin-1")`. Non-ASCII text in the script stands
    for its UTF-8 bytes, as in C."""

    value: str


@dataclass(frozen=True, slots=True)
class BitOr:
    """`A|B|C`: flags or-ed together."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ListExpr:
    """`[a, b]`: a list, or `[N]` for a pointer to an int."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Field:
    """`name=value` or `name(arg)=value` inside a struct literal
    (`msg_iov(1)=[...]`, `msg_name(...)=...`)."""

    name: str
    value: Expr
    arg: Expr | None = None


@dataclass(frozen=True, slots=True)
class Struct:
    """`{a=1, b=2}`: sockaddr, msghdr, iovec, cmsg, pollfd, epoll_event, linger,
    sock_extended_err, scm_timestamping — which one is decided by the call.

    An iovec is written by position, `{..., 10}`; it is read as the fields
    `iov_base` and `iov_len` (and rendered back by position)."""

    fields: tuple[Field, ...]

    def get(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True, slots=True)
class Call:
    """`htons(8080)`, `inet_addr("192.0.2.1")`, `inet6_addr("...")`."""

    name: str
    args: tuple[Expr, ...]


Expr = Union[EllipsisExpr, Integer, Symbol, String, BitOr, ListExpr, Struct, Call]


# ---------------------------------------------------------------------- times


@dataclass(frozen=True, slots=True)
class AbsoluteTime:
    """`0.100`: seconds from the start of the script."""

    usecs: int


@dataclass(frozen=True, slots=True)
class RelativeTime:
    """`+0.1`: after the previous event."""

    usecs: int


@dataclass(frozen=True, slots=True)
class AnyTime:
    """`*`: whenever it comes (outbound segments only)."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """`0.1~0.2` or `+0~+.04`: a window (outbound segments only)."""

    start_usecs: int
    end_usecs: int
    relative: bool


EventTime = Union[AbsoluteTime, RelativeTime, AnyTime, TimeRange]


# ------------------------------------------------------------------- packets


@dataclass(frozen=True, slots=True)
class IpInfo:
    """IP header fields written before the flags; None means not checked/default.

    `ecn` is one of "noecn", "ect0", "ect1", "ce", "ect01" (outbound only)."""

    ecn: str | None = None
    tos: int | None = None
    ttl: int | None = None
    flowlabel: int | None = None


@dataclass(frozen=True, slots=True)
class Nop:
    pass


@dataclass(frozen=True, slots=True)
class Eol:
    pass


@dataclass(frozen=True, slots=True)
class Mss:
    value: int


@dataclass(frozen=True, slots=True)
class WindowScale:
    shift: int


@dataclass(frozen=True, slots=True)
class SackPermitted:
    pass


@dataclass(frozen=True, slots=True)
class Sack:
    blocks: tuple[tuple[int, int], ...]  # (left, right) in script space


@dataclass(frozen=True, slots=True)
class Timestamp:
    val: int
    ecr: int


@dataclass(frozen=True, slots=True)
class FastOpen:
    """`FO [cookie]` (kind 34) or `FOEXP [cookie]` (kind 254, magic 0xF989).
    `cookie` is lowercase hex, empty for a cookie request. A cookie that is
    not hex (`FO TFO_COOKIE` read without `-D TFO_COOKIE=...`) is kept as the
    name written: the runner reports it as undefined."""

    cookie: str
    experimental: bool = False


@dataclass(frozen=True, slots=True)
class Md5:
    """`md5 HEX`: the 16-byte signature, lowercase hex."""

    digest: str


@dataclass(frozen=True, slots=True)
class AccEcn:
    """`ECN e0b N ceb N e1b N`: the AccECN option; `counters` in written order
    (the order decides option kind 172 vs 174). The parser accepts the
    counter names as a prefix of `e0b ceb e1b` or `e1b ceb e0b`, so fewer
    counters (or none: `ECN`) may be written."""

    counters: tuple[tuple[str, int], ...]


TcpOption = Union[Nop, Eol, Mss, WindowScale, SackPermitted, Sack, Timestamp, FastOpen, Md5, AccEcn]


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """`< S. 0:0(0) ack 1 win 65535 <mss 1000>`.

    `flags` holds the flag letters from `FSRPEWAU.` in canonical order (`.` is
    ACK; no flags is ""); `ace` the AccECN ACE digit 0-7 if written. `options`
    is None for `<...>` (any options) and an empty tuple when no option list
    is written. Ports are written `src>dst` before the flags
    (`< 5555>8080 S 0:0(0) ...`); None means the default connection."""

    flags: str
    seq_start: int
    seq_end: int
    length: int
    ack: int | None = None
    window: int | None = None
    urg: int | None = None
    options: tuple[TcpOption, ...] | None = ()
    ace: int | None = None
    src_port: int | None = None
    dst_port: int | None = None


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """`udp (N)`: N payload bytes; ports as for TCP (`< 5555>53 udp (10)`)."""

    length: int
    src_port: int | None = None
    dst_port: int | None = None


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """`icmp unreachable frag_needed mtu 800 [0:1000(1000)]`.

    `type_name` and `code_name` are names from `wire.ICMP_NAMES` (either
    family: the IP version is known only at run time), or `type_N`/`code_N`.
    `quoted` is the (start, end, length) of the quoted TCP segment, in script
    space, when written."""

    type_name: str
    code_name: str | None = None
    mtu: int | None = None
    quoted: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class OuterHeader:
    """An encapsulation written before a packet: `ipv4 A > B:`, `ipv6 ...:`,
    `gre ...:`, `mpls ...:`. Kept as read; the runner does not send these.

    `kind` is "ipv4", "ipv6", "gre" or "mpls"; `text` what stands between the
    kind and the colon, blanks collapsed (`192.0.2.1 > 192.168.0.1`)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Packet:
    direction: Direction
    body: TcpSegment | UdpDatagram | IcmpMessage
    ip: IpInfo = field(default_factory=IpInfo)
    outer: tuple[OuterHeader, ...] = ()


# ----------------------------------------------------------- other actions


@dataclass(frozen=True, slots=True)
class Syscall:
    """`name(args) = result [ERRNO] [(note)]`, with `end_usecs` from a blocking
    call's `...T` (same anchor kind as the event's start time)."""

    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end_usecs: int | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """A backtick shell command, text between the backticks."""

    text: str


@dataclass(frozen=True, slots=True)
class Code:
    """A `%{ python }%` block, text between the braces."""

    text: str


Action = Union[Packet, Syscall, Command, Code]


# ---------------------------------------------------------------- the script


@dataclass(frozen=True, slots=True)
class Event:
    loc: Location
    time: EventTime
    action: Action


@dataclass(frozen=True, slots=True)
class OptionLine:
    """`--name=value` at the top of a script (value None for `--flag`).

    `name` is without the leading dashes (`tolerance_usecs`); `value` is the
    text as written (`--define=X=Y` has name "define", value "X=Y")."""

    loc: Location
    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class UntimedCommand:
    """The init command before the first event or the cleanup after the last."""

    loc: Location
    command: Command


@dataclass(frozen=True, slots=True)
class Script:
    path: str
    options: tuple[OptionLine, ...]
    init: UntimedCommand | None
    events: tuple[Event, ...]
    cleanup: UntimedCommand | None
