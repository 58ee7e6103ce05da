#!/usr/bin/env bash
# One call on the GPU machine (H200) for issue 15's launch and kernel work, from the repository root:
#   1. the pointer launch against Numba's launch and the CPU, every preset x mode x dtype (+ in place, strided);
#   2. tests/test_cuda.py on the GPU (NUMBA_ENABLE_CUDASIM=0), in 4 processes;
#   3. host time per rounding call from PyTorch: Numba's launch, the cached launch, the pointer launch;
#   4. the kernel variants (launch geometry, per-mode kernels, loop index) on 1 GiB against the copy and
#      PyTorch's cast, with each kernel's registers.
# 1 and 2 compile (CPU-bound, cold Numba cache: 20-30 s per CPU kernel on first call) in parallel with
# 3 then 4 (GPU timings by CUDA events; 3's host timings share the CPU with the compiles, say so).
# The whole call stays under 9.5 minutes.  NumPy for numba-cuda: the wheel in .whl/ (as
# tools/repro_gpu.sh), installed once into /tmp/site.  Results (JSON + logs) under $OUT.
set -uo pipefail
if [ -d .whl ] && [ ! -d /tmp/site/numpy ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export NUMBA_ENABLE_CUDASIM=0
out=${OUT:-/tmp/gpulaunch}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
t00=$SECONDS
step() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s (limit $limit s, ended at $((SECONDS - t00)) s) ===" | tee -a "$out/steps.txt"
}
step fast_launch_check 500 python3 tools/probes/cuda_fast_launch_check.py --workers 4 --out "$out/fast_launch_check.json" &
for part in "wide and float32" "wide and float64" "wide and (float16 or bfloat16)" "not wide"; do
  tag=$(echo "$part" | tr -c 'a-z0-9' '_')
  step "test_cuda_$tag" 500 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py -k "$part" &
done
( step call_overhead 150 python3 tools/probes/cuda_call_overhead.py --profile --out "$out/call_overhead.json"
  step variants 330 python3 -m benchmarks.cuda_check --only variants --out "$out/variants.json" ) &
wait
for f in "$out"/*.log; do echo "--- $f"; tail -n 25 "$f"; done
# at most 8 files come back from the device tool: one archive
(cd "$out" && tar czf gpulaunch.tgz --exclude gpulaunch.tgz -- * && find . -type f ! -name gpulaunch.tgz -delete)
