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
# skip_unless_mpi_starts: where mpirun cannot start 2 ranks (Open MPI's
# runtime needs a network interface even on one machine: a build chroot
# without one), says so as a TAP skip and exits; under CI (CI set) that is a
# failure instead, since there it must work.  Needs $here, this directory.
skip_unless_mpi_starts() {
    _out=$(timeout 60 sh -c ". '$here/mpirun.sh'; mpi_run 2 true" 2>&1) && return 0
    _why=$(printf '%s\n' "$_out" | grep -v '^[ -]*$' | head -n 1)
    if [ -n "${CI:-}" ]; then
        echo "1..1"
        echo "not ok 1 - mpirun cannot start 2 ranks here: $_why"
        exit 1
    fi
    echo "1..0 # SKIP mpirun cannot start 2 ranks here (no network interface?): $_why"
    exit 0
}
if [ "${0##*/}" = mpirun.sh ]; then
    command -v mpirun >/dev/null 2>&1 || { echo "1..0 # SKIP no mpirun (Debian: openmpi-bin)"; exit 0; }
    mpi_run "$@"
fi
