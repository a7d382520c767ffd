"""The HTML report of `tcptest run --report DIR` (and `tcptest explain
--report DIR`, and the pytest plugin's page of a failed test): an index of the
runs and a page per run with its SVG ladder diagram, the script with the
failing line highlighted, and links to the run's captures.

The script is highlighted by Pygments with tcptest's own lexer (tcptest.lexer),
the failing line marked.
"""

from __future__ import annotations

import hashlib
import html
import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import ladder
from .report import counts, first_line
from .source import read_source

if TYPE_CHECKING:
    from .runner import Verdict

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #24292f; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table.runs { border-collapse: collapse; }
table.runs td, table.runs th { padding: 0.25em 0.8em; border-bottom: 1px solid #d0d7de; text-align: left;
                               vertical-align: top; }
table.runs td:nth-child(-n+4) { white-space: nowrap; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #cf222e; font-weight: bold; }
pre, .source { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px; }
pre.error { background: #fff8f8; border-left: 4px solid #cf222e; padding: 0.6em; white-space: pre-wrap; }
.ladder-box { overflow-x: auto; border: 1px solid #d0d7de; }
.source pre { line-height: 1.35; margin: 0; }
.source .hll { background-color: #ffd7d5; display: inline-block; width: 100%; }
.source .linenos { color: #8c959f; padding-right: 1em; user-select: none; }
"""


def page_name(verdict: Verdict) -> str:
    """The page of a run: the script's name and IP version, and a digest of
    its path (two scripts of one name in different folders get two pages)."""
    digest = hashlib.sha1(os.path.abspath(verdict.path).encode()).hexdigest()[:6]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(verdict.path).stem)
    return f"{stem}.{verdict.ip_version}-{digest}.html"


def kernel_of(verdict: Verdict) -> str:
    """The kernel a run ran on: its own field if it has one, else this machine's."""
    return getattr(verdict, "kernel", None) or platform.release()


def write_report(directory: str | os.PathLike[str], verdicts: Sequence[Verdict]) -> str:
    """Write index.html and one page per run under `directory`; return the index's path."""
    root = Path(directory)
    (root / "runs").mkdir(parents=True, exist_ok=True)
    for verdict in verdicts:
        write_page(root / "runs", verdict)
    index = root / "index.html"
    index.write_text(index_html(verdicts), encoding="utf-8")
    return str(index)


def write_page(directory: str | os.PathLike[str], verdict: Verdict) -> str:
    """One run's page (and its ladder as an .svg file beside it); returns the page's path."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / page_name(verdict)
    diagram = ladder.svg(verdict.timeline) if verdict.timeline is not None else None
    if diagram is not None:
        page.with_suffix(".svg").write_text(diagram, encoding="utf-8")
    page.write_text(run_html(verdict, diagram, folder), encoding="utf-8")
    return str(page)


def _document(title: str, body: list[str], extra_css: str = "") -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{CSS}{extra_css}</style></head><body>",
        *body, "</body></html>", ""])


def index_html(verdicts: Sequence[Verdict]) -> str:
    passed, failed = counts(verdicts)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = [f"<h1>tcptest: {passed} passed, {failed} failed</h1>",
            f"<p>Written {when} on {html.escape(platform.node())}, kernel "
            f"{html.escape(platform.release())}.</p>",
            '<table class="runs"><thead><tr><th>run</th><th>result</th><th>time</th><th>kernel</th>'
            "<th>first error</th></tr></thead><tbody>"]
    for verdict in verdicts:
        result = '<span class="pass">pass</span>' if verdict.passed else '<span class="fail">FAIL</span>'
        error = "" if verdict.passed else html.escape(first_line(verdict.error))
        body.append(f'<tr class="run {"passed" if verdict.passed else "failed"}">'
                    f'<td><a href="runs/{page_name(verdict)}">{html.escape(verdict.name)}</a></td>'
                    f"<td>{result}</td><td>{verdict.duration:.2f} s</td>"
                    f"<td>{html.escape(kernel_of(verdict))}</td><td>{error}</td></tr>")
    body.append("</tbody></table>")
    return _document(f"tcptest: {passed} passed, {failed} failed", body)


def run_html(verdict: Verdict, diagram: str | None, folder: Path) -> str:
    esc = html.escape
    result = '<span class="pass">passed</span>' if verdict.passed else '<span class="fail">FAILED</span>'
    body = [f"<h1>{esc(verdict.name)}: {result}</h1>",
            f"<p>{esc(verdict.path)} &middot; {verdict.ip_version} &middot; {verdict.duration:.2f} s "
            f"&middot; kernel {esc(kernel_of(verdict))}"
            + (f' &middot; <a href="#line-{verdict.line}">line {verdict.line}</a>' if verdict.line else "")
            + ' &middot; <a href="../index.html">all runs</a></p>']
    if verdict.error:
        body.append(f'<pre class="error">{esc(verdict.error)}</pre>')
    captures = [path for path in (verdict.pcap, _pcapng_of(verdict.pcap)) if path and os.path.exists(path)]
    if captures:
        links = " &middot; ".join(f'<a class="pcap" href="{esc(_href(path, folder))}">{esc(Path(path).name)}</a>'
                                  for path in captures)
        body.append(f"<p>Captures: {links} (the .pcapng names each packet's script line in its comment)</p>")
    for warning in verdict.warnings:
        body.append(f'<pre class="warning">warning: {esc(warning)}</pre>')
    body.append("<h2>Ladder diagram</h2>")
    if diagram is not None:
        body.append(f'<div class="ladder-box">{diagram}</div>')
    else:
        body.append("<p>No timeline: the run ended before the script started.</p>")
    source, css = script_html(verdict)
    body.append("<h2>Script</h2>")
    body.append(source)
    return _document(verdict.name, body, css)


def _pcapng_of(pcap: str | None) -> str | None:
    return str(Path(pcap).with_suffix(".pcapng")) if pcap else None


def _href(path: str, folder: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()


def script_html(verdict: Verdict) -> tuple[str, str]:
    """(the script as HTML with the failing line highlighted and anchors
    `line-N`, the CSS it needs)."""
    try:
        text = read_source(verdict.path)
    except OSError as err:
        return f"<p>The script cannot be read: {html.escape(err.strerror or str(err))}.</p>", ""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    from .lexer import PacketdrillLexer

    formatter = HtmlFormatter(linenos="inline", hl_lines=[verdict.line] if verdict.line else [],
                              lineanchors="line", anchorlinenos=True, cssclass="source")
    return highlight(text, PacketdrillLexer(), formatter), formatter.get_style_defs(".source")
