#!/usr/bin/env bash
# One-shot set-up on a fresh machine: the package with its test/train extras, the
# test-only PyTorch oracle (CPU build, on disk here) and the Fashion-MNIST data.  The cuda extra
# (numba-cuda) lets the tests run the GPU kernels on Numba's CUDA simulator; no GPU is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
# PyTorch (the CPU build) is required: the torch bridge's tests and the cross-checks need it, so a
# failed install fails the set-up (set FP8EMU_SKIP_TORCH=1 to install without it and skip them).
python -m pip install -q -e '.[test,train,docs,cuda]'
if [ "${FP8EMU_SKIP_TORCH:-0}" != 1 ]; then
  python -m pip install -q torch==2.13.0
  python -m pip install -q -e '.[torch]'
  python -c "import torch, fp8emu.torch" || { echo "setup: PyTorch does not import" >&2; exit 1; }
fi
# torch.compile on CPU needs a C++ compiler.
if ! command -v g++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++) \
    || echo "setup: could not install g++ (torch.compile's inductor tests will fail)" >&2
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      || echo "setup: could not install dataset-fashion-mnist; pass --data DIR to the CLI" >&2
  fi
fi
