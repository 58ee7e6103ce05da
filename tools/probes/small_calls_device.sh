#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon, 16 cores; pinned to two as the CI
# machines have), from the repository root: benchmarks.small_calls of issue 19's small-call pass
# against the checkout in .base/ (main before the change: `git -C <main> archive <commit> fp8emu
# | tar x -C .base`; carry .base and .whl, the NumPy and ml_dtypes wheels).
name=small_calls
source tools/probes/_device_common.sh
lscpu | head -20 > "$out/lscpu.txt"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 NUMBA_NUM_THREADS=2
pin="taskset -c 2,3"
step small_calls 400 $pin python3 -m benchmarks.small_calls --base .base --sizes 16 1024 16384 65536
pack 30
