#!/usr/bin/env bash
# One call on the GPU machine's host CPU (an Intel Xeon, 16 cores; pinned to two as the CI
# machines have), from the repository root: the table lookups with vector gathers against the
# same loops kept scalar (tools/probes/gather_loops.py), then this checkout against the one in
# .base/ (`git -C <main> archive <commit> fp8emu | tar x -C .base`; carry .base and .whl, the
# NumPy and ml_dtypes wheels): quantize_ab (decode, round to odd, RNE) per input dtype,
# serial_twins, small_calls --routes other.
name=gathers
source tools/probes/_device_common.sh
lscpu | head -20 > "$out/lscpu.txt"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 NUMBA_NUM_THREADS=2
pin="taskset -c 2,3"
step gather_loops 200 $pin python3 tools/probes/gather_loops.py --rounds 11
for dt in float16 bfloat16 float32 float64; do
  step quantize_ab_$dt 90 $pin python3 -m benchmarks.quantize_ab --base .base --dtype $dt --formats e4m3fn e5m2 --modes decode odd RNE --repeat 11 --threads 1
done
step serial_twins 150 $pin python3 -m benchmarks.serial_twins --sizes 4096 16384 65536 --repeat 11
step small_calls_other 120 $pin python3 -m benchmarks.small_calls --base .base --routes other --sizes 256 4096 65536 --repeat 11
pack 40
