/* blas.c - the one file that talks to CBLAS, so the backend changes here only. */
#include "internal.h"

#include <cblas.h>

void cg_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m == 0 || n == 0)
        return;
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
