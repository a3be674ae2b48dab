"""Text-GAN metrics: BLEU and self-BLEU (Texygen's protocol) and NLL-oracle.
The model-bound ones are Model.stream_nll() and Trainer.eval_discriminator().
"""

from ctypes import byref, c_char_p, c_double, c_uint32

from . import errors
from ._ffi import _F, check_int
from ._handle import text_bytes
from .model import Model, sample_options

__all__ = ["bleu", "self_bleu", "nll_oracle"]


def _texts(texts, what):
    if isinstance(texts, (str, bytes, bytearray)):
        # one text would be scored as one hypothesis per character
        raise TypeError("%s must be a list of texts, not a single %s" % (what, type(texts).__name__))
    encoded = []
    for i, t in enumerate(texts):
        b = text_bytes(t, "%s[%d]" % (what, i))
        if b"\0" in b:
            raise errors.InvalidArgument("%s[%d] contains a NUL character" % (what, i))
        encoded.append(b)
    return (c_char_p * max(len(encoded), 1))(*encoded), len(encoded)


def _scores(max_n, values):
    return {n: values[n - 2] for n in range(2, max_n + 1)}


def _scores_buffer(max_n):
    """Room for the max_n - 1 scores, but no more than a max_n far above the
    library's (8) asks for: it refuses such a max_n before writing any, and
    100 million of them cost 763 MiB first."""
    return (c_double * max(min(max_n - 1, 256), 1))()


def bleu(hypotheses, references, max_n=4):
    """Corpus BLEU-2..BLEU-max_n of hypotheses against all references (lists
    of str): {n: score}."""
    max_n = check_int(max_n, c_uint32, "max_n")
    hyp, n_hyp = _texts(hypotheses, "hypotheses")
    ref, n_ref = _texts(references, "references")
    out = _scores_buffer(max_n)
    _F.chargan_bleu(hyp, n_hyp, ref, n_ref, max_n, out)
    return _scores(max_n, out)


def self_bleu(texts, max_n=4):
    """Self-BLEU-2..max_n of texts (each against all the others): {n: score}."""
    max_n = check_int(max_n, c_uint32, "max_n")
    arr, n = _texts(texts, "texts")
    out = _scores_buffer(max_n)
    _F.chargan_self_bleu(arr, n, max_n, out)
    return _scores(max_n, out)


def nll_oracle(generator, oracle, options=None, **fields):
    """NLL-oracle: the mean per-token NLL oracle gives to sequences sampled
    from generator (SampleOptions fields: n_streams sequences of length)."""
    if not isinstance(generator, Model) or not isinstance(oracle, Model):
        raise TypeError("nll_oracle() takes two chargan.Model objects")
    opts = sample_options(options, fields)
    out = c_double()
    _F.chargan_nll_oracle(generator._h, oracle._h, byref(opts), byref(out))
    return out.value
