#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon with AVX-512), from the repository root:
# float64 inputs by input class (tables of their top bits; issue 19) against BASE, a folder
# holding the fp8emu package of the commit before (benchmarks/quantize_ab.py, interleaved, 1 and
# 2 threads).  The GPU is not used; taskset pins the process to two cores of the many.
name=f64classes
source "$(dirname "$0")/_device_common.sh"
export NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
pin="taskset -c 2,3"
lscpu | grep -E "Model name|^Flags" | cut -c1-400 > "$out/cpu.txt"
step ab_f64_1thread 240 $pin python3 -m benchmarks.quantize_ab --base "$BASE" --repeat 15 --dtype float64 \
  --formats e5m2 e4m3fn e8m0fnu binary8p1ue e4m3_nosub --modes RNE SR SR8
step ab_f64_2threads 150 $pin python3 -m benchmarks.quantize_ab --base "$BASE" --repeat 9 --dtype float64 \
  --threads 2 --n 16777216 --formats e5m2 e4m3fn e8m0fnu --modes RNE SR
pack 40
