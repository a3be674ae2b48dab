/* fma_peak - the CPU's arithmetic ceiling for float32 training: how many
 * FLOP/s its widest vector FMA gives on 1 and on N threads at once, and, where
 * the CPU has AVX512_BF16, its bfloat16 dot product (two multiply-adds per
 * float32 lane).  A benchmark's GFLOP/s against this says how much of the
 * machine a step uses, which the sgemm rate (itself below the peak) does
 * not.  One JSON line on stdout; scripts/bench.sh runs it beside the sides.
 *
 *   fma_peak [--threads N] [--seconds S]
 *
 * Each thread runs independent chains of FMAs on registers (enough chains
 * to hide the instruction's latency), nothing from memory. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

enum { CHAINS = 12, BLOCK = 1 << 16 };

/* What a job runs: the widest float32 FMA the CPU has, or the bfloat16 dot. */
typedef enum { OP_NONE, OP_FMA_AVX2, OP_FMA_AVX512, OP_BF16 } op_kind;
static const struct {
    const char *name;
    double flops; /* per instruction */
} ops[] = {[OP_NONE] = {"none", 0},
           [OP_FMA_AVX2] = {"avx2", 16},
           [OP_FMA_AVX512] = {"avx512", 32},
           [OP_BF16] = {"avx512bf16", 64}};

typedef struct {
    op_kind op;
    long blocks;
    float sink;
} job;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#ifdef HAVE_X86
/* The empty asm keeps the multiplier in a register the compiler cannot see
 * through, so the chains are neither folded nor hoisted. */
__attribute__((target("avx512f"))) static float fma_avx512(long blocks)
{
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
    for (long n = 0; n < blocks * BLOCK; n++) {
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(a, acc[i], b);
        __asm__ volatile("" : "+v"(a));
    }
    float s = 0;
    for (int i = 0; i < CHAINS; i++)
        s += _mm512_reduce_add_ps(acc[i]);
    return s;
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long blocks)
{
    __m256 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-7f);
    for (long n = 0; n < blocks * BLOCK; n++) {
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(a, acc[i], b);
        __asm__ volatile("" : "+x"(a));
    }
    float out[8], s = 0;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(out, acc[i]);
        for (int j = 0; j < 8; j++)
            s += out[j];
    }
    return s;
}

__attribute__((target("avx512f,avx512bf16"))) static float dot_bf16(long blocks)
{
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    /* bfloat16 1.0 (0x3f80) and a small number, in each half of a lane */
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
    for (long n = 0; n < blocks * BLOCK; n++) {
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    float s = 0;
    for (int i = 0; i < CHAINS; i++)
        s += _mm512_reduce_add_ps(acc[i]);
    return s;
}
#endif

/* The widest float32 FMA this CPU has (OP_NONE: none known). */
static op_kind widest_fma(void)
{
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return OP_FMA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return OP_FMA_AVX2;
#endif
    return OP_NONE;
}

static int has_bf16(void)
{
#ifdef HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

static void *run_job(void *arg)
{
    job *j = arg;
#ifdef HAVE_X86
    switch (j->op) {
    case OP_FMA_AVX512: j->sink = fma_avx512(j->blocks); break;
    case OP_FMA_AVX2: j->sink = fma_avx2(j->blocks); break;
    case OP_BF16: j->sink = dot_bf16(j->blocks); break;
    case OP_NONE: break;
    }
#else
    (void)j;
#endif
    return NULL;
}

/* GFLOP/s of op on threads threads at once, each running blocks blocks. */
static double measure(op_kind op, int threads, long blocks)
{
    pthread_t tid[64];
    job jobs[64];
    double t0 = now();
    int started = 0;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){.op = op, .blocks = blocks};
        if (pthread_create(&tid[i], NULL, run_job, &jobs[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    double t = now() - t0;
    return (double)started * (double)blocks * BLOCK * CHAINS * ops[op].flops / t * 1e-9;
}

/* Blocks that take about seconds on one thread, from a short trial. */
static long calibrate(op_kind op, double seconds)
{
    double rate = measure(op, 1, 4) * 1e9;
    double per_block = (double)BLOCK * CHAINS * ops[op].flops / rate;
    long blocks = (long)(seconds / per_block);
    return blocks > 1 ? blocks : 1;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: fma_peak [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || !(seconds > 0 && seconds <= 60)) {
        fprintf(stderr, "fma_peak: --threads 1..64, --seconds in (0, 60]\n");
        return 2;
    }
    op_kind fma = widest_fma();
    if (fma == OP_NONE) {
        printf("{\"fma_isa\": \"none\"}\n");
        return 0;
    }
    /* best of three at each thread count: the machine is shared */
    double one = 0, all = 0, bf16 = 0;
    long blocks = calibrate(fma, seconds);
    for (int r = 0; r < 3; r++) {
        double g1 = measure(fma, 1, blocks), gn = measure(fma, threads, blocks);
        one = g1 > one ? g1 : one;
        all = gn > all ? gn : all;
    }
    if (has_bf16()) {
        long bblocks = calibrate(OP_BF16, seconds);
        for (int r = 0; r < 3; r++) {
            double g = measure(OP_BF16, threads, bblocks);
            bf16 = g > bf16 ? g : bf16;
        }
    }
    printf("{\"fma_isa\": \"%s\", \"threads\": %d, \"fma_peak_gflops_1thread\": %.1f, "
           "\"fma_peak_gflops\": %.1f", ops[fma].name, threads, one, all);
    if (bf16 > 0)
        printf(", \"bf16_dot_peak_gflops\": %.1f", bf16);
    printf("}\n");
    return 0;
}
