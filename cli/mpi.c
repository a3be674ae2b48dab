/* mpi.c - `chargan train` under mpirun: MPI_Init and MPI_Finalize (the
 * library never calls them), the rank, and the decisions every rank must
 * take together.  Built with CHARGAN_CLI_MPI when meson found MPI; otherwise
 * (or when not started by a launcher) one process, rank 0 of 1. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if CHARGAN_CLI_MPI
#include <mpi.h>

static int mpi_on, mpi_rank, mpi_size = 1;
static double mpi_timeout = 300.0;

/* Launchers say so in the environment: Open MPI's mpirun, and PMI/PMIx
 * ones (MPICH's hydra, Slurm's srun).  A plain `chargan train` does not
 * start MPI at all. */
static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int cli_mpi_init(void)
{
    if (!launched())
        return 0;
    const char *t = getenv("CHARGAN_MPI_TIMEOUT");
    if (t && *t) {
        char *end;
        double v = strtod(t, &end);
        if (*end || !(v > 0 && v <= 1e6)) {
            cli_error("CHARGAN_MPI_TIMEOUT: expected seconds in (0, 1e6], got '%s'", t);
            return -1;
        }
        mpi_timeout = v;
    }
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        cli_error("MPI_Init failed");
        return -1;
    }
    mpi_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
    return 0;
}

int cli_mpi_rank(void)
{
    return mpi_rank;
}

int cli_mpi_size(void)
{
    return mpi_size;
}

int cli_mpi_attach(chargan_trainer *tr)
{
    if (!mpi_on)
        return 0;
    chargan_status st = chargan_trainer_set_mpi_timeout(tr, mpi_timeout);
    if (st == CHARGAN_OK) {
        MPI_Comm world = MPI_COMM_WORLD;
        st = chargan_trainer_set_mpi_comm(tr, &world, sizeof world);
    }
    if (st != CHARGAN_OK) {
        cli_lib_error(st, "rank %d of %d: cannot join the data-parallel run", mpi_rank, mpi_size);
        return -1;
    }
    return 0;
}

int cli_mpi_any(int flag, uint64_t step)
{
    return cli_mpi_max(flag != 0, step);
}

int cli_mpi_max(int value, uint64_t step)
{
    if (!mpi_on || mpi_size == 1)
        return value;
    int max = value;
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, &max, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &req);
    struct timespec t0, now, nap = {0, 100000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int done = 0;
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done)
            return max;
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) > mpi_timeout) {
            cli_error("rank %d of %d waited %g s for the other ranks at the stop vote after step "
                      "%llu: a rank has died or stopped; aborting the job",
                      mpi_rank, mpi_size, mpi_timeout, (unsigned long long)step);
            MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
        }
    }
}

int cli_mpi_finish(int exit_code, int every_rank)
{
    if (!mpi_on)
        return exit_code;
    mpi_on = 0;
    /* A failure may be this rank's alone (a timeout, a lost peer): end the
     * whole job rather than leave the others waiting.  One every rank came
     * to together (a stop signal) ends as a success does: Open MPI's mpirun
     * can crash when several ranks abort at once, and it reports a rank's
     * non-zero status anyway. */
    if (exit_code != CLI_EXIT_OK && mpi_size > 1 && !every_rank)
        MPI_Abort(MPI_COMM_WORLD, exit_code);
    MPI_Finalize();
    return exit_code;
}

#else /* !CHARGAN_CLI_MPI */

int cli_mpi_init(void)
{
    return 0;
}

int cli_mpi_rank(void)
{
    return 0;
}

int cli_mpi_size(void)
{
    return 1;
}

int cli_mpi_attach(chargan_trainer *tr)
{
    (void)tr;
    return 0;
}

int cli_mpi_any(int flag, uint64_t step)
{
    (void)step;
    return flag;
}

int cli_mpi_max(int value, uint64_t step)
{
    (void)step;
    return value;
}

int cli_mpi_finish(int exit_code, int every_rank)
{
    (void)every_rank;
    return exit_code;
}

#endif
