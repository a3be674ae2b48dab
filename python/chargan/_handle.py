"""Ownership of library handles.

An object either owns its handle (it frees it on close(), at the end of a
with block, or when collected) or is a borrowed view of a handle that another
object owns (the model's tokenizer, a trainer's models and optimizers).  A
view keeps its owner alive, and is invalidated (any use raises StateError)
when the owner is closed or replaces what it pointed at; closing a view only
detaches it.
"""

import ctypes
import os
import weakref

from . import errors


def address(ptr):
    return ctypes.cast(ptr, ctypes.c_void_p).value


def fspath(path):
    """A path argument as the bytes the C library expects (a NUL inside would
    silently cut it short there)."""
    data = os.fsencode(path)
    if b"\0" in data:
        raise ValueError("embedded null byte in path")
    return data


def c_string(text, what):
    """A name passed as a C string: str as UTF-8, without a NUL inside."""
    data = text_bytes(text, what)
    if b"\0" in data:
        raise ValueError("embedded null byte in %s" % what)
    return data


def text_bytes(text, what="text"):
    """str is encoded as UTF-8; bytes-like objects go through unchanged (so
    invalid UTF-8 reaches the library's own UTF-8 policy, as a str's lone
    surrogates do: encoded as they are, they are invalid UTF-8)."""
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    if isinstance(text, memoryview):
        if text.itemsize != 1:  # the raw bytes of numbers are not text
            raise TypeError("%s: a memoryview of bytes, not of format %r" % (what, text.format))
        return bytes(text)
    raise TypeError("%s must be str or bytes, not %s" % (what, type(text).__name__))


class Handle:
    _what = "handle"   # for messages
    _free = None       # the chargan_xxx_free function (unchecked)

    def _init_handle(self, ptr, owner=None):
        self._ptr = ptr
        self._owner = owner
        self._views = weakref.WeakSet()
        if owner is not None:
            owner._views.add(self)

    @classmethod
    def _wrap(cls, ptr, owner=None):
        obj = cls.__new__(cls)
        obj._init_handle(ptr, owner)
        return obj

    @property
    def _h(self):
        # Read last, in the C call itself: converting an argument (__index__,
        # __float__, __fspath__, a str subclass's encode) runs the caller's
        # code, which may close this object or its owner.
        ptr = getattr(self, "_ptr", None)
        if ptr is None:
            raise errors.StateError("this %s is closed (or its owner is)" % self._what)
        return ptr

    @property
    def closed(self):
        return getattr(self, "_ptr", None) is None

    @property
    def owned(self):
        """True if this object frees its handle; False for a borrowed view."""
        return not self.closed and self._owner is None

    def close(self):
        """Frees the handle if this object owns it (a borrowed view is only
        detached), and invalidates every view of it.  Idempotent."""
        ptr = getattr(self, "_ptr", None)
        if ptr is None:
            return
        owned = self._owner is None
        self._invalidate()
        if owned:
            type(self)._free(ptr)

    def _invalidate(self):
        self._ptr = None
        self._owner = None
        for view in list(self._views):
            view._invalidate()

    def _adopt(self, owner):
        """Ownership moved to owner (the library adopted the handle)."""
        self._owner = owner
        owner._views.add(self)

    # A copy would share the handle and free it twice; a pickle cannot hold it.
    def __copy__(self):
        raise TypeError("a chargan.%s cannot be copied: it owns a library handle (save it and "
                        "load it again for a second one)" % type(self).__name__)

    def __deepcopy__(self, memo):
        return self.__copy__()

    def __reduce_ex__(self, protocol):
        raise TypeError("cannot pickle a chargan.%s (save it to a file instead)"
                        % type(self).__name__)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to do
            pass

    def __repr__(self):
        if self.closed:
            state = "closed"
        else:
            state = "owned" if self._owner is None else "borrowed from %s" % type(self._owner).__name__
        return "<chargan.%s %s at %#x>" % (type(self).__name__, state, id(self))
