#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon with AVX-512), from the repository root:
# issue 19's GEMM pipeline against the serial row-block loop (tools/probes/gemm_pipeline.py) and
# benchmarks.gemm, pinned to two cores with two threads each, as on the 2-core CI machines.
# Needs the NumPy wheel in .whl/ (carry it); the GPU is not used.
name=cpugemm
source "$(dirname "$0")/_device_common.sh"
export NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
pin="taskset -c 2,3"
for s in 0 1 2 3; do
  step pipeline_$s 120 $pin python3 tools/probes/gemm_pipeline.py --shape $s
done
step gemm_1 150 $pin python3 -m benchmarks.gemm --matmul-only --repeats 7
step gemm_2 150 $pin python3 -m benchmarks.gemm --matmul-only --repeats 7
pack 14
