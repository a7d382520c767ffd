"""Run options: packetdrill's flags, their defaults, and how script lines and the
command line combine (the command line wins, as in packetdrill)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Iterable

from .errors import OptionError, ScriptError, SetupError

IP_VERSIONS = ("ipv4", "ipv6", "ipv4-mapped-ipv6")
UNEXPECTED_CHOICES = ("fail", "warn", "ignore")


@dataclass(frozen=True, slots=True)
class RunOptions:
    ip_version: str = "ipv4"
    local_ip: str | None = None
    remote_ip: str | None = None
    gateway_ip: str | None = None
    netmask_ip: str | None = None
    bind_port: int = 8080
    connect_port: int = 8080
    mtu: int | None = None
    mss: int = 0
    tolerance_usecs: int = 4000
    tolerance_percent: float = 12.5
    tcp_ts_ecr_scaled: bool = False
    tcp_ts_tick_usecs: int = 0
    strict_segments: bool = False
    non_fatal: frozenset[str] = frozenset()
    init_scripts: tuple[str, ...] = ()
    send_omit_free: bool = False
    verbose: bool = False
    dry_run: bool = False
    # tcptest's own: what to do with an outbound segment that arrives while the
    # script waits for something else and that no line can expect in time.
    # packetdrill ignores it; tcptest warns by default, so that packetdrill's
    # scripts run unchanged, and fails with --unexpected=fail.
    unexpected: str = "warn"

    # ---- derived addresses (packetdrill's defaults when not given)

    @property
    def uses_ipv6_device(self) -> bool:
        """ipv4-mapped-ipv6 runs AF_INET6 sockets over an IPv4 device."""
        return self.ip_version == "ipv6"

    @property
    def live_local_ip(self) -> str:
        if self.local_ip:
            return self.local_ip
        return "fd3d:fa7b:d17d::2" if self.uses_ipv6_device else "192.168.0.2"

    @property
    def live_remote_ip(self) -> str:
        if self.remote_ip:
            return self.remote_ip
        return "2001:db8::1" if self.uses_ipv6_device else "192.0.2.1"

    @property
    def live_gateway_ip(self) -> str:
        if self.gateway_ip:
            return self.gateway_ip
        return "fd3d:fa7b:d17d:8888::" if self.uses_ipv6_device else "192.168.0.1"

    @property
    def local_prefix_len(self) -> int:
        if self.uses_ipv6_device:
            return 48
        mask = self.netmask_ip or "255.255.0.0"
        return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen

    @property
    def remote_prefix_len(self) -> int | None:
        """What packetdrill routes through the gateway: the remote address
        itself (None) when --remote_ip gives it, else the default's prefix
        (192.0.2.0/24, 2001:db8::/32)."""
        if self.remote_ip:
            return None
        return 32 if self.uses_ipv6_device else 24

    def tolerance_usecs_for(self, gap_usecs: int) -> int:
        """packetdrill's slack: the larger of the fixed and the proportional one."""
        return max(self.tolerance_usecs, int(self.tolerance_percent / 100.0 * abs(gap_usecs)))


def _parse_bool(value: str | None) -> bool:
    return value is None or value.lower() not in ("0", "false", "no", "off")


def _parse_ip(value: str) -> str:
    return str(ipaddress.ip_address(value))


# name -> (field, converter); packetdrill's spellings.
_CONVERTERS = {
    "ip_version": ("ip_version", str),
    "local_ip": ("local_ip", _parse_ip),
    "remote_ip": ("remote_ip", _parse_ip),
    "gateway_ip": ("gateway_ip", _parse_ip),
    "netmask_ip": ("netmask_ip", _parse_ip),
    "bind_port": ("bind_port", int),
    "connect_port": ("connect_port", int),
    "mtu": ("mtu", int),
    "mss": ("mss", int),
    "tolerance_usecs": ("tolerance_usecs", int),
    "tolerance_percent": ("tolerance_percent", float),
    "tcp_ts_ecr_scaled": ("tcp_ts_ecr_scaled", _parse_bool),
    "tcp_ts_tick_usecs": ("tcp_ts_tick_usecs", int),
    "strict_segments": ("strict_segments", _parse_bool),
    "send_omit_free": ("send_omit_free", _parse_bool),
    "verbose": ("verbose", _parse_bool),
    "dry_run": ("dry_run", _parse_bool),
    "unexpected": ("unexpected", str),
}
_BOOLEAN = {name for name, (_, conv) in _CONVERTERS.items() if conv is _parse_bool}
OPTION_NAMES = tuple(sorted(set(_CONVERTERS) | {"non_fatal", "init_scripts", "define"}))


def apply_option(options: RunOptions, name: str, value: str | None) -> RunOptions:
    """`options` with `--name=value` applied; raises OptionError when wrong."""
    name = name.replace("-", "_")
    if name in ("define", "D"):
        if value is None or "=" not in value:
            raise OptionError(f"--define needs NAME=VALUE, got {value!r}")
        # Defines act while the script is read (parser.parse_script takes the
        # command line's; the script's own lines apply as they are lexed), so
        # they are no run option: only checked here.
        return options
    if name == "non_fatal":
        kinds = frozenset(v.strip() for v in (value or "").split(",") if v.strip())
        unknown = kinds - {"packet", "syscall"}
        if unknown:
            raise OptionError(f"--non_fatal takes packet or syscall, got {', '.join(sorted(unknown))}")
        return replace(options, non_fatal=options.non_fatal | kinds)
    if name == "init_scripts":
        if not value:
            raise OptionError("--init_scripts needs a command")
        return replace(options, init_scripts=options.init_scripts + (value,))
    if name not in _CONVERTERS:
        raise OptionError(f"unknown option --{name}")
    attr, convert = _CONVERTERS[name]
    if value is None and name not in _BOOLEAN:
        raise OptionError(f"--{name} needs a value")
    try:
        converted = convert(value) if name not in _BOOLEAN else _parse_bool(value)
    except ValueError:
        raise OptionError(f"bad value for --{name}: {value!r}") from None
    if name == "unexpected" and converted not in UNEXPECTED_CHOICES:
        raise OptionError(f"--unexpected must be one of {', '.join(UNEXPECTED_CHOICES)}, got {value!r}")
    if name == "ip_version" and converted not in IP_VERSIONS:
        raise OptionError(f"--ip_version must be one of {', '.join(IP_VERSIONS)}, got {value!r}")
    return replace(options, **{attr: converted})


def resolve(script_lines: Iterable, command_line: Iterable[tuple[str, str | None]],
            base: RunOptions | None = None) -> RunOptions:
    """Options for one run: defaults, then the script's `--x=y` lines, then the
    command line. `script_lines` are `script.OptionLine`s (their errors name the line)."""
    options = base or RunOptions()
    for line in script_lines:
        try:
            options = apply_option(options, line.name, line.value)
        except OptionError as err:
            raise ScriptError(line.loc, str(err)) from None
    for name, value in command_line:
        try:
            options = apply_option(options, name, value)
        except OptionError as err:
            raise SetupError(str(err)) from None
    return options


def split_option(arg: str) -> tuple[str, str | None]:
    """`--name=value` → ("name", "value"); `--flag` → ("flag", None)."""
    body = arg.lstrip("-")
    name, sep, value = body.partition("=")
    return name.replace("-", "_"), (value if sep else None)
