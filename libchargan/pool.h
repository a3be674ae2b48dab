/* pool.h - a fixed team of worker threads that run one function on P shards
 * of work and wait for all of them.  Used to split a batch across cores:
 * OpenBLAS's own threads gain little at LSTM step shapes, independent
 * half-batches gain nearly 2x.  Shard 0 runs on the calling thread. */
#ifndef CHARGAN_POOL_H
#define CHARGAN_POOL_H

#include "internal.h"

#include <stdatomic.h>

typedef struct cg_pool cg_pool;
typedef void (*cg_pool_fn)(void *ctx, int shard);

/* Starts n - 1 workers (n >= 1; n == 1 starts none).  NULL on failure. */
cg_pool *cg_pool_new(int n);
void cg_pool_free(cg_pool *pool);
int cg_pool_size(const cg_pool *pool);
/* Runs fn(ctx, s) for s = 0 .. n-1, concurrently, and returns when all are
 * done (in a child of fork(), which has no workers, one after another: so a
 * persistent pool's shards never wait for each other).  Allocation-free.
 * Between calls the workers spin for about 100 us before they sleep (not
 * when they outnumber the process's CPUs), so calls in quick succession do
 * not pay a wake-up each.  Callers keep the BLAS single-threaded while they
 * use a pool: OpenBLAS's idle threads spin (sched_yield) after each call and
 * would steal the cores the shards run on. */
void cg_pool_run(cg_pool *pool, cg_pool_fn fn, void *ctx);

/* A barrier for the threads of one cg_pool_run that meet many times in quick
 * succession (every step of a sampled stream, a few microseconds apart):
 * waiters spin briefly, then yield, rather than sleep, since a wake-up
 * through the kernel costs about as much as a step. */
typedef struct cg_barrier {
    atomic_uint arrived, phase;
    unsigned n;
} cg_barrier;

void cg_barrier_init(cg_barrier *b, unsigned n);
/* Returns once all n threads have called it; their writes before it are
 * visible to every thread after it. */
void cg_barrier_wait(cg_barrier *b);

#endif
