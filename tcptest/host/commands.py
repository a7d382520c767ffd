"""Shell commands of a script: the init and cleanup commands and timed backticks.

They run with the script's folder as working directory and PACKETDRILL_PID
set to this process, as the kernel's selftests expect (their helpers write
/tmp/sysctl_restore_${PACKETDRILL_PID}.sh and call it as ..._${PPID}.sh).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import RunFailure
from ..source import Location


class CommandRunner:
    def __init__(self, script_dir: str | Path):
        self.cwd = str(script_dir) or "."
        self.env = dict(os.environ, PACKETDRILL_PID=str(os.getpid()))

    def run(self, text: str, loc: Location | None, what: str | None = None) -> str:
        """Run `text` with /bin/sh and return what it printed (stdout and
        stderr, as one stream); a non-zero status fails the script.
        `what` names untimed commands ("init", "cleanup") in the message."""
        # Output goes to a file, not a pipe: a command that leaves a process
        # running in the background would otherwise keep the pipe open and hang us.
        # A memfd, not tempfile's file: nothing on disk, and no import of tempfile (1.1 ms).
        with open(os.memfd_create("tcptest command output"), "w+b") as output_file:
            done = subprocess.run(["/bin/sh", "-c", text], cwd=self.cwd, env=self.env,
                                  stdin=subprocess.DEVNULL, stdout=output_file, stderr=subprocess.STDOUT)
            output_file.seek(0)
            output = output_file.read().decode(errors="replace").rstrip()
        if done.returncode != 0:
            label = f"{what} command" if what else f"`{text.strip()}` command"
            raise RunFailure(loc, f"error executing {label}: non-zero status {done.returncode}", output)
        return output

    def restore_file(self) -> Path:
        return Path(f"/tmp/sysctl_restore_{os.getpid()}.sh")
