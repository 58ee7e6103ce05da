#!/usr/bin/env bash
# One call on the GPU machine (H200) for issue 15's launch and kernel work, from the repository root:
#   1. host time per rounding call from PyTorch: Numba's launch, the cached launch, the pointer launch;
#   2. the pointer launch against Numba's launch and the CPU, every preset x mode x dtype (+ in place, strided);
#   3. the kernel variants (launch geometry, element mapping) on 1 GiB against the copy and PyTorch's cast.
# NumPy for numba-cuda: the wheel in .whl/ (as tools/repro_gpu.sh), installed once into /tmp/site.
# Results (JSON + logs, 6 files) under $OUT; each step has its own time limit (about 4.5 minutes in all).
set -uo pipefail
if [ -d .whl ] && [ ! -d /tmp/site/numpy ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
out=${OUT:-/tmp/gpulaunch}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
step() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s (limit $limit s) ==="
  tail -n 40 "$out/$name.log"
}
step call_overhead 60 python3 tools/probes/cuda_call_overhead.py --profile --out "$out/call_overhead.json"
step fast_launch_check 110 python3 tools/probes/cuda_fast_launch_check.py --out "$out/fast_launch_check.json"
step variants 110 python3 -m benchmarks.cuda_check --only variants --out "$out/variants.json"
