#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon, 16 cores), from the repository root:
# tools/probes/serial_threshold.py pinned to two cores as the CI machines have and on all 16,
# and the r-bit SR A/B of issue 19's ninth pass against the checkout in .base/ (main before the
# change: `git -C <main> archive <commit> fp8emu | tar x -C .base`; carry .base and .whl).
name=serial
source tools/probes/_device_common.sh
lscpu | head -20 > "$out/lscpu.txt"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
pin="taskset -c 2,3"
NUMBA_NUM_THREADS=2 step serial_2 200 $pin python3 tools/probes/serial_threshold.py --threads 1 2 --max-exp 20
NUMBA_NUM_THREADS=16 OMP_NUM_THREADS=16 step serial_16 200 python3 tools/probes/serial_threshold.py --threads 1 2 4 16 --max-exp 22 --repeat 200
NUMBA_NUM_THREADS=2 step ab_sr8_t1 200 $pin python3 -m benchmarks.quantize_ab --base .base --n 16777216 --repeat 11 --threads 1 --formats e5m2 --modes RNE SR SR8 --wall
NUMBA_NUM_THREADS=2 step ab_sr8_t2 200 $pin python3 -m benchmarks.quantize_ab --base .base --n 16777216 --repeat 11 --threads 2 --formats e5m2 --modes RNE SR SR8 --wall
pack 40
