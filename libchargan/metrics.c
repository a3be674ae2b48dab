/* metrics.c - how generators are measured: held-out NLL of one long stream
 * (bits per character as char-RNN work reports it), NLL-oracle (SeqGAN's
 * synthetic protocol), and BLEU / self-BLEU of generated text (Texygen's
 * protocol, matching nltk's sentence_bleu with smoothing method 1). */
#include "infer.h"
#include "model.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== stepped scoring */

/* Scores rows of ids one step at a time from the zero-noise state, in
 * O(rows) memory whatever their length: chargan_model_nll's long sequences
 * and chargan_model_stream_nll's streams. */
typedef struct stepped_scorer {
    cg_infer_state is;
    int32_t *targets;
} stepped_scorer;

static bool scorer_init(stepped_scorer *sc, chargan_model *m, int rows)
{
    sc->targets = cg_malloc((size_t)rows * sizeof(int32_t));
    if (!sc->targets || !cg_infer_alloc(&sc->is, m, rows, NULL)) {
        cg_free(sc->targets);
        return false;
    }
    cg_infer_prepare(&sc->is, m);
    return true;
}

static void scorer_free(stepped_scorer *sc, chargan_model *m)
{
    cg_infer_free(&sc->is, m);
    cg_free(sc->targets);
}

/* The summed NLL of rows rows (at most the scorer's), row b's ids starting
 * at ids + b * stride: its targets are the steps ids after its first shift
 * ids (shift 1: the row's first id is only read), each read after the id
 * before it, or after the start id for a row's first id (shift 0). */
static double scorer_sum(stepped_scorer *sc, chargan_model *m, const int32_t *ids, size_t stride,
                         size_t rows, size_t steps, size_t shift)
{
    sc->is.B = (int)rows;
    cg_infer_begin(&sc->is, m, NULL);
    double total = 0.0;
    for (size_t t = 0; t < steps; t++) {
        for (size_t b = 0; b < rows; b++) {
            const size_t y = b * stride + t + shift;
            sc->targets[b] = ids[y];
            sc->is.ids[b] = t + shift == 0 ? m->cfg.start_id : ids[y - 1];
        }
        cg_infer_step(&sc->is, m);
        total += cg_softmax_xent(sc->is.logits, rows, m->V, sc->targets, NULL, 0.0f, NULL);
    }
    return total;
}

/* ================================================================== NLL of sequences */

/* The windowed forward keeps every step's activations (for a backward pass
 * it does not need here): above this many bytes for one chunk of sequences
 * the sequences are stepped instead, in O(rows) memory whatever their
 * length (a sequence of 10^6 ids at H = 256 took 6.4 GB). */
size_t cg_nll_window_budget = (size_t)256 << 20;

/* About what a chunk of rows windows of T steps reserves: per token and
 * layer the gates, h, c (and a dropout mask), then the logits, embeddings,
 * input gradients and ids. */
static double window_bytes(const chargan_model *m, size_t T, size_t rows)
{
    double per_token = (double)m->L * 7.0 * m->H + m->V + 2.0 * (m->E > m->H ? m->E : m->H) + 2.0;
    return 4.0 * per_token * (double)T * (double)rows;
}

chargan_status chargan_model_nll(chargan_model *m, const int32_t *ids, size_t n_seq,
                                 size_t seq_len, double *nll)
{
    if (!m || !ids || !nll)
        return cg_fail(m ? &m->err : NULL, CHARGAN_E_INVALID, "chargan_model_nll: NULL argument");
    if (m->cfg.kind != CHARGAN_GENERATOR)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "chargan_model_nll: not a generator");
    if (n_seq == 0 || seq_len == 0 || seq_len > 1000000 || n_seq > SIZE_MAX / (seq_len + 1))
        return cg_fail(&m->err, CHARGAN_E_INVALID, "chargan_model_nll: %zu sequences of length %zu",
                       n_seq, seq_len);
    chargan_status st = cg_check_ids(&m->err, ids, n_seq * seq_len, m->V);
    if (st != CHARGAN_OK)
        return st;
    /* Chunks of up to 64 sequences, each row prefixed by the start id;
     * fewer where 64 would not fit the budget, and stepped where one would
     * not. */
    int T = (int)seq_len;
    const double budget = (double)cg_nll_window_budget;
    const bool stepped = window_bytes(m, seq_len, 1) > budget;
    int B = n_seq < 64 ? (int)n_seq : 64;
    while (!stepped && B > 1 && window_bytes(m, seq_len, (size_t)B) > budget)
        B /= 2;
    int32_t *windows = NULL;
    stepped_scorer sc;
    if (stepped ? !scorer_init(&sc, m, B)
                : !(windows = cg_malloc((size_t)B * (T + 1) * sizeof(int32_t))))
        return cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory in chargan_model_nll");
    double total = 0.0;
    for (size_t s = 0; s < n_seq; s += (size_t)B) {
        int rows = (int)(n_seq - s < (size_t)B ? n_seq - s : (size_t)B);
        if (stepped) {
            total += scorer_sum(&sc, m, ids + s * seq_len, seq_len, (size_t)rows, seq_len, 0);
            continue;
        }
        for (int b = 0; b < rows; b++) {
            windows[(size_t)b * (T + 1)] = m->cfg.start_id;
            memcpy(windows + (size_t)b * (T + 1) + 1, ids + (s + b) * seq_len,
                   seq_len * sizeof(int32_t));
        }
        double part;
        if ((st = cg_model_window_nll(m, windows, rows, T, &part)) != CHARGAN_OK)
            break;
        total += part;
    }
    if (stepped)
        scorer_free(&sc, m);
    cg_free(windows);
    if (st != CHARGAN_OK)
        return st;
    const double mean = total / ((double)n_seq * seq_len);
    if (!isfinite(mean)) /* parameters so large that the activations overflow */
        return cg_fail(&m->err, CHARGAN_E_NUMERIC, "chargan_model_nll: the NLL is not finite");
    *nll = mean;
    return CHARGAN_OK;
}

/* ================================================================== stream NLL */

/* Streams stepped together.  Streams are independent, so a bounded group
 * keeps memory at G x V logits whatever n_streams is. */
#define CG_STREAM_GROUP 256

/* Stream s reads x = ids[s*L .. s*L+L-1] and predicts y = ids[s*L+1 .. s*L+L]
 * with L = (n - 1) / n_streams, its state carried over all L steps: exactly
 * the split of the PyTorch peer's eval_bpc_stateful (xs = val[:S*L].view(S, L),
 * ys = val[1:S*L+1].view(S, L)), so the two report the same bits/char.  The
 * last (n - 1) % n_streams ids are not read. */
chargan_status chargan_model_stream_nll(chargan_model *m, const int32_t *ids, size_t n,
                                        uint32_t n_streams, double *nll)
{
    if (!m || !ids || !nll)
        return cg_fail(m ? &m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_stream_nll: NULL argument");
    if (m->cfg.kind != CHARGAN_GENERATOR)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "chargan_model_stream_nll: not a generator");
    if (n_streams == 0 || n / 2 < n_streams)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "chargan_model_stream_nll: %zu ids cannot "
                       "feed %u streams (need n_streams >= 1 and n >= 2 * n_streams)", n,
                       n_streams);
    chargan_status st = cg_check_ids(&m->err, ids, n, m->V);
    if (st != CHARGAN_OK)
        return st;
    size_t L = (n - 1) / n_streams;
    int G = n_streams < CG_STREAM_GROUP ? (int)n_streams : CG_STREAM_GROUP;
    stepped_scorer sc;
    if (!scorer_init(&sc, m, G))
        return cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory scoring %u streams", n_streams);
    double total = 0.0;
    for (size_t s0 = 0; s0 < n_streams; s0 += (size_t)G) {
        size_t rows = n_streams - s0 < (size_t)G ? n_streams - s0 : (size_t)G;
        total += scorer_sum(&sc, m, ids + s0 * L, L, rows, L, 1); /* the last group may be smaller */
    }
    scorer_free(&sc, m);
    const double mean = total / ((double)n_streams * (double)L);
    if (!isfinite(mean)) /* as chargan_model_nll */
        return cg_fail(&m->err, CHARGAN_E_NUMERIC, "chargan_model_stream_nll: the NLL is not "
                       "finite");
    *nll = mean;
    return CHARGAN_OK;
}

/* ================================================================== NLL-oracle */

/* As check_sample_args in sample.c: sampling rejects more. */
#define CG_ORACLE_MAX_TOKENS ((size_t)1 << 28)

chargan_status chargan_nll_oracle(chargan_model *g, chargan_model *oracle,
                                  const chargan_sample_options *opts, double *nll)
{
    if (!g || !oracle || !opts || !nll)
        return cg_fail(g ? &g->err : NULL, CHARGAN_E_INVALID, "chargan_nll_oracle: NULL argument");
    if (cg_check_struct_size(&g->err, opts, sizeof *opts, sizeof *opts, "chargan_nll_oracle",
                             "opts", "chargan_sample_options_init") != CHARGAN_OK)
        return CHARGAN_E_INVALID;
    if (g->V != oracle->V)
        return cg_fail(&g->err, CHARGAN_E_INVALID, "chargan_nll_oracle: the generator has %d ids "
                       "and the oracle %d: the vocabularies differ", g->V, oracle->V);
    size_t need;
    if (opts->n_streams == 0 || opts->length == 0 ||
        !cg_mul_size(opts->n_streams, opts->length, &need) || need > CG_ORACLE_MAX_TOKENS)
        return cg_fail(&g->err, CHARGAN_E_INVALID, "chargan_nll_oracle: %u streams of %u tokens "
                       "(each must be >= 1, at most %zu tokens in all)", opts->n_streams,
                       opts->length, CG_ORACLE_MAX_TOKENS);
    int32_t *ids = cg_malloc(need * sizeof(int32_t));
    if (!ids)
        return cg_fail(&g->err, CHARGAN_E_NOMEM, "chargan_nll_oracle: out of memory for %zu "
                       "samples", need);
    chargan_status st = chargan_model_sample_ids(g, opts, NULL, 0, ids, need);
    if (st == CHARGAN_OK) {
        st = chargan_model_nll(oracle, ids, opts->n_streams, opts->length, nll);
        if (st != CHARGAN_OK) /* recorded on the oracle; the generator's handle learns it too */
            cg_fail_from(&g->err, st, "chargan_nll_oracle: scoring with the oracle: ");
    }
    cg_free(ids);
    return st;
}

/* ================================================================== BLEU */

/*
 * Sentence BLEU as nltk 3.8 computes it (sentence_bleu with uniform weights
 * and SmoothingFunction().method1), averaged over hypotheses as Texygen does:
 *   p_k = clipped k-gram matches / max(1, hypothesis k-grams), where a k-gram's
 *         count is clipped to its largest count in any one reference;
 *         a zero match count becomes 0.1 (method 1, epsilon 0.1);
 *   BP  = 1 if h > r, else exp(1 - r / h), r the reference length closest to
 *         the hypothesis length h (ties: the shorter);
 *   BLEU-n = BP * exp(sum_{k=1..n} log(p_k) / n), and 0 when no unigram
 *         matches at all (nltk returns 0 before smoothing; an empty
 *         hypothesis is such a case).
 *
 * The references are the same for every hypothesis, so for each order k one
 * hash table holds every reference k-gram with its largest count over the
 * references, and the second largest with the reference giving the largest:
 * self-BLEU then excludes hypothesis i from its own references in O(1)
 * (max over others = arg1 == i ? max2 : max1).  The work is linear in the
 * number of words times max_n.  Words are interned to integer ids first so
 * k-grams compare as short integer arrays.
 */

#define CG_BLEU_MAX_N 8u
#define CG_NONE UINT32_MAX

static bool is_space(unsigned char c)
{
    /* The C locale's isspace, fixed so the locale cannot change it (and
     * Python's bytes.split() splits on exactly these). */
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit reaches every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t table_capacity(size_t n)
{
    /* a power of two at least twice n: open addressing stays short */
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

/* All texts as word-id sequences: text i is ids[start[i] .. start[i+1]). */
typedef struct bleu_corpus {
    size_t n_texts;
    size_t *start;
    int32_t *ids;
} bleu_corpus;

/* One k-gram of the references (k fixed per pass). */
typedef struct ngram_entry {
    uint32_t pos;          /* where its first occurrence starts in corpus ids */
    uint32_t max1, max2;   /* largest and second largest count over references */
    uint32_t arg1;         /* the reference with max1 */
    uint32_t cur_ref, cur; /* counting inside the reference being read */
    uint32_t hyp, hyp_cnt; /* counting inside the hypothesis being scored */
} ngram_entry;

/* Everything one BLEU computation holds; allocated once, freed once. */
typedef struct bleu_work {
    bleu_corpus c;
    uint32_t *slots;       /* hash slots: entry index or CG_NONE */
    size_t cap;            /* slots, a power of two */
    ngram_entry *entries;
    size_t n_entries;
    uint32_t *matches;     /* n_hyp x max_n clipped match counts */
    size_t *ref_len;       /* distinct reference lengths, increasing */
    size_t *ref_len_count; /* how many references have each */
    size_t n_ref_len;
} bleu_work;

static const char *text_at(const char *const *a, size_t n_a, const char *const *b, size_t i)
{
    return i < n_a ? a[i] : b[i - n_a];
}

/* Interns the words of n texts (a then b) into c; words are maximal runs of
 * non-space bytes. */
static chargan_status tokenize(bleu_corpus *c, const char *const *a, size_t n_a,
                               const char *const *b, size_t n_b, const char *fn)
{
    size_t n = n_a + n_b, words = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = text_at(a, n_a, b, i);
        for (size_t j = 0; s[j]; j++)
            words += !is_space((unsigned char)s[j]) &&
                     (j == 0 || is_space((unsigned char)s[j - 1]));
    }
    if (words > INT32_MAX) /* word ids are int32_t */
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: %zu words, at most %d supported", fn, words,
                       INT32_MAX);
    c->n_texts = n;
    c->start = cg_malloc((n + 1) * sizeof(size_t));
    c->ids = cg_malloc((words ? words : 1) * sizeof(int32_t));
    /* the word table: slots hold a word's id; word id w starts at word_at[w] */
    size_t cap = table_capacity(words);
    int32_t *slots = cg_malloc(cap * sizeof(int32_t));
    const char **word_at = cg_malloc((words ? words : 1) * sizeof(const char *));
    size_t *word_len = cg_malloc((words ? words : 1) * sizeof(size_t));
    if (!c->start || !c->ids || !slots || !word_at || !word_len) {
        cg_free(slots);
        cg_free(word_at);
        cg_free(word_len);
        return cg_fail(NULL, CHARGAN_E_NOMEM, "%s: out of memory for %zu words", fn, words);
    }
    memset(slots, 0xff, cap * sizeof(int32_t));
    size_t k = 0, n_words = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = text_at(a, n_a, b, i);
        c->start[i] = k;
        size_t j = 0;
        for (;;) {
            while (s[j] && is_space((unsigned char)s[j]))
                j++;
            if (!s[j])
                break;
            const char *w = s + j;
            uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
            size_t len = 0;
            for (; w[len] && !is_space((unsigned char)w[len]); len++)
                h = (h ^ (unsigned char)w[len]) * 0x100000001b3ULL;
            j += len;
            size_t slot = (size_t)mix64(h) & (cap - 1);
            while (slots[slot] >= 0) {
                int32_t id = slots[slot];
                if (word_len[id] == len && memcmp(word_at[id], w, len) == 0)
                    break;
                slot = (slot + 1) & (cap - 1);
            }
            if (slots[slot] < 0) {
                slots[slot] = (int32_t)n_words;
                word_at[n_words] = w;
                word_len[n_words] = len;
                n_words++;
            }
            c->ids[k++] = slots[slot];
        }
    }
    c->start[n] = k;
    cg_free(slots);
    cg_free(word_at);
    cg_free(word_len);
    return CHARGAN_OK;
}

static size_t text_len(const bleu_corpus *c, size_t i)
{
    return c->start[i + 1] - c->start[i];
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The reference length closest to h (ties: the shorter), leaving out one
 * reference of length skip (CG_NONE-like SIZE_MAX: none). */
static size_t closest_length(const bleu_work *w, size_t h, size_t skip)
{
    size_t lo = 0, hi = w->n_ref_len;
    while (lo < hi) { /* first distinct length >= h */
        size_t mid = lo + (hi - lo) / 2;
        if (w->ref_len[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t best = SIZE_MAX, best_d = SIZE_MAX;
    /* at most one length is unavailable, so two candidates each side suffice */
    for (size_t i = lo >= 2 ? lo - 2 : 0; i < lo + 2 && i < w->n_ref_len; i++) {
        size_t len = w->ref_len[i];
        if (len == skip && w->ref_len_count[i] == 1)
            continue;
        size_t d = len > h ? len - h : h - len;
        if (d < best_d || (d == best_d && len < best)) {
            best = len;
            best_d = d;
        }
    }
    return best;
}

static uint64_t ngram_hash(const int32_t *ids, uint32_t k)
{
    uint64_t h = k;
    for (uint32_t j = 0; j < k; j++)
        h = mix64(h ^ (uint32_t)ids[j]);
    return h;
}

/* The slot holding the k-gram at ids (its entry index, or CG_NONE if empty). */
static size_t find_slot(const bleu_work *w, const int32_t *ids, uint32_t k)
{
    size_t slot = (size_t)ngram_hash(ids, k) & (w->cap - 1);
    for (;;) {
        uint32_t e = w->slots[slot];
        if (e == CG_NONE ||
            memcmp(w->c.ids + w->entries[e].pos, ids, k * sizeof(int32_t)) == 0)
            return slot;
        slot = (slot + 1) & (w->cap - 1);
    }
}

/* Builds the table of k-grams of references 0 .. n_ref-1 with their top-2 counts. */
static void count_references(bleu_work *w, size_t n_ref, uint32_t k)
{
    memset(w->slots, 0xff, w->cap * sizeof(uint32_t));
    w->n_entries = 0;
    for (size_t r = 0; r < n_ref; r++) {
        size_t len = text_len(&w->c, r);
        for (size_t p = w->c.start[r]; len >= k && p + k <= w->c.start[r] + len; p++) {
            const int32_t *g = w->c.ids + p;
            size_t slot = find_slot(w, g, k);
            ngram_entry *e;
            if (w->slots[slot] == CG_NONE) {
                w->slots[slot] = (uint32_t)w->n_entries;
                e = &w->entries[w->n_entries++];
                *e = (ngram_entry){.pos = (uint32_t)p, .arg1 = CG_NONE, .cur_ref = CG_NONE,
                                   .hyp = CG_NONE};
            } else {
                e = &w->entries[w->slots[slot]];
            }
            if (e->cur_ref != (uint32_t)r) {
                e->cur_ref = (uint32_t)r;
                e->cur = 0;
            }
            e->cur++;
            /* Top two over distinct references: r's own running count only
             * ever replaces r's earlier value. */
            if (e->arg1 == (uint32_t)r) {
                e->max1 = e->cur;
            } else if (e->cur > e->max1) {
                e->max2 = e->max1;
                e->max1 = e->cur;
                e->arg1 = (uint32_t)r;
            } else if (e->cur > e->max2) {
                e->max2 = e->cur;
            }
        }
    }
}

/* Clipped k-gram matches of text i (hypothesis number hyp) against the table;
 * self: text i is a reference too, and is left out. */
static uint32_t count_matches(bleu_work *w, size_t i, uint32_t hyp, uint32_t k, bool self)
{
    size_t len = text_len(&w->c, i);
    uint32_t matches = 0;
    for (size_t p = w->c.start[i]; len >= k && p + k <= w->c.start[i] + len; p++) {
        size_t slot = find_slot(w, w->c.ids + p, k);
        if (w->slots[slot] == CG_NONE)
            continue;
        ngram_entry *e = &w->entries[w->slots[slot]];
        if (e->hyp != hyp) {
            e->hyp = hyp;
            e->hyp_cnt = 0;
        }
        e->hyp_cnt++;
        uint32_t limit = self && e->arg1 == (uint32_t)i ? e->max2 : e->max1;
        matches += e->hyp_cnt <= limit; /* sum of min(count, limit) */
    }
    return matches;
}

static void bleu_work_free(bleu_work *w)
{
    cg_free(w->c.start);
    cg_free(w->c.ids);
    cg_free(w->slots);
    cg_free(w->entries);
    cg_free(w->matches);
    cg_free(w->ref_len);
    cg_free(w->ref_len_count);
}

/* References are texts 0 .. n_ref-1; hypotheses are texts n_ref .. n_ref+n_hyp-1,
 * or (self) the references themselves. */
static chargan_status bleu_core(const char *const *refs, size_t n_ref, const char *const *hyps,
                                size_t n_hyp, uint32_t max_n, double *bleu, const char *fn)
{
    bool self = hyps == NULL;
    size_t n_texts = self ? n_ref : n_ref + n_hyp;
    if (n_texts >= CG_NONE || n_hyp > SIZE_MAX / (CG_BLEU_MAX_N * sizeof(uint32_t)))
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: %zu texts, at most %u supported", fn,
                       n_texts, CG_NONE - 1);
    bleu_work w;
    memset(&w, 0, sizeof w);
    chargan_status st = tokenize(&w.c, refs, n_ref, hyps, self ? 0 : n_hyp, fn);
    if (st != CHARGAN_OK) {
        bleu_work_free(&w);
        return st;
    }
    size_t ref_words = w.c.start[n_ref];
    w.cap = table_capacity(ref_words);
    w.slots = cg_malloc(w.cap * sizeof(uint32_t));
    w.entries = cg_malloc((ref_words ? ref_words : 1) * sizeof(ngram_entry));
    w.matches = cg_malloc(n_hyp * max_n * sizeof(uint32_t));
    w.ref_len = cg_malloc(n_ref * sizeof(size_t));
    w.ref_len_count = cg_malloc(n_ref * sizeof(size_t));
    if (!w.slots || !w.entries || !w.matches || !w.ref_len || !w.ref_len_count) {
        bleu_work_free(&w);
        return cg_fail(NULL, CHARGAN_E_NOMEM, "%s: out of memory for %zu reference words", fn,
                       ref_words);
    }

    /* distinct reference lengths with their multiplicities */
    for (size_t r = 0; r < n_ref; r++)
        w.ref_len[r] = text_len(&w.c, r);
    qsort(w.ref_len, n_ref, sizeof(size_t), cmp_size);
    for (size_t r = 0; r < n_ref; r++) {
        if (w.n_ref_len > 0 && w.ref_len[w.n_ref_len - 1] == w.ref_len[r]) {
            w.ref_len_count[w.n_ref_len - 1]++;
        } else {
            w.ref_len[w.n_ref_len] = w.ref_len[r];
            w.ref_len_count[w.n_ref_len++] = 1;
        }
    }

    /* one order at a time: the table never holds more entries than reference words */
    for (uint32_t k = 1; k <= max_n; k++) {
        count_references(&w, n_ref, k);
        for (size_t i = 0; i < n_hyp; i++)
            w.matches[i * max_n + (k - 1)] =
                count_matches(&w, self ? i : n_ref + i, (uint32_t)i, k, self);
    }

    double sum[CG_BLEU_MAX_N] = {0};
    for (size_t i = 0; i < n_hyp; i++) {
        const uint32_t *m = w.matches + i * max_n;
        if (m[0] == 0)
            continue; /* nltk: no unigram match (or an empty hypothesis) scores 0 */
        size_t text = self ? i : n_ref + i;
        size_t h = text_len(&w.c, text);
        size_t r = closest_length(&w, h, self ? h : SIZE_MAX);
        double bp = h > r ? 1.0 : exp(1.0 - (double)r / (double)h);
        double log_p[CG_BLEU_MAX_N];
        for (uint32_t k = 1; k <= max_n; k++) {
            double den = h >= k ? (double)(h - k + 1) : 1.0;
            log_p[k - 1] = log(m[k - 1] ? (double)m[k - 1] / den : 0.1 / den);
        }
        for (uint32_t n = 2; n <= max_n; n++) {
            double wgt = 1.0 / n, s = 0.0;
            for (uint32_t k = 0; k < n; k++)
                s += wgt * log_p[k];
            sum[n - 2] += bp * exp(s);
        }
    }
    for (uint32_t n = 2; n <= max_n; n++)
        bleu[n - 2] = sum[n - 2] / (double)n_hyp;
    bleu_work_free(&w);
    return CHARGAN_OK;
}

static chargan_status check_texts(const char *const *texts, size_t n, const char *what,
                                  const char *fn)
{
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return cg_fail(NULL, CHARGAN_E_INVALID, "%s: %s[%zu] is NULL", fn, what, i);
    return CHARGAN_OK;
}

chargan_status chargan_bleu(const char *const *hypotheses, size_t n_hyp,
                            const char *const *references, size_t n_ref, uint32_t max_n,
                            double *bleu)
{
    static const char fn[] = "chargan_bleu";
    if (!hypotheses || !references || !bleu)
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: NULL argument", fn);
    if (n_hyp == 0 || n_ref == 0)
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: %zu hypotheses and %zu references (each "
                       "must be >= 1)", fn, n_hyp, n_ref);
    if (max_n < 2 || max_n > CG_BLEU_MAX_N)
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: max_n %u not in [2, %u]", fn, max_n,
                       CG_BLEU_MAX_N);
    chargan_status st = check_texts(hypotheses, n_hyp, "hypotheses", fn);
    if (st == CHARGAN_OK)
        st = check_texts(references, n_ref, "references", fn);
    if (st == CHARGAN_OK)
        st = bleu_core(references, n_ref, hypotheses, n_hyp, max_n, bleu, fn);
    return st;
}

chargan_status chargan_self_bleu(const char *const *texts, size_t n, uint32_t max_n, double *bleu)
{
    static const char fn[] = "chargan_self_bleu";
    if (!texts || !bleu)
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: NULL argument", fn);
    if (n < 2)
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: %zu texts (at least 2: each is scored "
                       "against the others)", fn, n);
    if (max_n < 2 || max_n > CG_BLEU_MAX_N)
        return cg_fail(NULL, CHARGAN_E_INVALID, "%s: max_n %u not in [2, %u]", fn, max_n,
                       CG_BLEU_MAX_N);
    chargan_status st = check_texts(texts, n, "texts", fn);
    if (st == CHARGAN_OK)
        st = bleu_core(texts, n, NULL, n, max_n, bleu, fn);
    return st;
}
