"""Status codes -> exceptions: the class per status, the library's message,
built-in bases, pickling, and functions the library lacks."""

import errno
import os
import pickle
import unittest

import chargan
from chargan import _ffi, errors
import support


class ErrorsTest(unittest.TestCase):
    def test_class_per_status(self):
        expected = {
            1: (chargan.InvalidArgument, ValueError),
            2: (chargan.OutOfMemoryError, MemoryError),
            3: (chargan.FileError, OSError),
            4: (chargan.FormatError, ValueError),
            5: (chargan.UnsupportedError, chargan.CharganError),
            6: (chargan.NumericError, ArithmeticError),
            7: (chargan.StateError, RuntimeError),
            8: (chargan.Utf8Error, ValueError),
            9: (chargan.RangeError, IndexError),
            10: (chargan.CancelledError, chargan.CharganError),
            11: (chargan.NotFound, LookupError),
        }
        for status, (cls, base) in expected.items():
            e = errors.error_for(status, "msg %d" % status)
            self.assertIs(type(e), cls)
            self.assertIsInstance(e, base)
            self.assertIsInstance(e, chargan.CharganError)
            self.assertEqual(e.status, status)
            self.assertEqual(cls.status, status)
            self.assertEqual(e.message, "msg %d" % status)
            self.assertEqual(e.status_name, chargan.strerror(status))
            self.assertEqual(str(e), "%s: msg %d" % (chargan.strerror(status), status))
            again = pickle.loads(pickle.dumps(e))
            self.assertIs(type(again), cls)
            self.assertEqual((again.status, again.message), (status, e.message))

    def test_unknown_status(self):
        e = errors.error_for(999, "")
        self.assertIs(type(e), chargan.CharganError)
        self.assertEqual(e.status, 999)
        self.assertEqual(str(e), "unknown status")
        # an OSError subclass must not read the status as an errno
        self.assertIsNone(chargan.FileError("x").errno)
        # ctypes kept a status's low 32 bits (2**32 + 3 named as 3) and a
        # float was truncated
        for status in (2**32 + 3, -2**32 + 3, 2**64 + 3):
            self.assertEqual(chargan.strerror(status), "unknown status")
        self.assertEqual(str(chargan.CharganError("m", 2**32 + 3)), "unknown status: m")
        with self.assertRaises(TypeError):
            chargan.strerror(1.9)

    def test_file_errors_by_errno(self):
        e = errors.error_for(3, "cannot open 'x'", errno.ENOENT)
        self.assertIsInstance(e, chargan.FileError)
        self.assertIsInstance(e, FileNotFoundError)
        self.assertEqual((e.errno, e.strerror), (errno.ENOENT, os.strerror(errno.ENOENT)))
        self.assertIs(type(errors.error_for(3, "y", errno.ENOENT)), type(e))  # one class
        self.assertIsInstance(errors.error_for(3, "z", errno.EACCES), PermissionError)
        for errnum in (None, 0, errno.ENOSPC):  # no class of Python's own: FileError
            e = errors.error_for(3, "w", errnum)
            self.assertIs(type(e), chargan.FileError)
            self.assertEqual(e.errno, errnum or None)
        e = errors.error_for(3, "cannot open 'x'", errno.ENOENT)
        e.filename = "x"
        again = pickle.loads(pickle.dumps(e))
        self.assertIsInstance(again, FileNotFoundError)
        self.assertIsInstance(again, chargan.FileError)
        self.assertEqual((again.message, again.errno, again.filename),
                         (e.message, errno.ENOENT, "x"))
        self.assertIs(type(e), chargan.FileError.FileNotFoundError)
        self.assertIs(pickle.loads(pickle.dumps(type(e))), type(e))  # the class itself too

    def test_library_names(self):
        self.assertEqual(chargan.strerror(0), _ffi._raw.chargan_strerror(0).decode())
        self.assertEqual(chargan.strerror(1), "invalid argument")

    def test_message_from_thread_for_constructors(self):
        with self.assertRaises(chargan.InvalidArgument) as cm:
            chargan.Optimizer(lr=-1.0)
        self.assertTrue(cm.exception.message)
        self.assertEqual(cm.exception.message, chargan.last_error())
        self.assertIn("lr", cm.exception.message)

    def test_message_from_handle(self):
        with chargan.Optimizer() as opt:
            with self.assertRaises(chargan.InvalidArgument) as cm:
                opt.lr = float("nan")
            self.assertEqual(cm.exception.message,
                             _ffi._raw.chargan_optimizer_last_error(opt._h).decode())

    def test_missing_function(self):
        stub = _ffi._Unsupported("chargan_not_there")
        with self.assertRaises(chargan.UnsupportedError) as cm:
            stub(1, 2)
        self.assertIn("chargan_not_there", cm.exception.message)
        self.assertIn(chargan.library_path, cm.exception.message)
        with self.assertRaises(AttributeError):
            _ffi._F.chargan_not_declared

    def test_versions(self):
        self.assertEqual(chargan.version_number() // 10000, chargan.EXPECTED_MAJOR)
        self.assertEqual(chargan.version(), "%d.%d.%d" % (chargan.version_number() // 10000,
                                                          chargan.version_number() // 100 % 100,
                                                          chargan.version_number() % 100))


if __name__ == "__main__":
    support.main()
