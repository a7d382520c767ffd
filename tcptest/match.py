"""Expected vs actual outbound segments, compared in the script's terms.

The actual segment is first translated into a `script.Packet` (numbers made
relative as the script writes them), so that every difference can be reported
with script values and both segments rendered in script syntax.
"""

from __future__ import annotations

from . import script as s
from . import wire
from .render import render_option
from .seq import SeqMap

# packetdrill's field name of every flag bit, in the order it checks them.
FLAG_FIELDS = (
    ("tcp_fin", wire.FIN), ("tcp_syn", wire.SYN), ("tcp_rst", wire.RST), ("tcp_psh", wire.PSH),
    ("tcp_ack", wire.ACK), ("tcp_urg", wire.URG), ("tcp_ece", wire.ECE), ("tcp_cwr", wire.CWR),
    ("tcp_ae", wire.AE),
)
ECN_CODEPOINTS = {"noecn": (0,), "ect1": (1,), "ect0": (2,), "ce": (3,), "ect01": (1, 2)}
ECN_NAMES = {0: "noecn", 1: "ect1", 2: "ect0", 3: "ce"}


def field_mismatch(name: str, expected: int, actual: int) -> str:
    return (f"live packet field {name}: expected: {expected} ({expected:#x}) "
            f"vs actual: {actual} ({actual:#x})")


def actual_in_script_terms(dgram: wire.Datagram, seqmap: SeqMap, use_ace: bool,
                           shown: s.IpInfo = s.IpInfo(), with_ports: bool = False) -> s.Packet:
    """The captured segment as a script line would write it, with the IP fields
    that `shown` (the script line's) names, and its ports if the line names them."""
    tcp = dgram.transport
    syn = bool(tcp.flags & wire.SYN)
    letters, ace = wire.flags_to_letters(tcp.flags, ace=use_ace)
    options = tuple(_option_in_script_terms(opt, seqmap) for opt in tcp.options)
    # A RST answering a segment without ACK has seq 0 (RFC 9293 section 3.10.7:
    # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>), not a number of the
    # connection's: the script writes it as 0 whatever the kernel's ISN.
    reset_without_seq = tcp.flags & wire.RST and tcp.flags & wire.ACK and tcp.seq == 0
    start = 0 if reset_without_seq else seqmap.local_to_script(tcp.seq, syn)
    length = len(dgram.payload)
    segment = s.TcpSegment(
        flags=letters,
        seq_start=start,
        seq_end=(start + length) % (1 << 32),
        length=length,
        ack=seqmap.remote_to_script(tcp.ack, syn) if tcp.flags & wire.ACK else None,
        window=tcp.window,
        urg=tcp.urg_ptr if tcp.flags & wire.URG else None,
        options=options,
        ace=ace,
        src_port=tcp.src_port if with_ports else None,
        dst_port=tcp.dst_port if with_ports else None,
    )
    live = dgram.ip
    ip = s.IpInfo(ecn=ECN_NAMES[live.tos & 3] if shown.ecn else None,
                  tos=live.tos if shown.tos is not None else None,
                  ttl=live.ttl if shown.ttl is not None else None,
                  flowlabel=live.flowlabel if shown.flowlabel is not None else None)
    return s.Packet(direction=">", body=segment, ip=ip)


def _option_in_script_terms(option, seqmap: SeqMap):
    if isinstance(option, s.Timestamp):
        return s.Timestamp(seqmap.ts_val_to_script(option.val), option.ecr)
    if isinstance(option, s.Sack):
        return s.Sack(tuple((seqmap.remote_to_script(left, False), seqmap.remote_to_script(right, False))
                            for left, right in option.blocks))
    return option


def compare(expected: s.Packet, actual: s.Packet, live_ip: wire.IpHeader) -> list[str]:
    """Every difference, as packetdrill words it, in the order packetdrill checks."""
    exp, act = expected.body, actual.body
    assert isinstance(exp, s.TcpSegment) and isinstance(act, s.TcpSegment)
    problems: list[str] = []
    problems += _compare_ip(expected.ip, live_ip)
    if exp.length != act.length:
        problems.append(f"live packet payload: expected {exp.length} bytes vs actual {act.length} bytes")
    elif exp.options is not None:
        problems += _compare_lengths(exp, act, live_ip)
    exp_bits = wire.flags_from_letters(exp.flags, exp.ace)
    act_bits = wire.flags_from_letters(act.flags, act.ace)
    for name, bit in FLAG_FIELDS:
        if exp.ace is not None and bit & wire.ACE_MASK:
            continue
        if (exp_bits ^ act_bits) & bit:
            problems.append(field_mismatch(name, int(bool(exp_bits & bit)), int(bool(act_bits & bit))))
    act_ace = (act_bits & wire.ACE_MASK) >> wire.ACE_SHIFT
    if exp.ace is not None and exp.ace != act_ace:
        problems.append(field_mismatch("tcp_ace", exp.ace, act_ace))
    if exp.seq_start != act.seq_start:
        problems.append(field_mismatch("tcp_seq", exp.seq_start, act.seq_start))
    if exp.ack is not None and act.ack is not None and exp.ack != act.ack:
        problems.append(field_mismatch("tcp_ack_seq", exp.ack, act.ack))
    if exp.window is not None and exp.window != act.window:
        problems.append(field_mismatch("tcp_window", exp.window, act.window))
    if exp.urg is not None and exp.urg != (act.urg or 0):
        problems.append(field_mismatch("tcp_urg_ptr", exp.urg, act.urg or 0))
    if exp.options is not None:
        problems += _compare_options(exp.options, act.options or ())
    return problems


def _compare_lengths(exp: s.TcpSegment, act: s.TcpSegment, live_ip: wire.IpHeader) -> list[str]:
    """Options of another length show first as a different IP length, the
    field packetdrill names for them (the option lists follow)."""
    options_len = len(wire.encode_options(exp.options or ()))
    live_options_len = len(wire.encode_options(act.options or ()))
    if options_len == live_options_len:
        return []
    tcp_len = 20 + exp.length
    if live_ip.version == 4:
        return [field_mismatch("ipv4_total_length", 20 + tcp_len + options_len,
                               20 + tcp_len + live_options_len)]
    return [field_mismatch("ipv6_payload_len", tcp_len + options_len, tcp_len + live_options_len)]


def _compare_ip(exp: s.IpInfo, act: wire.IpHeader) -> list[str]:
    problems = []
    if exp.ecn is not None and (act.tos & 3) not in ECN_CODEPOINTS[exp.ecn]:
        wanted = ECN_CODEPOINTS[exp.ecn][0]
        problems.append(field_mismatch("ip_ecn", wanted, act.tos & 3))
    if exp.tos is not None and exp.tos != act.tos:
        problems.append(field_mismatch("ip_tos", exp.tos, act.tos))
    if exp.ttl is not None and exp.ttl != act.ttl:
        problems.append(field_mismatch("ip_ttl", exp.ttl, act.ttl))
    if exp.flowlabel is not None and exp.flowlabel != (act.flowlabel or 0):
        problems.append(field_mismatch("ipv6_flow_label", exp.flowlabel, act.flowlabel or 0))
    return problems


def _compare_options(expected: tuple, actual: tuple) -> list[str]:
    kinds_exp = [type(o) for o in expected]
    kinds_act = [type(o) for o in actual]
    if kinds_exp != kinds_act:
        exp_text = ",".join(render_option(o) for o in expected)
        act_text = ",".join(render_option(o) for o in actual)
        return [f"live packet TCP options: expected: <{exp_text}> vs actual: <{act_text}>"]
    problems = []
    for exp, act in zip(expected, actual):
        if not _option_matches(exp, act):
            problems.append(f"bad value in outbound TCP option (kind={wire.encode_options([act])[0]}): "
                            f"expected: {render_option(exp)} actual: {render_option(act)}")
    return problems


def _option_matches(exp, act) -> bool:
    if isinstance(exp, s.Timestamp):
        # TS val is checked by the engine, and only with --tcp_ts_tick_usecs;
        # TS ecr of outbound segments is never checked, as in packetdrill.
        return True
    if isinstance(exp, s.Md5):
        return True  # the signature depends on the key; its presence is what is checked
    if isinstance(exp, s.AccEcn):
        return all(a == b for a, b in zip(exp.counters, act.counters))
    return exp == act


def compare_udp(expected: s.Packet, dgram: wire.Datagram) -> tuple[s.Packet, list[str]]:
    """An outbound UDP datagram: its payload length, and its ports if written."""
    exp, udp = expected.body, dgram.transport
    actual = s.Packet(">", s.UdpDatagram(len(dgram.payload),
                                         udp.src_port if exp.src_port is not None else None,
                                         udp.dst_port if exp.dst_port is not None else None))
    problems = []
    if exp.length != len(dgram.payload):
        problems.append(f"live packet payload: expected {exp.length} bytes vs actual {len(dgram.payload)} bytes")
    for name, want, got in (("udp_src_port", exp.src_port, udp.src_port), ("udp_dst_port", exp.dst_port, udp.dst_port)):
        if want is not None and want != got:
            problems.append(field_mismatch(name, want, got))
    return actual, problems


def compare_icmp(expected: s.Packet, dgram: wire.Datagram, numbers: tuple[int, int]) -> tuple[s.Packet, list[str]]:
    """An outbound ICMP message: its type and code, and its MTU if written.
    The actual message is named in the script's words for its IP version."""
    exp, icmp = expected.body, dgram.transport
    type_name, code_name = wire.icmp_names(dgram.ip.version, icmp.type, icmp.code)
    actual = s.Packet(">", s.IcmpMessage(type_name, code_name, icmp.mtu if exp.mtu is not None else None))
    problems = []
    for name, want, got in (("icmp_type", numbers[0], icmp.type), ("icmp_code", numbers[1], icmp.code)):
        if want != got:
            problems.append(field_mismatch(name, want, got))
    if exp.mtu is not None and exp.mtu != (icmp.mtu or 0):
        problems.append(field_mismatch("icmp_mtu", exp.mtu, icmp.mtu or 0))
    return actual, problems
