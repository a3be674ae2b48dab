/* pool.c - fixed worker threads for cg_pool_run: a generation counter wakes
 * the workers, a countdown tells the caller when every shard is done.
 *
 * Calls often come tens of microseconds apart (a training step's phases,
 * with a little serial work between them), and waking a sleeping thread
 * costs about 40 us on the 2-core virtual machine: so each side spins a
 * while on the counter it waits for (POOL_SPINS pauses, about 100 us) before
 * sleeping on its condition variable.  Not when the pool has more threads
 * than the process has CPUs: a spinning thread would hold a CPU that a
 * thread with work is waiting for.
 *
 * fork() copies a pool but not its threads: in the child (another pid) a
 * call runs the shards one after another on the calling thread, which gives
 * the same results (no shard of a persistent pool, a trainer's, waits for
 * another), and a free releases the memory alone. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#define POOL_SPINS 4000

/* CPUs this process may run on (its affinity mask where the system has one). */
static long usable_cpus(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
#endif
    return sysconf(_SC_NPROCESSORS_ONLN);
}

struct cg_pool {
    int n;
    pid_t pid; /* the process whose threads these are */
    unsigned spins; /* POOL_SPINS, or 0 when the threads outnumber the CPUs */
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    atomic_uint_fast64_t generation; /* written under lock, also read by spinners */
    atomic_int pending;              /* workers still running this generation */
    atomic_bool stop;
    cg_pool_fn fn;
    void *ctx;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct worker_arg {
    cg_pool *pool;
    int shard;
} worker_arg;

static void *worker(void *p)
{
    worker_arg arg = *(worker_arg *)p;
    cg_free(p);
    cg_pool *pool = arg.pool;
    uint64_t seen = 0;
    for (;;) {
        for (unsigned spins = 0; spins < pool->spins && !atomic_load(&pool->stop) &&
                                 atomic_load(&pool->generation) == seen;
             spins++)
            cpu_relax();
        pthread_mutex_lock(&pool->lock);
        while (!atomic_load(&pool->stop) && atomic_load(&pool->generation) == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (atomic_load(&pool->stop)) {
            pthread_mutex_unlock(&pool->lock);
            break;
        }
        seen = atomic_load(&pool->generation);
        cg_pool_fn fn = pool->fn;
        void *ctx = pool->ctx;
        pthread_mutex_unlock(&pool->lock);
        fn(ctx, arg.shard);
        /* The last to finish wakes the caller if it went to sleep: under the
         * lock, so it cannot fall between the caller's check and its wait. */
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    return NULL;
}

cg_pool *cg_pool_new(int n)
{
    if (n < 1)
        return NULL;
    cg_pool *pool = cg_calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n = n;
    pool->pid = getpid();
    pool->spins = n <= usable_cpus() ? POOL_SPINS : 0;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->stop, false);
    if (n == 1)
        return pool;
    pool->threads = cg_calloc((size_t)n - 1, sizeof(pthread_t));
    if (!pool->threads) {
        cg_free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    /* The workers start with every signal blocked, so that the
     * application's handlers (a Ctrl-C handler, a sigwait thread) see the
     * process's signals on threads it knows, never on the library's; but a
     * fault's signal is the faulting thread's own, and blocked it would
     * kill the process past any crash handler. */
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    sigset_t all, caller;
    sigfillset(&all);
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_SETMASK, &all, &caller);
    int started = 1;
    for (; started < n; started++) {
        worker_arg *arg = cg_malloc(sizeof *arg);
        if (arg) {
            arg->pool = pool;
            arg->shard = started;
        }
        if (!arg || pthread_create(&pool->threads[started - 1], NULL, worker, arg) != 0) {
            cg_free(arg);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &caller, NULL);
    if (started < n) {
        pool->n = started; /* the workers started so far are stopped by free */
        cg_pool_free(pool);
        return NULL;
    }
    return pool;
}

void cg_pool_free(cg_pool *pool)
{
    if (!pool)
        return;
    if (pool->threads && pool->pid == getpid()) {
        pthread_mutex_lock(&pool->lock);
        atomic_store(&pool->stop, true);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        for (int i = 1; i < pool->n; i++)
            pthread_join(pool->threads[i - 1], NULL);
        pthread_mutex_destroy(&pool->lock);
        pthread_cond_destroy(&pool->wake);
        pthread_cond_destroy(&pool->done);
    }
    cg_free(pool->threads);
    cg_free(pool);
}

int cg_pool_size(const cg_pool *pool)
{
    return pool ? pool->n : 1;
}

void cg_pool_run(cg_pool *pool, cg_pool_fn fn, void *ctx)
{
    if (!pool || pool->n == 1) {
        fn(ctx, 0);
        return;
    }
    if (pool->pid != getpid()) { /* a fork's child: the workers stayed in the parent */
        for (int shard = 0; shard < pool->n; shard++)
            fn(ctx, shard);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->pending, pool->n - 1);
    atomic_fetch_add(&pool->generation, 1); /* after fn, ctx and pending: spinners see all three */
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    fn(ctx, 0);
    for (unsigned spins = 0; spins < pool->spins && atomic_load(&pool->pending) > 0; spins++)
        cpu_relax();
    pthread_mutex_lock(&pool->lock);
    while (atomic_load(&pool->pending) > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

void cg_barrier_init(cg_barrier *b, unsigned n)
{
    atomic_init(&b->arrived, 0);
    atomic_init(&b->phase, 0);
    b->n = n;
}

void cg_barrier_wait(cg_barrier *b)
{
    /* The phase is read before arriving, so the last arrival cannot have
     * moved it yet; the last one resets the count before it releases the
     * others, who may arrive at the next barrier at once. */
    unsigned phase = atomic_load_explicit(&b->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) + 1 == b->n) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&b->phase, phase + 1, memory_order_release);
        return;
    }
    /* Some tens of microseconds of spinning (a pause is 10 to 150 cycles)
     * cover a step; beyond that the thread awaited is probably descheduled
     * (more threads than cores): yield. */
    for (unsigned spins = 0; atomic_load_explicit(&b->phase, memory_order_acquire) == phase;
         spins++) {
        if (spins < 1000)
            cpu_relax();
        else
            sched_yield();
    }
}
