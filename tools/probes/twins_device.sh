#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon, 16 cores; pinned to two as the CI
# machines have), from the repository root: benchmarks.serial_twins (each serial twin against
# its parallel kernel on one thread), then benchmarks.small_calls --routes other against the
# checkout in .base/ (`git -C <main> archive <commit> fp8emu | tar x -C .base`; carry .base and
# .whl, the NumPy and ml_dtypes wheels).
name=twins
source tools/probes/_device_common.sh
lscpu | head -20 > "$out/lscpu.txt"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 NUMBA_NUM_THREADS=2
pin="taskset -c 2,3"
step serial_twins 330 $pin python3 -m benchmarks.serial_twins --sizes 512 4096 16384 65536 --repeat 15
step small_calls_other 230 $pin python3 -m benchmarks.small_calls --base .base --routes other --sizes 16 256 1024 16384 --repeat 11
pack 40
