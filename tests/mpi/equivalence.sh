#!/bin/sh
# equivalence.sh TEST_MPI CORPUS - tests/test_mpi.c on 2 ranks (TAP): the
# loss curves of MLE and both GAN estimators against one process with the
# same global batch, the error paths, and checkpoints written by rank 0.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/mpirun.sh"
skip_unless_mpi_starts
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargan-mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# The program bounds its own waits (60 s a collective); this bounds the rest.
timeout 300 sh -c ". '$here/mpirun.sh'; mpi_run 2 '$1' '$2' '$tmp'"
