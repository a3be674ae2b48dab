"""chargan.Tokenizer: UTF-8 characters <-> ids."""

import ctypes
from ctypes import byref, c_int32, c_size_t, c_uint32, c_uint64, c_void_p

from . import _arrays
from ._ffi import _F, _raw, TokenizerOptions, TokenizerP, check_int
from ._handle import Handle, fspath, text_bytes


class Tokenizer(Handle):
    """A character vocabulary.

    Tokenizer(options=None, **fields) creates an empty one (reserved ids
    only); fields are those of TokenizerOptions (max_vocab, lowercase,
    fold_crlf, utf8_policy).  fit() it on text, then encode() and decode().
    Text is str (encoded as UTF-8) or bytes (passed as is, so invalid UTF-8
    meets the tokenizer's utf8_policy).
    """

    _what = "tokenizer"
    _free = _raw.chargan_tokenizer_free

    def __init__(self, options=None, **fields):
        opts = (TokenizerOptions.copy_of(options, "options") if options is not None
                else TokenizerOptions()).update(**fields)
        out = TokenizerP()
        _F.chargan_tokenizer_new(byref(opts), byref(out))
        self._init_handle(out)

    @classmethod
    def load(cls, path):
        """Reads a tokenizer file written by save()."""
        out = TokenizerP()
        _F.chargan_tokenizer_load(fspath(path), byref(out))
        return cls._wrap(out)

    @classmethod
    def from_bytes(cls, data):
        """Parses what to_bytes() returned."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            # bytes(5) would be five zero bytes
            raise TypeError("from_bytes() takes bytes, not %s" % type(data).__name__)
        data = bytes(data)
        out = TokenizerP()
        _F.chargan_tokenizer_load_buffer(data, len(data), byref(out))
        return cls._wrap(out)

    def save(self, path):
        """Writes the tokenizer to path atomically."""
        path = fspath(path)
        _F.chargan_tokenizer_save(self._h, path)

    def to_bytes(self):
        data = c_void_p()
        size = c_size_t()
        _F.chargan_tokenizer_save_buffer(self._h, byref(data), byref(size))
        try:
            return ctypes.string_at(data, size.value)
        finally:
            _raw.chargan_free(data)

    def fit(self, text):
        """Counts the characters of text and rebuilds the vocabulary from all
        text fitted so far.  Returns self."""
        data = text_bytes(text)
        _F.chargan_tokenizer_fit(self._h, data, len(data))
        return self

    @property
    def vocab_size(self):
        """Number of ids, the reserved ones included."""
        n = c_uint32()
        _F.chargan_tokenizer_vocab_size(self._h, byref(n))
        return n.value

    def __len__(self):
        return self.vocab_size

    def id_info(self, id):
        """(code point, count seen while fitting) of id; RangeError for a
        reserved id or one outside the vocabulary."""
        cp = c_uint32()
        count = c_uint64()
        id = check_int(id, c_int32, "id")
        _F.chargan_tokenizer_id_info(self._h, id, byref(cp), byref(count))
        return cp.value, count.value

    def char(self, id):
        """The character of id (a one-character str)."""
        return chr(self.id_info(id)[0])

    def lookup(self, char):
        """The id of a character (a one-character str or a code point);
        ID_UNKNOWN if it is not in the vocabulary."""
        if isinstance(char, str):
            if len(char) != 1:
                raise ValueError("lookup() takes one character, got %d" % len(char))
            char = ord(char)
        out = c_int32()
        char = check_int(char, c_uint32, "a code point")
        _F.chargan_tokenizer_lookup(self._h, char, byref(out))
        return out.value

    def vocabulary(self):
        """The characters of ids NUM_RESERVED_IDS.. in id order, as one str."""
        from ._ffi import NUM_RESERVED_IDS
        return "".join(self.char(i) for i in range(NUM_RESERVED_IDS, self.vocab_size))

    def encode(self, text):
        """The ids of text: an int32 numpy array, or a list without numpy."""
        data = text_bytes(text)
        # The count first, so that the ids are allocated once at their size
        # (room for one id per byte and a trimmed copy cost 8 bytes a byte).
        n = c_size_t()
        _F.chargan_tokenizer_encode(self._h, data, len(data), None, 0, byref(n))
        ptr, result = _arrays.output_buffer(c_int32, (n.value,))
        _F.chargan_tokenizer_encode(self._h, data, len(data), ptr, n.value, byref(n))
        return _arrays.finish(result)

    def decode(self, ids):
        """The text of ids (any sequence of ints or an integer array): str.
        ID_START is skipped; ID_UNKNOWN becomes U+FFFD."""
        ptr, keep, shape = _arrays.input_buffer(ids, c_int32, (None,), "ids")
        n = shape[0]
        # The length first, then a buffer of that size read once.
        length = c_size_t()
        _F.chargan_tokenizer_decode(self._h, ptr, n, None, 0, byref(length))
        buf = ctypes.create_string_buffer(length.value + 1)
        _F.chargan_tokenizer_decode(self._h, ptr, n, buf, length.value + 1, byref(length))
        return ctypes.string_at(buf, length.value).decode("utf-8")
