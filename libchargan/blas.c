/* blas.c - the one file that talks to CBLAS, so the backend changes here only. */
#include "internal.h"

#include <cblas.h>
#include <dlfcn.h>

void cg_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m == 0 || n == 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* A weak reference: NULL unless OpenBLAS is linked in, which is how a
 * program linked with libchargan.a and a static OpenBLAS has it (dlsym sees
 * only dynamic symbols). */
extern void openblas_set_num_threads(int) __attribute__((weak));

/* Looked up at run time, not link time: Debian's libblas.so.3 is an
 * alternative that may be OpenBLAS (which has this) or the reference BLAS
 * (which does not), and the choice can change after we are built. */
void cg_blas_set_threads(int n)
{
    void (*set_threads)(int);
    *(void **)&set_threads = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (!set_threads)
        set_threads = openblas_set_num_threads;
    if (set_threads)
        set_threads(n < 1 ? 1 : n);
}

const char *cg_blas_name(void)
{
    return CHARGAN_BLAS_NAME;
}
