#!/bin/sh
# mpirun.sh NP PROGRAM [ARGS...] - runs PROGRAM on NP ranks of this machine
# with Open MPI's mpirun, set up for CI containers: as root it needs
# --allow-run-as-root, on 2 cores --oversubscribe, and in containers the
# shared-memory transport must not use CMA (ptrace is usually denied), so
# only the self and vader (shared memory) transports, single copy off.
# Sourced by the other scripts for mpi_run; run directly it execs.
mpi_run() {
    _np=$1
    shift
    _root=""
    [ "$(id -u)" = 0 ] && _root=--allow-run-as-root
    OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1 \
        mpirun $_root --oversubscribe --bind-to none --mca btl self,vader -np "$_np" "$@"
}
if [ "${0##*/}" = mpirun.sh ]; then
    command -v mpirun >/dev/null 2>&1 || { echo "1..0 # SKIP no mpirun (Debian: openmpi-bin)"; exit 0; }
    mpi_run "$@"
fi
