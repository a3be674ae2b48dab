/* alloc.c - every allocation of the library, with a failure-injection hook
 * and a record of the largest request, both for the tests. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fault injection is per thread so parallel tests do not disturb each other. */
static _Thread_local long fail_countdown = -1;
static _Thread_local long alloc_count;
static _Thread_local size_t alloc_largest;
static _Thread_local uint64_t alloc_requested; /* wraps after 2^64 bytes: never */

/* Counts an allocation of n bytes; true if it is to fail. */
static bool should_fail(size_t n)
{
    alloc_largest = n > alloc_largest ? n : alloc_largest;
    alloc_requested += n;
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

uint64_t cg_alloc_requested(void)
{
    return alloc_requested;
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

/* Room before an aligned float array for the block it was cut from. */
#define FLOATS_PAD (64 + sizeof(void *))

float *cg_alloc_floats(size_t n)
{
    size_t bytes;
    if (!cg_mul_size(n ? n : 1, sizeof(float), &bytes) || bytes > SIZE_MAX - 64 - FLOATS_PAD)
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    if (should_fail(bytes))
        return NULL;
    /* calloc, not aligned_alloc and memset: the C library gives a large
     * block as fresh zero pages it need not write, so that room reserved
     * and not yet used (a trainer sized by a checkpoint's batch, a workspace
     * for the largest call) takes address space, not memory.  The array
     * starts at the first 64-byte boundary with room for the block's
     * address before it. */
    unsigned char *block = calloc(1, bytes + FLOATS_PAD);
    if (!block)
        return NULL;
    uintptr_t at = ((uintptr_t)block + sizeof(void *) + 63) & ~(uintptr_t)63;
    memcpy((void **)at - 1, &block, sizeof block);
    return (float *)at;
}

float *cg_alloc_float_matrix(size_t rows, size_t cols)
{
    size_t n;
    return cg_mul_size(rows, cols, &n) ? cg_alloc_floats(n) : NULL;
}

void cg_free_floats(float *p)
{
    if (!p)
        return;
    void *block;
    memcpy(&block, (void **)p - 1, sizeof block);
    free(block);
}

char *cg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cg_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
