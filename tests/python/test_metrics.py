"""Metrics bindings: BLEU, self-BLEU, NLL-oracle, stream NLL, discriminator
accuracy (skipped on a library that does not have them yet)."""

import math
import unittest

import chargan
from chargan import _ffi
import support


class MetricsTest(unittest.TestCase):
    @unittest.skipUnless(_ffi.has("chargan_bleu"), "the library has no chargan_bleu")
    def test_bleu(self):
        refs = ["the cat sat on the mat", "a dog ran in the park"]
        scores = chargan.bleu(["the cat sat on the mat"], refs, max_n=4)
        self.assertEqual(sorted(scores), [2, 3, 4])
        for n, s in scores.items():
            self.assertAlmostEqual(s, 1.0, places=9, msg="BLEU-%d" % n)
        low = chargan.bleu(["zebra quantum"], refs, max_n=2)
        self.assertLess(low[2], 0.5)
        with self.assertRaises(chargan.InvalidArgument) as cm:
            chargan.bleu(["x"], refs, max_n=9)
        self.assertTrue(cm.exception.message)
        # the library's refusal, without room for max_n - 1 scores first
        # (10**8 of them cost 763 MiB; 2**32 - 1 was a MemoryError)
        for max_n in (10 ** 8, 2 ** 32 - 1):
            with self.assertRaises(chargan.InvalidArgument) as cm:
                chargan.bleu(["x"], refs, max_n=max_n)
            self.assertIn("max_n", cm.exception.message)
        with self.assertRaises(chargan.InvalidArgument):
            chargan.bleu([], refs)
        with self.assertRaises(chargan.InvalidArgument):
            chargan.bleu(["a\0b"], refs)

    @unittest.skipUnless(_ffi.has("chargan_self_bleu"), "the library has no chargan_self_bleu")
    def test_self_bleu(self):
        same = chargan.self_bleu(["a b c d", "a b c d", "a b c d"], max_n=3)
        self.assertAlmostEqual(same[2], 1.0)
        self.assertAlmostEqual(same[3], 1.0)
        with self.assertRaises(chargan.InvalidArgument):
            chargan.self_bleu(["only one"])

    @unittest.skipUnless(_ffi.has("chargan_nll_oracle"), "the library has no chargan_nll_oracle")
    def test_nll_oracle(self):
        gen = chargan.Model(vocab_size=12, hidden_dim=8, embed_dim=4, seed=1)
        oracle = chargan.Model(vocab_size=12, hidden_dim=8, embed_dim=4, seed=2)
        nll = chargan.nll_oracle(gen, oracle, n_streams=4, length=10, seed=3)
        self.assertTrue(math.isfinite(nll) and nll > 0)
        other = chargan.Model(vocab_size=13, hidden_dim=8, embed_dim=4)
        with self.assertRaises(chargan.InvalidArgument):
            chargan.nll_oracle(gen, other, length=5)
        with self.assertRaises(TypeError):
            chargan.nll_oracle(gen, "oracle")

    @unittest.skipUnless(_ffi.has("chargan_model_stream_nll"), "the library has no stream_nll")
    def test_stream_nll(self):
        gen = support.tiny_generator(support.corpus(2000))
        ids = gen.tokenizer.encode(support.corpus(2000))
        one = gen.stream_nll(ids, 1)
        four = gen.stream_nll(ids, n_streams=4)
        self.assertTrue(0 < one < 2 * math.log(gen.vocab_size))
        self.assertTrue(math.isfinite(four))
        with self.assertRaises(chargan.InvalidArgument):
            gen.stream_nll(ids[:3], n_streams=2)

    @unittest.skipUnless(_ffi.has("chargan_trainer_eval_discriminator"),
                         "the library has no eval_discriminator")
    def test_eval_discriminator(self):
        text = support.corpus()
        gen = support.tiny_generator(text)
        disc = chargan.Model(kind=chargan.DISCRIMINATOR, vocab_size=gen.vocab_size,
                             embed_dim=4, hidden_dim=4)
        with chargan.Trainer(gen, discriminator=disc, batch=4, seq_len=8,
                             estimator=chargan.Estimator.GUMBEL) as tr:
            tr.set_corpus_text(text)
            acc = tr.eval_discriminator(2)
            self.assertTrue(0 <= acc <= 1)
            tr.request_stop()
            with self.assertRaises(chargan.CancelledError) as cm:
                tr.eval_discriminator(2)
            self.assertIn("before batch 1", str(cm.exception))
            self.assertEqual(tr.eval_discriminator(2), acc)  # the request used up
        with support.tiny_trainer(text) as tr:
            with self.assertRaises(chargan.StateError):
                tr.eval_discriminator(1)


if __name__ == "__main__":
    support.main()
