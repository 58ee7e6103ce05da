#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon with AVX-512), from the repository root:
# the CPU benchmarks of issue 19 on a second host kind.  BASE=<dir holding an fp8emu package of
# an earlier commit> adds the interleaved before/after (benchmarks/quantize_ab.py).  The GPU is
# not used; NUMBA_NUM_THREADS=2 matches the 2-core CI machines, and taskset pins the process
# to two cores of the many.  GEMM=1 adds benchmarks.gemm --matmul-only.
name=cpubench
source "$(dirname "$0")/_device_common.sh"
export NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
pin="taskset -c 2,3"
step kernel_asm 120 $pin python3 -m benchmarks.kernel_asm
step quantize_cpu 120 $pin python3 -m benchmarks.quantize_cpu
step sr_floor 120 $pin python3 -m benchmarks.sr_floor
if [ -n "${BASE:-}" ]; then
  step quantize_ab 200 $pin python3 -m benchmarks.quantize_ab --base "$BASE" --repeat 30 \
    --formats e5m2 e4m3fn e4m3fnuz e2m1fn bfloat16
  for dt in float64 float16; do
    step quantize_ab_$dt 200 $pin python3 -m benchmarks.quantize_ab --base "$BASE" --repeat 20 \
      --dtype $dt --formats e5m2 e4m3fn bfloat16
  done
fi
step quantize 150 $pin python3 -m benchmarks.quantize
step nvidia_gemm 90 $pin python3 -m benchmarks.nvidia_gemm
if [ -n "${GEMM:-}" ]; then
  step gemm 300 $pin python3 -m benchmarks.gemm --matmul-only --repeats 7
fi
pack 40
