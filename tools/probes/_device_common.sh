# Sourced by the tools/probes/gpu*_device.sh scripts (one call on the GPU machine each), after
# they set `name`: NumPy for numba-cuda from the wheel in .whl/ (as tools/repro_gpu.sh), installed
# once into /tmp/site; the simulator off; the results folder $out (default /tmp/$name); `step`,
# which runs one check under a time limit and logs its exit status; `pack`, which leaves one
# archive in $out (at most 8 files come back from the device tool).
set -uo pipefail
if [ -d .whl ] && [ ! -d /tmp/site/numpy ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export NUMBA_ENABLE_CUDASIM=0
out=${OUT:-/tmp/$name}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$out/steps.txt" || true
t00=$SECONDS
step() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s (limit $limit s, ended at $((SECONDS - t00)) s) ===" | tee -a "$out/steps.txt"
}
pack() {  # the logs' tails on stdout, then everything in $out into $name.tgz
  for f in "$out"/*.log; do echo "--- $f"; tail -n "${1:-25}" "$f"; done
  (cd "$out" && tar czf "$name.tgz" --exclude "$name.tgz" -- * && find . -type f ! -name "$name.tgz" -delete)
}
