/* count_malloc.c - an LD_PRELOAD shim for the CLI tests: counts the calls to
 * malloc, calloc and realloc of the whole process (the BLAS's included) and
 * at exit writes the number to the file CHARGAN_TEST_MALLOC_LOG names.  A run
 * of 10 steps and one of 110 must make as many: no allocation in a step.
 * glibc only (it forwards to __libc_malloc and its siblings). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *p, size_t size);

static atomic_ulong calls;

void *malloc(size_t size)
{
    atomic_fetch_add(&calls, 1);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    atomic_fetch_add(&calls, 1);
    return __libc_calloc(count, size);
}

void *realloc(void *p, size_t size)
{
    atomic_fetch_add(&calls, 1);
    return __libc_realloc(p, size);
}

__attribute__((destructor)) static void write_count(void)
{
    const char *path = getenv("CHARGAN_TEST_MALLOC_LOG");
    unsigned long n = atomic_load(&calls);
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "%lu\n", n);
        fclose(f);
    }
}
