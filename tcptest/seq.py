"""Sequence-number spaces: modulo-2**32 arithmetic and the script<->live maps.

A script writes numbers as tcpdump prints them: absolute in segments that carry
SYN, relative to the sender's ISN in all others. The peer's ISN is whatever the
script's inbound SYN says (so its script and live numbers are the same); the
kernel's ISN is learned from its first SYN or SYN-ACK.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MOD = 1 << 32


def u32(value: int) -> int:
    return value % MOD


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed 32-bit distance (RFC 1982 style)."""
    d = (a - b) % MOD
    return d - MOD if d >= MOD // 2 else d


@dataclass(slots=True)
class SeqMap:
    """The maps of one connection.

    `remote_isn` is the script's (and live) ISN of the peer; `local_isn_live`
    and `local_isn_script` are the kernel's ISN as sent and as the script wrote
    it in the kernel's SYN or SYN-ACK line."""

    remote_isn: int | None = None
    local_isn_live: int | None = None
    local_isn_script: int = 0
    # script TS val -> live TS val, from outbound lines, for inbound TS ecr
    ts_vals: dict[int, int] = field(default_factory=dict)
    # (script, live) TS val of the kernel's first timestamp on this connection:
    # the kernel's TS clock has a per-connection offset, counted from here.
    ts_base: tuple[int, int] | None = None

    def ts_val_to_script(self, live_value: int) -> int:
        if self.ts_base is None:
            return live_value
        script_base, live_base = self.ts_base
        return u32(script_base + seq_diff(live_value, live_base))

    def _local_offset(self, syn: bool) -> int:
        if self.local_isn_live is None:
            return 0
        return self.local_isn_live - (self.local_isn_script if syn else 0)

    # ---- numbers in the kernel's sequence space (its seq; the peer's ack, SACK)

    def local_to_live(self, script_value: int, syn: bool) -> int:
        return u32(script_value + self._local_offset(syn))

    def local_to_script(self, live_value: int, syn: bool) -> int:
        return u32(live_value - self._local_offset(syn))

    # ---- numbers in the peer's sequence space (its seq; the kernel's ack, SACK)

    def remote_to_live(self, script_value: int, syn: bool) -> int:
        if syn or self.remote_isn is None:
            return u32(script_value)
        return u32(script_value + self.remote_isn)

    def remote_to_script(self, live_value: int, syn: bool) -> int:
        if syn or self.remote_isn is None:
            return u32(live_value)
        return u32(live_value - self.remote_isn)
