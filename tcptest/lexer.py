"""A Pygments lexer for packetdrill scripts, for the HTML report and for
anything else that highlights code (`pygmentize -l packetdrill x.pkt`, Sphinx,
MkDocs): registered under `pygments.lexers` in pyproject.toml.

It colours what a reader scans for: event times, the direction of a packet,
TCP flags, sequence ranges, system calls and their errno, symbols, commands,
comments, and Python inside `%{ }%`. It follows the grammar loosely (a lexer
never fails on a script the parser would reject); every character gets a
token, none an Error.
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups, using, words
from pygments.lexers.python import PythonLexer
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String, Text,
                            Whitespace)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_TIME = rf"(?:\+?{_NUMBER}(?:~\+?{_NUMBER})?|\*)(?:\.\.\.{_NUMBER})?"
_TCP_WORDS = ("ack", "win", "urg", "mss", "wscale", "sackOK", "sack", "nop", "eol", "TS", "val",
              "ecr", "FOEXP", "FO", "md5", "ECN", "e0b", "e1b", "ceb", "udp", "icmp", "mtu")
_IP_WORDS = ("ect01", "ect0", "ect1", "noecn", "ce", "tos", "ttl", "flowlabel")


class PacketdrillLexer(RegexLexer):
    """packetdrill's script language (`.pkt`), as tcptest reads it."""

    name = "packetdrill"
    aliases = ["packetdrill", "pkt"]
    filenames = ["*.pkt"]
    mimetypes = ["text/x-packetdrill"]
    url = "https://github.com/google/packetdrill"
    flags = re.MULTILINE

    tokens = {
        "root": [
            (rf"^([ \t]*)({_TIME})(?=\s)", bygroups(Whitespace, Name.Label)),
            (r"\n", Whitespace),
            (r"[ \t\r\f\v]+", Whitespace),
            (r"//[^\n]*", Comment.Single),
            (r"/\*(?:[^*]|\*(?!/))*\*/", Comment.Multiline),
            (r"^--[A-Za-z0-9_]+(?:=\S*)?", Name.Attribute),
            (r"`[^`]*`", String.Backtick),
            (r"(%\{)((?:[^}]|\}(?!%))*)(\}%)", bygroups(Punctuation, using(PythonLexer), Punctuation)),
            (r"[<>](?=[ \t])", Operator),
            (r"(?:[FSRPEWAU.]+[0-7]?|-)(?=[ \t]+\d+:\d+\()", Keyword.Type),
            (r"\d+:\d+\(\d+\)", Number.Integer),
            (r"\d+[ \t]*>[ \t]*\d+(?=[ \t])", Number.Integer),  # ports: 40001>8080
            (words(_TCP_WORDS, suffix=r"\b"), Keyword),
            (words(_IP_WORDS, suffix=r"\b"), Name.Builtin),
            (r"[a-z_][a-z0-9_]*(?=\()", Name.Function),
            (r"(-\d+)([ \t]+)(E[A-Z0-9]+)\b", bygroups(Number.Integer, Whitespace, Name.Exception)),
            (r"[A-Z][A-Z0-9_]*\b", Name.Constant),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (r'"(?:\\.|[^"\\\n])*"', String.Double),
            (r"-?0x[0-9a-fA-F]+", Number.Hex),
            (r"-?\d*\.\d+", Number.Float),
            (r"-?\d+", Number.Integer),
            (r"\.\.\.", Punctuation),
            (r"[(){}\[\],=|:~+*<>-]", Punctuation),
            (r".", Text),
        ],
    }
