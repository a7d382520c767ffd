"""`python -m tcptest`: the same as the `tcptest` command."""

from .cli import main

raise SystemExit(main())
