/* test_dist.c - the MPI entry points in a process that did not start MPI
 * (the unit suite never does; tests/test_mpi.c runs under mpirun).  Built
 * without MPI (-Dmpi=disabled, CI's netlib stage) they say unsupported;
 * built with it, they check their arguments and that MPI is initialised.
 * A trainer never attached behaves as one process: rank 0 of 1, and its
 * save writes. */
#include "config.h"
#include "test_common.h"
#include "trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static chargan_trainer *small_trainer(void)
{
    chargan_model_config mc;
    chargan_model_config_init(&mc, CHARGAN_GENERATOR);
    mc.vocab_size = 16;
    mc.embed_dim = 4;
    mc.hidden_dim = 8;
    chargan_model *gen = NULL;
    ck_assert_int_eq(chargan_model_new(&mc, &gen), CHARGAN_OK);
    chargan_trainer_config tc;
    chargan_trainer_config_init(&tc);
    tc.batch = 4;
    tc.seq_len = 8;
    chargan_trainer *tr = NULL;
    ck_assert_int_eq(chargan_trainer_new(&tc, gen, NULL, NULL, NULL, &tr), CHARGAN_OK);
    int32_t ids[200];
    for (int i = 0; i < 200; i++)
        ids[i] = 2 + i % 14;
    ck_assert_int_eq(chargan_trainer_set_corpus_ids(tr, ids, 200), CHARGAN_OK);
    return tr;
}

START_TEST(unattached_is_rank_0_of_1)
{
    chargan_trainer *tr = small_trainer();
    int rank = -1, size = -1;
    ck_assert_int_eq(chargan_trainer_mpi_rank(tr, &rank, &size), CHARGAN_OK);
    ck_assert_int_eq(rank, 0);
    ck_assert_int_eq(size, 1);
    ck_assert_int_eq(chargan_trainer_mpi_rank(tr, NULL, NULL), CHARGAN_OK);
    ck_assert_int_eq(chargan_trainer_mpi_rank(NULL, &rank, &size), CHARGAN_E_INVALID);
    ck_assert_uint_eq(cg_dist_global_batch(tr), 4);
    ck_assert_uint_eq(cg_dist_first_row(tr), 0);
    ck_assert(!cg_dist_active(tr));
    /* the hooks are no-ops: values and gradients untouched */
    double v[2] = {1.5, 2.5};
    tr->gen->grads[0] = 3.0f;
    ck_assert_int_eq(cg_dist_allreduce_grads(tr, tr->gen, v, 2, "MLE step", 1), CHARGAN_OK);
    ck_assert_int_eq(cg_dist_allreduce_mean(tr, v, 2, "adversarial step", 1), CHARGAN_OK);
    int stop = 1;
    ck_assert_int_eq(cg_dist_agree_stop(tr, &stop, 1), CHARGAN_OK);
    ck_assert(v[0] == 1.5 && v[1] == 2.5 && stop == 1 && tr->gen->grads[0] == 3.0f);
    /* a trainer alone writes its checkpoints */
    char path[] = "/tmp/chargan-dist-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert(cg_dist_writes_files(tr));
    ck_assert_int_eq(chargan_trainer_save(tr, path), CHARGAN_OK);
    chargan_trainer *back = NULL;
    ck_assert_int_eq(chargan_trainer_load(path, &back), CHARGAN_OK);
    chargan_trainer_free(back);
    unlink(path);
    chargan_trainer_free(tr);
}
END_TEST

START_TEST(set_mpi_comm_without_a_running_mpi)
{
    chargan_trainer *tr = small_trainer();
    long comm = 0; /* never read: every call below fails before */
    ck_assert_int_eq(chargan_trainer_set_mpi_comm(NULL, &comm, sizeof comm), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_mpi_comm(tr, NULL, sizeof comm), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_mpi_timeout(NULL, 1.0), CHARGAN_E_INVALID);
#if CHARGAN_HAVE_MPI
    /* a size that no MPI_Comm has */
    ck_assert_int_eq(chargan_trainer_set_mpi_comm(tr, &comm, 3), CHARGAN_E_INVALID);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "comm_size 3"));
    /* the Check runner's process never called MPI_Init; sizeof(MPI_Comm) is
     * a pointer's size in Open MPI and an int's in MPICH: try both */
    chargan_status st = chargan_trainer_set_mpi_comm(tr, &comm, sizeof(void *));
    if (st == CHARGAN_E_INVALID)
        st = chargan_trainer_set_mpi_comm(tr, &comm, sizeof(int));
    ck_assert_int_eq(st, CHARGAN_E_STATE);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "MPI is not initialised"));
    ck_assert_int_eq(chargan_trainer_set_mpi_timeout(tr, 0.0), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_mpi_timeout(tr, NAN), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_mpi_timeout(tr, 2e6), CHARGAN_E_INVALID);
    ck_assert_int_eq(chargan_trainer_set_mpi_timeout(tr, 5.0), CHARGAN_OK);
#else
    ck_assert_int_eq(chargan_trainer_set_mpi_comm(tr, &comm, sizeof comm), CHARGAN_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(chargan_trainer_last_error(tr), "built without MPI"));
    ck_assert_int_eq(chargan_trainer_set_mpi_timeout(tr, 5.0), CHARGAN_E_UNSUPPORTED);
#endif
    /* still a working single-process trainer */
    int rank = -1, size = -1;
    ck_assert_int_eq(chargan_trainer_mpi_rank(tr, &rank, &size), CHARGAN_OK);
    ck_assert(rank == 0 && size == 1);
    float loss = NAN;
    ck_assert_int_eq(chargan_trainer_mle_step(tr, &loss), CHARGAN_OK);
    ck_assert(isfinite(loss));
    chargan_trainer_free(tr);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("unattached");
    tcase_add_test(tc, unattached_is_rank_0_of_1);
    tcase_add_test(tc, set_mpi_comm_without_a_running_mpi);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return cg_test_run(make_suite());
}
