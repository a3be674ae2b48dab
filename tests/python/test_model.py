"""Model: configuration, parameters as numpy arrays (and lists), sampling,
likelihood, files, the tokenizer view."""

import math
import os

import chargan
import support

numpy = support.numpy_or_skip()


class ModelTest(support.TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.text = support.corpus(3000)
        self.gen = support.tiny_generator(self.text)
        self.addCleanup(self.gen.close)

    def test_config(self):
        cfg = self.gen.config
        self.assertEqual(cfg.hidden_dim, 16)
        self.assertEqual(cfg.embed_dim, 8)
        self.assertEqual(cfg.vocab_size, self.gen.tokenizer.vocab_size)
        self.assertEqual(self.gen.kind, chargan.GENERATOR)
        self.assertEqual(self.gen.vocab_size, cfg.vocab_size)
        cfg2 = chargan.ModelConfig(kind=chargan.DISCRIMINATOR, vocab_size=7, hidden_dim=5)
        self.assertEqual(cfg2.kind, chargan.DISCRIMINATOR)
        self.assertEqual(cfg2.embed_dim, 64)  # the library's default
        self.assertEqual(cfg2.copy(), cfg2)
        self.assertIn("hidden_dim=5", repr(cfg2))
        with chargan.Model(cfg2) as d:
            self.assertEqual(d.kind, chargan.DISCRIMINATOR)
            self.assertEqual(d.param_info("out.b"), ("out.b", (1,)))

    def test_params_numpy_round_trip(self):
        names = self.gen.param_names()
        self.assertEqual(names[0], "embed")
        self.assertEqual(list(self.gen.params()), names)
        total = 0
        rng = numpy.random.default_rng(1)
        for i, name in enumerate(names):
            self.assertEqual(self.gen.param_info(i)[0], name)
            shape = self.gen.param_info(name)[1]
            w = self.gen.get_param(name)
            self.assertIsInstance(w, numpy.ndarray)
            self.assertEqual(w.dtype, numpy.float32)
            self.assertEqual(w.shape, shape)
            total += w.size
            new = rng.standard_normal(shape).astype(numpy.float32)
            self.gen.set_param(name, new)
            numpy.testing.assert_array_equal(self.gen.get_param(i), new)
        self.assertEqual(total, self.gen.num_weights)
        v, h = self.gen.vocab_size, 16
        self.assertEqual(self.gen.get_param("lstm.0.w_hh").shape, (h, 4 * h))
        self.assertEqual(self.gen.get_param("out.w").shape, (h, v))
        # float64 and non-contiguous input are converted
        w = numpy.asfortranarray(numpy.ones((h, v)))
        self.gen.set_param("out.w", w)
        self.assertTrue((self.gen.get_param("out.w") == 1).all())

    def test_params_without_numpy(self):
        with support.without_numpy():
            w = self.gen.get_param("out.w")
            self.assertIsInstance(w, list)
            self.assertEqual(len(w), 16)
            self.assertEqual(len(w[0]), self.gen.vocab_size)
            b = self.gen.get_param("out.b")
            self.assertEqual(len(b), self.gen.vocab_size)
            self.gen.set_param("out.b", [0.5] * len(b))
            self.gen.set_param("out.w", [[0.25] * len(w[0])] * len(w))
            self.assertEqual(self.gen.get_param("out.b"), [0.5] * len(b))
            self.assertEqual(self.gen.get_param("out.w")[3][2], 0.25)
            with self.assertRaises(chargan.InvalidArgument):
                self.gen.set_param("out.w", [[0.0] * (len(w[0]) - 1)] * len(w))
        self.assertEqual(self.gen.get_param("out.b")[0], 0.5)

    def test_param_errors(self):
        with self.assertRaises(chargan.NotFound) as cm:
            self.gen.get_param("no.such")
        self.assertIn("no.such", cm.exception.message)
        with self.assertRaises(chargan.InvalidArgument) as cm:
            self.gen.set_param("out.b", numpy.zeros(3))
        self.assertIn("out.b", str(cm.exception))
        bad = self.gen.get_param("out.b")
        bad[1] = numpy.inf
        with self.assertRaises(chargan.NumericError) as cm:
            self.gen.set_param("out.b", bad)
        self.assertIn("out.b", cm.exception.message)
        with self.assertRaises(chargan.RangeError):
            self.gen.param_info(self.gen.num_params)

    def test_invalid_config_names_the_field(self):
        with self.assertRaises(chargan.InvalidArgument) as cm:
            chargan.Model(vocab_size=10, hidden_dim=0)
        self.assertIn("hidden_dim", cm.exception.message)
        with self.assertRaises(TypeError):
            chargan.Model(vocab_size=10, hidden=3)

    def test_sampling(self):
        a = self.gen.sample_ids(length=12, n_streams=3, seed=9)
        self.assertEqual(a.shape, (3, 12))
        self.assertEqual(a.dtype, numpy.int32)
        self.assertTrue((a >= chargan.NUM_RESERVED_IDS).all())  # allow_reserved off
        numpy.testing.assert_array_equal(a, self.gen.sample_ids(length=12, n_streams=3, seed=9))
        opts = chargan.SampleOptions(length=5, seed=2)
        primed = self.gen.sample_ids(prime=self.gen.tokenizer.encode("Sha"), options=opts)
        self.assertEqual(primed.shape, (1, 5))
        text = self.gen.sample_text("Shall I", length=40, seed=4, temperature=0.7)
        self.assertIsInstance(text, str)
        self.assertTrue(text.startswith("Shall I"))
        self.assertEqual(text, self.gen.sample_text("Shall I", length=40, seed=4, temperature=0.7))
        two = self.gen.sample_text(length=10, n_streams=2, seed=1, top_k=5)
        self.assertIn("\n\n", two)
        with support.without_numpy():
            rows = self.gen.sample_ids(length=4, n_streams=2)
            self.assertEqual([len(r) for r in rows], [4, 4])

    def test_sampling_errors(self):
        with self.assertRaises(chargan.InvalidArgument) as cm:
            self.gen.sample_text(temperature=0)
        self.assertIn("temperature", cm.exception.message)
        self.assertEqual(cm.exception.message,
                         chargan._ffi._raw.chargan_model_last_error(self.gen._h).decode())
        with self.assertRaises(chargan.InvalidArgument):
            self.gen.sample_text("a\0b")
        bare = chargan.Model(vocab_size=self.gen.vocab_size, hidden_dim=4, embed_dim=4)
        with bare, self.assertRaises(chargan.StateError) as cm:
            bare.sample_text(length=3)
        self.assertIn("tokenizer", cm.exception.message)

    def test_nll(self):
        ids = self.gen.tokenizer.encode(self.text)[:64].reshape(4, 16)
        nll = self.gen.nll(ids)
        self.assertTrue(0 < nll < 2 * math.log(self.gen.vocab_size))
        self.assertAlmostEqual(self.gen.nll(ids.tolist()), nll, places=6)
        with self.assertRaises(chargan.InvalidArgument):
            self.gen.nll([[2, 3, 4], [2, 3]])
        with self.assertRaises(chargan.RangeError):
            self.gen.nll([[2, 3, 10 ** 6]])
        with chargan.Model(kind=chargan.DISCRIMINATOR, vocab_size=5, hidden_dim=4) as d:
            with self.assertRaises(chargan.InvalidArgument):
                d.nll([[2, 3]])

    def test_save_load(self):
        path = self.path("gen.chargan")
        self.gen.save(path)
        with chargan.Model.load(path) as again:
            self.assertEqual(again.config, self.gen.config)
            for name, w in self.gen.params().items():
                numpy.testing.assert_array_equal(again.get_param(name), w)
            self.assertEqual(again.tokenizer.to_bytes(), self.gen.tokenizer.to_bytes())
            self.assertEqual(again.sample_text("O", length=20, seed=1),
                             self.gen.sample_text("O", length=20, seed=1))
        with self.assertRaises(chargan.NotFound):
            chargan.Model.load(path, chargan.DISCRIMINATOR)
        with open(path, "r+b") as f:
            f.seek(40)
            f.write(b"\xff\xfe\xfd")
        with self.assertRaises((chargan.FormatError, chargan.UnsupportedError)) as cm:
            chargan.Model.load(path)
        self.assertIn(path, cm.exception.message)

    def test_tokenizer_view(self):
        view = self.gen.tokenizer
        self.assertFalse(view.owned)
        self.assertIs(self.gen.tokenizer, view)  # cached while valid
        self.assertEqual(view.decode(view.encode("Shall")), "Shall")
        other = chargan.Tokenizer().fit("xyz")
        self.gen.set_tokenizer(other)
        self.assertTrue(view.closed)  # the library freed what it pointed at
        with self.assertRaises(chargan.StateError):
            view.encode("x")
        self.assertEqual(self.gen.tokenizer.vocabulary(), "xyz")
        other.close()  # the model holds its own copy
        self.assertEqual(self.gen.tokenizer.vocab_size, 5)
        self.gen.set_tokenizer(None)
        self.assertIsNone(self.gen.tokenizer)
        with self.assertRaises(chargan.StateError):
            self.gen.set_tokenizer(other)  # closed
        big = chargan.Tokenizer().fit(self.text + "ÆØÅ€")
        with self.assertRaises(chargan.InvalidArgument):
            self.gen.set_tokenizer(big)  # more ids than the model's vocab_size

    def test_own_tokenizer_is_not_refitted(self):
        # a refit would renumber the model's ids (and overran its tables)
        view = self.gen.tokenizer
        size = view.vocab_size
        with self.assertRaises(chargan.StateError):
            view.fit("\u20ac\u0192\u2020\u2021")
        self.assertEqual(view.vocab_size, size)

    def test_handles_are_not_copied(self):
        import copy
        import pickle
        for obj in (self.gen, self.gen.tokenizer, chargan.Tokenizer().fit("ab")):
            for attempt in (copy.copy, copy.deepcopy, pickle.dumps):
                with self.assertRaises(TypeError):
                    attempt(obj)
        self.assertEqual(len(self.gen.sample_ids(length=4)[0]), 4)  # untouched

    def test_out_of_range_and_nul_arguments(self):
        with self.assertRaises(chargan.RangeError):
            chargan.Model(vocab_size=10, hidden_dim=2**32 + 4)
        with self.assertRaises(TypeError):
            chargan.Model(vocab_size=10, hidden_dim=16.5)
        with self.assertRaises(chargan.RangeError):
            self.gen.sample_ids(n_streams=2**32 + 1, length=4)
        with self.assertRaises(chargan.InvalidArgument):  # the library's limit, not numpy's
            self.gen.sample_ids(n_streams=65536, length=2**32 - 1)
        with self.assertRaises(chargan.RangeError):
            self.gen.get_param(2**64)
        with self.assertRaises(ValueError):
            self.gen.get_param("embed\0x")
        with self.assertRaises(ValueError):
            self.gen.save(self.path("m\0-ignored.chargan"))
        self.assertFalse(os.path.exists(self.path("m")))
        with self.assertRaises(chargan.RangeError):
            self.gen.nll([[1, 2, 2**32 + 5]])
        with self.assertRaises(TypeError):
            chargan.bleu("one text, not a list", ["a reference"])
        # objects of the wrong class are a TypeError (ctypes said ArgumentError)
        for call in (lambda: self.gen.set_tokenizer(self.gen), lambda: self.gen.set_tokenizer("ab"),
                     lambda: chargan.Model(tokenizer=self.gen),
                     lambda: chargan.Tokenizer(chargan.SampleOptions()),
                     lambda: chargan.Model(chargan.TrainerConfig()),
                     lambda: chargan.Optimizer(chargan.ModelConfig()),
                     lambda: self.gen.sample_ids(options=chargan.ModelConfig())):
            with self.assertRaises(TypeError):
                call()
        # a config's defaults come from its kind: not changed beside it
        with self.assertRaises(TypeError):
            chargan.Model(self.gen.config, kind=chargan.ModelKind.DISCRIMINATOR)
        with self.assertRaises(TypeError):
            chargan.Optimizer(chargan.OptimizerConfig(), kind=1)
        # kinds were passed through int(): 2**32 + 1 built a discriminator,
        # 1.7 and '1' too
        for kind, error in ((2**32 + 1, chargan.RangeError), (1.7, TypeError), ("1", TypeError)):
            with self.assertRaises(error):
                chargan.Model(vocab_size=10, kind=kind)
            with self.assertRaises(error):
                chargan.Optimizer(kind=kind)
        with self.assertRaises(chargan.RangeError):
            chargan.Model.load(self.path("any.chargan"), kind=2**32)
        # scalars and bytes-like objects are not id arrays (numpy read a
        # scalar as one id and a bytearray as uint8 ids; lists of bytes too)
        tok = self.gen.tokenizer
        for not_ids in (3, bytearray(b"\x03\x04"), b"\x03\x04", memoryview(b"\x03")):
            with self.assertRaises(TypeError):
                tok.decode(not_ids)
        # nor rows of them in a list (a list goes element by element, numpy
        # or not: b"\x02\x03" was read as the ids 2 and 3)
        for rows in ([b"\x02\x03", b"\x04\x05"], [bytearray(b"\x02\x03")], ["ab", "cd"]):
            with self.assertRaises(TypeError):
                self.gen.nll(rows)
        rows, cols = numpy.shape(self.gen.get_param("out.w"))
        with self.assertRaises(TypeError):
            self.gen.set_param("out.w", [bytes(cols)] * rows)
        with self.assertRaises(TypeError):
            self.gen.sample_ids(b"", length=5)  # as b"ab" is
        # an absurd size is the library's InvalidArgument, not numpy's
        # ValueError or ctypes' OverflowError beyond an array's size
        with self.assertRaises(chargan.InvalidArgument):
            self.gen.sample_ids(length=2**32 - 1, n_streams=2**32 - 1)
        # a memoryview of numbers is not text
        import array
        with self.assertRaises(TypeError):
            chargan.Tokenizer().fit(memoryview(array.array("i", [97, 98, 99])))
        self.assertEqual(chargan.Tokenizer().fit(memoryview(b"abc")).vocab_size, 5)

    def test_close_invalidates_views(self):
        gen = support.tiny_generator("abc")
        view = gen.tokenizer
        with gen:
            pass
        self.assertTrue(gen.closed)
        self.assertTrue(view.closed)
        with self.assertRaises(chargan.StateError):
            gen.num_weights


if __name__ == "__main__":
    support.main()
