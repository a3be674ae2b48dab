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
/* The rows up to which cg_sgemm hands an untransposed product to cg_kgemm_nn. */
enum { CG_KGEMM_ROWS = 64 };

/* A B matrix that many products read (the forward's w_hh, once per step of
 * a sequence), copied once into the layout the active path reads fastest:
 * on AVX2, panels of 16 columns with their k rows 64 bytes apart.  Read in
 * place, its rows are 4H floats apart and fall into the same L1 sets:
 * bench/kernel_bench's AVX2 forward at B = 32, H = 256 runs at 45 GFLOP/s in
 * place and 96 from panels on the 2-core AVX-512 machine (a whole training
 * step there, forced onto AVX2, gains 3-7%).  The AVX-512 path reads B in
 * place at about the packed rate and does not copy.  The products are the
 * same bits as cg_kgemm_nn's. */
typedef struct cg_kpacked {
    const float *b; /* the matrix as given (read when panels is NULL) */
    int k, n, ldb;
    float *panels;  /* cg_kpack_floats(k, n) floats, or NULL: read b in place */
} cg_kpacked;

/* Floats a packed copy of a k x n matrix needs on the active path; 0 when
 * the path reads B in place. */
size_t cg_kpack_floats(int k, int n);

/* Describes b (k x n, row stride ldb) in *p and, when buf is not NULL and
 * the active path packs, copies it into buf (cg_kpack_floats(k, n) floats).
 * With buf NULL, *p reads b in place.  b is read again by products only
 * when not copied; a copy goes stale if b changes. */
void cg_kpack(cg_kpacked *p, int k, int n, const float *b, int ldb, float *buf);

/* cg_kgemm_nn(m, p->n, p->k, a, lda, p's matrix, c, ldc, accumulate), on
 * the AVX2 path when p holds panels. */
void cg_kgemm_nn_packed(int m, const float *a, int lda, const cg_kpacked *p, float *c, int ldc,
                        bool accumulate);

/* For tests and benchmarks: the two above for a given path (AUTO: the
 * active one); a path that does not pack, or is not available, reads b in
 * place. */
size_t cg_kpack_floats_on(cg_kern_path path, int k, int n);
void cg_kpack_on(cg_kern_path path, cg_kpacked *p, int k, int n, const float *b, int ldb,
                 float *buf);

/* dst (cols x rows, row stride ldd) = src (rows x cols, lds) transposed.
 * The two must not overlap. */
void cg_ktranspose(int rows, int cols, const float *src, int lds, float *dst, int ldd);

/* The path cg_kgemm_nn uses, chosen once (thread-safe) from what the CPU
 * and the OS support. */
cg_kern_path cg_kern_active(void);
/* For tests: makes path (if available and not AUTO) the one cg_kgemm_nn
 * and cg_kpack use from now on, so the library's own tests can run on a
 * path below the best the CPU has; returns whether it did.  Not
 * thread-safe: call it before any other thread uses the kernels. */
bool cg_kern_force_path(cg_kern_path path);
/* Whether this build and CPU can run path (AUTO and PORTABLE: always). */
bool cg_kern_available(cg_kern_path path);
/* "auto", "portable", "avx2", "avx512". */
const char *cg_kern_path_name(cg_kern_path path);

/* For tests and benchmarks: cg_kgemm_nn on a given path.  Does nothing and
 * returns false when cg_kern_available(path) is false. */
bool cg_kgemm_nn_on(cg_kern_path path, int m, int n, int k, const float *a, int lda,
                    const float *b, int ldb, float *c, int ldc, bool accumulate);

#endif /* CHARGAN_KERNELS_H */
