#!/usr/bin/env bash
# One call on the GPU machine (H200) for issue 15's launch and kernel work, from the repository root:
#   1. the pointer launch against Numba's launch and the CPU, every preset x mode x dtype (+ in place, strided);
#   2. tests/test_cuda.py on the GPU (NUMBA_ENABLE_CUDASIM=0), in 4 processes;
#   3. host time per rounding call from PyTorch: Numba's launch, the cached launch, the pointer launch;
#   4. the kernel variants (launch geometry, per-mode kernels, loop index) on 1 GiB against the copy and
#      PyTorch's cast, with each kernel's registers.
# 1 and 2 compile (CPU-bound, cold Numba cache: 20-30 s per CPU kernel on first call) in parallel with
# 3 then 4 (GPU timings by CUDA events; 3's host timings share the CPU with the compiles, say so).
# The whole call stays under 9.5 minutes.  Set-up and `step`: _device_common.sh.  Results (JSON +
# logs) in one archive under $OUT.
name=gpulaunch
source "$(dirname "$0")/_device_common.sh"
step fast_launch_check 500 python3 tools/probes/cuda_fast_launch_check.py --workers 4 --out "$out/fast_launch_check.json" &
for part in "wide and float32" "wide and float64" "wide and (float16 or bfloat16)" "not wide"; do
  tag=$(echo "$part" | tr -c 'a-z0-9' '_')
  step "test_cuda_$tag" 500 python3 -m pytest -n 0 -q -p no:cacheprovider tests/test_cuda.py -k "$part" &
done
( step call_overhead 150 python3 tools/probes/cuda_call_overhead.py --profile --out "$out/call_overhead.json"
  step variants 330 python3 -m benchmarks.cuda_check --only variants --out "$out/variants.json" ) &
wait
pack 25
