"""Exceptions raised for libchargan status codes.

Every failing library call raises a subclass of CharganError carrying the
status code (.status) and the library's message for that failure (.message:
the handle's last error, or the thread's chargan_last_error() for
constructors and loaders).  Each subclass also derives from the closest
built-in exception, so `except ValueError` catches an invalid argument, and a
FileError with an errno is also Python's own class for it, so `except
FileNotFoundError` catches a load of a missing file.
"""

import errno
import os

__all__ = [
    "CharganError", "InvalidArgument", "OutOfMemoryError", "FileError", "FormatError",
    "UnsupportedError", "NumericError", "StateError", "Utf8Error", "RangeError",
    "CancelledError", "NotFound",
]

# Set by _ffi once the library is loaded: chargan_strerror() as a Python function.
_strerror = None


class CharganError(Exception):
    """A libchargan call failed.  .status is the chargan_status code, .message
    the library's explanation, .status_name chargan_strerror(status)."""

    status = None  # each subclass's own code

    def __init__(self, message="", status=None):
        if status is None:
            status = type(self).status
        # Only the message goes to the base class: OSError would otherwise
        # read the status as an errno.
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def status_name(self):
        if self.status is None:
            return "error"
        if _strerror is not None:
            return _strerror(self.status)
        return "status %d" % self.status

    def __str__(self):
        return "%s: %s" % (self.status_name, self.message) if self.message else self.status_name

    def __reduce__(self):
        return (type(self), (self.message, self.status))


class InvalidArgument(CharganError, ValueError):
    """CHARGAN_E_INVALID: a NULL, out-of-range or inconsistent argument."""
    status = 1


class OutOfMemoryError(CharganError, MemoryError):
    """CHARGAN_E_NOMEM: an allocation failed."""
    status = 2


class FileError(CharganError, OSError):
    """CHARGAN_E_IO: a read, write, fsync or rename failed.  .errno and
    .strerror are the system's (chargan_last_errno(); None where the failure
    had none, such as a path that is not a regular file, or a library older
    than 0.4's node), and an instance with an errno is also of Python's own
    OSError subclass for it: FileNotFoundError for ENOENT, PermissionError
    for EACCES, ...  From a load or a save, .filename is the path."""
    status = 3

    def __reduce__(self):
        return (_file_error, (self.message, self.status, self.errno, self.filename))


def _combined_file_errors():
    """FileError combined with each of Python's OSError subclasses that an
    errno maps to (FileNotFoundError, PermissionError, ...), made at import
    and named FileError.<that class> (so that the classes pickle too)."""
    combined = {}
    for errnum in sorted(errno.errorcode):
        os_class = type(OSError(errnum, ""))
        if os_class is OSError or os_class in combined:
            continue
        cls = type("FileError", (FileError, os_class),
                   {"__module__": __name__, "__qualname__": "FileError." + os_class.__name__,
                    "__doc__": FileError.__doc__})
        setattr(FileError, os_class.__name__, cls)
        combined[os_class] = cls
    return combined


_FILE_ERROR_FOR = _combined_file_errors()


def _file_error(message, status=FileError.status, errnum=None, filename=None):
    """A FileError for errnum (0 or None: none), of the OSError subclass
    Python itself would raise for it."""
    os_class = type(OSError(errnum, "")) if errnum else OSError
    e = _FILE_ERROR_FOR.get(os_class, FileError)(message, status)
    if errnum:
        e.errno, e.strerror = errnum, os.strerror(errnum)
    e.filename = filename
    return e


class FormatError(CharganError, ValueError):
    """CHARGAN_E_FORMAT: a file or buffer is truncated, corrupt or inconsistent."""
    status = 4


class UnsupportedError(CharganError):
    """CHARGAN_E_UNSUPPORTED: a valid file of a version or feature this build
    lacks; also raised by the bindings for a function the loaded library does
    not export."""
    status = 5


class NumericError(CharganError, ArithmeticError):
    """CHARGAN_E_NUMERIC: a loss, a parameter or the model's logits became NaN
    or infinite (a generator whose logits are not finite cannot be sampled
    from, nor its samples judged by the discriminator)."""
    status = 6


class StateError(CharganError, RuntimeError):
    """CHARGAN_E_STATE: a call out of order (e.g. training before a corpus is
    set); also raised by the bindings for a closed object."""
    status = 7


class Utf8Error(CharganError, ValueError):
    """CHARGAN_E_UTF8: invalid UTF-8 in input text (bytes passed as such)."""
    status = 8


class RangeError(CharganError, IndexError):
    """CHARGAN_E_RANGE: an id out of range, or an output buffer too small."""
    status = 9


class CancelledError(CharganError):
    """CHARGAN_E_CANCELLED: a progress callback asked to stop."""
    status = 10


class NotFound(CharganError, LookupError):
    """CHARGAN_E_NOT_FOUND: a named item (e.g. a parameter) does not exist."""
    status = 11


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgument, OutOfMemoryError, FileError, FormatError, UnsupportedError, NumericError,
    StateError, Utf8Error, RangeError, CancelledError, NotFound)}


def error_for(status, message, errnum=None):
    """The exception for a status code (CharganError itself for unknown ones);
    errnum, the errno of a CHARGAN_E_IO failure, picks FileError's class."""
    if status == FileError.status:
        return _file_error(message, status, errnum)
    cls = _BY_STATUS.get(status)
    if cls is None:
        return CharganError(message, status)
    return cls(message, status)
