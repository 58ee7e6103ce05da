#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon), from the repository root: the thread-pool
# probes of issue 19 on a second host kind, pinned to two cores as the CI machines have:
# tools/probes/import_order.py (NumPy imported before fp8emu, with and without the OpenBLAS
# restart) and tools/probes/omp_spin.py (GNU OpenMP's spin before sleep, 0 and 10000).
name=threads
source "$(dirname "$0")/_device_common.sh"
export NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
pin="taskset -c 2,3"
step import_order 300 $pin python3 tools/probes/import_order.py --rounds 2
step omp_spin 300 $pin python3 tools/probes/omp_spin.py --rounds 2 --spins 0 10000 30000
pack 20
