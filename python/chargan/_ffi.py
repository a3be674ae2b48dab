"""ctypes declarations of include/chargan.h: handle types, struct mirrors,
enums and function prototypes, with errcheck hooks that turn a nonzero
chargan_status into an exception from chargan.errors.

Functions are bound on first use.  Those the bindings cannot work without
are checked at import (ImportError if missing); the rest (OPTIONAL below,
e.g. chargan_trainer_request_stop) raise UnsupportedError when called on a
library that lacks them, so an older libchargan.so.0 still imports.
"""

import ctypes
import enum
import operator
import os
from ctypes import (POINTER, Structure, byref, c_char_p, c_double, c_float, c_int, c_int32,
                    c_size_t, c_uint, c_uint32, c_uint64, c_void_p, CFUNCTYPE)

from . import _loader, errors

lib, library_path = _loader.load()

# ------------------------------------------------------------------ enums


class ModelKind(enum.IntEnum):
    GENERATOR = 0
    DISCRIMINATOR = 1


class Utf8Policy(enum.IntEnum):
    STRICT = 0
    REPLACE = 1


class OptimizerKind(enum.IntEnum):
    ADAM = 0
    SGD = 1
    RMSPROP = 2


class Estimator(enum.IntEnum):
    NONE = 0
    REINFORCE = 1
    GUMBEL = 2


class GanLoss(enum.IntEnum):
    STANDARD = 0
    RELATIVISTIC = 1


class Anneal(enum.IntEnum):
    EXP = 0
    LINEAR = 1


class GumbelFeed(enum.IntEnum):
    HARD = 0
    SOFT = 1


class Phase(enum.IntEnum):
    MLE = 0
    DISCRIMINATOR = 1
    ADVERSARIAL = 2
    EVAL = 3


ID_START = 0
ID_UNKNOWN = 1
NUM_RESERVED_IDS = 2

# ------------------------------------------------------------------ handles


class _Tokenizer(Structure):
    pass


class _Model(Structure):
    pass


class _Optimizer(Structure):
    pass


class _Trainer(Structure):
    pass


TokenizerP = POINTER(_Tokenizer)
ModelP = POINTER(_Model)
OptimizerP = POINTER(_Optimizer)
TrainerP = POINTER(_Trainer)

# ------------------------------------------------------------------ structs


class _Options(Structure):
    """Base of the option/config mirrors.  Constructing one fills it with the
    library's defaults through chargan_xxx_init_sized(..., sizeof(mirror)),
    then applies keyword arguments; unknown names raise TypeError.  Copies are
    made with copy() (a ctypes struct is otherwise shared by reference)."""

    _init = None          # name of the chargan_xxx_init_sized function
    _takes_kind = False   # config_init_sized(cfg, size, kind)
    _default_kind = 0

    def __init__(self, **fields):
        super().__init__()
        init = getattr(_F, self._init)
        if self._takes_kind:
            kind = check_int(fields.pop("kind", self._default_kind), ctypes.c_int, "kind")
            init(byref(self), ctypes.sizeof(self), kind)
        else:
            init(byref(self), ctypes.sizeof(self))
        self.update(**fields)

    @classmethod
    def field_names(cls):
        return [f[0] for f in cls._fields_ if f[0] != "struct_size"]

    def update(self, **fields):
        names = self.field_names()
        types = dict(self._fields_)
        for name, value in fields.items():
            if name not in names:
                raise TypeError("%s has no field %r (fields: %s)"
                                % (type(self).__name__, name, ", ".join(names)))
            check_int(value, types[name], "%s.%s" % (type(self).__name__, name))
            setattr(self, name, value)
        return self

    def copy(self):
        other = type(self).__new__(type(self))
        ctypes.pointer(other)[0] = self
        return other

    @classmethod
    def copy_of(cls, given, what):
        """A copy of given, an instance of this class (ctypes would raise its
        ArgumentError, not a TypeError, for anything else)."""
        if not isinstance(given, cls):
            raise TypeError("%s must be a chargan.%s, not %s"
                            % (what, cls.__name__, type(given).__name__))
        return given.copy()

    def as_dict(self):
        return {name: getattr(self, name) for name in self.field_names()}

    def __eq__(self, other):
        return type(other) is type(self) and bytes(self) == bytes(other)

    __hash__ = None

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in self.as_dict().items()))


_INT_RANGES = {ctype: (lo, hi) for ctype, lo, hi in (
    (ctypes.c_int32, -2**31, 2**31 - 1), (ctypes.c_uint32, 0, 2**32 - 1),
    (ctypes.c_uint64, 0, 2**64 - 1), (ctypes.c_size_t, 0, 2**(8 * ctypes.sizeof(c_size_t)) - 1),
    (ctypes.c_int, -2**(8 * ctypes.sizeof(ctypes.c_int) - 1),
     2**(8 * ctypes.sizeof(ctypes.c_int) - 1) - 1))}


def check_int(value, ctype, what, error=errors.RangeError):
    """value as an integer of ctype, or error: ctypes would silently keep
    its low bits (2**32 + 4 as 4, -1 as the largest value), and truncate a
    float (a TypeError here)."""
    bounds = _INT_RANGES.get(ctype)
    if bounds is None:
        return value
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(value).__name__)) from None
    if not bounds[0] <= value <= bounds[1]:
        raise error("%s %d is outside [%d, %d]" % (what, value, bounds[0], bounds[1]))
    return value


class TokenizerOptions(_Options):
    _init = "chargan_tokenizer_options_init_sized"
    _fields_ = [("struct_size", c_size_t), ("max_vocab", c_uint32), ("lowercase", c_int),
                ("fold_crlf", c_int), ("utf8_policy", c_int)]


class ModelConfig(_Options):
    _init = "chargan_model_config_init_sized"
    _takes_kind = True
    _default_kind = ModelKind.GENERATOR
    _fields_ = [("struct_size", c_size_t), ("kind", c_int32), ("vocab_size", c_uint32),
                ("embed_dim", c_uint32), ("hidden_dim", c_uint32), ("num_layers", c_uint32),
                ("noise_dim", c_uint32), ("start_id", c_int32), ("forget_bias", c_float),
                ("recurrent_dropout", c_float), ("init_scale", c_float), ("seed", c_uint64)]


class SampleOptions(_Options):
    _init = "chargan_sample_options_init_sized"
    _fields_ = [("struct_size", c_size_t), ("n_streams", c_uint32), ("length", c_uint32),
                ("temperature", c_float), ("top_k", c_uint32), ("top_p", c_float),
                ("seed", c_uint64), ("allow_reserved", c_int), ("threads", c_uint32)]


class OptimizerConfig(_Options):
    _init = "chargan_optimizer_config_init_sized"
    _takes_kind = True
    _default_kind = OptimizerKind.ADAM
    _fields_ = [("struct_size", c_size_t), ("kind", c_int32), ("lr", c_float),
                ("beta1", c_float), ("beta2", c_float), ("eps", c_float),
                ("weight_decay", c_float), ("momentum", c_float), ("rho", c_float),
                ("clip_norm", c_float)]


class TrainerConfig(_Options):
    _init = "chargan_trainer_config_init_sized"
    _fields_ = [("struct_size", c_size_t), ("batch", c_uint32), ("seq_len", c_uint32),
                ("val_fraction", c_float), ("seed", c_uint64), ("threads", c_uint32),
                ("report_every", c_uint32), ("val_every", c_uint32), ("estimator", c_int32),
                ("d_steps", c_uint32), ("gamma", c_float), ("baseline_decay", c_float),
                ("rollouts", c_uint32), ("mle_weight", c_float), ("beta_max", c_float),
                ("anneal", c_int32), ("anneal_steps", c_uint32), ("gan_loss", c_int32),
                ("beta_start", c_float), ("gumbel_feed", c_int32)]


class ProgressStruct(Structure):
    """chargan_progress; the library fills it, so read only the fields below
    its struct_size (a field an older library lacks is absent)."""
    _fields_ = [("struct_size", c_size_t), ("phase", c_int32), ("step", c_uint64),
                ("total", c_uint64), ("global_step", c_uint64), ("loss", c_double),
                ("d_loss", c_double), ("d_accuracy", c_double), ("val_nll", c_double),
                ("val_bpc", c_double), ("tokens_per_s", c_double), ("elapsed_s", c_double)]


STRUCTS = {
    "chargan_tokenizer_options": TokenizerOptions,
    "chargan_model_config": ModelConfig,
    "chargan_sample_options": SampleOptions,
    "chargan_optimizer_config": OptimizerConfig,
    "chargan_trainer_config": TrainerConfig,
    "chargan_progress": ProgressStruct,
}

PROGRESS_FN = CFUNCTYPE(c_int, POINTER(ProgressStruct), c_void_p)

# ------------------------------------------------------------------ errcheck

_status = c_int  # chargan_status is an int-sized enum


def _message(handle_error, handle):
    msg = b""
    if handle_error is not None and handle:
        msg = handle_error(handle) or b""
    if not msg:
        # Constructors and loaders have no handle; every failure also sets
        # the calling thread's message.
        msg = _raw.chargan_last_error() or b""
    return msg.decode("utf-8", "replace")


# The functions that take a path, and where: their OSErrors (FileError)
# carry it as .filename, as Python's own file errors do.
_PATH_ARGUMENT = {
    "chargan_tokenizer_save": 1, "chargan_tokenizer_load": 0,
    "chargan_model_save": 1, "chargan_model_load": 0,
    "chargan_trainer_save": 1, "chargan_trainer_load": 0,
}


def _last_errno():
    """chargan_last_errno(), None from a library without it (before node 0.4)."""
    return _raw.chargan_last_errno() if has("chargan_last_errno") else None


def _checker(handle_error=None, path_argument=None):
    def check(result, func, args):
        if result != 0:
            # The thread's errno first: nothing else may fail in between.
            errnum = _last_errno() if result == errors.FileError.status else None
            error = errors.error_for(result, _message(handle_error, args[0] if args else None),
                                     errnum)
            if path_argument is not None and isinstance(error, OSError):
                error.filename = os.fsdecode(args[path_argument])
            raise error
        return result
    return check


# ------------------------------------------------------------------ prototypes

_sz = POINTER(c_size_t)
_i32p = POINTER(c_int32)
_u32p = POINTER(c_uint32)
_u64p = POINTER(c_uint64)
_fp = POINTER(c_float)
_dp = POINTER(c_double)

# name: (restype, argtypes, whose last_error explains a failure).  A status
# function's third entry is the handle type whose _last_error to consult
# (None: the thread's chargan_last_error()); "-" marks a function that
# returns something other than a status.
_PROTOTYPES = {
    "chargan_version": (c_char_p, [], "-"),
    "chargan_version_number": (c_uint, [], "-"),
    "chargan_strerror": (c_char_p, [c_int], "-"),
    "chargan_last_error": (c_char_p, [], "-"),
    "chargan_last_errno": (c_int, [], "-"),
    "chargan_free": (None, [c_void_p], "-"),
    # tokenizer
    "chargan_tokenizer_options_init_sized": (_status, [POINTER(TokenizerOptions), c_size_t], None),
    "chargan_tokenizer_new": (_status, [POINTER(TokenizerOptions), POINTER(TokenizerP)], None),
    "chargan_tokenizer_free": (None, [TokenizerP], "-"),
    "chargan_tokenizer_last_error": (c_char_p, [TokenizerP], "-"),
    "chargan_tokenizer_fit": (_status, [TokenizerP, c_char_p, c_size_t], "tokenizer"),
    "chargan_tokenizer_vocab_size": (_status, [TokenizerP, _u32p], "tokenizer"),
    "chargan_tokenizer_id_info": (_status, [TokenizerP, c_int32, _u32p, _u64p], "tokenizer"),
    "chargan_tokenizer_lookup": (_status, [TokenizerP, c_uint32, _i32p], "tokenizer"),
    "chargan_tokenizer_encode": (_status, [TokenizerP, c_char_p, c_size_t, _i32p, c_size_t, _sz],
                                 "tokenizer"),
    "chargan_tokenizer_decode": (_status, [TokenizerP, _i32p, c_size_t, c_char_p, c_size_t, _sz],
                                 "tokenizer"),
    "chargan_tokenizer_save_buffer": (_status, [TokenizerP, POINTER(c_void_p), _sz], "tokenizer"),
    "chargan_tokenizer_load_buffer": (_status, [c_char_p, c_size_t, POINTER(TokenizerP)], None),
    "chargan_tokenizer_save": (_status, [TokenizerP, c_char_p], "tokenizer"),
    "chargan_tokenizer_load": (_status, [c_char_p, POINTER(TokenizerP)], None),
    # model
    "chargan_model_config_init_sized": (_status, [POINTER(ModelConfig), c_size_t, c_int], None),
    "chargan_model_new": (_status, [POINTER(ModelConfig), POINTER(ModelP)], None),
    "chargan_model_free": (None, [ModelP], "-"),
    "chargan_model_last_error": (c_char_p, [ModelP], "-"),
    "chargan_model_get_config": (_status, [ModelP, POINTER(ModelConfig)], "model"),
    "chargan_model_set_tokenizer": (_status, [ModelP, TokenizerP], "model"),
    "chargan_model_tokenizer": (TokenizerP, [ModelP], "-"),
    "chargan_model_num_params": (_status, [ModelP, _sz], "model"),
    "chargan_model_param_info": (_status, [ModelP, c_size_t, POINTER(c_char_p), _u32p,
                                           POINTER(c_size_t * 2), _sz], "model"),
    "chargan_model_param_find": (_status, [ModelP, c_char_p, _sz], "model"),
    "chargan_model_param_get": (_status, [ModelP, c_size_t, _fp, c_size_t], "model"),
    "chargan_model_param_set": (_status, [ModelP, c_size_t, _fp, c_size_t], "model"),
    "chargan_model_num_weights": (_status, [ModelP, _sz], "model"),
    "chargan_model_nll": (_status, [ModelP, _i32p, c_size_t, c_size_t, _dp], "model"),
    "chargan_model_save": (_status, [ModelP, c_char_p], "model"),
    "chargan_model_load": (_status, [c_char_p, c_int, POINTER(ModelP)], None),
    # sampling
    "chargan_sample_options_init_sized": (_status, [POINTER(SampleOptions), c_size_t], None),
    "chargan_model_sample_ids": (_status, [ModelP, POINTER(SampleOptions), _i32p, c_size_t,
                                           _i32p, c_size_t], "model"),
    "chargan_model_sample_text": (_status, [ModelP, POINTER(SampleOptions), c_char_p,
                                            POINTER(c_void_p)], "model"),
    "chargan_model_sample_text_len": (_status, [ModelP, POINTER(SampleOptions), c_char_p,
                                                POINTER(c_void_p), _sz], "model"),
    # optimizer
    "chargan_optimizer_config_init_sized": (_status, [POINTER(OptimizerConfig), c_size_t, c_int],
                                            None),
    "chargan_optimizer_new": (_status, [POINTER(OptimizerConfig), POINTER(OptimizerP)], None),
    "chargan_optimizer_free": (None, [OptimizerP], "-"),
    "chargan_optimizer_last_error": (c_char_p, [OptimizerP], "-"),
    "chargan_optimizer_get_config": (_status, [OptimizerP, POINTER(OptimizerConfig)], "optimizer"),
    "chargan_optimizer_set_lr": (_status, [OptimizerP, c_float], "optimizer"),
    "chargan_optimizer_steps": (_status, [OptimizerP, _u64p], "optimizer"),
    # trainer
    "chargan_trainer_config_init_sized": (_status, [POINTER(TrainerConfig), c_size_t], None),
    "chargan_trainer_new": (_status, [POINTER(TrainerConfig), ModelP, OptimizerP, ModelP,
                                      OptimizerP, POINTER(TrainerP)], None),
    "chargan_trainer_free": (None, [TrainerP], "-"),
    "chargan_trainer_last_error": (c_char_p, [TrainerP], "-"),
    "chargan_trainer_get_config": (_status, [TrainerP, POINTER(TrainerConfig)], "trainer"),
    "chargan_trainer_generator": (ModelP, [TrainerP], "-"),
    "chargan_trainer_discriminator": (ModelP, [TrainerP], "-"),
    "chargan_trainer_optimizer": (OptimizerP, [TrainerP, c_int], "-"),
    "chargan_trainer_set_progress": (_status, [TrainerP, PROGRESS_FN, c_void_p], "trainer"),
    "chargan_trainer_request_stop": (_status, [TrainerP], "trainer"),
    "chargan_trainer_set_corpus_text": (_status, [TrainerP, c_char_p, c_size_t], "trainer"),
    "chargan_trainer_set_corpus_ids": (_status, [TrainerP, _i32p, c_size_t], "trainer"),
    "chargan_trainer_set_corpus_sequences": (_status, [TrainerP, _i32p, c_size_t, c_size_t],
                                             "trainer"),
    "chargan_trainer_init_output_bias": (_status, [TrainerP], "trainer"),
    "chargan_trainer_mle_step": (_status, [TrainerP, _fp], "trainer"),
    "chargan_trainer_mle_step_batch": (_status, [TrainerP, _i32p, _fp], "trainer"),
    "chargan_trainer_pretrain_generator": (_status, [TrainerP, c_uint64], "trainer"),
    "chargan_trainer_d_step": (_status, [TrainerP, _fp, _fp], "trainer"),
    "chargan_trainer_pretrain_discriminator": (_status, [TrainerP, c_uint64], "trainer"),
    "chargan_trainer_gan_step": (_status, [TrainerP, _fp, _fp], "trainer"),
    "chargan_trainer_adversarial": (_status, [TrainerP, c_uint64], "trainer"),
    "chargan_trainer_evaluate": (_status, [TrainerP, _dp, _dp], "trainer"),
    "chargan_trainer_global_step": (_status, [TrainerP, _u64p], "trainer"),
    "chargan_trainer_save": (_status, [TrainerP, c_char_p], "trainer"),
    "chargan_trainer_load": (_status, [c_char_p, POINTER(TrainerP)], None),
    # metrics
    "chargan_model_stream_nll": (_status, [ModelP, _i32p, c_size_t, c_uint32, _dp], "model"),
    "chargan_nll_oracle": (_status, [ModelP, ModelP, POINTER(SampleOptions), _dp], None),
    "chargan_bleu": (_status, [POINTER(c_char_p), c_size_t, POINTER(c_char_p), c_size_t,
                               c_uint32, _dp], None),
    "chargan_self_bleu": (_status, [POINTER(c_char_p), c_size_t, c_uint32, _dp], None),
    "chargan_trainer_eval_discriminator": (_status, [TrainerP, c_uint32, _dp], "trainer"),
}

#: Functions that may be missing from the loaded library (bound lazily; a
#: call raises UnsupportedError).  Newer additions go here.
OPTIONAL = frozenset({
    "chargan_model_stream_nll", "chargan_nll_oracle", "chargan_bleu", "chargan_self_bleu",
    "chargan_trainer_eval_discriminator",
    # version node CHARGAN_0.2
    "chargan_trainer_init_output_bias", "chargan_model_sample_text_len",
    # version node CHARGAN_0.3
    "chargan_trainer_request_stop",
    # version node CHARGAN_0.4
    "chargan_last_errno",
})


class _Unsupported:
    """Stands in for a function the library lacks."""

    def __init__(self, name):
        self.__name__ = name

    def __call__(self, *args):
        raise errors.UnsupportedError(
            "%s is not exported by %s (a libchargan older than these bindings?)"
            % (self.__name__, library_path))


class _Functions:
    """Attribute access binds a prototype on first use and caches it."""

    def __init__(self, checked):
        self._checked = checked

    def __getattr__(self, name):
        try:
            restype, argtypes, explain = _PROTOTYPES[name]
        except KeyError:
            raise AttributeError(name) from None
        try:
            # A fresh function object per table: the raw table has no errcheck.
            f = getattr(lib, name)
            f = type(f)((name, lib))
        except AttributeError:
            f = _Unsupported(name)
            setattr(self, name, f)
            return f
        f.restype = restype
        f.argtypes = argtypes
        if self._checked and explain != "-":
            f.errcheck = _checker(None if explain is None else
                                  getattr(_raw, "chargan_%s_last_error" % explain),
                                  _PATH_ARGUMENT.get(name))
        setattr(self, name, f)
        return f


_raw = _Functions(checked=False)   # plain calls: last_error, free, accessors
_F = _Functions(checked=True)      # status functions raise on failure


def has(name):
    """Whether the loaded library exports name (an OPTIONAL function)."""
    return not isinstance(getattr(_raw, name), _Unsupported)

_missing = [name for name in _PROTOTYPES if name not in OPTIONAL and not hasattr(lib, name)]
if _missing:
    raise ImportError("%s lacks %s: not a complete libchargan.so.0"
                      % (library_path, ", ".join(sorted(_missing))))


def _strerror(status):
    # ctypes would keep an int's low bits (2**32 + 3 as 3) and int() would
    # truncate a float: a status no int holds is one the library does not know
    status = operator.index(status)
    lo, hi = _INT_RANGES[c_int]
    if not lo <= status <= hi:
        return "unknown status"
    return (_raw.chargan_strerror(status) or b"").decode("ascii", "replace")


errors._strerror = _strerror
