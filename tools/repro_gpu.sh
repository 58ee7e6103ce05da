#!/usr/bin/env bash
# The reproduction grid on the borrowed GPU machine (see tools/repro_gpu.py): run from the repository
# root there, with the NumPy wheel that numba-cuda needs in .whl/ and the four Fashion-MNIST IDX files
# (raw) packed as $REPRO_WORK/fmnist.tar.xz (default .devwork-seeds).  Arguments go to repro_gpu.py;
# call again (within the machine's warm window) until it exits 0.  Packed metrics: $OUT/results.tar.gz.
set -euo pipefail
work=${REPRO_WORK:-.devwork-seeds}
if [ ! -d /tmp/site/numpy ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
if [ ! -f /tmp/fmnist/t10k-labels-idx1-ubyte ]; then
  mkdir -p /tmp/fmnist && tar -xJf "$work/fmnist.tar.xz" -C /tmp/fmnist
fi
if [ "${1:-}" = "--prepare-only" ]; then  # set up once, then start several drivers side by side
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
  nproc
  exit 0
fi
exec python3 tools/repro_gpu.py --out /tmp/repro --data /tmp/fmnist --mps --pack "${OUT:-/tmp}/results.tar.gz" "$@"
