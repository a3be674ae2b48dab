/* sample.c - batched, seeded sampling from a generator: temperature,
 * top-k, top-p, a priming sequence; ids or UTF-8 text out. */
#include "infer.h"
#include "layers.h"
#include "model.h"
#include "pool.h"
#include "sample.h"
#include "tokenizer.h"
#include "vmath.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CG_MAX_SAMPLE_TOKENS ((size_t)1 << 28)
/* The most threads one sampling call uses (it may ask for CG_MAX_THREADS_ASKED). */
#define CG_MAX_SAMPLE_THREADS 64

static void sample_options_defaults(chargan_sample_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->n_streams = 1;
    opts->length = 256;
    opts->temperature = 1.0f;
    opts->top_k = 0;
    opts->top_p = 1.0f;
    opts->seed = 1;
    opts->allow_reserved = 0;
}

chargan_status chargan_sample_options_init_sized(chargan_sample_options *opts, size_t struct_size)
{
    chargan_sample_options defaults;
    sample_options_defaults(&defaults);
    return cg_init_struct(opts, struct_size, &defaults, sizeof defaults, sizeof defaults,
                          "chargan_sample_options_init");
}

/* The options' values, for a vocabulary of V ids. */
static chargan_status check_option_values(cg_error *err, int V, const chargan_sample_options *o)
{
    if (!(o->temperature > 0.0f) || !isfinite(o->temperature))
        return cg_fail(err, CHARGAN_E_INVALID, "sample options: temperature %g must be > 0",
                       (double)o->temperature);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return cg_fail(err, CHARGAN_E_INVALID, "sample options: top_p %g not in (0, 1]",
                       (double)o->top_p);
    if (!o->allow_reserved && V <= CHARGAN_NUM_RESERVED_IDS)
        return cg_fail(err, CHARGAN_E_INVALID, "sample options: the vocabulary (%d ids) has only "
                       "reserved ids and allow_reserved is 0", V);
    return CHARGAN_OK;
}

chargan_status cg_sampler_init(cg_sampler *s, cg_error *err, int V, const chargan_sample_options *o)
{
    memset(s, 0, sizeof *s);
    chargan_status st = check_option_values(err, V, o);
    if (st != CHARGAN_OK)
        return st;
    s->V = V;
    /* a subnormal temperature has an infinite reciprocal: FLT_MAX still
     * sends every non-maximal logit to probability 0 (see cg_sampler_draw) */
    s->inv_temperature = fminf(1.0f / o->temperature, FLT_MAX);
    s->top_k = o->top_k >= (uint32_t)V ? 0 : o->top_k;
    s->top_p = o->top_p;
    s->allow_reserved = o->allow_reserved != 0;
    s->prob = cg_alloc_floats((size_t)V);
    if (s->top_k || s->top_p < 1.0f)
        s->order = cg_malloc((size_t)V * sizeof(int32_t));
    if (!s->prob || ((s->top_k || s->top_p < 1.0f) && !s->order)) {
        cg_sampler_free(s);
        return cg_fail(err, CHARGAN_E_NOMEM, "out of memory for the sampler");
    }
    return CHARGAN_OK;
}

void cg_sampler_free(cg_sampler *s)
{
    cg_free_floats(s->prob);
    cg_free(s->order);
    s->prob = NULL;
    s->order = NULL;
}

/* The ranking of top-k and top-p: a larger probability first, ties by the
 * lower id (deterministic). */
static inline bool ranks_before(const float *p, int32_t i, int32_t j)
{
    return p[i] > p[j] || (p[i] == p[j] && i < j);
}

/* Restores the heap below pos: a binary heap of ids whose root ranks first. */
static void sift_down(int32_t *heap, int size, int pos, const float *p)
{
    const int32_t id = heap[pos];
    for (;;) {
        int child = 2 * pos + 1;
        if (child >= size)
            break;
        if (child + 1 < size && ranks_before(p, heap[child + 1], heap[child]))
            child++;
        if (!ranks_before(p, heap[child], id))
            break;
        heap[pos] = heap[child];
        pos = child;
    }
    heap[pos] = id;
}

/* Sums and the uniform in double: in float, a weight below half an ulp of
 * the running sum (6e-8 of the largest, a logit gap of 16.6 T nats) left the
 * sum unchanged, so such ids were never drawn and their mass fell through to
 * the last id (with 24-bit uniforms, too coarse for them anyway). */
static int32_t draw_from(const float *p, int V, double total, cg_rng *rng)
{
    double u = cg_rng_uniform_open(rng) * total;
    double acc = 0.0;
    int32_t last = -1;
    for (int i = 0; i < V; i++) {
        if (p[i] <= 0.0f)
            continue;
        acc += p[i];
        last = i;
        if (u < acc)
            return i;
    }
    return last; /* rounding: u landed on the total */
}

int32_t cg_sampler_draw(cg_sampler *s, const float *logits, cg_rng *rng)
{
    int V = s->V;
    float *p = s->prob;
    int first = s->allow_reserved ? 0 : CHARGAN_NUM_RESERVED_IDS;
    for (int i = 0; i < first; i++)
        p[i] = 0.0f;
    const int n = V - first;
    memcpy(p + first, logits + first, (size_t)n * sizeof(float));
    double total = cg_exp_shifted(p + first, (size_t)n, cg_row_max(p + first, (size_t)n),
                                  s->inv_temperature);
    /* Shifted by the maximum, finite logits sum to about 1 or more; NaN or
     * an infinity among them makes the sum NaN. */
    if (!(total > 0.0 && total <= FLT_MAX))
        s->not_finite = true;
    if (!s->order)
        return draw_from(p, V, total, rng);

    /* Only the ids kept are ranked: a heap of all (linear), then the best
     * taken one at a time until top_k or the mass top_p (a full sort of a
     * large vocabulary for every character cost 80 times the draw).  They
     * land at the array's end, best last; the heap left holds the rest. */
    int32_t *order = s->order;
    for (int i = 0; i < n; i++)
        order[i] = first + i;
    for (int i = n / 2 - 1; i >= 0; i--)
        sift_down(order, n, i, p);
    const int limit = s->top_k && (int)s->top_k < n ? (int)s->top_k : n;
    const double need = s->top_p < 1.0f ? s->top_p * total : INFINITY;
    double acc = 0.0;
    int left = n;
    while (n - left < limit) {
        const int32_t best = order[0];
        order[0] = order[--left];
        order[left] = best;
        sift_down(order, left, 0, p);
        acc += p[best];
        if (acc >= need) /* the smallest prefix of the ranking with mass >= top_p */
            break;
    }
    for (int i = 0; i < left; i++)
        p[order[i]] = 0.0f;
    return draw_from(p, V, acc, rng); /* acc: the kept mass, summed in rank order */
}

/* y[v] = logits[v] + g with g = -ln(-ln u) Gumbel(0, 1) noise, where y
 * holds the uniforms u on entry.  -ln u is in [6e-8, 16.7] for
 * cg_rng_uniform_openf's u: positive and normal, as cg_vlogf needs. */
CG_VECTOR_CLONES static void add_gumbel(float *restrict y, const float *restrict logits, int V)
{
    for (int v = 0; v < V; v++)
        y[v] = logits[v] - cg_vlogf(-cg_vlogf(y[v]));
}

int32_t cg_gumbel_argmax(float *y, const float *logits, int V, cg_rng *rng)
{
    for (int v = 0; v < V; v++)
        y[v] = cg_rng_uniform_openf(rng);
    add_gumbel(y, logits, V);
    int32_t best = 0;
    for (int v = 1; v < V; v++)
        best = y[v] > y[best] ? v : best;
    return best;
}

static chargan_status check_sample_args(chargan_model *m, const chargan_sample_options *opts,
                                        const char *fn)
{
    if (!opts)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "%s: NULL options", fn);
    if (cg_check_struct_size(&m->err, opts, sizeof *opts, sizeof *opts, fn, "opts",
                             "chargan_sample_options_init") != CHARGAN_OK)
        return CHARGAN_E_INVALID;
    if (m->cfg.kind != CHARGAN_GENERATOR)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "%s: the model is not a generator", fn);
    if (opts->n_streams == 0 || opts->n_streams > 65536)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "%s: n_streams %u not in [1, 65536]", fn,
                       opts->n_streams);
    if ((uint64_t)opts->n_streams * opts->length > CG_MAX_SAMPLE_TOKENS)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "%s: %u streams of %u tokens is too many", fn,
                       opts->n_streams, opts->length);
    if (opts->threads > CG_MAX_THREADS_ASKED)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "%s: threads %u not in [0, %d]", fn,
                       opts->threads, CG_MAX_THREADS_ASKED);
    /* here, not only when the samplers start: before the output's cap */
    return check_option_values(&m->err, m->V, opts);
}

/* One thread's share of a sampling call: streams first .. first + rows - 1,
 * each with its own RNG stream (seed, stream index), so which numbers a
 * stream draws does not depend on how the streams are split. */
typedef struct sample_shard {
    const chargan_model *m;
    cg_infer_state is;
    cg_sampler sampler;
    cg_rng *rng; /* rows RNGs */
    int first, rows;
} sample_shard;

/* What one sampling call asks for. */
typedef struct sample_call {
    chargan_model *m;
    const chargan_sample_options *opts;
    const int32_t *prime;
    size_t prime_len;
    int32_t *out;
    int n_ids; /* ids below this only */
} sample_call;

typedef struct sample_job {
    const sample_call *call;
    sample_shard *shards;
} sample_job;

/* One step of a thread's streams on ids; the logits land where the
 * sampling loop reads them. */
typedef void (*sample_step_fn)(void *ctx, const int32_t *ids);

/* A thread's sampling loop over B streams: the start id, the prime, then
 * length draws from the logits each step leaves, stream b from rng[b].  ids
 * (B) holds the next inputs; out (B x length) gets the draws unless NULL. */
static void sample_streams(const sample_call *call, int B, sample_step_fn step, void *ctx,
                           const float *logits, int32_t *ids, cg_rng *rng, cg_sampler *sampler,
                           int32_t *out)
{
    const int V = call->m->V;
    const size_t length = call->opts->length;
    for (int b = 0; b < B; b++)
        ids[b] = call->m->cfg.start_id;
    for (size_t i = 0; i < call->prime_len; i++) {
        step(ctx, ids);
        for (int b = 0; b < B; b++)
            ids[b] = call->prime[i];
    }
    for (size_t t = 0; t < length; t++) {
        step(ctx, ids);
        for (int b = 0; b < B; b++) {
            ids[b] = cg_sampler_draw(sampler, logits + (size_t)b * V, &rng[b]);
            if (out)
                out[(size_t)b * length + t] = ids[b];
        }
    }
}

/* cg_infer_step reads its own state's ids, which are the loop's. */
static void shard_step(void *ctx, const int32_t *ids)
{
    sample_shard *sh = ctx;
    (void)ids;
    cg_infer_step(&sh->is, sh->m);
}

static void sample_shard_run(void *ctx, int s)
{
    sample_job *job = ctx;
    const sample_call *call = job->call;
    sample_shard *sh = &job->shards[s];
    cg_infer_begin(&sh->is, call->m, sh->rng);
    sample_streams(call, sh->rows, shard_step, sh, sh->is.logits, sh->is.ids, sh->rng,
                   &sh->sampler, call->out + (size_t)sh->first * call->opts->length);
}

static void sample_shards_free(sample_shard *shards, int n, const chargan_model *m)
{
    for (int s = 0; s < n; s++) {
        cg_infer_free(&shards[s].is, m);
        cg_sampler_free(&shards[s].sampler);
    }
    cg_free(shards);
}

/* The RNG of each of the B streams: seed and the stream's index. */
static void seed_streams(cg_rng *rng, int B, uint64_t seed)
{
    for (int b = 0; b < B; b++)
        cg_rng_seed_stream(&rng[b], seed, (uint64_t)b);
}

/* A call whose draws met logits that were not finite. */
static chargan_status not_finite_error(chargan_model *m)
{
    return cg_fail(&m->err, CHARGAN_E_NUMERIC, "sampling: the model's logits are not finite "
                   "(its parameters overflow the activations)");
}

/* At least as many streams as threads: n contiguous shards of streams, each
 * stepping on its own thread from start to end, reading the parameters and
 * one input table. */
static chargan_status sample_sharded(const sample_call *call, int n)
{
    chargan_model *m = call->m;
    const chargan_sample_options *opts = call->opts;
    const int B = (int)opts->n_streams;
    sample_shard *shards = cg_calloc((size_t)n, sizeof *shards); /* zeroed: each frees safely */
    cg_rng *rng = cg_malloc((size_t)B * sizeof *rng);
    chargan_status st = shards && rng ? CHARGAN_OK : CHARGAN_E_NOMEM;
    for (int s = 0, first = 0; st == CHARGAN_OK && s < n; s++) {
        sample_shard *sh = &shards[s];
        sh->m = m;
        sh->first = first;
        sh->rows = B / n + (s < B % n);
        sh->rng = rng + first;
        first += sh->rows;
        st = cg_sampler_init(&sh->sampler, &m->err, call->n_ids, opts); /* reports its errors */
        if (st == CHARGAN_OK && !cg_infer_alloc(&sh->is, m, sh->rows, s > 0 ? &shards[0].is : NULL))
            st = CHARGAN_E_NOMEM;
    }
    cg_pool *pool = st == CHARGAN_OK && n > 1 ? cg_pool_new(n) : NULL;
    if (n > 1 && !pool && st == CHARGAN_OK)
        st = CHARGAN_E_NOMEM;
    if (st == CHARGAN_OK) {
        seed_streams(rng, B, opts->seed);
        cg_infer_prepare(&shards[0].is, m);
        sample_job job = {.call = call, .shards = shards};
        cg_pool_run(pool, sample_shard_run, &job);
        for (int s = 0; s < n; s++)
            if (shards[s].sampler.not_finite)
                st = CHARGAN_E_NUMERIC;
    }
    cg_pool_free(pool);
    if (shards)
        sample_shards_free(shards, n, m);
    cg_free(rng);
    if (st == CHARGAN_E_NOMEM)
        return cg_fail(&m->err, st, "out of memory sampling %d streams on %d threads", B, n);
    return st == CHARGAN_E_NUMERIC ? not_finite_error(m) : st;
}

/* Fewer streams than threads: all P threads step all streams together, each
 * computing a slice of every step (cg_infer_split).  Each thread draws the
 * next ids itself, from its own copy of the streams' RNGs and the shared
 * logits, so all threads agree on them without waiting for one another;
 * thread 0 writes the output. */
typedef struct split_job {
    const sample_call *call;
    cg_infer_split sp;
    cg_sampler *samplers; /* P */
    cg_rng *rng;          /* P x B: each thread's copy */
    int32_t *ids;         /* P x B: each thread's next inputs */
} split_job;

/* Thread s's position in a shared sampling call. */
typedef struct split_thread {
    split_job *job;
    int s;
    uint64_t t; /* steps taken */
} split_thread;

static void split_step(void *ctx, const int32_t *ids)
{
    split_thread *th = ctx;
    cg_infer_split_step(&th->job->sp, th->job->call->m, th->s, th->t++, ids);
}

static void sample_split_run(void *ctx, int s)
{
    split_job *job = ctx;
    const int B = job->sp.st.B;
    split_thread th = {.job = job, .s = s};
    sample_streams(job->call, B, split_step, &th, job->sp.st.logits, job->ids + (size_t)s * B,
                   job->rng + (size_t)s * B, &job->samplers[s], s == 0 ? job->call->out : NULL);
}

static void split_job_free(split_job *job, int P)
{
    for (int s = 0; job->samplers && s < P; s++)
        cg_sampler_free(&job->samplers[s]);
    cg_free(job->samplers);
    cg_free(job->rng);
    cg_free(job->ids);
    cg_infer_split_free(&job->sp, job->call->m);
}

static chargan_status sample_split(const sample_call *call, int P)
{
    chargan_model *m = call->m;
    const chargan_sample_options *opts = call->opts;
    const int B = (int)opts->n_streams;
    split_job job = {.call = call};
    job.samplers = cg_calloc((size_t)P, sizeof *job.samplers);
    job.rng = cg_malloc((size_t)P * B * sizeof *job.rng);
    job.ids = cg_malloc((size_t)P * B * sizeof *job.ids);
    chargan_status st = job.samplers && job.rng && job.ids && cg_infer_split_alloc(&job.sp, m, B, P)
                            ? CHARGAN_OK
                            : CHARGAN_E_NOMEM;
    for (int s = 0; st == CHARGAN_OK && s < P; s++)
        st = cg_sampler_init(&job.samplers[s], &m->err, call->n_ids, opts); /* reports its errors */
    cg_pool *pool = st == CHARGAN_OK ? cg_pool_new(P) : NULL;
    if (st == CHARGAN_OK && !pool)
        st = CHARGAN_E_NOMEM;
    if (st == CHARGAN_OK) {
        seed_streams(job.rng, B, opts->seed);
        cg_infer_prepare(&job.sp.st, m);
        cg_infer_begin(&job.sp.st, m, job.rng); /* the noise comes from thread 0's copies ... */
        for (int s = 1; s < P; s++)           /* ... which the others then take */
            memcpy(job.rng + (size_t)s * B, job.rng, (size_t)B * sizeof *job.rng);
        cg_pool_run(pool, sample_split_run, &job);
        for (int s = 0; s < P; s++)
            if (job.samplers[s].not_finite)
                st = CHARGAN_E_NUMERIC;
    }
    cg_pool_free(pool);
    split_job_free(&job, P);
    if (st == CHARGAN_E_NOMEM)
        return cg_fail(&m->err, st, "out of memory sampling %d streams on %d threads", B, P);
    return st == CHARGAN_E_NUMERIC ? not_finite_error(m) : st;
}

/* Threads that may share the steps of fewer streams than threads: each
 * needs 64 hidden units of its own, or the barriers cost more than it saves,
 * and a core of its own, or its barriers wait for threads that are not
 * running. */
static int split_threads(const chargan_model *m, int threads)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = m->H / 64;
    n = threads < n ? threads : n;
    return cores > 0 && cores < n ? (int)cores : n;
}

/* Samples ids below n_ids only (n_ids <= V): text sampling stops at the
 * tokenizer's vocabulary, which may be smaller than the model's. */
static chargan_status sample_ids(chargan_model *m, const chargan_sample_options *opts,
                                 const int32_t *prime, size_t prime_len, int32_t *out, size_t cap,
                                 int n_ids)
{
    size_t need = (size_t)opts->n_streams * opts->length;
    if (cap < need)
        return cg_fail(&m->err, CHARGAN_E_RANGE, "chargan_model_sample_ids: output holds %zu ids, "
                       "%zu needed", cap, need);
    chargan_status st = cg_check_ids(&m->err, prime, prime_len, m->V);
    if (st != CHARGAN_OK)
        return st;
    const sample_call call = {.m = m, .opts = opts, .prime = prime, .prime_len = prime_len,
                              .out = out, .n_ids = n_ids};
    const int B = (int)opts->n_streams;
    int threads = opts->threads > 1 ? (int)opts->threads : 1;
    if (threads > CG_MAX_SAMPLE_THREADS)
        threads = CG_MAX_SAMPLE_THREADS;
    const int sharing = B < threads ? split_threads(m, threads) : 1;
    if (sharing > 1)
        return sample_split(&call, sharing);
    return sample_sharded(&call, threads < B ? threads : B);
}

chargan_status chargan_model_sample_ids(chargan_model *m, const chargan_sample_options *opts,
                                        const int32_t *prime, size_t prime_len, int32_t *out,
                                        size_t cap)
{
    if (!m || !out || (prime_len && !prime))
        return cg_fail(m ? &m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_sample_ids: NULL argument");
    chargan_status st = check_sample_args(m, opts, "chargan_model_sample_ids");
    if (st != CHARGAN_OK)
        return st;
    return sample_ids(m, opts, prime, prime_len, out, cap, m->V);
}

/* chargan_model_sample_text(_len) for fn: the text and its length. */
static chargan_status sample_text(chargan_model *m, const chargan_sample_options *opts,
                                  const char *prime, char **text, size_t *text_len,
                                  const char *fn)
{
    if (!m || !text || !text_len)
        return cg_fail(m ? &m->err : NULL, CHARGAN_E_INVALID, "%s: NULL argument", fn);
    chargan_status st = check_sample_args(m, opts, fn);
    if (st != CHARGAN_OK)
        return st;
    if (!m->tok)
        return cg_fail(&m->err, CHARGAN_E_STATE, "%s: the model has no tokenizer "
                       "(chargan_model_set_tokenizer)", fn);
    int32_t *prime_ids = NULL;
    size_t n_prime = 0;
    if (prime && *prime) {
        st = cg_tokenizer_encode_alloc(m->tok, prime, strlen(prime), &prime_ids, &n_prime);
        if (st != CHARGAN_OK)
            return cg_fail_from(&m->err, st, "encoding the prime: ");
    }
    size_t per = n_prime + opts->length, n = (size_t)opts->n_streams * opts->length;
    int32_t *ids = cg_malloc((n ? n : 1) * sizeof(int32_t));
    /* each stream: prime + sample, joined by "\n\n"; decode one stream at a time */
    int32_t *row = cg_malloc((per ? per : 1) * sizeof(int32_t));
    char *buf = NULL;
    if (!ids || !row) {
        st = cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory sampling text");
        goto done;
    }
    /* ids the tokenizer has no character for cannot be decoded: never draw them */
    int n_ids = (int)cg_tokenizer_vocab_size(m->tok);
    st = sample_ids(m, opts, prime_ids, n_prime, ids, n, n_ids < m->V ? n_ids : m->V);
    if (st != CHARGAN_OK)
        goto done;
    size_t total = 0, cap = 0;
    for (uint32_t b = 0; b < opts->n_streams; b++) {
        if (n_prime) /* prime_ids is NULL without a prime */
            memcpy(row, prime_ids, n_prime * sizeof(int32_t));
        memcpy(row + n_prime, ids + (size_t)b * opts->length, opts->length * sizeof(int32_t));
        size_t len;
        st = chargan_tokenizer_decode(m->tok, row, per, NULL, 0, &len);
        if (st != CHARGAN_OK)
            st = cg_fail_from(&m->err, st, "decoding a sample: ");
        if (st != CHARGAN_OK)
            goto done;
        size_t need = total + len + 3;
        if (need > cap) {
            size_t ncap = need * 2;
            char *nb = cg_realloc(buf, ncap);
            if (!nb) {
                st = cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory decoding samples");
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        if (b > 0) {
            memcpy(buf + total, "\n\n", 2);
            total += 2;
        }
        chargan_tokenizer_decode(m->tok, row, per, buf + total, cap - total, &len);
        total += len;
        buf[total] = '\0';
    }
    if (!buf) {
        buf = cg_malloc(1);
        if (!buf) {
            st = cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory");
            goto done;
        }
        buf[0] = '\0';
    }
    *text = buf;
    *text_len = total;
    buf = NULL;
done:
    cg_free(buf);
    cg_free(row);
    cg_free(ids);
    cg_free(prime_ids);
    return st;
}

chargan_status chargan_model_sample_text(chargan_model *m, const chargan_sample_options *opts,
                                         const char *prime, char **text)
{
    size_t len;
    return sample_text(m, opts, prime, text, &len, "chargan_model_sample_text");
}

chargan_status chargan_model_sample_text_len(chargan_model *m, const chargan_sample_options *opts,
                                             const char *prime, char **text, size_t *len)
{
    return sample_text(m, opts, prime, text, len, "chargan_model_sample_text_len");
}
