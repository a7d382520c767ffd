"""Any tree node back to packetdrill text.

Used by reports (the runner prints the script's segment and the live one with
`render_packet`) and by the round-trip tests: parsing what `render_script`
writes gives the same tree, locations aside. The forms are packetdrill's
canonical ones: `> S. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK>`,
flags in `FSRPEWAU.` order, times in seconds with no trailing zeros.
"""

from __future__ import annotations

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
    TcpSegment,
    TimeRange,
    Timestamp,
    UdpDatagram,
    UntimedCommand,
    WindowScale,
)

__all__ = [
    "render",
    "render_script",
    "render_event",
    "render_time",
    "render_packet",
    "render_body",
    "render_ip",
    "render_option",
    "render_syscall",
    "render_expr",
    "seconds",
]


def seconds(usecs: int) -> str:
    """Microseconds as packetdrill seconds: 0 -> `0`, 100000 -> `0.1`."""
    sign = "-" if usecs < 0 else ""
    whole, frac = divmod(abs(usecs), USECS_PER_SEC)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")


def render_script(script: Script) -> str:
    lines = [_option_line(option) for option in script.options]
    if script.init is not None:
        lines.append(_command(script.init.command))
    lines += [render_event(event) for event in script.events]
    if script.cleanup is not None:
        lines.append(_command(script.cleanup.command))
    return "\n".join(lines) + "\n"


def render_event(event: Event) -> str:
    time = render_time(event.time)
    action = event.action
    if isinstance(action, Syscall) and action.end_usecs is not None:
        time += "..." + seconds(action.end_usecs)
    return f"{time} {_action(action)}"


def render_time(time: AbsoluteTime | RelativeTime | AnyTime | TimeRange) -> str:
    match time:
        case AbsoluteTime(usecs=usecs):
            return seconds(usecs)
        case RelativeTime(usecs=usecs):
            return "+" + seconds(usecs)
        case AnyTime():
            return "*"
        case TimeRange(start_usecs=start, end_usecs=end, relative=relative):
            plus = "+" if relative else ""
            return f"{plus}{seconds(start)}~{plus}{seconds(end)}"
    raise TypeError(f"not an event time: {time!r}")


def _action(action: Packet | Syscall | Command | Code) -> str:
    match action:
        case Packet():
            return render_packet(action)
        case Syscall():
            return render_syscall(action)
        case Command():
            return _command(action)
        case Code(text=text):
            return f"%{{{text}}}%"
    raise TypeError(f"not an action: {action!r}")


def _command(command: Command) -> str:
    return f"`{command.text}`"


def _option_line(option: OptionLine) -> str:
    return f"--{option.name}" if option.value is None else f"--{option.name}={option.value}"


# ------------------------------------------------------------------ packets


def render_packet(packet: Packet) -> str:
    """`> [ect0] S. 0:0(0) ack 1 <mss 1460>`: direction, outer headers, IP
    info, then the segment, datagram or ICMP message."""
    parts = [packet.direction]
    parts += [_outer(header) for header in packet.outer]
    ip = render_ip(packet.ip)
    if ip:
        parts.append(ip)
    parts.append(render_body(packet.body))
    return " ".join(parts)


def _outer(header: OuterHeader) -> str:
    return f"{header.kind} {header.text}:" if header.text else f"{header.kind}:"


def render_ip(ip: IpInfo) -> str:
    """`[ect0] (tos 0x04) (ttl 64) (flowlabel 0x12345)`; empty when nothing
    is written."""
    parts = []
    if ip.ecn is not None:
        parts.append(f"[{ip.ecn}]")
    if ip.tos is not None:
        parts.append(f"(tos 0x{ip.tos:02x})")
    if ip.ttl is not None:
        parts.append(f"(ttl {ip.ttl})")
    if ip.flowlabel is not None:
        parts.append(f"(flowlabel 0x{ip.flowlabel:x})")
    return " ".join(parts)


def render_body(body: TcpSegment | UdpDatagram | IcmpMessage) -> str:
    """A packet without its direction: `S. 0:0(0) ack 1 win 65535 <...>`."""
    match body:
        case TcpSegment():
            return _ports(body) + _segment(body)
        case UdpDatagram(length=length):
            return f"{_ports(body)}udp ({length})"
        case IcmpMessage():
            return _icmp(body)
    raise TypeError(f"not a packet body: {body!r}")


def _ports(body: TcpSegment | UdpDatagram) -> str:
    if body.src_port is None or body.dst_port is None:
        return ""
    return f"{body.src_port}>{body.dst_port} "


def _segment(segment: TcpSegment) -> str:
    flags = segment.flags
    if segment.ace is not None:
        flags += str(segment.ace)
    text = f"{flags or '-'} {segment.seq_start}:{segment.seq_end}({segment.length})"
    if segment.ack is not None:
        text += f" ack {segment.ack}"
    if segment.window is not None:
        text += f" win {segment.window}"
    if segment.urg is not None:
        text += f" urg {segment.urg}"
    if segment.options is None:
        text += " <...>"
    elif segment.options:
        text += " <" + ",".join(render_option(option) for option in segment.options) + ">"
    return text


def render_option(option) -> str:
    """One TCP option as written inside `<...>`: `mss 1460`, `TS val 1 ecr 0`."""
    match option:
        case Nop():
            return "nop"
        case Eol():
            return "eol"
        case Mss(value=value):
            return f"mss {value}"
        case WindowScale(shift=shift):
            return f"wscale {shift}"
        case SackPermitted():
            return "sackOK"
        case Sack(blocks=blocks):
            return "sack " + " ".join(f"{left}:{right}" for left, right in blocks)
        case Timestamp(val=val, ecr=ecr):
            return f"TS val {val} ecr {ecr}"
        case FastOpen(cookie=cookie, experimental=experimental):
            name = "FOEXP" if experimental else "FO"
            return f"{name} {cookie}" if cookie else name
        case Md5(digest=digest):
            return f"md5 {digest}"
        case AccEcn(counters=counters):
            return " ".join(["ECN", *(f"{name} {value}" for name, value in counters)])
    raise TypeError(f"not a TCP option: {option!r}")


def _icmp(message: IcmpMessage) -> str:
    parts = ["icmp", message.type_name]
    if message.code_name is not None:
        parts.append(message.code_name)
    if message.mtu is not None:
        parts.append(f"mtu {message.mtu}")
    if message.quoted is not None:
        start, end, length = message.quoted
        parts.append(f"[{start}:{end}({length})]")
    return " ".join(parts)


# ------------------------------------------------------------- system calls


def render_syscall(call: Syscall) -> str:
    """`read(4, ..., 10) = -1 EAGAIN (note)`; a blocking call's `...T` belongs
    to the event's time (see render_event)."""
    text = f"{call.name}({_join(call.args)}) = {render_expr(call.result)}"
    if call.errno is not None:
        text += f" {call.errno}"
    if call.note is not None:
        text += f" ({call.note})"
    return text


def _join(exprs) -> str:
    return ", ".join(render_expr(expr) for expr in exprs)


def render_expr(expr) -> str:
    match expr:
        case EllipsisExpr():
            return "..."
        case Integer(value=value, hex=is_hex):
            return hex(value) if is_hex and value >= 0 else str(value)
        case Symbol(name=name):
            return name
        case String(value=value):
            return _c_string(value)
        case BitOr(operands=operands):
            return "|".join(render_expr(operand) for operand in operands)
        case ListExpr(items=items):
            return f"[{_join(items)}]"
        case Struct(fields=fields):
            if tuple(f.name for f in fields) == ("iov_base", "iov_len") and all(f.arg is None for f in fields):
                return f"{{{_join(f.value for f in fields)}}}"
            return "{" + ", ".join(_field(f) for f in fields) + "}"
        case Field():
            return _field(expr)
        case Call(name=name, args=args):
            return f"{name}({_join(args)})"
    raise TypeError(f"not an expression: {expr!r}")


def _field(f: Field) -> str:
    arg = f"({render_expr(f.arg)})" if f.arg is not None else ""
    return f"{f.name}{arg}={render_expr(f.value)}"


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _c_string(value: str) -> str:
    """Bytes (one per character) as a C literal. A byte with no printable
    form is `\\xNN`, or octal `\\NNN` before a hex digit, which C would
    otherwise read as part of the escape."""
    out = []
    for index, char in enumerate(value):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        elif index + 1 < len(value) and value[index + 1] in _HEX_DIGITS:
            out.append(f"\\{ord(char):03o}")
        else:
            out.append(f"\\x{ord(char):02x}")
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------- dispatch


def render(node) -> str:
    """Any node: a script, event, option line, untimed command, time, action,
    packet body, TCP option, IP info or expression."""
    match node:
        case Script():
            return render_script(node)
        case Event():
            return render_event(node)
        case OptionLine():
            return _option_line(node)
        case UntimedCommand(command=command):
            return _command(command)
        case AbsoluteTime() | RelativeTime() | AnyTime() | TimeRange():
            return render_time(node)
        case Packet() | Syscall() | Command() | Code():
            return _action(node)
        case TcpSegment() | UdpDatagram() | IcmpMessage():
            return render_body(node)
        case IpInfo():
            return render_ip(node)
        case OuterHeader():
            return _outer(node)
        case Nop() | Eol() | Mss() | WindowScale() | SackPermitted() | Sack() | Timestamp() | FastOpen() | Md5() | AccEcn():
            return render_option(node)
    return render_expr(node)
