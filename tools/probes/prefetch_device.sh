#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon), from the repository root, pinned to two
# cores as the CI machines have: the software prefetch of issue 19 on a second host kind.
# tools/probes/prefetch.py (synthetic loop, flat vs prefetched, cache vs DRAM) and
# benchmarks/quantize_ab.py against the checkout in .base/ (main before the change: copy its
# fp8emu/ there, e.g. `git -C <main> archive HEAD fp8emu | tar x -C .base`, and carry .base).
name=prefetch
source "$(dirname "$0")/_device_common.sh"
export NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
pin="taskset -c 2,3"
step probe 240 $pin python3 tools/probes/prefetch.py --rounds 0 4 8
step ab_f32_t1 240 $pin python3 -m benchmarks.quantize_ab --base .base --n 16777216 --repeat 11 --threads 1 --formats e5m2 --wall
step ab_f32_t2 240 $pin python3 -m benchmarks.quantize_ab --base .base --n 16777216 --repeat 11 --threads 2 --formats e5m2 --wall
step ab_f64_t1 240 $pin python3 -m benchmarks.quantize_ab --base .base --n 8388608 --repeat 9 --threads 1 --formats e5m2 --dtype float64 --wall
step ab_f32_1m 240 $pin python3 -m benchmarks.quantize_ab --base .base --n 1048576 --repeat 31 --threads 1 --formats e5m2 --wall
pack 30
