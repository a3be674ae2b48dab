/* kernel_bench - the LSTM's per-step recurrent products through the BLAS
 * (cg_sgemm) and through the small-GEMM kernels (kernels.c), in GFLOP/s.
 *
 * Each timed run is one sequence's worth of steps, as the LSTM does them: T
 * products with the same weights and a different B-row input each step.
 * forward: z (B x 4H) += h (B x H) . w_hh (H x 4H); backward: dh (B x H) =
 * dz (B x 4H) . w_hh^T, which the kernel does as the LSTM does: w_hh is
 * transposed once per sequence (included in the time) and each step is an
 * NN product with the copy.  The AVX2 path's forward is timed also as the
 * LSTM runs it, from w_hh packed once per sequence (cg_kpack, included).
 * The BLAS runs single-threaded, as it does under the trainer's shards; set
 * OPENBLAS_CORETYPE to choose its kernels.  Prints the median, min and max
 * GFLOP/s of reps runs, timed by the thread's CPU time (on a shared,
 * loaded machine wall time mostly measures the other processes; the wall
 * median is printed too) and the load average before and after.
 *
 * On a CPU with AVX512_BF16 the forward is timed also with bfloat16 inputs
 * and float32 sums (vdpbf16ps: two multiply-adds per float32 lane), an
 * experiment for docs/BENCHMARKS.md, not a path of the library: w_hh packed
 * once per sequence into bfloat16 row pairs, each step's h rounded to
 * bfloat16 (both included); its line also gives the largest error against
 * the float32 product, relative to that product's largest value.
 *
 * usage: kernel_bench [reps (default 15)] [T (default 64)] */
#define _POSIX_C_SOURCE 200809L
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BF16_EXPERIMENT 1
#endif

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_load(const char *when)
{
    double l[3] = {-1, -1, -1};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3)
            l[0] = -1;
        fclose(f);
    }
    printf("# load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* PACKED: forward from w_hh packed once per sequence; BF16: the experiment */
enum method { BLAS, KERNEL, PACKED, BF16 };

typedef struct shape {
    int B, H, T;
    bool backward;
} shape;

typedef struct buffers {
    float *w, *wt, *in, *out; /* in: T inputs; out: T outputs */
    uint32_t *w_bf16, *h_bf16; /* the experiment's packed w_hh and one step's h */
} buffers;

#ifdef BF16_EXPERIMENT
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* w (K x N, K even, N % 16 == 0) as bfloat16 pairs: wp[kp * N + n] holds
 * w[2 kp][n] in its low half and w[2 kp + 1][n] in its high half, the
 * operand layout of vdpbf16ps. */
BF16_TARGET static void bf16_pack_pairs(int K, int N, const float *w, uint32_t *wp)
{
    for (int kp = 0; kp < K / 2; kp++)
        for (int n = 0; n < N; n += 16) {
            __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(w + (size_t)2 * kp * N + n));
            __m256i hi =
                (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(w + ((size_t)2 * kp + 1) * N + n));
            __m512i pair = _mm512_or_si512(_mm512_cvtepu16_epi32(lo),
                                           _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
            _mm512_storeu_si512(wp + (size_t)kp * N + n, pair);
        }
}

/* c (M x N) += a (M x K, rounded to bfloat16) . w (packed by
 * bf16_pack_pairs); M % 8 == 0, N % 32 == 0, K % 32 == 0.  Tiles of 8 rows
 * by 32 columns: 16 accumulators, two loads of w and eight broadcasts of a
 * per 16 vdpbf16ps. */
BF16_TARGET static void bf16_gemm(int M, int N, int K, const float *a, const uint32_t *wp,
                                  uint32_t *ab, float *c)
{
    const int KP = K / 2;
    for (int m = 0; m < M; m++) /* a's rows in bfloat16, pairs along k */
        for (int k = 0; k < K; k += 32)
            _mm512_storeu_si512(ab + (size_t)m * KP + k / 2,
                                (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(a + (size_t)m * K + k + 16),
                                                            _mm512_loadu_ps(a + (size_t)m * K + k)));
    for (int n0 = 0; n0 < N; n0 += 32)
        for (int m0 = 0; m0 < M; m0 += 8) {
            __m512 acc[8][2];
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 2; j++)
                    acc[i][j] = _mm512_loadu_ps(c + (size_t)(m0 + i) * N + n0 + 16 * j);
            for (int kp = 0; kp < KP; kp++) {
                const uint32_t *w = wp + (size_t)kp * N + n0;
                __m512bh w0 = (__m512bh)_mm512_loadu_si512(w), w1 = (__m512bh)_mm512_loadu_si512(w + 16);
                for (int i = 0; i < 8; i++) {
                    __m512bh x = (__m512bh)_mm512_set1_epi32((int)ab[(size_t)(m0 + i) * KP + kp]);
                    acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, w0);
                    acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, w1);
                }
            }
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 2; j++)
                    _mm512_storeu_ps(c + (size_t)(m0 + i) * N + n0 + 16 * j, acc[i][j]);
        }
}

static bool bf16_runs(const shape *s)
{
    return !s->backward && s->B % 8 == 0 && s->H % 32 == 0 && __builtin_cpu_supports("avx512bf16");
}
#endif

/* One sequence's steps. */
static void run_steps(const shape *s, enum method how, cg_kern_path path, buffers *b)
{
    const int B = s->B, H = s->H, G = 4 * H;
    cg_kpacked packed;
    if (how == PACKED) /* as the LSTM's forward does at its begin (wt is big enough: H % 4 == 0) */
        cg_kpack_on(path, &packed, H, G, b->w, G, b->wt);
#ifdef BF16_EXPERIMENT
    if (how == BF16) {
        bf16_pack_pairs(H, G, b->w, b->w_bf16);
        for (int t = 0; t < s->T; t++)
            bf16_gemm(B, G, H, b->in + (size_t)t * B * H, b->w_bf16, b->h_bf16,
                      b->out + (size_t)t * B * G);
        return;
    }
#endif
    if (!s->backward) {
        for (int t = 0; t < s->T; t++) {
            const float *h = b->in + (size_t)t * B * H;
            float *z = b->out + (size_t)t * B * G;
            if (how == BLAS)
                cg_sgemm(false, false, B, G, H, 1.0f, h, H, b->w, G, 1.0f, z, G);
            else if (how == KERNEL)
                cg_kgemm_nn_on(path, B, G, H, h, H, b->w, G, z, G, true);
            else
                cg_kgemm_nn_packed(B, h, H, &packed, z, G, true);
        }
        return;
    }
    if (how == KERNEL)
        cg_ktranspose(H, G, b->w, G, b->wt, H);
    for (int t = s->T - 1; t >= 0; t--) {
        const float *dz = b->in + (size_t)t * B * G;
        float *dh = b->out + (size_t)t * B * H;
        if (how == BLAS)
            cg_sgemm(false, true, B, H, G, 1.0f, dz, G, b->w, G, 0.0f, dh, H);
        else
            cg_kgemm_nn_on(path, B, H, G, dz, G, b->wt, H, dh, H, false);
    }
}

static void bench(const shape *s, enum method how, cg_kern_path path, int reps, buffers *b)
{
    const double flops = 2.0 * s->B * s->H * 4.0 * s->H * s->T;
    double *rate = malloc((size_t)reps * sizeof *rate), *wall = malloc((size_t)reps * sizeof *wall);
    /* Repeat each run until it takes a few ms so the clock's resolution and
     * one-off interruptions matter less. */
    int inner = 1;
    for (;;) {
        const double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < inner; i++)
            run_steps(s, how, path, b);
        if (clock_s(CLOCK_THREAD_CPUTIME_ID) - t0 > 0.02 || inner > 1 << 20)
            break;
        inner *= 2;
    }
    for (int r = 0; r < reps; r++) {
        const double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
        for (int i = 0; i < inner; i++)
            run_steps(s, how, path, b);
        rate[r] = flops * inner / (clock_s(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e-9;
        wall[r] = flops * inner / (clock_s(CLOCK_MONOTONIC) - w0) * 1e-9;
    }
    qsort(rate, (size_t)reps, sizeof *rate, cmp_double);
    qsort(wall, (size_t)reps, sizeof *wall, cmp_double);
    const char *name = how == BLAS       ? "cg_sgemm"
                       : how == PACKED   ? "pack+kgemm_packed"
                       : how == BF16     ? "pack+bf16 dot"
                       : s->backward     ? "transpose+kgemm_nn"
                                         : "kgemm_nn";
    printf("%-8s B=%-3d H=%-4d %-18s %-9s %7.1f GFLOP/s (min %6.1f, max %6.1f; wall %6.1f)\n",
           s->backward ? "backward" : "forward", s->B, s->H, name,
           how == BLAS ? cg_blas_name() : how == BF16 ? "avx512bf16" : cg_kern_path_name(path),
           rate[reps / 2], rate[0],
           rate[reps - 1], wall[reps / 2]);
    fflush(stdout);
    free(rate);
    free(wall);
}

#ifdef BF16_EXPERIMENT
/* The bfloat16 product's largest error on one step against the float32
 * kernel's, relative to the largest value of the latter. */
static void bf16_error(const shape *s, buffers *b)
{
    const int B = s->B, H = s->H, G = 4 * H;
    float *want = calloc((size_t)B * G, sizeof *want), *got = calloc((size_t)B * G, sizeof *got);
    cg_kgemm_nn(B, G, H, b->in, H, b->w, G, want, G, true);
    bf16_pack_pairs(H, G, b->w, b->w_bf16);
    bf16_gemm(B, G, H, b->in, b->w_bf16, b->h_bf16, got);
    double err = 0, scale = 0;
    for (size_t i = 0; i < (size_t)B * G; i++) {
        err = fmax(err, fabs((double)got[i] - (double)want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    printf("         (bfloat16 inputs: largest error %.2e of the product's largest value)\n",
           err / scale);
    free(want);
    free(got);
}
#endif

static float *random_floats(size_t n, unsigned *seed)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 15, T = argc > 2 ? atoi(argv[2]) : 64;
    if (reps < 1 || T < 1) {
        fprintf(stderr, "usage: kernel_bench [reps] [T]\n");
        return 2;
    }
    cg_blas_set_threads(1);
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("# kernels: %s; BLAS: %s, OPENBLAS_CORETYPE=%s; %d runs of T=%d steps\n",
           cg_kern_path_name(cg_kern_active()), cg_blas_name(), core ? core : "(unset)", reps, T);
    print_load("before");
    const int Bs[] = {16, 32}, Hs[] = {128, 256};
    const cg_kern_path paths[] = {CG_KERN_AVX512, CG_KERN_AVX2, CG_KERN_PORTABLE};
    for (int bwd = 0; bwd < 2; bwd++)
        for (size_t hi = 0; hi < 2; hi++)
            for (size_t bi = 0; bi < 2; bi++) {
                const shape s = {Bs[bi], Hs[hi], T, bwd == 1};
                const size_t G = 4 * (size_t)s.H, bh = (size_t)s.B * s.H;
                unsigned seed = 1;
                buffers b = {random_floats((size_t)s.H * G, &seed),
                             random_floats((size_t)s.H * G, &seed),
                             random_floats((size_t)T * (bwd ? bh * 4 : bh), &seed),
                             random_floats((size_t)T * (bwd ? bh : bh * 4), &seed), NULL, NULL};
                bench(&s, BLAS, CG_KERN_AUTO, reps, &b);
#ifdef BF16_EXPERIMENT
                if (bf16_runs(&s)) {
                    b.w_bf16 = malloc((size_t)s.H * G / 2 * sizeof(uint32_t));
                    b.h_bf16 = malloc(bh / 2 * sizeof(uint32_t));
                    bench(&s, BF16, CG_KERN_AUTO, reps, &b);
                    bf16_error(&s, &b);
                    free(b.w_bf16);
                    free(b.h_bf16);
                }
#endif
                for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
                    if (!cg_kern_available(paths[p]))
                        continue;
                    bench(&s, KERNEL, paths[p], reps, &b);
                    if (!s.backward && cg_kpack_floats_on(paths[p], s.H, 4 * s.H) > 0)
                        bench(&s, PACKED, paths[p], reps, &b);
                }
                free(b.w);
                free(b.wt);
                free(b.in);
                free(b.out);
            }
    print_load("after");
    return 0;
}
