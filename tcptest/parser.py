"""Script text -> `script.Script`: the only module that talks to Lark.

The grammar (`grammar/packetdrill.lark`) is parsed with LALR(1) and the
contextual lexer; a Transformer applied during the parse (no parse tree is
built) turns each rule into the frozen dataclasses of `script.py` and makes the
checks packetdrill makes while reading (ranges, flags, `win` on inbound
segments, ...). Every problem becomes a `ScriptError` naming file, line and
column; no Lark exception leaves this module.

`-D NAME=VALUE` defines are applied to words as they are lexed, as
packetdrill's lexer does: a "quoted" value becomes a string, a `backticked`
one a command, a number a number, anything else a word. `--define=NAME=VALUE`
lines in the script add defines that the caller's do not override.

Times are integer microseconds (see `script.py`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from decimal import Decimal

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedToken
from lark.lark import PostLex

from . import cache
from .errors import ScriptError
from .script import (
    USECS_PER_SEC,
    AbsoluteTime,
    AccEcn,
    AnyTime,
    BitOr,
    Call,
    Code,
    Command,
    EllipsisExpr,
    Eol,
    Event,
    FastOpen,
    Field,
    IcmpMessage,
    Integer,
    IpInfo,
    ListExpr,
    Md5,
    Mss,
    Nop,
    OptionLine,
    OuterHeader,
    Packet,
    RelativeTime,
    Sack,
    SackPermitted,
    Script,
    String,
    Struct,
    Symbol,
    Syscall,
    TcpOption,
    TcpSegment,
    TimeRange,
    Timestamp,
    UdpDatagram,
    UntimedCommand,
    WindowScale,
)
from . import wire
from .render import seconds
from .source import Location, TokenSpan

__all__ = ["parse_script", "parse_with_spans", "RESERVED_WORDS"]

# Words a define never replaces (packetdrill's keywords).
RESERVED_WORDS = frozenset(
    """ack win urg eol nop mss wscale sackOK sack md5 TS val ecr FO FOEXP ECN e0b
    e1b ceb tos flowlabel ect0 ect1 ect01 noecn ce ttl mtu id icmp udp raw gre mpls
    label tc encap psp spi ipv4 ipv6 sa_family sin_port sin_addr htons inet_addr
    inet6_addr msg_name msg_iov msg_flags msg_control cmsg_data cmsg_level
    cmsg_type ee_errno ee_origin ee_type ee_code ee_info ee_data scm_sec scm_nsec
    fd events revents u32 u64 ptr onoff linger sum off key seq none checksum
    sequence# present flags Flags""".split()
)

# ------------------------------------------------------------ building Lark


@dataclass(slots=True)
class _ParseState:
    """What one parse needs while Lark runs: read by the post-lexer and by the
    transformer, which are shared by all parses (hence the ContextVar)."""

    path: str
    defines: dict[str, str]
    caller_defines: frozenset[str]
    previous: Token | None = None  # the last token the parser accepted


_state: ContextVar[_ParseState] = ContextVar("tcptest_parse_state")
# Set by parse_with_spans: the post-lexer adds every token's span to it.
_spans: ContextVar[list[TokenSpan] | None] = ContextVar("tcptest_token_spans", default=None)

_DEFINED_TYPES = frozenset({"NAME", "ERRNO", "COOKIE", "ICMP_NAME"})
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_BACKTICKED = re.compile(r"`[^`]*`")
_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|[0-9]+)")
_FLOAT = re.compile(r"-?[0-9]*\.[0-9]+")


class _PostLex(PostLex):
    """Applies defines to words and remembers the last accepted token, so that
    an error on a new line can point at the end of the previous one."""

    always_accept = ()

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        state = _state.get()
        spans = _spans.get()
        for token in stream:
            substituted = False
            if token.type in _DEFINED_TYPES:
                value = state.defines.get(token.value)
                if value is not None and token.value not in RESERVED_WORDS:
                    token, substituted = _substitute(token, value), True
            elif token.type == "OPTION":
                _note_define(state, token)
            if spans is not None:
                spans.append(TokenSpan(token.type, token.start_pos, token.end_pos, substituted))
            yield token
            state.previous = token


def _substitute(token: Token, value: str) -> Token:
    if _STRING.fullmatch(value):
        return Token.new_borrow_pos("STRING", value, token)
    if _BACKTICKED.fullmatch(value):
        return Token.new_borrow_pos("COMMAND", value, token)
    if token.type == "NAME" and _NUMBER.fullmatch(value):
        return Token.new_borrow_pos("INT", value, token)
    if token.type == "NAME" and _FLOAT.fullmatch(value):
        return Token.new_borrow_pos("FLOAT", value, token)
    return Token.new_borrow_pos(token.type, value, token)


def _note_define(state: _ParseState, token: Token) -> None:
    name, _, value = token.value[2:].partition("=")
    if name == "define" and "=" in value:
        key, _, definition = value.partition("=")
        if key not in state.caller_defines:
            state.defines[key] = definition  # as written: quotes make a string


# ---------------------------------------------------------- semantic errors


class _Problem(Exception):
    """A semantic error found while building the tree, at a line and column;
    parse_script adds the path and the source line."""

    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line = line
        self.col = col
        self.message = message


def _at(token: Token, message: str, offset: int = 0) -> _Problem:
    return _Problem(token.line, token.column + offset, message)


def _after(token: Token, message: str) -> _Problem:
    return _Problem(token.end_line, token.end_column, message)


def _number(token: Token) -> int:
    text = token.value
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:  # more digits than Python converts
        raise _at(token, f"number too long: {text[:20]}...") from None


def _unsigned(token: Token, bits: int, what: str) -> int:
    value = _number(token)
    if not 0 <= value < 1 << bits:
        raise _at(token, f"{what} out of range: {token.value} (must be 0 to {(1 << bits) - 1})")
    return value


def _usecs(token: Token) -> int:
    """Seconds as written (`0.100`, `.1`, `2`) to integer microseconds."""
    if token.type == "INT" and token.value.startswith("0x"):
        raise _at(token, f"a time is written in decimal seconds, not {token.value}")
    if token.value.startswith("-"):
        raise _at(token, "negative time")
    return int(Decimal(token.value) * USECS_PER_SEC)  # exact; sub-microsecond digits dropped


# ----------------------------------------------------------- internal facts


@dataclass(frozen=True, slots=True)
class _Time:
    node: AbsoluteTime | RelativeTime | AnyTime | TimeRange
    token: Token  # the first token, where the event is located


@dataclass(frozen=True, slots=True)
class _Ip:
    info: IpInfo
    ect01: Token | None  # where `ect01` was written, checked against direction


@dataclass(frozen=True, slots=True)
class _Options:
    options: tuple[TcpOption, ...] | None
    open_token: Token  # the `<`


@dataclass(frozen=True, slots=True)
class _Tcp:
    segment: TcpSegment
    window_goes_after: Token  # where `win N` belongs when it is missing
    options: _Options | None


@dataclass(frozen=True, slots=True)
class _Positional:
    value: object


@dataclass(frozen=True, slots=True)
class _BlockingCall:
    syscall: Syscall
    end_token: Token | None


_FLAG_ORDER = "FSRPEWAU."
_ECN_CODEPOINTS = ("ect0", "ect1", "ect01", "ce", "noecn")
_ACCECN_ORDERS = (("e0b", "ceb", "e1b"), ("e1b", "ceb", "e0b"))
_HEX = re.compile(r"[0-9a-fA-F]*")
_MAX_TCP_OPTION_BYTES = 40
# packetdrill's limits: the option space left after the option's own header
# (kind and length; FOEXP adds the 2-byte magic).
_MAX_FAST_OPEN_COOKIE_BYTES = {"FO": _MAX_TCP_OPTION_BYTES - 2, "FOEXP": _MAX_TCP_OPTION_BYTES - 4}
_SIMPLE_ESCAPES = {
    "n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27,
    "\\": 92, '"': 34, "'": 39, "?": 63,
}


def _flags(token: Token) -> tuple[str, int | None]:
    """`P.6` -> ("P.", 6); letters checked one by one, as packetdrill does."""
    if token.value == "-":
        return "", None
    seen: set[str] = set()
    ace = None
    for offset, char in enumerate(token.value):
        if char in _FLAG_ORDER:
            seen.add(char)
        elif char.isdigit():
            if ace is not None:
                raise _at(token, f"more than one ACE digit in TCP flags '{token.value}'", offset)
            if char > "7":
                raise _at(token, f"ACE digit must be 0 to 7, not {char}", offset)
            ace = int(char)
        else:
            raise _at(token, f"unknown TCP flag '{char}' (flags are {_FLAG_ORDER}, an ACE digit 0-7, or - for none)", offset)
    if ace is not None and seen & set("EWA"):
        raise _at(token, f"TCP flags '{token.value}': the ACE digit stands for the E, W and A bits; write one or the other")
    return "".join(c for c in _FLAG_ORDER if c in seen), ace


def _cookie(token: Token, option: str) -> str:
    text = token.value
    if not _HEX.fullmatch(text):
        return text  # an undefined name; the runner reports it
    if len(text) % 2:
        raise _at(token, f"{option} cookie must be whole bytes: an even number of hex digits, not {len(text)}")
    if len(text) // 2 > _MAX_FAST_OPEN_COOKIE_BYTES[option]:
        raise _at(token, f"{option} cookie is {len(text) // 2} bytes, more than {_MAX_FAST_OPEN_COOKIE_BYTES[option]}")
    return text.lower()


def _option_bytes(option: TcpOption) -> int | None:
    """The option's size on the wire, None when it is not known yet (a cookie
    given by an undefined name)."""
    match option:
        case Nop() | Eol():
            return 1
        case Mss():
            return 4
        case WindowScale():
            return 3
        case SackPermitted():
            return 2
        case Sack(blocks=blocks):
            return 2 + 8 * len(blocks)
        case Timestamp():
            return 10
        case FastOpen(cookie=cookie, experimental=experimental):
            if not _HEX.fullmatch(cookie):
                return None
            return (4 if experimental else 2) + len(cookie) // 2
        case Md5():
            return 18
        case AccEcn(counters=counters):
            return 2 + 3 * len(counters)
    raise AssertionError(option)


def _decode_string(token: Token) -> bytes:
    """A C string literal's bytes: escapes decoded, other text as UTF-8."""
    body = token.value[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")
            i += 1
            continue
        escape = body[i + 1]  # the lexer guarantees a character after `\`
        if escape == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            if not digits:
                raise _at(token, "\\x in a string needs hex digits", i + 1)
            out.append(int(digits.group(), 16))
            i += 2 + len(digits.group())
        elif escape in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1:]).group()
            if int(digits, 8) > 255:
                raise _at(token, f"octal escape \\{digits} is more than a byte", i + 1)
            out.append(int(digits, 8))
            i += 1 + len(digits)
        elif escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            i += 2
        else:
            raise _at(token, f"unknown escape \\{escape} in string", i + 1)
    return bytes(out)


def _check_icmp_names(type_token: Token, code_token: Token | None) -> None:
    """The names must mean something in ICMPv4 or ICMPv6 (`wire.ICMP_NAMES`,
    or `type_N` / `code_N`); the run maps them with its own version."""
    code_name = code_token.value if code_token is not None else None
    errors = []
    for version in wire.ICMP_NAMES:
        try:
            wire.icmp_type_code(version, type_token.value, code_name)
            return
        except wire.UnknownIcmpName as err:
            errors.append(err)
    if all(err.field == "type" for err in errors):
        known = sorted({name for types in wire.ICMP_NAMES.values() for name in types})
        raise _at(type_token, f"unknown ICMP type '{type_token.value}' (known: {', '.join(known)}, or type_N)")
    codes = sorted({code for types in wire.ICMP_NAMES.values() if type_token.value in types
                    for code in types[type_token.value][1]})
    known = f" (known: {', '.join(codes)}, or code_N)" if codes else " (only code_N)"
    raise _at(code_token, f"unknown ICMP code '{code_name}' for type '{type_token.value}'{known}")


# ---------------------------------------------------------- the transformer


class _Builder(Transformer):
    """One callback per grammar rule (or alias), called as LALR reduces."""

    # ------------------------------------------------------------ script

    def start(self, children):
        options, init, events, cleanup = children
        _check_times(events)
        return Script(_state.get().path, tuple(options), init, tuple(events), cleanup)

    def options(self, tokens):
        path = _state.get().path
        lines = []
        for token in tokens:
            name, equals, value = token.value[2:].partition("=")
            if name == "define" and "=" not in value:
                raise _at(token, f"--define needs NAME=VALUE, not '{value}'")
            lines.append(OptionLine(Location(path, token.line, token.column), name, value if equals else None))
        return lines

    def init(self, children):
        (token,) = children
        return UntimedCommand(Location(_state.get().path, token.line, token.column), Command(token.value[1:-1]))

    cleanup = init

    def events(self, children):
        return children

    def event(self, children):
        time, action = children
        outbound = isinstance(action, Packet) and action.direction == ">"
        if isinstance(time.node, AnyTime) and not outbound:
            raise _at(time.token, "event time <star> can only be used with outbound packets")
        if isinstance(time.node, TimeRange) and not outbound:
            raise _at(time.token, "event time range can only be used with outbound packets")
        if isinstance(action, _BlockingCall):
            call, end = action.syscall, action.end_token
            if end is not None and call.end_usecs < time.node.usecs:
                raise _at(end, f"blocking call ends at {end.value} before it starts")
            action = call
        return Event(Location(_state.get().path, time.token.line, time.token.column), time.node, action)

    # ------------------------------------------------------------- times

    def absolute_time(self, children):
        (token,) = children
        return _Time(AbsoluteTime(_usecs(token)), token)

    def relative_time(self, children):
        plus, token = children
        return _Time(RelativeTime(_usecs(token)), plus)

    def any_time(self, children):
        return _Time(AnyTime(), children[0])

    def absolute_range(self, children):
        start, _tilde, end = children
        return _Time(_range(start, end, relative=False), start)

    def relative_range(self, children):
        plus, start, _tilde, _plus, end = children
        return _Time(_range(start, end, relative=True), plus)

    # ----------------------------------------------------------- actions

    def command(self, children):
        return Command(children[0].value[1:-1])

    def code(self, children):
        return Code(children[0].value[2:-2])

    # ----------------------------------------------------------- packets

    def packet(self, children):
        direction, outer, ip, ports, body = children
        inbound = direction.value == "<"
        if ip.ect01 is not None and inbound:
            raise _at(ip.ect01, "[ect01] can only be used with outbound packets")
        if isinstance(body, _Tcp):
            if inbound:
                _check_inbound_tcp(body)
            body = body.segment
        if ports is not None:
            if isinstance(body, IcmpMessage):
                raise _at(ports, "ports are written for TCP and UDP packets, not ICMP")
            src, dst = (p.strip() for p in ports.value.split(">"))
            src_port = _unsigned(Token.new_borrow_pos("INT", src, ports), 16, "source port")
            dst_port = _unsigned(Token.new_borrow_pos("INT", dst, ports), 16, "destination port")
            body = replace(body, src_port=src_port, dst_port=dst_port)
        return Packet(direction.value, body, ip.info, tuple(outer))

    def outer_headers(self, children):
        return children

    def outer_ipv4(self, children):
        src, dst = children
        for token in children:
            if any(len(part) > 3 or int(part) > 255 for part in token.value.split(".")):
                raise _at(token, f"bad IPv4 address {token.value}")
        return OuterHeader("ipv4", f"{src} > {dst}")

    def outer_ipv6(self, children):
        import ipaddress

        for token in children:
            try:
                ipaddress.IPv6Address(token.value)
            except ValueError:
                raise _at(token, f"bad IPv6 address {token.value}") from None
        return OuterHeader("ipv6", f"{children[0]} > {children[1]}")

    def outer_gre(self, children):
        (fields,) = children
        return OuterHeader("gre", " ".join(fields.split()) if fields is not None else "")

    def outer_mpls(self, children):
        (fields,) = children
        return OuterHeader("mpls", " ".join(fields.split()))

    def ip_infos(self, groups):
        values: dict[str, int | str] = {}
        ect01 = None
        for group in groups:
            for name, value, token in group:
                key = "ecn" if name in _ECN_CODEPOINTS else name
                if key in values:
                    raise _at(token, f"IP {'ECN codepoint' if key == 'ecn' else key} written twice")
                if {key, *values} >= {"ecn", "tos"}:
                    raise _at(token, "write either an ECN codepoint or a tos, not both")
                values[key] = value
                if name == "ect01":
                    ect01 = token
        return _Ip(IpInfo(**values), ect01)

    def ip_info(self, items):
        return [item for item in items if isinstance(item, tuple)]

    def ip_item(self, children):
        keyword = children[0]
        if len(children) == 1:
            return (keyword.value, keyword.value, keyword)
        bits, what = {"tos": (8, "tos"), "ttl": (8, "ttl"), "flowlabel": (20, "flow label")}[keyword.value]
        return (keyword.value, _unsigned(children[1], bits, what), keyword)

    def tcp_segment(self, children):
        flags, start, _colon, end, _open, length, close, ack, win, urg, options = children
        flag_letters, ace = _flags(flags)
        seq_start = _unsigned(start, 32, "TCP start sequence number")
        seq_end = _unsigned(end, 32, "TCP end sequence number")
        payload = _unsigned(length, 16, "TCP payload size")
        if seq_end != seq_start + payload:
            raise _at(end, f"inconsistent TCP sequence numbers and payload size: {seq_start} + {payload} is not {seq_end}")
        segment = TcpSegment(
            flags=flag_letters,
            seq_start=seq_start,
            seq_end=seq_end,
            length=payload,
            ack=_unsigned(ack, 32, "TCP ack sequence number") if ack is not None else None,
            window=_unsigned(win, 16, "TCP window value") if win is not None else None,
            urg=_unsigned(urg, 16, "TCP urg_ptr value") if urg is not None else None,
            options=options.options if options is not None else (),
            ace=ace,
        )
        return _Tcp(segment, ack if ack is not None else close, options)

    def tcp_options(self, children):
        opening = children[0]
        if isinstance(children[1], Token):
            return _Options(None, opening)  # `<...>`
        return _Options(tuple(c for c in children[1:-1] if not isinstance(c, Token)), opening)

    def nop(self, _children):
        return Nop()

    def eol(self, _children):
        return Eol()

    def mss(self, children):
        return Mss(_unsigned(children[0], 16, "mss value"))

    def wscale(self, children):
        return WindowScale(_unsigned(children[0], 8, "wscale value"))

    def sack_permitted(self, _children):
        return SackPermitted()

    def sack(self, blocks):
        return Sack(tuple(blocks))

    def sack_block(self, children):
        left, right = children
        return (_unsigned(left, 32, "SACK block left edge"), _unsigned(right, 32, "SACK block right edge"))

    def timestamp(self, children):
        val, ecr = children
        return Timestamp(_unsigned(val, 32, "TS val"), _unsigned(ecr, 32, "TS ecr"))

    def fast_open(self, children):
        (cookie,) = children
        return FastOpen(_cookie(cookie, "FO") if cookie is not None else "")

    def fast_open_exp(self, children):
        (cookie,) = children
        return FastOpen(_cookie(cookie, "FOEXP") if cookie is not None else "", experimental=True)

    def md5(self, children):
        (digest,) = children
        if not re.fullmatch(r"[0-9a-fA-F]{32}", digest.value):
            raise _at(digest, f"md5 signature must be 16 bytes in hex (32 digits), not '{digest.value}'")
        return Md5(digest.value.lower())

    def accecn(self, counters):
        names = tuple(name.value for name, _value in counters)
        if not any(names == order[: len(names)] for order in _ACCECN_ORDERS):
            raise _at(counters[0][0], "AccECN option counters go in the order e0b ceb e1b or e1b ceb e0b")
        return AccEcn(tuple((name.value, _unsigned(value, 24, f"AccECN {name.value} counter")) for name, value in counters))

    def accecn_counter(self, children):
        return tuple(children)

    def udp_datagram(self, children):
        return UdpDatagram(_unsigned(children[0], 16, "UDP payload size"))

    def icmp_message(self, children):
        type_token, code_token, mtu, quoted = children
        _check_icmp_names(type_token, code_token)
        return IcmpMessage(
            type_name=type_token.value,
            code_name=code_token.value if code_token is not None else None,
            mtu=_unsigned(mtu, 32, "ICMP mtu") if mtu is not None else None,
            quoted=quoted,
        )

    def icmp_quote(self, children):
        start, end, length = children
        seq_start = _unsigned(start, 32, "TCP start sequence number")
        seq_end = _unsigned(end, 32, "TCP end sequence number")
        payload = _unsigned(length, 16, "TCP payload size")
        if seq_end != seq_start + payload:
            raise _at(end, f"inconsistent TCP sequence numbers and payload size: {seq_start} + {payload} is not {seq_end}")
        return (seq_start, seq_end, payload)

    # ------------------------------------------------------ system calls

    def syscall(self, children):
        end, name, args, result, errno, note = children
        call = Syscall(
            name=name.value,
            args=tuple(args) if args is not None else (),
            result=result,
            errno=errno.value if errno is not None else None,
            note=" ".join(note.value[1:-1].split()) if note is not None else None,
            end_usecs=_usecs(end) if end is not None else None,
        )
        return _BlockingCall(call, end)

    def args(self, children):
        return children

    def result(self, children):
        return children[0] if len(children) == 1 else BitOr(tuple(children))

    def bit_or(self, children):
        return BitOr(tuple(children))

    def ellipsis(self, _children):
        return EllipsisExpr()

    def integer(self, children):
        (token,) = children
        return Integer(_number(token), hex=token.value.startswith("0x"))

    def symbol(self, children):
        return Symbol(children[0].value)

    def string(self, tokens):
        return String(b"".join(_decode_string(t) for t in tokens).decode("latin-1"))

    def list(self, children):
        (items,) = children
        return ListExpr(tuple(items) if items is not None else ())

    def struct(self, children):
        brace, items = children
        items = items or []
        positional = [item.value for item in items if isinstance(item, _Positional)]
        if not positional:
            return Struct(tuple(items))
        if len(positional) == 2 and len(items) == 2:
            return Struct((Field("iov_base", positional[0]), Field("iov_len", positional[1])))
        raise _at(brace, "struct fields are written name=value; only an iovec is written by position, {base, len}")

    def struct_items(self, children):
        return children

    def field(self, children):
        name, value = children
        return Field(name.value, value)

    def field_with_arg(self, children):
        name, args, value = children
        if args is None or len(args) != 1:
            raise _at(name, f"{name.value}(...) takes one value in the parentheses")
        return Field(name.value, value, args[0])

    def positional(self, children):
        return _Positional(children[0])

    def call(self, children):
        name, args = children
        return Call(name.value, tuple(args) if args is not None else ())


def _range(start: Token, end: Token, relative: bool) -> TimeRange:
    start_usecs, end_usecs = _usecs(start), _usecs(end)
    if end_usecs < start_usecs:
        raise _at(end, f"time range is backwards: {end.value} is before {start.value}")
    return TimeRange(start_usecs, end_usecs, relative)


def _check_inbound_tcp(tcp: _Tcp) -> None:
    segment = tcp.segment
    if tcp.options is not None and tcp.options.options is None:
        raise _at(tcp.options.open_token, "<...> for TCP options can only be used with outbound packets")
    if segment.window is None:
        raise _after(tcp.window_goes_after, "inbound TCP segments need a window: add `win N`")
    if tcp.options is not None:
        sizes = [_option_bytes(option) for option in segment.options]
        if None not in sizes:
            total = sum(sizes)
            if total > _MAX_TCP_OPTION_BYTES:
                raise _at(tcp.options.open_token, f"TCP options are {total} bytes, more than the {_MAX_TCP_OPTION_BYTES} that fit in a TCP header")
            if total % 4:
                raise _at(tcp.options.open_token, f"TCP options are {total} bytes, not a multiple of 4: pad them with nop")


def _check_times(events: list[Event]) -> None:
    """The first event at 0; absolute times never before the previous event."""
    previous = 0
    for index, event in enumerate(events):
        time = event.time
        if index == 0 and not (isinstance(time, (AbsoluteTime, RelativeTime)) and time.usecs == 0):
            raise _Problem(event.loc.line, event.loc.col, "the first event must be at time 0")
        match time:
            case AbsoluteTime(usecs=usecs) | TimeRange(start_usecs=usecs, relative=False):
                if usecs < previous:
                    raise _Problem(
                        event.loc.line,
                        event.loc.col,
                        f"time goes backwards: {seconds(usecs)} is before the previous event at {seconds(previous)}",
                    )
                previous = usecs
            case RelativeTime(usecs=usecs) | TimeRange(start_usecs=usecs, relative=True):
                previous += usecs


# ------------------------------------------------------ errors, in words

# How the expected terminals read in a message; literal keywords and
# punctuation read as themselves.
_FRIENDLY = {
    "INT": "a number",
    "FLOAT": "a number",
    "NAME": "a name",
    "DIRECTION": "'<' or '>'",
    "FLAGS": "TCP flags",
    "PORTS": "ports (src>dst)",
    "COOKIE": "a cookie in hex",
    "ICMP_NAME": "an ICMP type or code name",
    "IPV4_ADDR": "an IPv4 address",
    "IPV6_ADDR": "an IPv6 address",
    "OUTER_FIELDS": "header fields",
    "STRING": "a string",
    "ERRNO": "an errno name",
    "NOTE": "a (note)",
    "COMMAND": "a `command`",
    "CODE": "a %{ python }% block",
    "OPTION": "an --option",
    "LBRACE": "'{'",
    "$END": "end of file",
    "<END-OF-FILE>": "end of file",
}
_EVENT_TIME = {"FLOAT", "PLUS", "STAR"}
_ACTION = {"DIRECTION", "NAME", "COMMAND", "CODE"}
# Keyword sets that read better as one word in a message.
_GROUPS = (
    ({"NOP", "EOL", "MSS", "WSCALE", "SACKOK", "SACK", "TS", "FO", "FOEXP", "MD5", "ECN"},
     "a TCP option name (nop, eol, mss, wscale, sackOK, sack, TS, FO, FOEXP, md5, ECN)"),
    ({"ECT0", "ECT1", "ECT01", "CE", "NOECN", "TOS", "TTL", "FLOWLABEL"},
     "an IP field (ect0, ect1, ect01, ce, noecn, tos, ttl, flowlabel)"),
)
_IGNORED = {"WHITESPACE", "LINE_COMMENT", "BLOCK_COMMENT"}


class _Reader:
    """The built Lark parser, plus the names of its terminals for messages."""

    def __init__(self) -> None:
        self.lark = _build_lark(cache.grammar_path().read_text(encoding="utf-8"))
        self.names: dict[str, str] = {}
        for terminal in self.lark.terminals:
            pattern = terminal.pattern
            if terminal.name in _FRIENDLY:
                self.names[terminal.name] = _FRIENDLY[terminal.name]
            elif pattern.type == "str":
                self.names[terminal.name] = f"'{pattern.value}'"
            else:
                self.names[terminal.name] = terminal.name.lower()
        self.names["$END"] = _FRIENDLY["$END"]

    def expected(self, names: set[str]) -> str:
        names = set(names) - _IGNORED
        words = []
        if _EVENT_TIME <= names:
            names -= _EVENT_TIME | {"INT"}
            words.append("an event time")
        if _ACTION <= names:
            # What may follow a time: the action, or the time's own `...` / `~`,
            # which are rarely what is missing.
            names -= _ACTION | {"_ELLIPSIS", "TILDE"}
            words.append("a packet ('<' or '>'), a system call, a `command` or a %{ python }% block")
        for group, word in _GROUPS:
            if group <= names:
                names -= group
                words.append(word)
        words += sorted({self.names.get(n, n) for n in names})
        if len(words) > 8:
            words = words[:7] + ["..."]
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _build_lark(grammar: str) -> Lark:
    """The parser, loaded from the cache (cache.py) when it has one for this
    grammar (building it takes 50 ms, loading it 6), else built and saved
    there, named by the grammar, the options and the Lark and Python
    versions, so that a change of any makes a new one. (Lark's own `cache=`
    writes in place, where a process beside this one may read half a file.)"""
    import hashlib
    import io
    import pickle
    import sys

    import lark

    options = dict(parser="lalr", lexer="contextual", propagate_positions=False, maybe_placeholders=True)
    live = dict(transformer=_Builder(), postlex=_PostLex())  # objects: not saved, given again at load
    key = hashlib.sha256(f"{grammar}{sorted(options.items())}{lark.__version__}{sys.version_info[:2]}"
                         .encode()).hexdigest()[:20]
    cached = cache.folder() / f"parser-{key}.pickle"
    try:
        with open(cached, "rb") as f:
            return Lark.__new__(Lark)._load(f, **live)
    except FileNotFoundError:
        pass
    except (OSError, pickle.UnpicklingError, EOFError, LarkError, KeyError, TypeError, AttributeError):
        pass  # unreadable, or from a Lark that saved otherwise: build it again
    built = Lark(grammar, **options, **live)
    saved = io.BytesIO()
    built.save(saved, exclude_options=tuple(live))
    cache.write_atomically(cached, saved.getvalue())
    return built


_reader: _Reader | None = None
_reader_lock = threading.Lock()


def _get_reader() -> _Reader:
    global _reader
    if _reader is None:
        with _reader_lock:
            if _reader is None:
                _reader = _Reader()
    return _reader


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


# Terminals that only mean something in one context; when the root lexer
# makes one up while reporting an error, the word written there says more.
_CONTEXT_ONLY = frozenset({"FLAGS", "PORTS", "COOKIE", "ICMP_NAME", "IPV4_ADDR", "IPV6_ADDR", "OUTER_FIELDS"})
_WORD = re.compile(r"[A-Za-z0-9_]+|\S")


def _describe(token: Token, text: str) -> str:
    if token.type == "$END":
        return "end of file"
    written = text[token.start_pos:token.end_pos]
    if token.type in _CONTEXT_ONLY:
        written = _WORD.match(text, token.start_pos).group()
    shown = written.split("\n", 1)[0]
    shown = _printable(shown if len(shown) <= 30 else shown[:27] + "...")
    if written != token.value and token.type not in _CONTEXT_ONLY:
        return f"'{shown}' (defined as {_printable(token.value)})"
    return f"'{shown}'"


# (opening, the whole token when it is closed, message when it is not)
_UNTERMINATED = (
    ("`", re.compile(r"`[^`]*`"), "unterminated `command`: no closing backtick"),
    ('"', _STRING, "unterminated string: no closing \" on this line"),
    ("%{", re.compile(r"%\{(?:[^}]|\}(?!%))*\}%"), "unterminated %{ block: no closing }%"),
    ("/*", re.compile(r"/\*(?:[^*]|\*(?!/))*\*/"), "unterminated /* comment: no closing */"),
)
_END = {"$END", "<END-OF-FILE>"}
_UNTIMED = "an untimed `command` goes only before the first event (init) or after the last (cleanup)"


def _syntax_error(error: LarkError, text: str, reader: _Reader, previous: Token | None) -> _Problem:
    if isinstance(error, UnexpectedToken):
        token = error.token
        expected_names = set(error.expected)
        where = (token.line, token.column, token.start_pos)
    elif isinstance(error, UnexpectedCharacters):
        token = None
        expected_names = set(error.allowed or ())
        where = (error.line, error.column, error.pos_in_stream)
    else:
        line = getattr(error, "line", None) or 1
        column = getattr(error, "column", None) or 1
        return _Problem(line, column, f"cannot read this: {error}")
    expected_names -= _IGNORED
    expected = reader.expected(expected_names) if expected_names else ""
    if token is not None and (token.type == "$END" or token.line is None):
        if previous is None:
            return _Problem(1, 1, f"the script has no events: expected {expected}")
        return _after(previous, f"unexpected end of file, expected {expected} after {_describe(previous, text)}")
    line, column, position = where
    rest = text[position:]
    for opening, closed, message in _UNTERMINATED:
        if rest.startswith(opening) and not closed.match(rest):
            return _Problem(line, column, message)
    if rest.startswith("`") and (_EVENT_TIME <= expected_names or expected_names <= _END):
        return _Problem(line, column, f"{_UNTIMED}; give this one a time, like +0")
    if previous is not None and previous.type == "COMMAND" and expected_names <= _END:
        return _at(previous, f"{_UNTIMED}; give this one a time, like +0")
    if token is not None and token.type == "OPTION":
        return _at(token, "options (--name=value) go at the top, before the init command and the events")
    new_line = previous is not None and line > previous.end_line
    if new_line and not _EVENT_TIME <= expected_names:
        # The previous line is unfinished: say so there, not at the next line.
        after = "the event time" if _ACTION <= expected_names else _describe(previous, text)
        return _after(previous, f"expected {expected} after {after}")
    found = _describe(token, text) if token is not None else f"character {_printable(repr(rest[:1]))}"
    if rest.startswith("#"):
        return _Problem(line, column, f"unexpected {found}: '#' starts a comment only inside backticks and %{{ }}%; use //")
    if new_line and _EVENT_TIME <= expected_names:
        return _Problem(line, column, f"an event starts with a time (0, +0.1, *, ...), not {found}")
    return _Problem(line, column, f"unexpected {found}, expected {expected}" if expected else f"unexpected {found}")


def _on_a_later_line(line: int, previous: Token | None) -> bool:
    return previous is not None and line > previous.end_line


def _source_line(text: str, line: int) -> str | None:
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    shown = lines[line - 1].rstrip("\r")
    # Control characters (a NUL, an escape) would garble a terminal; one
    # replacement character each keeps the caret's column.
    return "".join(c if c == "\t" or c.isprintable() else "\ufffd" for c in shown)


# ------------------------------------------------------------- public API


def parse_script(text: str, path: str, defines: Mapping[str, str] | None = None) -> Script:
    """Read a whole script. `defines` are the command line's `-D NAME=VALUE`;
    they win over `--define` lines in the script. Raises ScriptError."""
    reader = _get_reader()
    caller = dict(defines or {})
    state = _ParseState(path=path, defines=caller, caller_defines=frozenset(caller))
    reset = _state.set(state)
    try:
        return reader.lark.parse(text)
    except _Problem as problem:
        raise _error(path, text, problem) from None
    except LarkError as error:
        raise _error(path, text, _syntax_error(error, text, reader, state.previous)) from None
    finally:
        _state.reset(reset)


def parse_with_spans(text: str, path: str, defines: Mapping[str, str] | None = None
                     ) -> tuple[Script, tuple[TokenSpan, ...]]:
    """`parse_script`, and where each token is in `text` (comments and
    whitespace are what lies between them): what the formatter and
    `run --update` need to rewrite a script and keep every other byte."""
    spans: list[TokenSpan] = []
    reset = _spans.set(spans)
    try:
        script = parse_script(text, path, defines)
    finally:
        _spans.reset(reset)
    return script, tuple(spans)


def _error(path: str, text: str, problem: _Problem) -> ScriptError:
    return ScriptError(Location(path, problem.line, problem.col), problem.message, _source_line(text, problem.line))
