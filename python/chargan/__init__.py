"""Python bindings of libchargan (character-level text GANs), on ctypes.

No compiled extension: the package loads libchargan.so.0 from
CHARGAN_LIBRARY (a path), else from the build tree it belongs to, else
through the system loader, and checks the library's major version.

    import chargan
    text = open("sonnets.txt").read()
    tok = chargan.Tokenizer().fit(text)
    gen = chargan.Model(tokenizer=tok, hidden_dim=128)
    with chargan.Trainer(gen, batch=16, seq_len=32) as tr:
        tr.set_corpus_text(text)
        tr.pretrain_generator(200)
        print(gen.sample_text("Shall I", length=200, temperature=0.8))

Objects own their library handles and free them on close(), at the end of a
with block, or when collected; borrowed views (a model's tokenizer, a
trainer's models) stay valid while their owner is open.  Failures raise
chargan.CharganError subclasses carrying the library's message.  One object
must not be used from two threads at once (the library's rule; the calls
release the GIL).
"""

from . import errors
from ._ffi import (ID_START, ID_UNKNOWN, NUM_RESERVED_IDS, Anneal, Estimator, GanLoss, GumbelFeed,
                   ModelConfig, ModelKind, OptimizerConfig, OptimizerKind, Phase, SampleOptions,
                   TokenizerOptions, TrainerConfig, Utf8Policy, _raw, library_path)
from ._loader import EXPECTED_MAJOR
from .errors import *  # noqa: F401,F403 - the exception classes
from .metrics import bleu, nll_oracle, self_bleu
from .model import Model
from .optimizer import Optimizer
from .tokenizer import Tokenizer
from .trainer import Progress, Trainer

#: The version of these bindings (the libchargan release they belong to).
__version__ = "0.1.0"

GENERATOR = ModelKind.GENERATOR
DISCRIMINATOR = ModelKind.DISCRIMINATOR


def version():
    """The loaded library's version string, e.g. "0.1.0"."""
    return _raw.chargan_version().decode("ascii")


def version_number():
    """The loaded library's MAJOR*10000 + MINOR*100 + PATCH."""
    return _raw.chargan_version_number()


def strerror(status):
    """The library's name for a status code."""
    return errors._strerror(status)


def last_error():
    """The calling thread's most recent failure message ("" if none)."""
    return (_raw.chargan_last_error() or b"").decode("utf-8", "replace")


__all__ = [
    "Tokenizer", "Model", "Optimizer", "Trainer", "Progress",
    "TokenizerOptions", "ModelConfig", "SampleOptions", "OptimizerConfig", "TrainerConfig",
    "ModelKind", "OptimizerKind", "Estimator", "GanLoss", "Anneal", "GumbelFeed", "Phase",
    "Utf8Policy",
    "GENERATOR", "DISCRIMINATOR", "ID_START", "ID_UNKNOWN", "NUM_RESERVED_IDS",
    "bleu", "self_bleu", "nll_oracle",
    "version", "version_number", "strerror", "last_error", "library_path", "EXPECTED_MAJOR",
] + errors.__all__
