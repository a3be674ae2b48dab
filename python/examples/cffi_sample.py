#!/usr/bin/env python3
"""Train a tiny generator for a few steps and sample from it through cffi in
ABI mode: no compiler, no chargan package, only the declarations this script
uses (copied from chargan.h; in ABI mode struct layouts must be spelled out
exactly).  Loads libchargan.so.0 through the system loader, or the library
named by CHARGAN_LIBRARY.

Usage: cffi_sample.py CORPUS [STEPS]   (Debian: apt-get install python3-cffi)
"""

import os
import sys

try:
    from cffi import FFI
except ImportError:
    print("cffi is not installed (Debian: apt-get install python3-cffi); skipping")
    sys.exit(77)  # meson's "skipped"

ffi = FFI()
ffi.cdef("""
typedef int chargan_status;
typedef struct chargan_tokenizer chargan_tokenizer;
typedef struct chargan_model chargan_model;
typedef struct chargan_optimizer chargan_optimizer;
typedef struct chargan_trainer chargan_trainer;
typedef struct chargan_tokenizer_options chargan_tokenizer_options;

typedef struct chargan_model_config {
    size_t struct_size; int32_t kind; uint32_t vocab_size, embed_dim, hidden_dim, num_layers,
    noise_dim; int32_t start_id; float forget_bias, recurrent_dropout, init_scale; uint64_t seed;
} chargan_model_config;
typedef struct chargan_trainer_config {
    size_t struct_size; uint32_t batch, seq_len; float val_fraction; uint64_t seed;
    uint32_t threads, report_every, val_every; int32_t estimator; uint32_t d_steps;
    float gamma, baseline_decay; uint32_t rollouts; float mle_weight, beta_max;
    int32_t anneal; uint32_t anneal_steps; int32_t gan_loss; float beta_start;
    int32_t gumbel_feed;
} chargan_trainer_config;
typedef struct chargan_sample_options {
    size_t struct_size; uint32_t n_streams, length; float temperature; uint32_t top_k;
    float top_p; uint64_t seed; int allow_reserved; uint32_t threads;
} chargan_sample_options;

const char *chargan_version(void);
const char *chargan_strerror(chargan_status status);
const char *chargan_last_error(void);
void chargan_free(void *ptr);
chargan_status chargan_tokenizer_new(const chargan_tokenizer_options *opts, chargan_tokenizer **out);
chargan_status chargan_tokenizer_fit(chargan_tokenizer *tok, const char *text, size_t len);
chargan_status chargan_tokenizer_vocab_size(const chargan_tokenizer *tok, uint32_t *size);
void chargan_tokenizer_free(chargan_tokenizer *tok);
chargan_status chargan_model_config_init_sized(chargan_model_config *cfg, size_t size, int kind);
chargan_status chargan_model_new(const chargan_model_config *cfg, chargan_model **out);
chargan_status chargan_model_set_tokenizer(chargan_model *model, const chargan_tokenizer *tok);
void chargan_model_free(chargan_model *model);
chargan_status chargan_trainer_config_init_sized(chargan_trainer_config *cfg, size_t size);
chargan_status chargan_trainer_new(const chargan_trainer_config *cfg, chargan_model *generator,
                                   chargan_optimizer *g_opt, chargan_model *discriminator,
                                   chargan_optimizer *d_opt, chargan_trainer **out);
chargan_status chargan_trainer_set_corpus_text(chargan_trainer *tr, const char *text, size_t len);
chargan_status chargan_trainer_mle_step(chargan_trainer *tr, float *loss);
chargan_status chargan_trainer_evaluate(chargan_trainer *tr, double *nll, double *bpc);
void chargan_trainer_free(chargan_trainer *tr);
chargan_status chargan_sample_options_init_sized(chargan_sample_options *opts, size_t size);
chargan_status chargan_model_sample_text(chargan_model *model, const chargan_sample_options *opts,
                                         const char *prime, char **text);
""")
lib = ffi.dlopen(os.environ.get("CHARGAN_LIBRARY") or "libchargan.so.0")


def check(status):
    if status != 0:
        raise RuntimeError("%s: %s" % (ffi.string(lib.chargan_strerror(status)).decode(),
                                       ffi.string(lib.chargan_last_error()).decode()))


def new(ctype):
    """A zeroed struct and its size, for the _init_sized call that fills it
    with the library's defaults (what the _init macros do in C)."""
    return ffi.new(ctype + " *"), ffi.sizeof(ctype)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: cffi_sample.py CORPUS [STEPS]")
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with open(sys.argv[1], "rb") as f:
        text = f.read(16384)
    print("libchargan", ffi.string(lib.chargan_version()).decode())

    tok = ffi.new("chargan_tokenizer **")
    check(lib.chargan_tokenizer_new(ffi.NULL, tok))
    tok = ffi.gc(tok[0], lib.chargan_tokenizer_free)
    check(lib.chargan_tokenizer_fit(tok, text, len(text)))

    mc, size = new("chargan_model_config")
    check(lib.chargan_model_config_init_sized(mc, size, 0))  # 0: CHARGAN_GENERATOR
    check(lib.chargan_tokenizer_vocab_size(tok, ffi.addressof(mc[0], "vocab_size")))
    mc.embed_dim, mc.hidden_dim = 16, 32
    gen = ffi.new("chargan_model **")
    check(lib.chargan_model_new(mc, gen))
    check(lib.chargan_model_set_tokenizer(gen[0], tok))  # the model keeps a copy

    tc, size = new("chargan_trainer_config")
    check(lib.chargan_trainer_config_init_sized(tc, size))
    tc.batch, tc.seq_len = 8, 24
    tr = ffi.new("chargan_trainer **")
    status = lib.chargan_trainer_new(tc, gen[0], ffi.NULL, ffi.NULL, ffi.NULL, tr)
    if status != 0:
        lib.chargan_model_free(gen[0])  # not adopted on failure
        check(status)
    # The trainer owns the generator now: free only the trainer.
    tr = ffi.gc(tr[0], lib.chargan_trainer_free)
    model = gen[0]

    check(lib.chargan_trainer_set_corpus_text(tr, text, len(text)))
    loss = ffi.new("float *")
    for step in range(1, steps + 1):
        check(lib.chargan_trainer_mle_step(tr, loss))
        if step % 5 == 0 or step == steps:
            print("step %3d  loss %.3f" % (step, loss[0]))
    nll, bpc = ffi.new("double *"), ffi.new("double *")
    check(lib.chargan_trainer_evaluate(tr, nll, bpc))
    print("validation %.3f bits/char" % bpc[0])

    so, size = new("chargan_sample_options")
    check(lib.chargan_sample_options_init_sized(so, size))
    so.length, so.temperature, so.seed = 120, 0.8, 7
    out = ffi.new("char **")
    check(lib.chargan_model_sample_text(model, so, b"Shall I", out))
    try:
        print(ffi.string(out[0]).decode("utf-8"))
    finally:
        lib.chargan_free(out[0])


if __name__ == "__main__":
    main()
