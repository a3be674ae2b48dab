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
 * usage: kernel_bench [reps (default 15)] [T (default 64)] */
#define _POSIX_C_SOURCE 200809L
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

enum method { BLAS, KERNEL, PACKED }; /* PACKED: forward from w_hh packed once per sequence */

typedef struct shape {
    int B, H, T;
    bool backward;
} shape;

typedef struct buffers {
    float *w, *wt, *in, *out; /* in: T inputs; out: T outputs */
} buffers;

/* One sequence's steps. */
static void run_steps(const shape *s, enum method how, cg_kern_path path, buffers *b)
{
    const int B = s->B, H = s->H, G = 4 * H;
    cg_kpacked packed;
    if (how == PACKED) /* as the LSTM's forward does at its begin (wt is big enough: H % 4 == 0) */
        cg_kpack_on(path, &packed, H, G, b->w, G, b->wt);
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
                       : s->backward     ? "transpose+kgemm_nn"
                                         : "kgemm_nn";
    printf("%-8s B=%-3d H=%-4d %-18s %-9s %7.1f GFLOP/s (min %6.1f, max %6.1f; wall %6.1f)\n",
           s->backward ? "backward" : "forward", s->B, s->H, name,
           how == BLAS ? cg_blas_name() : cg_kern_path_name(path), rate[reps / 2], rate[0],
           rate[reps - 1], wall[reps / 2]);
    fflush(stdout);
    free(rate);
    free(wall);
}

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
                             random_floats((size_t)T * (bwd ? bh : bh * 4), &seed)};
                bench(&s, BLAS, CG_KERN_AUTO, reps, &b);
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
