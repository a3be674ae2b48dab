/* model.c - the model handle: configuration, parameter block and named
 * views, initialisation, parameter access, and forward/backward over a batch
 * (the layers themselves live in embedding.c, lstm.c and dense.c). */
#include "model.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Sanity caps: far above any real model, low enough that sizes cannot overflow. */
#define CG_MAX_VOCAB (1u << 21)
#define CG_MAX_DIM 16384u
#define CG_MAX_WEIGHTS ((size_t)1 << 31)

static void model_config_defaults(chargan_model_config *cfg, chargan_model_kind kind)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->kind = kind;
    cfg->vocab_size = 0;
    cfg->embed_dim = 64;
    cfg->hidden_dim = 256;
    cfg->num_layers = 1;
    cfg->noise_dim = 0;
    cfg->start_id = CHARGAN_ID_START;
    cfg->forget_bias = 1.0f;
    cfg->recurrent_dropout = 0.0f;
    cfg->init_scale = 0.0f;
    cfg->seed = 1;
}

chargan_status chargan_model_config_init_sized(chargan_model_config *cfg,
                                               size_t struct_size, chargan_model_kind kind)
{
    if (kind != CHARGAN_GENERATOR && kind != CHARGAN_DISCRIMINATOR)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_model_config_init: kind %d is neither "
                       "generator (0) nor discriminator (1)", (int)kind);
    chargan_model_config defaults;
    model_config_defaults(&defaults, kind);
    return cg_init_struct(cfg, struct_size, &defaults, sizeof defaults, sizeof defaults,
                          "chargan_model_config_init");
}

double cg_model_config_weights(const chargan_model_config *c)
{
    /* in doubles, so no configuration can overflow the count */
    double V = c->vocab_size, E = c->embed_dim, H = c->hidden_dim, L = c->num_layers;
    double Z = c->noise_dim, out = c->kind == CHARGAN_GENERATOR ? V : 1;
    double noise = Z > 0 ? (Z + 1) * 2 * L * H : 0;
    return V * E + (E + H + 1) * 4 * H + (L - 1) * (2 * H + 1) * 4 * H + noise + H * out + out;
}

chargan_status cg_model_config_check(cg_error *err, const chargan_model_config *c)
{
    if (c->kind != CHARGAN_GENERATOR && c->kind != CHARGAN_DISCRIMINATOR)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: kind %d is neither generator (0) nor "
                       "discriminator (1)", (int)c->kind);
    if (c->vocab_size < 2 || c->vocab_size > CG_MAX_VOCAB)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: vocab_size %u not in [2, %u]",
                       c->vocab_size, CG_MAX_VOCAB);
    if (c->embed_dim < 1 || c->embed_dim > CG_MAX_DIM)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: embed_dim %u not in [1, %u]",
                       c->embed_dim, CG_MAX_DIM);
    if (c->hidden_dim < 1 || c->hidden_dim > CG_MAX_DIM)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: hidden_dim %u not in [1, %u]",
                       c->hidden_dim, CG_MAX_DIM);
    if (c->num_layers < 1 || c->num_layers > CG_MAX_LAYERS)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: num_layers %u not in [1, %d]",
                       c->num_layers, CG_MAX_LAYERS);
    if (c->noise_dim > CG_MAX_DIM)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: noise_dim %u above %u", c->noise_dim,
                       CG_MAX_DIM);
    if (c->kind == CHARGAN_DISCRIMINATOR && c->noise_dim != 0)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: a discriminator takes no noise "
                       "(noise_dim %u)", c->noise_dim);
    if (c->start_id < 0 || (uint32_t)c->start_id >= c->vocab_size)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: start_id %d outside the vocabulary "
                       "[0, %u)", (int)c->start_id, c->vocab_size);
    if (!isfinite(c->forget_bias) || fabsf(c->forget_bias) > 100.0f)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: forget_bias %g not finite or too large",
                       (double)c->forget_bias);
    if (!(c->recurrent_dropout >= 0.0f && c->recurrent_dropout < 1.0f))
        return cg_fail(err, CHARGAN_E_INVALID, "model config: recurrent_dropout %g not in [0, 1)",
                       (double)c->recurrent_dropout);
    if (!(c->init_scale >= 0.0f && c->init_scale <= 100.0f))
        return cg_fail(err, CHARGAN_E_INVALID, "model config: init_scale %g not in [0, 100]",
                       (double)c->init_scale);
    double n = cg_model_config_weights(c);
    if (n > (double)CG_MAX_WEIGHTS)
        return cg_fail(err, CHARGAN_E_INVALID, "model config: %.0f weights, more than the %zu "
                       "allowed", n, CG_MAX_WEIGHTS);
    return CHARGAN_OK;
}

static void add_tensor(chargan_model *m, const char *name, uint32_t rank, size_t d0, size_t d1)
{
    cg_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rank = rank;
    t->shape[0] = d0;
    t->shape[1] = rank == 2 ? d1 : 1;
    t->numel = d0 * t->shape[1];
    t->offset = m->n_weights;
    m->n_weights += t->numel;
}

/* Lays out the tensors (names, shapes, offsets) and sets the views. */
static void layout(chargan_model *m)
{
    char name[24];
    m->n_tensors = 0;
    m->n_weights = 0;
    add_tensor(m, "embed", 2, (size_t)m->V, (size_t)m->E);
    for (int l = 0; l < m->L; l++) {
        int in = l == 0 ? m->E : m->H;
        snprintf(name, sizeof name, "lstm.%d.w_ih", l);
        add_tensor(m, name, 2, (size_t)in, 4 * (size_t)m->H);
        snprintf(name, sizeof name, "lstm.%d.w_hh", l);
        add_tensor(m, name, 2, (size_t)m->H, 4 * (size_t)m->H);
        snprintf(name, sizeof name, "lstm.%d.b", l);
        add_tensor(m, name, 1, 4 * (size_t)m->H, 1);
    }
    if (m->Z > 0) {
        add_tensor(m, "noise.w", 2, (size_t)m->Z, 2 * (size_t)m->L * m->H);
        add_tensor(m, "noise.b", 1, 2 * (size_t)m->L * m->H, 1);
    }
    add_tensor(m, "out.w", 2, (size_t)m->H, (size_t)m->out_dim);
    add_tensor(m, "out.b", 1, (size_t)m->out_dim, 1);
}

static void set_views(chargan_model *m)
{
    size_t i = 0;
    m->embed = m->params + m->tensors[i].offset;
    m->dembed = m->grads + m->tensors[i].offset;
    i++;
    for (int l = 0; l < m->L; l++) {
        cg_lstm_layer *ly = &m->lstm[l];
        ly->in = l == 0 ? m->E : m->H;
        ly->hidden = m->H;
        ly->w_ih = m->params + m->tensors[i].offset;
        ly->dw_ih = m->grads + m->tensors[i++].offset;
        ly->w_hh = m->params + m->tensors[i].offset;
        ly->dw_hh = m->grads + m->tensors[i++].offset;
        ly->b = m->params + m->tensors[i].offset;
        ly->db = m->grads + m->tensors[i++].offset;
    }
    if (m->Z > 0) {
        m->noise_w = m->params + m->tensors[i].offset;
        m->dnoise_w = m->grads + m->tensors[i++].offset;
        m->noise_b = m->params + m->tensors[i].offset;
        m->dnoise_b = m->grads + m->tensors[i++].offset;
    }
    m->out_w = m->params + m->tensors[i].offset;
    m->dout_w = m->grads + m->tensors[i++].offset;
    m->out_b = m->params + m->tensors[i].offset;
    m->dout_b = m->grads + m->tensors[i++].offset;
}

chargan_status cg_model_create(cg_error *err, const chargan_model_config *cfg, chargan_model **out)
{
    chargan_status st = cg_model_config_check(err, cfg);
    if (st != CHARGAN_OK)
        return st;
    chargan_model *m = cg_calloc(1, sizeof *m);
    if (!m)
        return cg_fail(err, CHARGAN_E_NOMEM, "out of memory creating a model");
    m->cfg = *cfg;
    m->cfg.struct_size = sizeof m->cfg;
    m->V = (int)cfg->vocab_size;
    m->E = (int)cfg->embed_dim;
    m->H = (int)cfg->hidden_dim;
    m->L = (int)cfg->num_layers;
    m->Z = (int)cfg->noise_dim;
    m->out_dim = cfg->kind == CHARGAN_GENERATOR ? m->V : 1;
    layout(m);
    m->params = cg_alloc_floats(m->n_weights);
    m->grads = cg_alloc_floats(m->n_weights);
    if (!m->params || !m->grads) {
        size_t n = m->n_weights; /* read before m is freed */
        chargan_model_free(m);
        return cg_fail(err, CHARGAN_E_NOMEM, "out of memory allocating %zu weights", n);
    }
    set_views(m);
    cg_rng_seed_stream(&m->rng, cfg->seed, 1);
    *out = m;
    return CHARGAN_OK;
}

static void fill_uniform(cg_rng *rng, float *p, size_t n, float k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (2.0f * cg_rng_uniform(rng) - 1.0f) * k;
}

static void fill_normal(cg_rng *rng, float *p, size_t n, float std)
{
    for (size_t i = 0; i < n; i++)
        p[i] = std * cg_rng_normal(rng);
}

/* PyTorch's defaults (nn.Embedding N(0,1); nn.LSTM and nn.Linear
 * U(-1/sqrt(fan), 1/sqrt(fan))) unless init_scale asks for N(0, scale)
 * everywhere (SeqGAN's scheme).  The forget-gate bias offset comes on top. */
static void initialise(chargan_model *m)
{
    cg_rng rng;
    cg_rng_seed_stream(&rng, m->cfg.seed, 0);
    float scale = m->cfg.init_scale;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const cg_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        if (scale > 0.0f)
            fill_normal(&rng, p, t->numel, scale);
        else if (i == 0)
            fill_normal(&rng, p, t->numel, 1.0f);
        else if (strncmp(t->name, "noise", 5) == 0)
            fill_uniform(&rng, p, t->numel, 1.0f / sqrtf((float)m->Z));
        else /* LSTM weights use 1/sqrt(H); the dense head's fan-in is H too */
            fill_uniform(&rng, p, t->numel, 1.0f / sqrtf((float)m->H));
    }
    for (int l = 0; l < m->L; l++) {
        float *b = (float *)m->lstm[l].b;
        for (int j = 0; j < m->H; j++)
            b[m->H + j] += m->cfg.forget_bias;
    }
}

chargan_status chargan_model_new(const chargan_model_config *cfg, chargan_model **out)
{
    if (!cfg || !out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_model_new: NULL %s", cfg ? "out" : "cfg");
    chargan_status st = cg_check_struct_size(NULL, cfg, sizeof *cfg, sizeof *cfg,
                                             "chargan_model_new", "cfg",
                                             "chargan_model_config_init");
    if (st != CHARGAN_OK)
        return st;
    chargan_model *m;
    st = cg_model_create(NULL, cfg, &m);
    if (st != CHARGAN_OK)
        return st;
    initialise(m);
    *out = m;
    return CHARGAN_OK;
}

chargan_status cg_model_replica_new(chargan_model *m, bool share_grads, chargan_model **out)
{
    chargan_model *r = cg_malloc(sizeof *r);
    float *grads = share_grads ? m->grads : cg_alloc_floats(m->n_weights);
    if (!r || !grads) {
        cg_free(r);
        if (!share_grads)
            cg_free_floats(grads);
        return cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory creating a model replica");
    }
    *r = *m;
    memset(&r->ws, 0, sizeof r->ws);
    memset(&r->err, 0, sizeof r->err);
    r->tok = NULL;
    r->grads = grads;
    r->is_replica = true;
    r->shares_grads = share_grads;
    r->external_masks = true;
    set_views(r);
    *out = r;
    return CHARGAN_OK;
}

/* The next `rows` rows of a recurrent-dropout mask from m's RNG, into mask
 * (NULL: drawn and dropped, for rows another MPI rank holds). */
static void draw_mask_rows(chargan_model *m, float *mask, size_t rows)
{
    float p = m->cfg.recurrent_dropout;
    float keep = 1.0f / (1.0f - p);
    size_t count = rows * (size_t)m->H;
    for (size_t i = 0; i < count; i++) {
        float u = cg_rng_uniform(&m->rng);
        if (mask)
            mask[i] = u >= p ? keep : 0.0f;
    }
}

void cg_model_draw_masks_into(chargan_model *m, chargan_model *const *replicas, int n,
                              const int *rows)
{
    for (int l = 0; l < m->L; l++) {
        draw_mask_rows(m, NULL, m->mask_rows_before);
        for (int s = 0; s < n; s++)
            draw_mask_rows(m, replicas[s]->ws.cache[l].mask, (size_t)rows[s]);
        draw_mask_rows(m, NULL, m->mask_rows_after);
    }
}

static void workspace_free(cg_workspace *ws, int L)
{
    cg_free(ws->ids);
    cg_free_floats(ws->emb);
    cg_free_floats(ws->xtab);
    cg_free_floats(ws->dxtab);
    for (int l = 0; l < L; l++) {
        cg_lstm_cache_free(&ws->cache[l]);
        cg_free_floats(ws->h0[l]);
        cg_free_floats(ws->c0[l]);
        cg_free_floats(ws->dh0[l]);
        cg_free_floats(ws->dc0[l]);
    }
    cg_free_floats(ws->logits);
    cg_free_floats(ws->dx[0]);
    cg_free_floats(ws->dx[1]);
    cg_free_floats(ws->dstep);
    cg_free_floats(ws->state);
    cg_free_floats(ws->dstate);
    memset(ws, 0, sizeof *ws);
}

void chargan_model_free(chargan_model *m)
{
    if (!m)
        return;
    workspace_free(&m->ws, m->L);
    chargan_tokenizer_free(m->tok);
    if (!m->is_replica)
        cg_free_floats(m->params);
    if (!m->shares_grads)
        cg_free_floats(m->grads);
    cg_free(m);
}

const char *chargan_model_last_error(const chargan_model *m)
{
    return m ? m->err.msg : "NULL model";
}

chargan_status chargan_model_get_config(const chargan_model *m, chargan_model_config *cfg)
{
    if (!m || !cfg)
        return cg_fail(m ? (cg_error *)&m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_get_config: NULL argument");
    return cg_get_struct((cg_error *)&m->err, cfg, &m->cfg, sizeof *cfg,
                         offsetof(chargan_model_config, seed) + sizeof cfg->seed,
                         "chargan_model_get_config");
}

/* The input table pays when the ids of a T x B call outnumber its rows (V):
 * decided by the shape asked for, not by a larger earlier one that left a
 * table in the workspace. */
static void set_use_table(chargan_model *m, int T, int B)
{
    m->ws.use_table = m->ws.xtab && (size_t)m->V <= (size_t)T * (size_t)B;
}

chargan_status cg_model_reserve(chargan_model *m, int T, int B)
{
    cg_workspace *ws = &m->ws;
    if (ws->ids && T <= ws->T && B == ws->B) {
        set_use_table(m, T, B);
        return CHARGAN_OK;
    }
    workspace_free(ws, m->L);
    /* Sizes that overflow a size_t (a 32-bit one can) are refused like
     * allocations that fail; each array below multiplies with a check. */
    size_t tb = 0, bh = 0, ids_bytes = 0;
    bool ok = T > 0 && B > 0 && cg_mul_size((size_t)T, (size_t)B, &tb) &&
              cg_mul_size((size_t)B, (size_t)m->H, &bh) &&
              cg_mul_size(tb, sizeof(int32_t), &ids_bytes);
    /* Input gradients ping-pong down the stack: dx[l & 1] is layer l's, E wide
     * for layer 0 and H above it; dx[1] serves only stacks of two or more. */
    size_t wide0 = (size_t)(m->L >= 3 && m->H > m->E ? m->H : m->E);
    ok = ok && (ws->ids = cg_malloc(ids_bytes)) != NULL;
    ok = ok && (ws->emb = cg_alloc_float_matrix(tb, (size_t)m->E)) != NULL;
    ok = ok && (ws->logits = cg_alloc_float_matrix(tb, (size_t)m->out_dim)) != NULL;
    ok = ok && (ws->dx[0] = cg_alloc_float_matrix(tb, wide0)) != NULL;
    ok = ok && (m->L < 2 || (ws->dx[1] = cg_alloc_float_matrix(tb, (size_t)m->H)) != NULL);
    ok = ok && (ws->dstep = cg_alloc_floats(bh)) != NULL;
    ok = ok && (ws->state = cg_alloc_float_matrix(bh, 2 * (size_t)m->L)) != NULL;
    ok = ok && (ws->dstate = cg_alloc_float_matrix(bh, 2 * (size_t)m->L)) != NULL;
    if (ok && (size_t)m->V <= tb) {
        const size_t V = (size_t)m->V, G = 4 * (size_t)m->H;
        ok = (ws->xtab = cg_alloc_float_matrix(V, G)) != NULL &&
             (ws->dxtab = cg_alloc_float_matrix(V, G)) != NULL;
    }
    for (int l = 0; ok && l < m->L; l++) {
        ok = cg_lstm_cache_init(&ws->cache[l], T, B, m->lstm[l].in, m->H,
                                m->cfg.recurrent_dropout > 0.0f) == CHARGAN_OK;
        ok = ok && (ws->h0[l] = cg_alloc_floats(bh)) != NULL;
        ok = ok && (ws->c0[l] = cg_alloc_floats(bh)) != NULL;
        ok = ok && (ws->dh0[l] = cg_alloc_floats(bh)) != NULL;
        ok = ok && (ws->dc0[l] = cg_alloc_floats(bh)) != NULL;
    }
    if (!ok) {
        workspace_free(ws, m->L);
        return cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory sizing the workspace for %d steps "
                       "of %d sequences", T, B);
    }
    ws->T = T;
    ws->B = B;
    set_use_table(m, T, B);
    return CHARGAN_OK;
}

void cg_model_release(chargan_model *m)
{
    workspace_free(&m->ws, m->L);
}

void cg_model_zero_grad(chargan_model *m)
{
    memset(m->grads, 0, m->n_weights * sizeof(float));
}

bool cg_model_params_finite(const chargan_model *m)
{
    /* Sum-based test: one NaN or Inf anywhere makes the sum non-finite, and
     * the loop stays branch-free and vectorisable. */
    float acc = 0.0f;
    for (size_t i = 0; i < m->n_weights; i++)
        acc += m->params[i] * 0.0f;
    return acc == 0.0f;
}

/* The initial state of every layer: from z through the noise layer, or zero. */
static void initial_state(chargan_model *m, int B, const float *z)
{
    cg_workspace *ws = &m->ws;
    size_t H = (size_t)m->H;
    ws->z = z;
    if (m->Z == 0)
        return;
    int width = 2 * m->L * m->H;
    if (z) {
        cg_dense_forward(m->noise_w, m->noise_b, m->Z, width, (size_t)B, z, ws->state);
    } else {
        for (int b = 0; b < B; b++)
            memcpy(ws->state + (size_t)b * width, m->noise_b, (size_t)width * sizeof(float));
    }
    for (int l = 0; l < m->L; l++)
        for (int b = 0; b < B; b++) {
            const float *row = ws->state + (size_t)b * width + 2 * l * H;
            memcpy(ws->h0[l] + b * H, row, H * sizeof(float));
            memcpy(ws->c0[l] + b * H, row + H, H * sizeof(float));
        }
}

static const float *layer_h0(const chargan_model *m, int l)
{
    return m->Z > 0 ? m->ws.h0[l] : NULL;
}

static const float *layer_c0(const chargan_model *m, int l)
{
    return m->Z > 0 ? m->ws.c0[l] : NULL;
}

/* One recurrent-dropout mask per sequence and layer (Gal & Ghahramani),
 * scaled so the expected recurrent input is unchanged. */
static void draw_masks(chargan_model *m, int B)
{
    cg_model_draw_masks_into(m, &m, 1, &B);
}

/* The dense head's backward over the last forward's steps: its weight
 * gradients (with_weights) and the gradient on the top LSTM layer's outputs,
 * written over those outputs once the weight gradient has read them (the
 * LSTM's backward puts them back: cg_lstm_backward).  Returns that gradient. */
static const float *head_backward(chargan_model *m, bool with_weights)
{
    cg_workspace *ws = &m->ws;
    float *top = ws->cache[m->L - 1].h + (size_t)ws->b_used * m->H;
    size_t tb = (size_t)ws->t_used * (size_t)ws->b_used;
    cg_dense_backward(m->out_w, m->H, m->out_dim, tb, top, ws->logits,
                      with_weights ? m->dout_w : NULL, with_weights ? m->dout_b : NULL, top);
    return top;
}

void cg_model_forward(chargan_model *m, int T, int B, const int32_t *ids, const float *soft,
                      const float *z, bool train)
{
    cg_workspace *ws = &m->ws;
    size_t tb = (size_t)T * B;
    bool masked = train && m->cfg.recurrent_dropout > 0.0f;
    ws->t_used = T;
    ws->b_used = B;
    ws->soft = soft;
    ws->fed = false;
    const bool table = ids && ws->use_table;
    if (ids) {
        if (ids != ws->ids)
            memcpy(ws->ids, ids, tb * sizeof(int32_t));
        if (table)
            cg_lstm_input_table(&m->lstm[0], m->V, m->embed, ws->xtab);
        else
            cg_embedding_forward(m->embed, m->E, ids, tb, ws->emb);
    } else {
        cg_embedding_soft_forward(m->embed, m->V, m->E, soft, tb, ws->emb);
    }
    initial_state(m, B, z);
    if (masked && !m->external_masks)
        draw_masks(m, B);
    const float *x = ws->emb;
    for (int l = 0; l < m->L; l++) {
        if (l == 0 && table)
            cg_lstm_forward_ids(&m->lstm[0], &ws->cache[0], T, ws->xtab, ws->ids, layer_h0(m, 0),
                                layer_c0(m, 0), masked);
        else
            cg_lstm_forward(&m->lstm[l], &ws->cache[l], T, x, layer_h0(m, l), layer_c0(m, l),
                            masked);
        x = ws->cache[l].h + (size_t)B * m->H;
    }
    cg_dense_forward(m->out_w, m->out_b, m->H, m->out_dim, tb, x, ws->logits);
}

static void begin_steps(chargan_model *m, int B, const float *z, bool train, bool fed)
{
    cg_workspace *ws = &m->ws;
    ws->t_used = 0;
    ws->b_used = B;
    ws->soft = NULL;
    ws->fed = fed;
    initial_state(m, B, z);
    if (train && m->cfg.recurrent_dropout > 0.0f && !m->external_masks)
        draw_masks(m, B);
    if (ws->use_table && !fed)
        cg_lstm_input_table(&m->lstm[0], m->V, m->embed, ws->xtab);
    for (int l = 0; l < m->L; l++)
        cg_lstm_forward_begin(&m->lstm[l], &ws->cache[l], layer_h0(m, l), layer_c0(m, l));
}

void cg_model_begin(chargan_model *m, int B, const float *z, bool train)
{
    begin_steps(m, B, z, train, false);
}

void cg_model_begin_fed(chargan_model *m, int B, const float *z, bool train)
{
    begin_steps(m, B, z, train, true);
}

/* Step t through the stack and the head, from layer 0's input x (B x E in
 * ws.emb) or, with table, from the input table's rows of the step's ids. */
static float *step_layers(chargan_model *m, int t, const float *x, bool table, bool train)
{
    cg_workspace *ws = &m->ws;
    int B = ws->b_used;
    bool masked = train && m->cfg.recurrent_dropout > 0.0f;
    size_t row = (size_t)t * B;
    for (int l = 0; l < m->L; l++) {
        if (l == 0 && table)
            cg_lstm_forward_step_ids(&m->lstm[0], &ws->cache[0], t, ws->xtab, ws->ids + row,
                                     masked);
        else
            cg_lstm_forward_step(&m->lstm[l], &ws->cache[l], t, x, masked);
        x = ws->cache[l].h + (size_t)(t + 1) * B * m->H;
    }
    float *logits = ws->logits + row * m->out_dim;
    cg_dense_forward(m->out_w, m->out_b, m->H, m->out_dim, (size_t)B, x, logits);
    ws->t_used = t + 1;
    return logits;
}

float *cg_model_step(chargan_model *m, int t, const int32_t *ids_t, bool train)
{
    cg_workspace *ws = &m->ws;
    int B = ws->b_used;
    size_t row = (size_t)t * B;
    if (ids_t != ws->ids + row)
        memcpy(ws->ids + row, ids_t, (size_t)B * sizeof(int32_t));
    float *x = ws->emb + row * m->E;
    const bool table = ws->use_table && !ws->fed;
    if (!table)
        cg_embedding_forward(m->embed, m->E, ids_t, (size_t)B, x);
    return step_layers(m, t, x, table, train);
}

float *cg_model_step_soft(chargan_model *m, int t, const float *soft_t, bool train)
{
    cg_workspace *ws = &m->ws;
    float *x = ws->emb + (size_t)t * ws->b_used * m->E;
    cg_embedding_soft_forward(m->embed, m->V, m->E, soft_t, (size_t)ws->b_used, x);
    return step_layers(m, t, x, false, train);
}

/* The noise layer's gradients from the per-layer initial-state gradients
 * (dh0, dc0) a backward left. */
static void state_backward(chargan_model *m)
{
    cg_workspace *ws = &m->ws;
    if (m->Z == 0)
        return;
    int B = ws->b_used;
    size_t H = (size_t)m->H;
    int width = 2 * m->L * m->H;
    for (int l = 0; l < m->L; l++)
        for (int b = 0; b < B; b++) {
            float *row = ws->dstate + (size_t)b * width + 2 * l * H;
            memcpy(row, ws->dh0[l] + b * H, H * sizeof(float));
            memcpy(row + H, ws->dc0[l] + b * H, H * sizeof(float));
        }
    if (ws->z) {
        cg_dense_backward(m->noise_w, m->Z, width, (size_t)B, ws->z, ws->dstate, m->dnoise_w,
                          m->dnoise_b, NULL);
    } else {
        /* zero noise: the state is the bias, whose gradient sums over rows */
        for (int b = 0; b < B; b++)
            for (int j = 0; j < width; j++)
                m->dnoise_b[j] += ws->dstate[(size_t)b * width + j];
    }
}

void cg_model_backward(chargan_model *m, float *dsoft)
{
    cg_workspace *ws = &m->ws;
    int T = ws->t_used, B = ws->b_used;
    size_t tb = (size_t)T * B;
    const float *dh_out = head_backward(m, true);
    const bool table = !ws->soft && ws->use_table;
    for (int l = m->L - 1; l >= 0; l--) {
        const float *x = l == 0 ? ws->emb : ws->cache[l - 1].h + (size_t)B * m->H;
        float *dx = ws->dx[l & 1];
        float *dh0 = m->Z > 0 ? ws->dh0[l] : NULL, *dc0 = m->Z > 0 ? ws->dc0[l] : NULL;
        if (l == 0 && table) /* the embedding's gradient comes with the table's */
            cg_lstm_backward_ids(&m->lstm[0], &ws->cache[0], ws->ids, ws->dxtab, m->V, m->embed,
                                 dh_out, NULL, NULL, m->dembed, dh0, dc0);
        else
            cg_lstm_backward(&m->lstm[l], &ws->cache[l], x, dh_out, NULL, NULL, dx, dh0, dc0);
        dh_out = dx;
    }
    if (ws->soft)
        cg_embedding_soft_backward(m->embed, m->V, m->E, ws->soft, tb, dh_out, m->dembed, dsoft);
    else if (!table)
        cg_embedding_backward(m->dembed, m->E, ws->ids, tb, dh_out);
    state_backward(m);
}

void cg_model_backward_fed(chargan_model *m, const float *soft, cg_soft_grad_fn to_logits,
                           void *ctx)
{
    cg_workspace *ws = &m->ws;
    const int T = ws->t_used, B = ws->b_used, V = m->V, E = m->E, H = m->H, L = m->L;
    const size_t bv = (size_t)B * V, be = (size_t)B * E, bh = (size_t)B * H;
    if (T == 0)
        return;
    for (int l = 0; l < L; l++)
        cg_lstm_backward_begin(&m->lstm[l], &ws->cache[l], NULL, NULL, m->Z > 0);
    /* Step by step from the last: step t's output gradient needs the
     * gradient on step t + 1's input, soft[t].  Layer 0's input gradients
     * stay in dx[0] (T x B x E) for the embedding's; the others pass down
     * the stack in dstep, each layer's step reading its output gradient
     * there before writing its input gradient over it. */
    float *dx0 = ws->dx[0];
    for (int t = T - 1; t >= 0; t--) {
        float *d = ws->logits + (size_t)t * bv;
        if (t + 1 < T)
            cg_embedding_soft_input_grad_add(m->embed, V, E, dx0 + (size_t)(t + 1) * be,
                                             (size_t)B, d);
        to_logits(ctx, t, d);
        float *dh = ws->dstep;
        cg_dense_backward(m->out_w, H, V, (size_t)B, NULL, d, NULL, NULL, dh);
        for (int l = L - 1; l >= 0; l--) {
            float *dx = l > 0 ? ws->dstep : dx0 + (size_t)t * be;
            cg_lstm_backward_step(&m->lstm[l], &ws->cache[l], t, dh, dx,
                                  m->Z > 0 ? ws->dh0[l] : NULL);
            dh = dx;
        }
    }
    /* The weight gradients over all steps at once, as cg_model_backward's. */
    for (int l = 0; l < L; l++)
        cg_lstm_backward_end(&m->lstm[l], &ws->cache[l],
                             l == 0 ? ws->emb : ws->cache[l - 1].h + bh, false, NULL,
                             m->Z > 0 ? ws->dh0[l] : NULL, m->Z > 0 ? ws->dc0[l] : NULL);
    cg_dense_backward(m->out_w, H, V, (size_t)T * B, ws->cache[L - 1].h + bh, ws->logits,
                      m->dout_w, m->dout_b, NULL);
    /* step 0 read ids, step t > 0 read soft[t - 1] */
    cg_embedding_backward(m->dembed, E, ws->ids, (size_t)B, dx0);
    if (T > 1)
        cg_embedding_soft_backward(m->embed, V, E, soft, (size_t)(T - 1) * B, dx0 + be,
                                   m->dembed, NULL);
    state_backward(m);
}

void cg_model_backward_input(chargan_model *m, float *dsoft)
{
    cg_workspace *ws = &m->ws;
    if (!ws->soft || !dsoft)
        return; /* hard ids have no input gradient */
    int T = ws->t_used, B = ws->b_used;
    size_t tb = (size_t)T * B;
    const float *dh_out = head_backward(m, false);
    for (int l = m->L - 1; l >= 0; l--) {
        cg_lstm_layer ly = m->lstm[l];
        ly.dw_ih = ly.dw_hh = ly.db = NULL;
        const float *x = l == 0 ? ws->emb : ws->cache[l - 1].h + (size_t)B * m->H;
        float *dx = ws->dx[l & 1];
        cg_lstm_backward(&ly, &ws->cache[l], x, dh_out, NULL, NULL, dx, NULL, NULL);
        dh_out = dx;
    }
    cg_embedding_soft_backward(m->embed, m->V, m->E, ws->soft, tb, dh_out, NULL, dsoft);
}

void cg_windows_to_time_major(const int32_t *windows, int B, int T, int32_t *inputs,
                              int32_t *targets)
{
    for (int b = 0; b < B; b++) {
        const int32_t *w = windows + (size_t)b * (T + 1);
        for (int t = 0; t < T; t++) {
            inputs[(size_t)t * B + b] = w[t];
            if (targets)
                targets[(size_t)t * B + b] = w[t + 1];
        }
    }
}

chargan_status cg_model_window_nll(chargan_model *m, const int32_t *windows, int B, int T,
                                   double *nll_sum)
{
    chargan_status st = cg_model_reserve(m, T, B);
    if (st != CHARGAN_OK)
        return st;
    /* Targets go into dx[0], reinterpreted: it holds at least T*B*E >= T*B floats. */
    int32_t *inputs = m->ws.ids;
    int32_t *targets = (int32_t *)m->ws.dx[0];
    cg_windows_to_time_major(windows, B, T, inputs, targets);
    cg_model_forward(m, T, B, inputs, NULL, NULL, false);
    *nll_sum = cg_softmax_xent(m->ws.logits, (size_t)T * B, m->V, targets, NULL, 0.0f, NULL);
    return CHARGAN_OK;
}

/* ------------------------------------------------------------------ public parameter access */

chargan_status chargan_model_num_params(const chargan_model *m, size_t *count)
{
    if (!m || !count)
        return cg_fail(m ? (cg_error *)&m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_num_params: NULL argument");
    *count = m->n_tensors;
    return CHARGAN_OK;
}

chargan_status chargan_model_num_weights(const chargan_model *m, size_t *count)
{
    if (!m || !count)
        return cg_fail(m ? (cg_error *)&m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_num_weights: NULL argument");
    *count = m->n_weights;
    return CHARGAN_OK;
}

static chargan_status check_index(const chargan_model *m, size_t index, const char *fn)
{
    if (index >= m->n_tensors)
        return cg_fail((cg_error *)&m->err, CHARGAN_E_RANGE, "%s: tensor index %zu, the model has "
                       "%zu", fn, index, m->n_tensors);
    return CHARGAN_OK;
}

chargan_status chargan_model_param_info(const chargan_model *m, size_t index, const char **name,
                                        uint32_t *rank, size_t shape[2], size_t *numel)
{
    if (!m)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_model_param_info: NULL model");
    chargan_status st = check_index(m, index, "chargan_model_param_info");
    if (st != CHARGAN_OK)
        return st;
    const cg_tensor *t = &m->tensors[index];
    if (name)
        *name = t->name;
    if (rank)
        *rank = t->rank;
    if (shape) {
        shape[0] = t->shape[0];
        shape[1] = t->shape[1];
    }
    if (numel)
        *numel = t->numel;
    return CHARGAN_OK;
}

chargan_status chargan_model_param_find(const chargan_model *m, const char *name, size_t *index)
{
    if (!m || !name || !index)
        return cg_fail(m ? (cg_error *)&m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_param_find: NULL argument");
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) {
            *index = i;
            return CHARGAN_OK;
        }
    return cg_fail((cg_error *)&m->err, CHARGAN_E_NOT_FOUND, "no parameter tensor named '%s'", name);
}

chargan_status chargan_model_param_get(const chargan_model *m, size_t index, float *dst, size_t n)
{
    if (!m || !dst)
        return cg_fail(m ? (cg_error *)&m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_param_get: NULL argument");
    chargan_status st = check_index(m, index, "chargan_model_param_get");
    if (st != CHARGAN_OK)
        return st;
    const cg_tensor *t = &m->tensors[index];
    if (n != t->numel)
        return cg_fail((cg_error *)&m->err, CHARGAN_E_INVALID, "chargan_model_param_get: '%s' has "
                       "%zu elements, buffer %zu", t->name, t->numel, n);
    memcpy(dst, m->params + t->offset, n * sizeof(float));
    return CHARGAN_OK;
}

chargan_status chargan_model_param_set(chargan_model *m, size_t index, const float *src, size_t n)
{
    if (!m || !src)
        return cg_fail(m ? &m->err : NULL, CHARGAN_E_INVALID,
                       "chargan_model_param_set: NULL argument");
    chargan_status st = check_index(m, index, "chargan_model_param_set");
    if (st != CHARGAN_OK)
        return st;
    const cg_tensor *t = &m->tensors[index];
    if (n != t->numel)
        return cg_fail(&m->err, CHARGAN_E_INVALID, "chargan_model_param_set: '%s' has %zu "
                       "elements, given %zu", t->name, t->numel, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return cg_fail(&m->err, CHARGAN_E_NUMERIC, "chargan_model_param_set: '%s'[%zu] is not "
                           "finite", t->name, i);
    memcpy(m->params + t->offset, src, n * sizeof(float));
    return CHARGAN_OK;
}

/* ------------------------------------------------------------------ tokenizer and NLL */

chargan_status chargan_model_set_tokenizer(chargan_model *m, const chargan_tokenizer *tok)
{
    if (!m)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_model_set_tokenizer: NULL model");
    chargan_tokenizer *copy = NULL;
    if (tok) {
        uint32_t size;
        chargan_tokenizer_vocab_size(tok, &size);
        if (size > m->cfg.vocab_size)
            return cg_fail(&m->err, CHARGAN_E_INVALID, "tokenizer has %u ids, the model's "
                           "vocab_size is %u", size, m->cfg.vocab_size);
        copy = cg_tokenizer_clone(tok);
        if (!copy)
            return cg_fail(&m->err, CHARGAN_E_NOMEM, "out of memory copying the tokenizer");
    }
    cg_model_take_tokenizer(m, copy);
    return CHARGAN_OK;
}

void cg_model_take_tokenizer(chargan_model *m, chargan_tokenizer *tok)
{
    if (tok)
        cg_tokenizer_attach(tok);
    chargan_tokenizer_free(m->tok);
    m->tok = tok;
}

chargan_tokenizer *chargan_model_tokenizer(const chargan_model *m)
{
    return m ? m->tok : NULL;
}

chargan_status cg_check_ids(cg_error *err, const int32_t *ids, size_t n, int V)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return cg_fail(err, CHARGAN_E_RANGE, "id %d at position %zu is outside the vocabulary "
                           "[0, %d)", (int)ids[i], i, V);
    return CHARGAN_OK;
}
