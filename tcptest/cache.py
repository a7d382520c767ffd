"""What tcptest keeps between processes, under $XDG_CACHE_HOME/tcptest (else
~/.cache/tcptest; delete it freely): the built parser (see parser.py) and
each script as last read, so that a `tcptest run` of a script read before
neither imports Lark nor parses (importing Lark takes 28 ms, loading the
built parser 6, the first parse 15; a corpus run failing at its init command
took 0.195 s, 0.15-0.165 with the cache; loading a read script takes 0.3-0.5
ms).

A read script is kept with what made it: its text, path and defines, the
Python version, and the size and time of every module of tcptest and of the
grammar; it is used again only when all are the same, so an edit of the
script or of tcptest reads it again. One file per path and defines, in at
most 2048 slots (a few MB), so that scripts under ever-new temporary folders
do not fill the folder. Files are written under a name of the writing
process's own and renamed into place: a process beside it never reads half
of one. No cache when the folder cannot be written.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

from .errors import ScriptError
from .script import Script
from .source import Location, read_source

_GRAMMAR_NAME = "packetdrill.lark"
_SCRIPT_SLOTS = 2048
# What a damaged or foreign pickle may raise (pickle's documentation names most).
_UNREADABLE = (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError,
               KeyError, TypeError, ValueError)


def folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tcptest"


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all; a folder that cannot be written
    means nothing is kept."""
    written = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        written.write_bytes(data)
        written.replace(path)
    except OSError:
        try:
            written.unlink()
        except OSError:
            pass


def grammar_path() -> Path:
    """The grammar inside the installed package, else the repo's grammar/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "grammar" / _GRAMMAR_NAME, here.parent / "grammar" / _GRAMMAR_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{_GRAMMAR_NAME} is neither in {here / 'grammar'} nor in {here.parent / 'grammar'}")


@functools.cache
def _code_stamp() -> tuple:
    """What, besides the script, decides its tree: this tcptest and Python
    (once per process: a batch reads hundreds of scripts)."""
    files = [(entry.name, entry.stat()) for entry in os.scandir(Path(__file__).parent) if entry.name.endswith(".py")]
    files.append(("grammar", grammar_path().stat()))
    return sys.version_info[:3], sorted((name, stat.st_mtime_ns, stat.st_size) for name, stat in files)


def read_script(path: str | Path, defines: Mapping[str, str] | None = None) -> Script:
    """The script at `path` (undecodable bytes become U+FFFD) with the
    command line's `-D` defines, from the cache when it was read before as
    it is now. Raises ScriptError; a script with errors is never kept."""
    try:
        text = read_source(path)
    except OSError as error:
        raise ScriptError(Location(str(path), 1, 1), f"cannot read the script: {error.strerror or error}") from None
    made_of = (str(path), sorted((defines or {}).items()), text, _code_stamp())
    slot = zlib.crc32(repr(made_of[:2]).encode()) % _SCRIPT_SLOTS
    saved = folder() / f"script-{slot:03x}.pickle"
    try:
        with open(saved, "rb") as f:
            if pickle.load(f) == made_of:  # what made it first: a stale tree is never unpickled
                return pickle.load(f)
    except _UNREADABLE:
        pass  # none yet, another script's, or damaged: read it again
    from .parser import parse_script  # imports Lark: only when the cache has nothing

    script = parse_script(text, str(path), defines)
    write_atomically(saved, pickle.dumps(made_of, pickle.HIGHEST_PROTOCOL)
                     + pickle.dumps(script, pickle.HIGHEST_PROTOCOL))
    return script
