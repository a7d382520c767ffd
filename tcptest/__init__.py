"""tcptest: packetdrill-compatible conformance testing of real kernel TCP stacks."""

__version__ = "0.1.0"
