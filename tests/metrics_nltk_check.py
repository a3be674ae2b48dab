#!/usr/bin/env python3
"""Cross-checks chargan_bleu() and chargan_self_bleu() against nltk, live.

Usage: metrics_nltk_check.py LIBCHARGAN.so SONNETS.txt

The reference is what Texygen computes: nltk's sentence_bleu with uniform
weights and SmoothingFunction().method1, averaged over hypotheses; self-BLEU
scores each text against all the others (itself left out by position).  Words
are bytes.split() tokens, the library's "maximal runs of non-white-space
bytes".  Exits 77 (skipped) when nltk is not installed.
"""
import ctypes
import os
import random
import sys

try:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
except ImportError:
    # Debian's python3-nltk serves the system python, which may not be the
    # first python3 on PATH (pyenv, a virtual environment): try it once.
    system = "/usr/bin/python3"
    if os.path.exists(system) and sys.executable != system and not os.environ.get("CG_NLTK_REEXEC"):
        os.environ["CG_NLTK_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)
    print("nltk is not installed: skipped")
    sys.exit(77)

TOL = 1e-12


def nltk_bleu(hyps, refs, max_n, skip_self=False):
    smooth = SmoothingFunction().method1
    H = [h.split() for h in hyps]
    R = [r.split() for r in refs]
    out = []
    for n in range(2, max_n + 1):
        w = tuple(1.0 / n for _ in range(n))
        s = [sentence_bleu(R[:i] + R[i + 1:] if skip_self else R, h, w, smoothing_function=smooth)
             for i, h in enumerate(H)]
        out.append(sum(s) / len(s))
    return out


def main():
    lib = ctypes.CDLL(sys.argv[1])
    texts_t = ctypes.POINTER(ctypes.c_char_p)
    lib.chargan_bleu.argtypes = [texts_t, ctypes.c_size_t, texts_t, ctypes.c_size_t,
                                 ctypes.c_uint32, ctypes.POINTER(ctypes.c_double)]
    lib.chargan_self_bleu.argtypes = [texts_t, ctypes.c_size_t, ctypes.c_uint32,
                                      ctypes.POINTER(ctypes.c_double)]
    lib.chargan_last_error.restype = ctypes.c_char_p

    def arr(texts):
        return (ctypes.c_char_p * len(texts))(*texts)

    def ours(hyps, refs, max_n):
        out = (ctypes.c_double * (max_n - 1))()
        if refs is None:
            st = lib.chargan_self_bleu(arr(hyps), len(hyps), max_n, out)
        else:
            st = lib.chargan_bleu(arr(hyps), len(hyps), arr(refs), len(refs), max_n, out)
        if st != 0:
            raise RuntimeError(lib.chargan_last_error().decode())
        return list(out)

    failures = 0

    def compare(name, got, want):
        nonlocal failures
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if abs(g - w) > TOL * (1 + abs(w))]
        print(("FAIL " if bad else "ok   ") + name + ": " + " ".join("%.15g" % g for g in got))
        if bad:
            print("     nltk: " + " ".join("%.15g" % w for w in want))
            failures += 1

    rng = random.Random(2024)
    words = [b"a", b"b", b"cc", b"d", b"e", b"ff"]
    for case in range(12):
        # small vocabularies: repeated n-grams, ties and duplicate texts
        vocab = words[:2 + case % 5]

        def text():
            sep = [b" ", b"\t", b"  ", b"\r\n"]
            return b"".join(rng.choice(vocab) + rng.choice(sep)
                            for _ in range(rng.randrange(0, 14)))

        hyps = [text() for _ in range(rng.randrange(1, 25))]
        refs = [text() for _ in range(rng.randrange(1, 25))]
        max_n = 2 + case % 7
        compare("random %d BLEU-2..%d" % (case, max_n), ours(hyps, refs, max_n),
                nltk_bleu(hyps, refs, max_n))
        if len(refs) >= 2:
            compare("random %d self-BLEU-2..%d" % (case, max_n), ours(refs, None, max_n),
                    nltk_bleu(refs, refs, max_n, skip_self=True))

    with open(sys.argv[2], "rb") as f:
        lines = [l for l in f.read().split(b"\n") if l.split()]
    compare("sonnets 120 vs 120 BLEU-2..5", ours(lines[:120], lines[120:240], 5),
            nltk_bleu(lines[:120], lines[120:240], 5))
    compare("sonnets 120 self-BLEU-2..5", ours(lines[:120], None, 5),
            nltk_bleu(lines[:120], lines[:120], 5, skip_self=True))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
