/* dist.h - data-parallel training over MPI (dist.c), as the trainer sees it.
 *
 * A trainer attached to a communicator of N ranks keeps cfg.batch as its
 * LOCAL batch b = B / N; the global batch B and this rank's first row in it
 * are here.  Every rank draws the same B windows and noise rows from the
 * shared trainer RNG and keeps its b rows (trainer.c), samples from one RNG
 * stream per global row (gan.c), and calls cg_dist_allreduce_grads() where a
 * gradient is complete, right before the optimizer step.  Unattached (or
 * built without MPI), every function here is a no-op that returns at once,
 * first row 0 and global batch cfg.batch: the single-process code path.
 *
 * Nothing here includes mpi.h: only dist.c does, when CHARGAN_HAVE_MPI.
 */
#ifndef CHARGAN_DIST_H
#define CHARGAN_DIST_H

#include "internal.h"

typedef struct cg_dist cg_dist;

/* The global batch B, and the first global row of this rank's shard. */
uint32_t cg_dist_global_batch(const chargan_trainer *tr);
uint32_t cg_dist_first_row(const chargan_trainer *tr);
/* False on ranks other than 0: they do not write checkpoints. */
bool cg_dist_writes_files(const chargan_trainer *tr);

/* THE gradient hook: averages model m's gradient over the ranks (in place)
 * and the n_vals per-rank means in vals (losses, accuracies), right before
 * the optimizer step.  what/step name the step in a failure ("MLE step",
 * 12).  Failure (a rank gone or stuck past the timeout, an MPI error):
 * CHARGAN_E_IO with the message in tr->err; nothing is updated. */
chargan_status cg_dist_allreduce_grads(chargan_trainer *tr, chargan_model *m, double *vals,
                                       int n_vals, const char *what, uint64_t step);
/* Adds up n doubles over the ranks in place (counts). */
chargan_status cg_dist_allreduce_sum(chargan_trainer *tr, double *vals, size_t n,
                                     const char *what, uint64_t step);
/* Averages n doubles over the ranks in place (the REINFORCE baseline). */
chargan_status cg_dist_allreduce_mean(chargan_trainer *tr, double *vals, size_t n,
                                      const char *what, uint64_t step);
/* *stop becomes nonzero on every rank if it is nonzero on any (a progress
 * callback or a deadline on one rank stops all of them at the same step). */
chargan_status cg_dist_agree_stop(chargan_trainer *tr, int *stop, uint64_t step);
/* Whether the trainer is attached to more than one rank. */
bool cg_dist_active(const chargan_trainer *tr);

void cg_dist_free(cg_dist *d);

#endif /* CHARGAN_DIST_H */
