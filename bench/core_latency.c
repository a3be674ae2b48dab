/* core_latency - how far apart the machine has put two CPUs: the round trip
 * of a cache line between a thread pinned to each, in ns.
 *
 * On the 2-vCPU virtual machines this project is benchmarked on, the host
 * puts the two vCPUs close (this program's samples: 47-72 ns) or far apart
 * (272-336 ns) and moves them every few seconds to minutes.  The PyTorch
 * peer's speed follows: its training runs 1.6 times faster close than far,
 * libchargan's 1.07-1.10 times (docs/BENCHMARKS.md, "2026-12-06, the peer's
 * two speeds").  A table of ratios means little without knowing which
 * placement each side got: scripts/bench.sh samples it around the two sides,
 * scripts/placement.sh while each runs.
 *
 * usage: core_latency [--every SECONDS] [--for SECONDS]
 * Prints one line per sample, "UNIX_TIME NS", and flushes it: NS is the
 * least of BURSTS bursts of ROUNDS round trips, so a burst the scheduler
 * interrupts (when a benchmark keeps both CPUs busy) does not count.  A
 * sample keeps both CPUs for about a millisecond.  Samples every 2 s unless
 * told, until --for SECONDS have passed (default: until killed).  The CPUs
 * are the first two the process may run on; with fewer, it says so and exits
 * with status 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BURSTS = 20, ROUNDS = 100 };

/* The ball: the main thread sets it odd, the partner answers with the next
 * even number.  Alone on its cache line, so only the ball moves. */
static struct {
    _Alignas(64) atomic_uint value;
    char pad[64 - sizeof(atomic_uint)];
} ball;
static int partner_cpu;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static cpu_set_t one_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return set;
}

static void *partner(void *arg)
{
    (void)arg;
    for (unsigned want = 1; want < 2u * BURSTS * ROUNDS; want += 2) {
        while (atomic_load_explicit(&ball.value, memory_order_acquire) != want)
            ;
        atomic_store_explicit(&ball.value, want + 1, memory_order_release);
    }
    return NULL;
}

/* One sample: the least mean round trip of the bursts, in ns; < 0 if the
 * partner thread could not start on its CPU. */
static double sample(void)
{
    pthread_t t;
    pthread_attr_t attr;
    cpu_set_t set = one_cpu(partner_cpu);
    atomic_store(&ball.value, 0);
    if (pthread_attr_init(&attr) != 0)
        return -1.0;
    int err = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    if (err == 0)
        err = pthread_create(&t, &attr, partner, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0)
        return -1.0;
    double best = -1.0;
    unsigned v = 1;
    for (int b = 0; b < BURSTS; b++) {
        double t0 = clock_s(CLOCK_MONOTONIC);
        for (int r = 0; r < ROUNDS; r++, v += 2) {
            atomic_store_explicit(&ball.value, v, memory_order_release);
            while (atomic_load_explicit(&ball.value, memory_order_acquire) != v + 1)
                ;
        }
        double ns = (clock_s(CLOCK_MONOTONIC) - t0) * 1e9 / ROUNDS;
        if (best < 0.0 || ns < best)
            best = ns;
    }
    pthread_join(t, NULL);
    return best;
}

static double seconds_arg(const char *opt, const char *value)
{
    char *end;
    errno = 0;
    double s = value ? strtod(value, &end) : 0.0;
    if (!value || errno || end == value || *end || !(s > 0.0) || s > 86400.0) {
        fprintf(stderr, "core_latency: %s needs a number of seconds in (0, 86400]\n", opt);
        exit(2);
    }
    return s;
}

int main(int argc, char **argv)
{
    double every = 2.0, total = 0.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--every") == 0) {
            every = seconds_arg(argv[i], argv[i + 1]);
            i++;
        } else if (strcmp(argv[i], "--for") == 0) {
            total = seconds_arg(argv[i], argv[i + 1]);
            i++;
        } else {
            fprintf(stderr, "usage: core_latency [--every SECONDS] [--for SECONDS]\n");
            return 2;
        }
    }
    cpu_set_t allowed;
    int cpus[2], n = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
            if (CPU_ISSET(c, &allowed))
                cpus[n++] = c;
    if (n < 2) {
        fprintf(stderr, "core_latency: needs two CPUs to run on\n");
        return 1;
    }
    cpu_set_t first = one_cpu(cpus[0]);
    if (sched_setaffinity(0, sizeof first, &first) != 0) {
        fprintf(stderr, "core_latency: cannot run on CPU %d\n", cpus[0]);
        return 1;
    }
    partner_cpu = cpus[1];
    const double start = clock_s(CLOCK_MONOTONIC);
    for (;;) {
        double ns = sample();
        if (ns < 0.0) {
            fprintf(stderr, "core_latency: cannot start a thread on CPU %d\n", partner_cpu);
            return 1;
        }
        printf("%.3f %.0f\n", clock_s(CLOCK_REALTIME), ns);
        fflush(stdout);
        if (total > 0.0 && clock_s(CLOCK_MONOTONIC) - start + every > total)
            return 0;
        struct timespec pause = {(time_t)every, (long)((every - (double)(time_t)every) * 1e9)};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
            ;
    }
}
