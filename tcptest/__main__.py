"""`python -m tcptest`: the same as the `tcptest` command."""

from .cli import entry

entry()
