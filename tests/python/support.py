"""Shared helpers of the Python tests (run by meson test with CHARGAN_LIBRARY,
PYTHONPATH and CHARGAN_CORPUS_DIR set; see python/meson.build)."""

import contextlib
import os
import shutil
import sys
import tempfile
import unittest

import chargan
from chargan import _arrays

CORPUS_DIR = os.environ.get("CHARGAN_CORPUS_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")


def numpy_or_skip():
    """numpy, or exit 77 (meson's "skipped") for a test file that needs it
    (Debian: apt-get install python3-numpy); the package itself does not."""
    try:
        import numpy
    except ImportError:
        print("numpy is not installed (Debian: apt-get install python3-numpy); skipping")
        sys.exit(77)
    return numpy


def corpus(n_chars=12000):
    """A slice of the sonnets, as str (CRLF line ends kept, as in the file)."""
    with open(os.path.join(CORPUS_DIR, "sonnets.txt"), encoding="utf-8", newline="") as f:
        return f.read(n_chars)


def tiny_generator(text, **fields):
    tok = chargan.Tokenizer().fit(text)
    cfg = dict(embed_dim=8, hidden_dim=16, seed=3)
    cfg.update(fields)
    with tok:
        return chargan.Model(tokenizer=tok, **cfg)


def tiny_trainer(text=None, **fields):
    text = corpus() if text is None else text
    gen = tiny_generator(text)
    cfg = dict(batch=4, seq_len=16, report_every=2, seed=5)
    cfg.update(fields)
    tr = chargan.Trainer(gen, **cfg)
    tr.set_corpus_text(text)
    return tr


@contextlib.contextmanager
def without_numpy():
    """Runs the block as if numpy were not installed."""
    saved = _arrays._np
    _arrays._np = None
    try:
        yield
    finally:
        _arrays._np = saved


class TempDirTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="chargan-py-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)


def main():
    unittest.main(verbosity=2, argv=sys.argv[:1])
