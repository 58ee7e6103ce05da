#!/usr/bin/env bash
# One call on the GPU machine (H200), from the repository root: what the last call of issue 15 left.
#   the presets check of the default kernels for the eight formats whose workers ran out of time
#   (one worker each; the other five formats and bfloat16 in part are in
#   docs/results/cuda/value-kernels/presets_partial.json), then alone on the GPU the benchmark,
#   timing the stochastic-rounding kernels again after _value_f32_sr became a call of
#   _value_f32_sr_z (same arithmetic).  Limits keep the call under 10 minutes.
name=gpurest
source "$(dirname "$0")/_device_common.sh"
step presets 430 python3 -m benchmarks.cuda_check --only presets --workers 8 \
  --formats e5m2,e4m3fn,e4m3fnuz,e3m2fn,e2m1fn,e8m0fnu,float16,bfloat16 --out "$out/presets.json"
step bench $((575 - (SECONDS - t00))) python3 -m benchmarks.cuda_check --only bench --out "$out/bench.json"
pack 30
