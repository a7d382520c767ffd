"""The only package that touches the system: network namespaces, tun0, the
packet capture. Everything here runs inside a namespace tcptest created."""

from .isolation import run_isolated
from .namespace import enter_new_network_namespace, in_own_network_namespace
from .tun import CapturedFrame, TunConfig, TunDevice

__all__ = [
    "CapturedFrame",
    "TunConfig",
    "TunDevice",
    "enter_new_network_namespace",
    "in_own_network_namespace",
    "run_isolated",
]
