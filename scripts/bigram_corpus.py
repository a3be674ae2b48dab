#!/usr/bin/env python3
"""Writes a large-vocabulary corpus for benchmarks: each non-overlapping pair of
characters of a UTF-8 text becomes one CJK code point (U+4E00 on, in order of
first appearance), so the text keeps its statistics but has about 1,300
distinct characters instead of 65 (tinyshakespeare), as a text in a language
with a large script would.

    python3 scripts/bigram_corpus.py data/tinyshakespeare.txt > /tmp/bigram.txt
    scripts/bench.sh --corpus /tmp/bigram.txt --no-budget
"""
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    codes = {}
    out = []
    for i in range(0, len(text) - 1, 2):
        pair = text[i:i + 2]
        if pair not in codes:
            codes[pair] = chr(0x4E00 + len(codes))
        out.append(codes[pair])
    sys.stdout.write("".join(out))
    print(f"bigram_corpus.py: {len(codes)} characters, {len(out)} in all", file=sys.stderr)


if __name__ == "__main__":
    main()
