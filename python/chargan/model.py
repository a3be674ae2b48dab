"""chargan.Model: a generator or a discriminator."""

import ctypes
import weakref
from ctypes import byref, c_char_p, c_double, c_float, c_int32, c_size_t, c_uint32, c_void_p

from . import _arrays, errors
from ._ffi import _F, _raw, ModelConfig, ModelKind, ModelP, SampleOptions, check_int
from ._handle import Handle, address, c_string, fspath, text_bytes
from .tokenizer import Tokenizer


def _tokenizer_or_none(tokenizer):
    """tokenizer, if a chargan.Tokenizer or None (ctypes would raise its
    ArgumentError, or an AttributeError, for anything else)."""
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        raise TypeError("the tokenizer must be a chargan.Tokenizer or None, not %s"
                        % type(tokenizer).__name__)
    return tokenizer


def sample_options(options, fields):
    return (SampleOptions.copy_of(options, "options") if options is not None
            else SampleOptions()).update(**fields)


class Model(Handle):
    """A generator (ModelKind.GENERATOR, the default) or a discriminator.

    Model(config=None, tokenizer=None, **fields): fields are those of
    ModelConfig (kind, vocab_size, embed_dim, hidden_dim, ...).  With a
    tokenizer and no vocab_size, the vocabulary size is the tokenizer's, and
    the model gets a copy of the tokenizer attached.

    Parameters are numpy float32 arrays when numpy is importable (else nested
    lists), by name ("embed", "lstm.0.w_ih", "out.w", ...) or index.

    A model passed to a Trainer is adopted by it: this object then becomes a
    borrowed view that keeps the trainer alive, stays usable while the
    trainer is open, and no longer frees the model itself.
    """

    _what = "model"
    _free = _raw.chargan_model_free

    def __init__(self, config=None, *, tokenizer=None, **fields):
        if config is not None and "kind" in fields:
            # the kind chooses the defaults the config was filled with
            raise TypeError("give kind to the ModelConfig, not beside it")
        cfg = (ModelConfig.copy_of(config, "config") if config is not None
               else ModelConfig(kind=fields.pop("kind", 0)))
        if _tokenizer_or_none(tokenizer) is not None and "vocab_size" not in fields and cfg.vocab_size == 0:
            fields["vocab_size"] = tokenizer.vocab_size
        cfg.update(**fields)
        out = ModelP()
        _F.chargan_model_new(byref(cfg), byref(out))
        self._init_handle(out)
        if tokenizer is not None:
            try:
                self.set_tokenizer(tokenizer)
            except BaseException:
                self.close()
                raise

    def _init_handle(self, ptr, owner=None):
        super()._init_handle(ptr, owner)
        self._tok_view = None

    @classmethod
    def load(cls, path, kind=ModelKind.GENERATOR):
        """Loads the model of the given kind from a file written by
        Model.save() or Trainer.save()."""
        out = ModelP()
        _F.chargan_model_load(fspath(path), check_int(kind, ctypes.c_int, "kind"), byref(out))
        return cls._wrap(out)

    def save(self, path):
        """Writes configuration, tokenizer and parameters to path atomically."""
        path = fspath(path)
        _F.chargan_model_save(self._h, path)

    @property
    def config(self):
        """A copy of the model's ModelConfig."""
        cfg = ModelConfig()
        _F.chargan_model_get_config(self._h, byref(cfg))
        return cfg

    @property
    def kind(self):
        return ModelKind(self.config.kind)

    @property
    def vocab_size(self):
        return self.config.vocab_size

    # -------------------------------------------------------- tokenizer

    @property
    def tokenizer(self):
        """The attached tokenizer as a borrowed view (None if none); it is
        invalidated when set_tokenizer() replaces it or the model closes."""
        ptr = _raw.chargan_model_tokenizer(self._h)
        if not ptr:
            return None
        view = self._tok_view() if self._tok_view is not None else None
        if view is None or view.closed or address(view._ptr) != address(ptr):
            view = Tokenizer._wrap(ptr, owner=self)
            self._tok_view = weakref.ref(view)
        return view

    def set_tokenizer(self, tokenizer):
        """Attaches a copy of tokenizer (None detaches)."""
        _tokenizer_or_none(tokenizer)
        h = self._h
        _F.chargan_model_set_tokenizer(h, tokenizer._h if tokenizer is not None else None)
        view = self._tok_view() if self._tok_view is not None else None
        if view is not None:
            view._invalidate()  # the library freed what it pointed at
        self._tok_view = None

    # -------------------------------------------------------- parameters

    @property
    def num_params(self):
        n = c_size_t()
        _F.chargan_model_num_params(self._h, byref(n))
        return n.value

    @property
    def num_weights(self):
        """Total number of scalar parameters."""
        n = c_size_t()
        _F.chargan_model_num_weights(self._h, byref(n))
        return n.value

    def _index(self, key):
        if isinstance(key, str):
            idx = c_size_t()
            name = c_string(key, "a parameter name")
            _F.chargan_model_param_find(self._h, name, byref(idx))
            return idx.value
        return check_int(key, c_size_t, "a parameter index")

    def param_info(self, key):
        """(name, shape) of a parameter tensor, by name or index."""
        name = c_char_p()
        rank = c_uint32()
        shape = (c_size_t * 2)()
        numel = c_size_t()
        idx = self._index(key)
        _F.chargan_model_param_info(self._h, idx, byref(name), byref(rank), byref(shape),
                                    byref(numel))
        return name.value.decode("utf-8"), tuple(shape[:rank.value])

    def param_names(self):
        return [self.param_info(i)[0] for i in range(self.num_params)]

    def get_param(self, key):
        """A copy of a parameter tensor: numpy float32 array of its shape, or
        a (nested) list without numpy."""
        idx = self._index(key)
        _, shape = self.param_info(idx)
        ptr, result = _arrays.output_buffer(c_float, shape)
        _F.chargan_model_param_get(self._h, idx, ptr, _numel(shape))
        return _arrays.finish(result)

    def set_param(self, key, values):
        """Copies values (an array or nested sequence of the tensor's shape,
        all finite) into a parameter tensor."""
        idx = self._index(key)
        name, shape = self.param_info(idx)
        try:
            ptr, keep, _ = _arrays.input_buffer(values, c_float, shape, name)
        except ValueError as e:
            raise errors.InvalidArgument(str(e)) from None
        _F.chargan_model_param_set(self._h, idx, ptr, _numel(shape))

    def params(self):
        """{name: array} of every parameter tensor, in the model's order."""
        return {self.param_info(i)[0]: self.get_param(i) for i in range(self.num_params)}

    # -------------------------------------------------------- evaluation

    def nll(self, ids):
        """Mean NLL (nats per predicted token) of sequences, a 2-D
        [n_seq, seq_len] array or list of equal-length lists, each preceded by
        the start id.  Generator only."""
        ptr, keep, shape = _ids_2d(ids)
        out = c_double()
        _F.chargan_model_nll(self._h, ptr, shape[0], shape[1], byref(out))
        return out.value

    def stream_nll(self, ids, n_streams=1):
        """NLL (nats/token) of one long id stream read as n_streams
        contiguous parts with the state carried across each part."""
        ptr, keep, shape = _arrays.input_buffer(ids, c_int32, (None,), "ids")
        out = c_double()
        n_streams = check_int(n_streams, c_uint32, "n_streams")
        _F.chargan_model_stream_nll(self._h, ptr, shape[0], n_streams, byref(out))
        return out.value

    # -------------------------------------------------------- sampling

    def sample_ids(self, prime=None, options=None, **fields):
        """Samples options.n_streams x options.length ids (an int32 array of
        that shape, or a list of lists).  prime: ids fed after the start id.
        fields are those of SampleOptions (length, temperature, top_k, top_p,
        seed, n_streams, allow_reserved, threads)."""
        opts = sample_options(options, fields)
        pptr, plen = None, 0
        if prime is not None:  # an empty one gives plen 0
            pptr, pkeep, (plen,) = _arrays.input_buffer(prime, c_int32, (None,), "prime")
        shape = (opts.n_streams, opts.length)
        try:
            ptr, result = _arrays.output_buffer(c_int32, shape)
        except (MemoryError, ValueError, OverflowError):
            # An absurd n_streams x length (numpy says ValueError beyond its
            # array size, ctypes OverflowError beyond an index): the
            # library's InvalidArgument if the options are out of range (it
            # checks them before the output's size, here room for no ids),
            # else the error.
            try:
                _F.chargan_model_sample_ids(self._h, byref(opts), None, 0, c_int32(), 0)
            except errors.RangeError:
                pass
            raise
        _F.chargan_model_sample_ids(self._h, byref(opts), pptr, plen, ptr, _numel(shape))
        return _arrays.finish(result)

    def sample_text(self, prime=None, options=None, **fields):
        """Samples through the attached tokenizer: str, the prime included;
        several streams are separated by a blank line ("\\n\\n").  fields are
        those of SampleOptions."""
        opts = sample_options(options, fields)
        pbytes = text_bytes(prime, "prime") if prime is not None else None
        if pbytes is not None and b"\0" in pbytes:
            raise errors.InvalidArgument("prime contains a NUL character")
        out, n = c_void_p(), c_size_t()
        try:  # the length, not the first NUL: U+0000 may be in the vocabulary
            _F.chargan_model_sample_text_len(self._h, byref(opts), pbytes, byref(out), byref(n))
        except errors.UnsupportedError:  # a library before CHARGAN_0.2
            _F.chargan_model_sample_text(self._h, byref(opts), pbytes, byref(out))
            n.value = len(ctypes.string_at(out))
        try:
            return ctypes.string_at(out, n.value).decode("utf-8")
        finally:
            _raw.chargan_free(out)


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _ids_2d(ids):
    try:
        return _arrays.input_buffer(ids, c_int32, (None, None), "ids")
    except ValueError as e:
        raise errors.InvalidArgument(str(e)) from None
