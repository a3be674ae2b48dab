"""Finding and loading libchargan.so.0.

Order: the CHARGAN_LIBRARY environment variable (a path; a library that fails
to load there is an error, not a reason to look elsewhere), then the build
tree this copy of the package belongs to (meson writes _paths.py into the
build tree's copy only), then <checkout>/build when the package is imported
straight from a source checkout, then the system loader (the exact SONAME,
so an incompatible libchargan.so.1 is never picked up).
"""

import ctypes
import os

SONAME = "libchargan.so.0"
#: The library major version these bindings were written for.
EXPECTED_MAJOR = 0


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _real_path(lib, fallback):
    """The file the loader actually mapped (dladdr), for error messages and
    chargan.library_path; the name we asked for if that is unknown."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        addr = ctypes.cast(lib.chargan_version_number, ctypes.c_void_p)
        if dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(os.fsdecode(info.dli_fname))
    except (OSError, AttributeError):
        pass
    return fallback


def _build_tree_candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        from . import _paths  # only in the build tree's copy
    except ImportError:
        _paths = None
    if _paths is not None:
        yield "the build tree", _paths.LIBRARY
    # Imported from a source checkout (PYTHONPATH=python): the default build
    # directory only.  Other build directories have their own copy of the
    # package (PYTHONPATH=BUILDDIR/python) or CHARGAN_LIBRARY; guessing among
    # several (some may be sanitizer builds that cannot be dlopen()ed) is not
    # worth the surprises.
    root = os.path.dirname(os.path.dirname(here))
    if os.path.isfile(os.path.join(root, "include", "chargan.h")):
        yield "the source checkout's build/", os.path.join(root, "build", "libchargan", SONAME)


def load():
    """Returns (CDLL, path).  Raises ImportError saying what was tried."""
    tried = []
    env = os.environ.get("CHARGAN_LIBRARY")
    if env:
        try:
            lib = ctypes.CDLL(env)
        except OSError as e:
            raise ImportError("cannot load libchargan from CHARGAN_LIBRARY=%r: %s" % (env, e)) from None
        return _checked(lib, env)
    for where, path in _build_tree_candidates():
        if not os.path.exists(path):
            tried.append("%s (%s: not there)" % (path, where))
            continue
        try:
            return _checked(ctypes.CDLL(path), path)
        except OSError as e:
            tried.append("%s (%s: %s)" % (path, where, e))
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError as e:
        tried.append("%s (the system loader: %s)" % (SONAME, e))
        raise ImportError("cannot find libchargan; tried " + "; ".join(tried) +
                          ". Install libchargan or set CHARGAN_LIBRARY to the library's path.") from None
    return _checked(lib, SONAME)


def _checked(lib, name):
    path = _real_path(lib, name)
    try:
        fn = lib.chargan_version_number
    except AttributeError:
        raise ImportError("%s is not libchargan (no chargan_version_number)" % path) from None
    fn.restype = ctypes.c_uint
    fn.argtypes = []
    number = fn()
    major = number // 10000
    if major != EXPECTED_MAJOR:
        raise ImportError(
            "%s is libchargan %d.%d.%d, but this chargan package needs major version %d "
            "(libchargan.so.%d); install a matching library or point CHARGAN_LIBRARY at one"
            % (path, major, number // 100 % 100, number % 100, EXPECTED_MAJOR, EXPECTED_MAJOR))
    return lib, path
