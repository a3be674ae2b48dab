/* kernels.h - a small-GEMM kernel for the LSTM's per-step recurrent
 * products: h(t-1) w_hh (B x H times H x 4H) in the forward, and dz w_hh^T
 * in the backward, done as dz (B x 4H) times a transposed copy of w_hh (4H x
 * H) made once per backward.  B is 1 to 64 rows.  At these shapes a BLAS
 * spends much of its time packing the weight matrix on every call; this
 * kernel reads it in place, with register-blocked AVX-512 and AVX2+FMA paths
 * and a portable fallback, chosen once at run time.
 *
 * Summation order: each element of C is one chain of multiply-adds over
 * k = 0, 1, ..., k-1 in order, started from C (or from 0), fused on the
 * AVX-512 and AVX2 paths and on the portable one where the compiler has a
 * fast fmaf (FP_FAST_FMAF; not x86-64's baseline, where it rounds the
 * product and the sum separately).  So a row's result does not depend on
 * the other rows or on how many there are, and the two vector paths give
 * the same bits. */
#ifndef CHARGAN_KERNELS_H
#define CHARGAN_KERNELS_H

#include "internal.h"

typedef enum cg_kern_path {
    CG_KERN_AUTO = 0,     /* the best this CPU supports */
    CG_KERN_PORTABLE = 1, /* plain C, vectorised by the compiler for the baseline ISA */
    CG_KERN_AVX2 = 2,     /* x86-64 AVX2 + FMA, 8 lanes */
    CG_KERN_AVX512 = 3,   /* x86-64 AVX-512F, 16 lanes */
} cg_kern_path;

/* C (m x n, row stride ldc) = [C +] A (m x k, lda) . B (k x n, ldb): all
 * row-major, alpha 1.  accumulate false: C is only written (it may hold
 * garbage or NaN); true: the products are added to it.  k == 0 zeroes C or
 * leaves it.  C must not overlap A or B.  Thread-safe; allocates nothing.
 * On the portable path this calls the BLAS instead (faster there), so the
 * row-independence above holds on the vector paths only. */
void cg_kgemm_nn(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
                 int ldc, bool accumulate);

/* dst (cols x rows, row stride ldd) = src (rows x cols, lds) transposed.
 * The two must not overlap. */
void cg_ktranspose(int rows, int cols, const float *src, int lds, float *dst, int ldd);

/* The path cg_kgemm_nn uses, chosen once (thread-safe) from what the CPU
 * and the OS support. */
cg_kern_path cg_kern_active(void);
/* Whether this build and CPU can run path (AUTO and PORTABLE: always). */
bool cg_kern_available(cg_kern_path path);
/* "auto", "portable", "avx2", "avx512". */
const char *cg_kern_path_name(cg_kern_path path);

/* For tests and benchmarks: cg_kgemm_nn on a given path.  Does nothing and
 * returns false when cg_kern_available(path) is false. */
bool cg_kgemm_nn_on(cg_kern_path path, int m, int n, int k, const float *a, int lda,
                    const float *b, int ldb, float *c, int ldc, bool accumulate);

#endif /* CHARGAN_KERNELS_H */
