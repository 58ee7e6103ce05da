#!/usr/bin/env bash
# One call on the GPU machine (H200) for issue 15: the default kernels' bits and speed, from the repository root.
#   in parallel: benchmarks.cuda_check's bit checks (all 2^32 float32 -> e4m3fn/e5m2 hashes, 2^26 SR
#   against the CPU, every preset x mode x dtype, the PyTorch operators) and tools/cuda_step_check.py
#   (one ResNet-18 paper-e5m2 step, GPU vs CPU) then tools/gpu_probe.py (training step times);
#   then alone on the GPU: the benchmark (1 GiB quantize/encode against the copy and PyTorch's cast).
# Limits keep the call under 9 minutes.  Results in one archive under $OUT.
name=gpufinal
source "$(dirname "$0")/_device_common.sh"
step cuda_check 380 python3 -m benchmarks.cuda_check --only sweep,sr,presets,torch --workers 8 \
  --out "$out/cuda_check.json" &
( step step_check 300 python3 tools/cuda_step_check.py --recipe paper-e5m2
  step gpu_probe $((390 - (SECONDS - t00))) python3 tools/gpu_probe.py --recipes paper-e5m2 --widths 64,8 --steps 5 \
    --json "$out/gpu_probe.json" ) &
wait
step bench $((500 - (SECONDS - t00))) python3 -m benchmarks.cuda_check --only bench --out "$out/bench.json"
pack 30
