"""How fast `tcptest fmt` and the Pygments lexer go over the kernel corpus,
and what the token spans cost a parse (parse_with_spans against parse_script).

    python benchmarks/bench_fmt.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tcptest.formatter import format_text
from tcptest.lexer import PacketdrillLexer
from tcptest.parser import parse_script, parse_with_spans

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpus/kselftest"


def best_of(rounds: int, work) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    scripts = [(str(path), path.read_text()) for path in sorted(CORPUS.glob("*.pkt"))]
    lines = sum(text.count("\n") for _, text in scripts)
    lexer = PacketdrillLexer()
    results = {
        "parse_script": best_of(rounds, lambda: [parse_script(text, path) for path, text in scripts]),
        "parse_with_spans": best_of(rounds, lambda: [parse_with_spans(text, path) for path, text in scripts]),
        "format_text": best_of(rounds, lambda: [format_text(text, path) for path, text in scripts]),
        "lexer": best_of(rounds, lambda: [list(lexer.get_tokens(text)) for _, text in scripts]),
    }
    print(f"{len(scripts)} scripts, {lines} lines, best of {rounds}")
    for name, seconds in results.items():
        print(f"{name:>17}: {seconds * 1000:7.1f} ms  ({lines / seconds:,.0f} lines/s)")


if __name__ == "__main__":
    main()
