/*
 * optim.c - the optimizers (Adam/AdamW, SGD with momentum, RMSprop), global
 * gradient-norm clipping, and the state's serialisation for checkpoints.
 *
 * The update rules follow PyTorch's torch.optim (version 1.13/2.x), so that
 * hyper-parameters carry over; t is the step number counted from 1, g the
 * gradient after clipping, all state starts at zero:
 *
 *   Adam (torch.optim.Adam, amsgrad=False; weight decay as torch.optim.AdamW):
 *     p  = p * (1 - lr*wd)                       decoupled weight decay
 *     m  = b1 m + (1-b1) g
 *     v  = b2 v + (1-b2) g^2
 *     p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 *   SGD (torch.optim.SGD, dampening 0, no Nesterov):
 *     g' = g + wd p                              L2 weight decay
 *     momentum > 0:  buf = mu buf + g';  p -= lr buf
 *     momentum = 0:  p -= lr g'
 *   RMSprop (torch.optim.RMSprop, centered=False):
 *     g' = g + wd p
 *     v  = rho v + (1-rho) g'^2
 *     momentum > 0:  buf = mu buf + g' / (sqrt(v) + eps);  p -= lr buf
 *     momentum = 0:  p -= lr g' / (sqrt(v) + eps)
 *
 * PyTorch's Adam writes m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps); the form above
 * is the same quantity arranged as its kernel computes it.  Results agree
 * with PyTorch up to float rounding (not bitwise: the operation order of its
 * kernels differs by version).
 *
 * Bias corrections and step sizes are computed once per step in double; the
 * per-element loops are branch-free over restrict pointers so the compiler
 * vectorises them.  The global norm is a double sum in a fixed order (blocks
 * of CG_OPTIM_BLOCK, each in eight lanes, added in block order), so the same
 * gradients always give the same norm and the same clipping, whichever
 * threads computed the blocks.
 */
#include "optim.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---------------------------------------------------------------- configuration */

/* The first published version of chargan_optimizer_config ends at clip_norm. */
#define CONFIG_MIN_SIZE (offsetof(chargan_optimizer_config, clip_norm) + sizeof(float))

enum rule { FINITE_POSITIVE, UNIT_INTERVAL, FINITE_NONNEGATIVE };

static const char *const rule_text[] = {
    [FINITE_POSITIVE] = "finite and > 0",
    [UNIT_INTERVAL] = "in [0, 1)",
    [FINITE_NONNEGATIVE] = "finite and >= 0",
};

/* The float fields in serialisation order, with what each must satisfy. */
static const struct cfg_field {
    const char *name;
    size_t offset;
    enum rule rule;
} cfg_fields[] = {
    {"lr", offsetof(chargan_optimizer_config, lr), FINITE_POSITIVE},
    {"beta1", offsetof(chargan_optimizer_config, beta1), UNIT_INTERVAL},
    {"beta2", offsetof(chargan_optimizer_config, beta2), UNIT_INTERVAL},
    {"eps", offsetof(chargan_optimizer_config, eps), FINITE_POSITIVE},
    {"weight_decay", offsetof(chargan_optimizer_config, weight_decay), FINITE_NONNEGATIVE},
    {"momentum", offsetof(chargan_optimizer_config, momentum), UNIT_INTERVAL},
    {"rho", offsetof(chargan_optimizer_config, rho), UNIT_INTERVAL},
    {"clip_norm", offsetof(chargan_optimizer_config, clip_norm), FINITE_NONNEGATIVE},
};
#define N_CFG_FIELDS (sizeof cfg_fields / sizeof cfg_fields[0])

static float *field_ptr(chargan_optimizer_config *cfg, size_t i)
{
    return (float *)((char *)cfg + cfg_fields[i].offset);
}

static float field_value(const chargan_optimizer_config *cfg, size_t i)
{
    return *(const float *)((const char *)cfg + cfg_fields[i].offset);
}

static bool rule_holds(enum rule rule, float x)
{
    /* Written so that NaN fails every rule. */
    switch (rule) {
    case FINITE_POSITIVE: return isfinite(x) && x > 0.0f;
    case UNIT_INTERVAL: return x >= 0.0f && x < 1.0f;
    case FINITE_NONNEGATIVE: return isfinite(x) && x >= 0.0f;
    }
    return false;
}

/* Index of the first float field that breaks its rule, or N_CFG_FIELDS. */
static size_t first_bad_field(const chargan_optimizer_config *cfg)
{
    size_t i = 0;
    while (i < N_CFG_FIELDS && rule_holds(cfg_fields[i].rule, field_value(cfg, i)))
        i++;
    return i;
}

static bool kind_known(int32_t kind)
{
    return kind == CHARGAN_ADAM || kind == CHARGAN_SGD || kind == CHARGAN_RMSPROP;
}

/* Which state arrays the configured algorithm keeps. */
bool cg_optimizer_needs_m(const chargan_optimizer_config *cfg)
{
    return cfg->kind == CHARGAN_ADAM || cfg->momentum > 0.0f;
}

bool cg_optimizer_needs_v(const chargan_optimizer_config *cfg)
{
    return cfg->kind == CHARGAN_ADAM || cfg->kind == CHARGAN_RMSPROP;
}

static void optimizer_config_defaults(chargan_optimizer_config *cfg, chargan_optimizer_kind kind)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->kind = kind;
    /* One learning rate for every kind, as the header documents: 2e-3 suits
     * Adam and RMSprop on LSTMs; SGD callers usually want ~0.01-1 and set it. */
    cfg->lr = 2e-3f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-8f;
    cfg->weight_decay = 0.0f;
    cfg->momentum = 0.0f;
    cfg->rho = 0.99f;
    cfg->clip_norm = 0.0f;
}

chargan_status chargan_optimizer_config_init_sized(chargan_optimizer_config *cfg,
                                                   size_t struct_size, chargan_optimizer_kind kind)
{
    if (!kind_known(kind))
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_optimizer_config_init: kind must be "
                       "CHARGAN_ADAM (0), CHARGAN_SGD (1) or CHARGAN_RMSPROP (2), got %d",
                       (int)kind);
    chargan_optimizer_config defaults;
    optimizer_config_defaults(&defaults, kind);
    return cg_init_struct(cfg, struct_size, &defaults, CONFIG_MIN_SIZE, sizeof defaults,
                          "chargan_optimizer_config_init");
}

/* ---------------------------------------------------------------- the handle */

static void free_state(chargan_optimizer *opt)
{
    cg_free_floats(opt->m);
    cg_free_floats(opt->v);
    opt->m = opt->v = NULL;
    opt->n = 0;
}

/* Allocates zeroed state for n parameters; on failure leaves none. */
static bool alloc_state(chargan_optimizer *opt, size_t n)
{
    if (cg_optimizer_needs_m(&opt->cfg) && !(opt->m = cg_alloc_floats(n))) {
        free_state(opt);
        return false;
    }
    if (cg_optimizer_needs_v(&opt->cfg) && !(opt->v = cg_alloc_floats(n))) {
        free_state(opt);
        return false;
    }
    opt->n = n;
    return true;
}

chargan_status cg_optimizer_reserve(chargan_optimizer *opt, size_t n)
{
    if (opt->n == 0 && !alloc_state(opt, n))
        return cg_fail(&opt->err, CHARGAN_E_NOMEM,
                       "optimizer: out of memory for the state of %zu parameters", n);
    return CHARGAN_OK;
}

chargan_status chargan_optimizer_new(const chargan_optimizer_config *cfg, chargan_optimizer **out)
{
    if (!cfg || !out)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_optimizer_new: %s is NULL",
                       !cfg ? "cfg" : "out");
    if (cg_check_struct_size(NULL, cfg, CONFIG_MIN_SIZE, sizeof *cfg, "chargan_optimizer_new",
                             "cfg", "chargan_optimizer_config_init") != CHARGAN_OK)
        return CHARGAN_E_INVALID;
    /* Copy only the bytes the caller declared. */
    chargan_optimizer_config c;
    memset(&c, 0, sizeof c);
    memcpy(&c, cfg, cfg->struct_size < sizeof c ? cfg->struct_size : sizeof c);
    c.struct_size = sizeof c;
    if (!kind_known(c.kind))
        return cg_fail(NULL, CHARGAN_E_INVALID,
                       "chargan_optimizer_new: kind must be CHARGAN_ADAM (0), CHARGAN_SGD (1) or "
                       "CHARGAN_RMSPROP (2), got %" PRId32, c.kind);
    size_t bad = first_bad_field(&c);
    if (bad < N_CFG_FIELDS)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_optimizer_new: %s must be %s, got %g",
                       cfg_fields[bad].name, rule_text[cfg_fields[bad].rule],
                       (double)field_value(&c, bad));
    chargan_optimizer *opt = cg_calloc(1, sizeof *opt);
    if (!opt)
        return cg_fail(NULL, CHARGAN_E_NOMEM, "chargan_optimizer_new: out of memory (%zu bytes)",
                       sizeof *opt);
    opt->cfg = c;
    *out = opt;
    return CHARGAN_OK;
}

void chargan_optimizer_free(chargan_optimizer *opt)
{
    if (!opt)
        return;
    free_state(opt);
    cg_free(opt);
}

const char *chargan_optimizer_last_error(const chargan_optimizer *opt)
{
    return opt ? opt->err.msg : "NULL optimizer";
}

chargan_status chargan_optimizer_get_config(const chargan_optimizer *opt,
                                            chargan_optimizer_config *cfg)
{
    if (!opt || !cfg)
        return cg_fail(opt ? (cg_error *)&opt->err : NULL, CHARGAN_E_INVALID,
                       "chargan_optimizer_get_config: %s is NULL",
                       !opt ? "opt" : "cfg");
    return cg_get_struct((cg_error *)&opt->err, cfg, &opt->cfg, sizeof *cfg, CONFIG_MIN_SIZE,
                         "chargan_optimizer_get_config");
}

chargan_status chargan_optimizer_set_lr(chargan_optimizer *opt, float lr)
{
    if (!opt)
        return cg_fail(NULL, CHARGAN_E_INVALID, "chargan_optimizer_set_lr: opt is NULL");
    if (!rule_holds(FINITE_POSITIVE, lr))
        return cg_fail(&opt->err, CHARGAN_E_INVALID,
                       "chargan_optimizer_set_lr: lr must be finite and > 0, got %g", (double)lr);
    opt->cfg.lr = lr;
    return CHARGAN_OK;
}

chargan_status chargan_optimizer_steps(const chargan_optimizer *opt, uint64_t *steps)
{
    if (!opt || !steps)
        return cg_fail(opt ? (cg_error *)&opt->err : NULL, CHARGAN_E_INVALID,
                       "chargan_optimizer_steps: %s is NULL",
                       !opt ? "opt" : "steps");
    *steps = opt->steps;
    return CHARGAN_OK;
}

/* ---------------------------------------------------------------- the update */

/* Sum of squares in double, eight partial sums combined in a fixed order:
 * deterministic, and the lanes let the compiler vectorise.  Squares of finite
 * floats (< 2^256) summed over any n cannot overflow a double, so the result
 * is finite exactly when every gradient is. */
static double sum_squares(const float *restrict g, size_t n)
{
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t k = 0; k < 8; k++)
            acc[k] += (double)g[i + k] * (double)g[i + k];
    for (; i < n; i++)
        acc[i & 7] += (double)g[i] * (double)g[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Branch-free: x * 0 is 0 for finite x and NaN otherwise, and one NaN
 * poisons its lane; eight lanes so the compiler vectorises. */
static bool all_finite(const float *restrict a, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t k = 0; k < 8; k++)
            acc[k] += a[i + k] * 0.0f;
    for (; i < n; i++)
        acc[0] += a[i] * 0.0f;
    float sum = 0.0f;
    for (size_t k = 0; k < 8; k++)
        sum += acc[k];
    return sum == 0.0f;
}

static void scale(float *restrict g, size_t n, double s)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (float)((double)g[i] * s);
}

static void adam(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                 float *restrict v, float b1, float b2, float step_size, float sqrt_bc2, float eps,
                 float decay)
{
    const float a1 = 1.0f - b1, a2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = b1 * m[i] + a1 * gi;
        const float vi = b2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
    }
}

static void sgd(size_t n, float *restrict p, const float *restrict g, float lr, float wd)
{
    for (size_t i = 0; i < n; i++)
        p[i] -= lr * (g[i] + wd * p[i]);
}

static void sgd_momentum(size_t n, float *restrict p, const float *restrict g,
                         float *restrict buf, float lr, float wd, float mu)
{
    for (size_t i = 0; i < n; i++) {
        const float b = mu * buf[i] + (g[i] + wd * p[i]);
        buf[i] = b;
        p[i] -= lr * b;
    }
}

static void rmsprop(size_t n, float *restrict p, const float *restrict g, float *restrict v,
                    float lr, float wd, float rho, float eps)
{
    const float a = 1.0f - rho;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * p[i];
        const float vi = rho * v[i] + a * gi * gi;
        v[i] = vi;
        p[i] -= lr * gi / (sqrtf(vi) + eps);
    }
}

static void rmsprop_momentum(size_t n, float *restrict p, const float *restrict g,
                             float *restrict v, float *restrict buf, float lr, float wd,
                             float rho, float eps, float mu)
{
    const float a = 1.0f - rho;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * p[i];
        const float vi = rho * v[i] + a * gi * gi;
        const float b = mu * buf[i] + gi / (sqrtf(vi) + eps);
        v[i] = vi;
        buf[i] = b;
        p[i] -= lr * b;
    }
}

size_t cg_optimizer_blocks(size_t n)
{
    return n / CG_OPTIM_BLOCK + (n % CG_OPTIM_BLOCK != 0);
}

double cg_optimizer_block_sumsq(const float *grads, size_t n, size_t block)
{
    const size_t lo = block * CG_OPTIM_BLOCK;
    return sum_squares(grads + lo, n - lo < CG_OPTIM_BLOCK ? n - lo : CG_OPTIM_BLOCK);
}

static chargan_status check_args(chargan_optimizer *opt, const float *params, const float *grads,
                                 size_t n)
{
    if (!opt)
        return cg_fail(NULL, CHARGAN_E_INVALID, "optimizer step: opt is NULL");
    if (!params || !grads || n == 0)
        return cg_fail(&opt->err, CHARGAN_E_INVALID, "optimizer step: %s",
                       !params ? "params is NULL" : !grads ? "grads is NULL" : "n is 0");
    if (opt->n != 0 && n != opt->n)
        return cg_fail(&opt->err, CHARGAN_E_INVALID,
                       "optimizer step: the state is sized for %zu parameters, got %zu (one "
                       "optimizer serves one model)", opt->n, n);
    return CHARGAN_OK;
}

/* Whether some element's next second moment, keep v + weight (s g)^2 with
 * keep = 1 - weight, leaves the float range (*at: the first such). */
static bool second_moment_overflows(const chargan_optimizer *opt, const float *grads, size_t n,
                                    double s, double weight, size_t *at)
{
    for (size_t i = 0; i < n; i++) {
        const double g = s * (double)grads[i], v = opt->v ? (double)opt->v[i] : 0.0;
        if ((1.0 - weight) * v + weight * g * g > FLT_MAX) {
            *at = i;
            return true;
        }
    }
    return false;
}

/* cg_optimizer_update_begin after check_args. */
static chargan_status begin_checked(chargan_optimizer *opt, const float *grads, size_t n,
                                    double sumsq, cg_optim_update *u)
{
    if (opt->steps >= CG_OPTIM_MAX_STEPS) /* not in a lifetime; a file could claim it */
        return cg_fail(&opt->err, CHARGAN_E_INVALID, "optimizer step: %" PRIu64 " steps taken, "
                       "the most it counts", opt->steps);
    const double norm = sqrt(sumsq);
    if (!isfinite(norm)) {
        /* Some gradient is non-finite (see sum_squares); name the first. */
        size_t i = 0;
        while (i < n - 1 && isfinite(grads[i]))
            i++;
        return cg_fail(&opt->err, CHARGAN_E_NUMERIC,
                       "optimizer step %" PRIu64 ": gradient %zu of %zu is %g; nothing updated",
                       opt->steps + 1, i, n, (double)grads[i]);
    }
    const chargan_optimizer_config *c = &opt->cfg;
    const bool clip = c->clip_norm > 0.0f && norm > c->clip_norm;
    const double t = (double)(opt->steps + 1);
    const double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
    /* What would overflow the float state is refused before anything is
     * written, since it could not be undone after: a gradient whose square,
     * weighted into the second moment, leaves the float range (an element
     * above about 1.8e19 at beta2 0.999 on a first step, less clipping), or
     * an Adam step size lr / (1 - beta1^t) beyond it.  The elements are
     * looked at only where the norm says one might: (1 - w) v + w g^2 with
     * v <= FLT_MAX can pass FLT_MAX only where g^2 does.  The update can
     * still overflow (a huge learning rate or weight decay, RMSprop's L2
     * term): that is found after it, by cg_optimizer_update_end. */
    const double kept = clip ? (double)c->clip_norm : norm;
    const double weight = c->kind == CHARGAN_ADAM      ? 1.0 - (double)c->beta2
                          : c->kind == CHARGAN_RMSPROP ? 1.0 - (double)c->rho
                                                       : 0.0;
    size_t at;
    if (weight > 0.0 && kept * kept > 0.5 * FLT_MAX &&
        second_moment_overflows(opt, grads, n, kept / norm, weight, &at))
        return cg_fail(&opt->err, CHARGAN_E_NUMERIC,
                       "optimizer step %" PRIu64 ": gradient %zu of %zu is %g, too large for the "
                       "second moment (float); nothing updated (clip gradients with clip_norm)",
                       opt->steps + 1, at, n, (double)grads[at]);
    if (c->kind == CHARGAN_ADAM && !(c->lr / bc1 <= FLT_MAX))
        return cg_fail(&opt->err, CHARGAN_E_NUMERIC,
                       "optimizer step %" PRIu64 ": the step size lr / (1 - beta1^t) = %g / %g "
                       "is beyond float; nothing updated (learning rate too large)",
                       opt->steps + 1, (double)c->lr, bc1);
    chargan_status st = cg_optimizer_reserve(opt, n);
    if (st != CHARGAN_OK)
        return st;
    u->norm = norm;
    u->clip = clip;
    u->clip_scale = clip ? (double)c->clip_norm / norm : 1.0;
    u->step_size = (float)(c->lr / bc1);
    u->sqrt_bc2 = (float)sqrt(bc2);
    u->decay = (float)(1.0 - (double)c->lr * c->weight_decay);
    return CHARGAN_OK;
}

chargan_status cg_optimizer_update_begin(chargan_optimizer *opt, const float *params,
                                         const float *grads, size_t n, double sumsq,
                                         cg_optim_update *u)
{
    chargan_status st = check_args(opt, params, grads, n);
    return st != CHARGAN_OK ? st : begin_checked(opt, grads, n, sumsq, u);
}

unsigned cg_optimizer_update_range(chargan_optimizer *opt, const cg_optim_update *u,
                                   float *params, float *grads, size_t lo, size_t hi)
{
    const chargan_optimizer_config *c = &opt->cfg;
    const size_t n = hi - lo;
    float *p = params + lo, *g = grads + lo, *m = opt->m ? opt->m + lo : NULL,
          *v = opt->v ? opt->v + lo : NULL;
    if (u->clip)
        scale(g, n, u->clip_scale);
    if (c->kind == CHARGAN_ADAM)
        adam(n, p, g, m, v, c->beta1, c->beta2, u->step_size, u->sqrt_bc2, c->eps, u->decay);
    else if (c->kind == CHARGAN_SGD && m)
        sgd_momentum(n, p, g, m, c->lr, c->weight_decay, c->momentum);
    else if (c->kind == CHARGAN_SGD)
        sgd(n, p, g, c->lr, c->weight_decay);
    else if (m)
        rmsprop_momentum(n, p, g, v, m, c->lr, c->weight_decay, c->rho, c->eps, c->momentum);
    else
        rmsprop(n, p, g, v, c->lr, c->weight_decay, c->rho, c->eps);
    unsigned bad = 0;
    if (!all_finite(p, n))
        bad |= CG_OPTIM_BAD_PARAMS;
    if ((m && !all_finite(m, n)) || (v && !all_finite(v, n)))
        bad |= CG_OPTIM_BAD_STATE;
    return bad;
}

chargan_status cg_optimizer_update_end(chargan_optimizer *opt, const cg_optim_update *u,
                                       unsigned bad, double *grad_norm)
{
    opt->steps++;
    /* What begin_checked cannot see can still overflow: a huge learning
     * rate or weight decay, RMSprop's L2 term in its second moment.  The old
     * values are gone, so the step cannot be undone: it fails and says so,
     * and checkpoint writers refuse the non-finite state
     * (cg_optimizer_state_finite). */
    if (bad)
        return cg_fail(&opt->err, CHARGAN_E_NUMERIC,
                       "optimizer step %" PRIu64 ": the update made %s non-finite (learning "
                       "rate %g too large%s?); reload a checkpoint",
                       opt->steps, bad & CG_OPTIM_BAD_PARAMS ? "a parameter" : "the optimizer state",
                       (double)opt->cfg.lr,
                       opt->cfg.clip_norm > 0.0f ? "" : ", or gradients to clip with clip_norm");
    if (grad_norm)
        *grad_norm = u->norm;
    return CHARGAN_OK;
}

chargan_status cg_optimizer_step(chargan_optimizer *opt, float *params, float *grads, size_t n,
                                 double *grad_norm)
{
    chargan_status st = check_args(opt, params, grads, n);
    if (st != CHARGAN_OK)
        return st;
    double sumsq = 0.0;
    for (size_t b = 0, nb = cg_optimizer_blocks(n); b < nb; b++)
        sumsq += cg_optimizer_block_sumsq(grads, n, b);
    cg_optim_update u;
    if ((st = begin_checked(opt, grads, n, sumsq, &u)) != CHARGAN_OK)
        return st;
    return cg_optimizer_update_end(opt, &u, cg_optimizer_update_range(opt, &u, params, grads, 0, n),
                                   grad_norm);
}

bool cg_optimizer_state_finite(const chargan_optimizer *opt)
{
    return (!opt->m || all_finite(opt->m, opt->n)) && (!opt->v || all_finite(opt->v, opt->n));
}

/* ---------------------------------------------------------------- serialisation */

void cg_optimizer_write(const chargan_optimizer *opt, cg_writer *w)
{
    cg_put_u32(w, CG_OPTIM_STATE_VERSION);
    cg_put_u32(w, (uint32_t)opt->cfg.kind);
    for (size_t i = 0; i < N_CFG_FIELDS; i++)
        cg_put_f32(w, field_value(&opt->cfg, i));
    /* State reserved before the first step (cg_optimizer_reserve) is all
     * zero: the file has none until a step was taken. */
    const size_t n = opt->steps ? opt->n : 0;
    cg_put_u64(w, opt->steps);
    cg_put_u64(w, (uint64_t)n);
    if (opt->m)
        cg_put_f32_array(w, opt->m, n);
    if (opt->v)
        cg_put_f32_array(w, opt->v, n);
}

/* Reads n floats into a fresh array after checking each value; the caller
 * has checked the bytes are there. */
static chargan_status read_array(cg_reader *r, size_t n, bool nonnegative, const char *name,
                                 cg_error *err, float **out)
{
    const size_t start = r->pos;
    float *a = cg_alloc_floats(n);
    if (!a)
        return cg_fail(err, CHARGAN_E_NOMEM,
                       "optimizer state: out of memory for %s (%zu floats)", name, n);
    cg_get_f32_array(r, a, n); /* cannot fail: the length was checked */
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || (nonnegative && a[i] < 0.0f)) {
            double got = (double)a[i];
            cg_free_floats(a);
            return cg_fail(err, CHARGAN_E_FORMAT,
                           "optimizer state: %s[%zu] at byte %zu must be %s, got %g", name, i,
                           start + 4 * i, nonnegative ? "finite and >= 0" : "finite", got);
        }
    }
    *out = a;
    return CHARGAN_OK;
}

static chargan_status truncated(cg_error *err, const cg_reader *r, const char *field)
{
    return cg_fail(err, CHARGAN_E_FORMAT,
                   "optimizer state: truncated at byte %zu reading %s (%zu bytes left)", r->pos,
                   field, cg_reader_left(r));
}

chargan_status cg_optimizer_read(cg_reader *r, size_t expected_n, cg_error *err,
                                 chargan_optimizer **out)
{
    if (!r || !out)
        return cg_fail(err, CHARGAN_E_INVALID, "optimizer state: %s is NULL", !r ? "r" : "out");
    chargan_optimizer_config c;
    chargan_optimizer_config_init(&c, CHARGAN_ADAM);

    size_t at = r->pos;
    uint32_t version, kind;
    if (!cg_get_u32(r, &version))
        return truncated(err, r, "version");
    if (version != CG_OPTIM_STATE_VERSION)
        return cg_fail(err, CHARGAN_E_UNSUPPORTED,
                       "optimizer state: version at byte %zu is %" PRIu32
                       ", this library reads version %u",
                       at, version, CG_OPTIM_STATE_VERSION);
    at = r->pos;
    if (!cg_get_u32(r, &kind))
        return truncated(err, r, "kind");
    /* A kind we do not know may be a newer library's optimizer. */
    if (kind > INT32_MAX || !kind_known((int32_t)kind))
        return cg_fail(err, CHARGAN_E_UNSUPPORTED,
                       "optimizer state: kind at byte %zu is %" PRIu32
                       ", expected 0 (Adam), 1 (SGD) or 2 (RMSprop)",
                       at, kind);
    c.kind = (int32_t)kind;
    for (size_t i = 0; i < N_CFG_FIELDS; i++) {
        at = r->pos;
        if (!cg_get_f32(r, field_ptr(&c, i)))
            return truncated(err, r, cfg_fields[i].name);
        if (!rule_holds(cfg_fields[i].rule, field_value(&c, i)))
            return cg_fail(err, CHARGAN_E_FORMAT,
                           "optimizer state: %s at byte %zu must be %s, got %g",
                           cfg_fields[i].name, at, rule_text[cfg_fields[i].rule],
                           (double)field_value(&c, i));
    }
    uint64_t steps, n64;
    at = r->pos;
    if (!cg_get_u64(r, &steps))
        return truncated(err, r, "steps");
    /* Adam's bias correction takes the step number as a double; 2^64 - 1
     * would wrap to step 0 and divide by 1 - beta^0 = 0. */
    if (steps > CG_OPTIM_MAX_STEPS)
        return cg_fail(err, CHARGAN_E_FORMAT,
                       "optimizer state: steps at byte %zu is %" PRIu64 ", more than 2^53", at,
                       steps);
    at = r->pos;
    if (!cg_get_u64(r, &n64))
        return truncated(err, r, "n");
    if ((uint64_t)(size_t)n64 != n64)
        return cg_fail(err, CHARGAN_E_FORMAT,
                       "optimizer state: n at byte %zu is %" PRIu64 ", too large for this machine",
                       at, n64);
    const size_t n = (size_t)n64;
    if ((n == 0) != (steps == 0))
        return cg_fail(err, CHARGAN_E_FORMAT,
                       "optimizer state: n at byte %zu is %zu after %" PRIu64
                       " steps (n is 0 exactly before the first step)",
                       at, n, steps);
    if (n != 0 && expected_n != 0 && n != expected_n)
        return cg_fail(err, CHARGAN_E_FORMAT,
                       "optimizer state: n at byte %zu is %zu, expected %zu (the model's "
                       "parameter count)", at, n, expected_n);
    const bool has_m = cg_optimizer_needs_m(&c), has_v = cg_optimizer_needs_v(&c);
    const size_t arrays = (size_t)has_m + (size_t)has_v;
    const size_t left = cg_reader_left(r);
    if (arrays != 0 && n > left / (arrays * sizeof(float)))
        return cg_fail(err, CHARGAN_E_FORMAT,
                       "optimizer state: n at byte %zu is %zu, which needs %zu arrays of %zu "
                       "floats but only %zu bytes are left",
                       at, n, arrays, n, left);

    chargan_optimizer *opt = cg_calloc(1, sizeof *opt);
    if (!opt)
        return cg_fail(err, CHARGAN_E_NOMEM, "optimizer state: out of memory (%zu bytes)",
                       sizeof *opt);
    opt->cfg = c;
    opt->steps = steps;
    opt->n = n;
    chargan_status st = CHARGAN_OK;
    if (n != 0 && has_m)
        st = read_array(r, n, false, "m", err, &opt->m);
    if (st == CHARGAN_OK && n != 0 && has_v)
        st = read_array(r, n, true, "v", err, &opt->v);
    if (st != CHARGAN_OK) {
        chargan_optimizer_free(opt);
        return st;
    }
    *out = opt;
    return CHARGAN_OK;
}

chargan_optimizer *cg_optimizer_clone(const chargan_optimizer *opt)
{
    if (!opt) {
        cg_fail(NULL, CHARGAN_E_INVALID, "optimizer clone: opt is NULL");
        return NULL;
    }
    chargan_optimizer *copy = cg_calloc(1, sizeof *copy);
    if (!copy) {
        cg_fail(NULL, CHARGAN_E_NOMEM, "optimizer clone: out of memory");
        return NULL;
    }
    *copy = *opt;
    copy->m = copy->v = NULL;
    copy->n = 0;
    if (opt->n != 0 && !alloc_state(copy, opt->n)) {
        cg_free(copy);
        cg_fail(NULL, CHARGAN_E_NOMEM, "optimizer clone: out of memory for %zu parameters",
                opt->n);
        return NULL;
    }
    if (copy->m)
        memcpy(copy->m, opt->m, opt->n * sizeof(float));
    if (copy->v)
        memcpy(copy->v, opt->v, opt->n * sizeof(float));
    return copy;
}
