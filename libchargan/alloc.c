/* alloc.c - every allocation of the library, with a failure-injection hook
 * and a record of the largest request, both for the tests. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Fault injection is per thread so parallel tests do not disturb each other. */
static _Thread_local long fail_countdown = -1;
static _Thread_local long alloc_count;
static _Thread_local size_t alloc_largest;

/* Counts an allocation of n bytes; true if it is to fail. */
static bool should_fail(size_t n)
{
    alloc_largest = n > alloc_largest ? n : alloc_largest;
    alloc_count++;
    if (fail_countdown < 0)
        return false;
    if (fail_countdown == 0)
        return true;
    fail_countdown--;
    return false;
}

size_t cg_alloc_largest(void)
{
    size_t largest = alloc_largest;
    alloc_largest = 0;
    return largest;
}

long cg_alloc_fail_after(long n)
{
    long count = alloc_count;
    alloc_count = 0;
    fail_countdown = n;
    return count;
}

void *cg_malloc(size_t n)
{
    if (should_fail(n))
        return NULL;
    return malloc(n ? n : 1);
}

void *cg_calloc(size_t count, size_t size)
{
    size_t bytes;
    if (should_fail(cg_mul_size(count, size, &bytes) ? bytes : SIZE_MAX))
        return NULL;
    if (count == 0 || size == 0)
        count = size = 1;
    return calloc(count, size);
}

void *cg_realloc(void *p, size_t n)
{
    if (should_fail(n))
        return NULL;
    return realloc(p, n ? n : 1);
}

void cg_free(void *p)
{
    free(p);
}

void chargan_free(void *ptr)
{
    free(ptr);
}

bool cg_mul_size(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b)
        return false;
    *out = a * b;
    return true;
}

float *cg_alloc_floats(size_t n)
{
    size_t bytes;
    if (!cg_mul_size(n ? n : 1, sizeof(float), &bytes) || bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    if (should_fail(bytes))
        return NULL;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

float *cg_alloc_float_matrix(size_t rows, size_t cols)
{
    size_t n;
    return cg_mul_size(rows, cols, &n) ? cg_alloc_floats(n) : NULL;
}

void cg_free_floats(float *p)
{
    free(p);
}

char *cg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cg_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
