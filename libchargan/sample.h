/* sample.h - drawing one token from a row of logits with temperature,
 * top-k and top-p, or by Gumbel-max; shared by sampling (sample.c) and the
 * GAN step (gan.c). */
#ifndef CHARGAN_SAMPLE_H
#define CHARGAN_SAMPLE_H

#include "internal.h"

typedef struct cg_sampler {
    int V;
    float inv_temperature;
    uint32_t top_k; /* 0 or >= V: all */
    float top_p;    /* >= 1: all */
    bool allow_reserved;
    float *prob;    /* V scratch */
    int32_t *order; /* V scratch, only for top-k / top-p */
    bool not_finite; /* a row's logits were not finite (the draw is then meaningless) */
} cg_sampler;

/* Validates opts (message through err names the field) and allocates scratch. */
chargan_status cg_sampler_init(cg_sampler *s, cg_error *err, int V, const chargan_sample_options *opts);
void cg_sampler_free(cg_sampler *s);
/* One draw from softmax(logits / temperature) restricted as configured. */
int32_t cg_sampler_draw(cg_sampler *s, const float *logits, cg_rng *rng);
/* The Gumbel-max draw of relaxed generation: y = logits + Gumbel(0, 1)
 * noise from rng (one draw per id, in id order); returns y's argmax, a draw
 * from softmax(logits).  y is V floats, not logits. */
int32_t cg_gumbel_argmax(float *y, const float *logits, int V, cg_rng *rng);

#endif
