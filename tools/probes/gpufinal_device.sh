#!/usr/bin/env bash
# One call on the GPU machine (H200) for issue 15: the default kernels' bits and speed, from the repository root.
#   in parallel: benchmarks.cuda_check's bit checks (all 2^32 float32 -> e4m3fn/e5m2 hashes, 2^26 SR
#   against the CPU, every preset x mode x dtype, the PyTorch operators) and tools/cuda_step_check.py
#   (one ResNet-18 paper-e5m2 step, GPU vs CPU) then tools/gpu_probe.py (training step times);
#   then alone on the GPU: the benchmark (1 GiB quantize/encode against the copy and PyTorch's cast).
# Limits keep the call under 9 minutes.  Results in one archive under $OUT.
set -uo pipefail
if [ -d .whl ] && [ ! -d /tmp/site/numpy ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export NUMBA_ENABLE_CUDASIM=0
out=${OUT:-/tmp/gpufinal}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/steps.txt" || true
t00=$SECONDS
step() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s (limit $limit s, ended at $((SECONDS - t00)) s) ===" | tee -a "$out/steps.txt"
}
step cuda_check 380 python3 -m benchmarks.cuda_check --only sweep,sr,presets,torch --workers 8 \
  --out "$out/cuda_check.json" &
( step step_check 300 python3 tools/cuda_step_check.py --recipe paper-e5m2
  step gpu_probe $((390 - (SECONDS - t00))) python3 tools/gpu_probe.py --recipes paper-e5m2 --widths 64,8 --steps 5 \
    --json "$out/gpu_probe.json" ) &
wait
step bench $((500 - (SECONDS - t00))) python3 -m benchmarks.cuda_check --only bench --out "$out/bench.json"
for f in "$out"/*.log; do echo "--- $f"; tail -n 30 "$f"; done
(cd "$out" && tar czf gpufinal.tgz --exclude gpufinal.tgz -- * && find . -type f ! -name gpufinal.tgz -delete)
