#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon, 16 cores; pinned to two as the CI
# machines have), from the repository root: benchmarks.small_calls against the checkout in .base/
# (main before the change: `git -C <main> archive <commit> fp8emu | tar x -C .base`; carry .base
# and .whl, the NumPy and ml_dtypes wheels), the float32 kernels' calls and the other routes, in
# both orders (this checkout as the one timed, then .base's: same-code A/Bs have read 25 % apart
# by order on these hosts); then quantize_ab's large calls (decode, RNE) as a check that they
# did not move.
name=small_calls
source tools/probes/_device_common.sh
lscpu | head -20 > "$out/lscpu.txt"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 NUMBA_NUM_THREADS=2
pin="taskset -c 2,3"
here=$PWD
step small_calls 150 $pin python3 -m benchmarks.small_calls --base .base --sizes 16 256 4096 --repeat 11
step small_calls_other 150 $pin python3 -m benchmarks.small_calls --base .base --routes other --sizes 16 256 4096 --repeat 11
# swapped: run from .base (python -m puts the working directory first on the path), so its
# fp8emu is the one timed and this checkout the base
cd .base
step small_calls_swapped 150 env PYTHONPATH=/tmp/site:$here/.base:$here $pin python3 -m benchmarks.small_calls --base "$here" --sizes 16 256 4096 --repeat 11
step small_calls_other_swapped 150 env PYTHONPATH=/tmp/site:$here/.base:$here $pin python3 -m benchmarks.small_calls --base "$here" --routes other --sizes 16 256 4096 --repeat 11
cd "$here"
step quantize_ab_float32 120 $pin python3 -m benchmarks.quantize_ab --base .base --dtype float32 --formats e4m3fn e5m2 --modes decode RNE SR --repeat 11 --threads 1
pack 40
