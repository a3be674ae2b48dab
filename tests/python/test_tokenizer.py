"""Tokenizer: str in and out, options, files and buffers, errors."""

import errno

import chargan
import support

numpy = support.numpy_or_skip()


class TokenizerTest(support.TempDirTestCase):
    def test_round_trip_unicode(self):
        text = "Shall I compare thee to a summer’s day? héllo wörld ☃\n"
        with chargan.Tokenizer() as tok:
            tok.fit(text)
            ids = tok.encode(text)
            self.assertIsInstance(ids, numpy.ndarray)
            self.assertEqual(ids.dtype, numpy.int32)
            self.assertEqual(len(ids), len(text))  # one id per character
            self.assertEqual(tok.decode(ids), text)
            self.assertEqual(tok.decode(list(ids)), text)
            self.assertEqual(tok.vocab_size, len(set(text)) + chargan.NUM_RESERVED_IDS)
            self.assertEqual(len(tok), tok.vocab_size)
            self.assertEqual(sorted(tok.vocabulary()), sorted(set(text)))

    def test_integers_out_of_range_are_refused(self):
        # ctypes would keep the low 32 bits: 2**32 + 5 read as id 5
        with chargan.Tokenizer().fit("the quick brown fox") as tok:
            for bad in ([2**32 + 5], [-2**31 - 1]):
                with self.assertRaises(chargan.RangeError):
                    tok.decode(bad)
            with self.assertRaises(chargan.RangeError):
                tok.id_info(2**32 + 5)
            with self.assertRaises(chargan.RangeError):
                tok.lookup(2**32 + ord("t"))
            with self.assertRaises(TypeError):
                tok.decode([2.5])
            with self.assertRaises(chargan.RangeError):
                chargan.Tokenizer(max_vocab=2**32)

    def test_odd_inputs(self):
        # lone surrogates are invalid UTF-8 and meet the tokenizer's policy
        with chargan.Tokenizer(utf8_policy=1).fit("abc") as tok:  # REPLACE
            ids = list(tok.encode("a\udc80b"))
            self.assertEqual(ids[0], tok.lookup("a"))
            self.assertIn(chargan.ID_UNKNOWN, ids)
        with chargan.Tokenizer().fit("abc") as tok:
            with self.assertRaises(chargan.Utf8Error):
                tok.encode("a\udc80b")
            self.assertEqual(tok.decode(iter([tok.lookup("b")])), "b")
        with self.assertRaises(TypeError):
            chargan.Tokenizer.from_bytes(5)

    def test_vocabulary_order_and_lookup(self):
        tok = chargan.Tokenizer().fit("aaabbc")
        # by decreasing count: a, b, c after the reserved ids
        self.assertEqual(tok.vocabulary(), "abc")
        self.assertEqual(tok.lookup("a"), 2)
        self.assertEqual(tok.lookup(ord("c")), 4)
        self.assertEqual(tok.lookup("z"), chargan.ID_UNKNOWN)
        self.assertEqual(tok.id_info(2), (ord("a"), 3))
        self.assertEqual(tok.char(3), "b")
        with self.assertRaises(ValueError):
            tok.lookup("ab")
        with self.assertRaises(chargan.RangeError):
            tok.id_info(chargan.ID_START)  # reserved ids have no character

    def test_unknown_and_start_ids(self):
        tok = chargan.Tokenizer().fit("ab")
        self.assertEqual(list(tok.encode("abz")), [2, 3, chargan.ID_UNKNOWN])
        self.assertEqual(tok.decode([chargan.ID_START, 2, chargan.ID_UNKNOWN, 3]), "a\ufffdb")
        self.assertEqual(tok.decode([]), "")
        self.assertEqual(len(tok.encode("")), 0)

    def test_options(self):
        tok = chargan.Tokenizer(lowercase=True)
        tok.fit("AbC")
        self.assertEqual(tok.decode(tok.encode("ABC")), "abc")
        opts = chargan.TokenizerOptions(max_vocab=4)
        self.assertEqual(opts.fold_crlf, 1)  # the library's default
        tok = chargan.Tokenizer(opts).fit("aaabbc")
        self.assertEqual(tok.vocab_size, 4)
        self.assertEqual(tok.lookup("b"), 3)
        self.assertEqual(tok.lookup("c"), chargan.ID_UNKNOWN)
        with self.assertRaises(TypeError):
            chargan.Tokenizer(no_such_option=1)

    def test_crlf_folding(self):
        tok = chargan.Tokenizer().fit("a\r\nb")
        self.assertEqual(tok.decode(tok.encode("a\r\nb")), "a\nb")

    def test_utf8_policies(self):
        bad = b"ab\xffc"
        tok = chargan.Tokenizer().fit("abc")
        with self.assertRaises(chargan.Utf8Error) as cm:
            tok.encode(bad)
        self.assertIn("2", cm.exception.message)  # names the byte offset
        self.assertEqual(cm.exception.message, tok_last_error(tok))
        rep = chargan.Tokenizer(utf8_policy=chargan.Utf8Policy.REPLACE).fit("abc")
        self.assertEqual(list(rep.encode(bad)), [rep.lookup("a"), rep.lookup("b"),
                                                 chargan.ID_UNKNOWN, rep.lookup("c")])

    def test_buffer_and_file_round_trip(self):
        tok = chargan.Tokenizer(lowercase=True).fit(support.corpus(2000))
        data = tok.to_bytes()
        self.assertIsInstance(data, bytes)
        again = chargan.Tokenizer.from_bytes(data)
        self.assertEqual(again.vocabulary(), tok.vocabulary())
        path = self.path("vocab.chargan-tok")
        tok.save(path)
        loaded = chargan.Tokenizer.load(path)
        self.assertEqual(loaded.to_bytes(), data)
        self.assertEqual(loaded.decode(loaded.encode("Shall I")), "shall i")

    def test_corrupt_buffer_and_missing_file(self):
        with self.assertRaises(chargan.FormatError) as cm:
            chargan.Tokenizer.from_bytes(b"not a tokenizer at all")
        self.assertTrue(cm.exception.message)
        self.assertEqual(cm.exception.message, chargan.last_error())
        missing = self.path("missing.tok")
        with self.assertRaises(chargan.FileError) as cm:
            chargan.Tokenizer.load(missing)
        self.assertIsInstance(cm.exception, OSError)
        self.assertIn(missing, cm.exception.message)
        self.assertEqual(cm.exception.filename, missing)  # as Python's own OSErrors
        self.assertIsInstance(cm.exception, FileNotFoundError)  # the errno's own class
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        with self.assertRaises(chargan.FileError) as cm:  # a directory: no errno
            chargan.Tokenizer.load(self.tmp)
        self.assertIsNone(cm.exception.errno)
        self.assertNotIsInstance(cm.exception, FileNotFoundError)

    def test_decode_out_of_range(self):
        tok = chargan.Tokenizer().fit("ab")
        with self.assertRaises(chargan.RangeError) as cm:
            tok.decode([2, 99])
        self.assertEqual(cm.exception.message, tok_last_error(tok))

    def test_bad_types(self):
        tok = chargan.Tokenizer()
        with self.assertRaises(TypeError):
            tok.fit(42)
        with self.assertRaises(TypeError):
            tok.decode(["a"])

    def test_without_numpy(self):
        tok = chargan.Tokenizer().fit("hello")
        with support.without_numpy():
            ids = tok.encode("hello")
            self.assertIsInstance(ids, list)
            self.assertEqual(tok.decode(ids), "hello")

    def test_close(self):
        tok = chargan.Tokenizer()
        with tok:
            self.assertFalse(tok.closed)
            self.assertTrue(tok.owned)
        self.assertTrue(tok.closed)
        tok.close()  # idempotent
        with self.assertRaises(chargan.StateError):
            tok.encode("a")
        self.assertIn("closed", repr(tok))


def tok_last_error(tok):
    return chargan._ffi._raw.chargan_tokenizer_last_error(tok._h).decode()


if __name__ == "__main__":
    support.main()
