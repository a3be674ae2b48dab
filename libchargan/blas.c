/* blas.c - the one file that talks to CBLAS, so the backend changes here only. */
#include "internal.h"
#include "kernels.h"

#include <cblas.h>

void cg_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m == 0 || n == 0)
        return;
    /* Small products untransposed (a step's batch through the output layer,
     * relaxed one-hots through an embedding) go to kernels.c's small-GEMM
     * kernel: OpenBLAS's small-matrix path calls malloc on many of them, as
     * often as once per time step of a generation, and a step's loop
     * allocates nothing. */
    const bool small = m <= CG_KGEMM_ROWS || (double)m * n * k <= 1048576.0;
    if (small && !trans_a && !trans_b && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) &&
        cg_kern_active() != CG_KERN_PORTABLE) {
        cg_kgemm_nn(m, n, k, a, lda, b, ldb, c, ldc, beta == 1.0f);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* A weak reference, resolved when the library is loaded (or a static
 * program linked): Debian's libblas.so.3 is an alternative that may be
 * OpenBLAS (which has this) or the reference BLAS (which does not, and the
 * reference stays NULL), and the choice can change after we are built. */
extern void openblas_set_num_threads(int) __attribute__((weak));

void cg_blas_set_threads(int n)
{
    if (openblas_set_num_threads)
        openblas_set_num_threads(n < 1 ? 1 : n);
}

const char *cg_blas_name(void)
{
    return CHARGAN_BLAS_NAME;
}
