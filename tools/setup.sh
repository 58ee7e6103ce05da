#!/usr/bin/env bash
# One-shot set-up on a fresh machine: the package with its test/train extras, the
# test-only PyTorch oracle (CPU build, on disk here) and the Fashion-MNIST data.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e '.[test,train,docs]'
python -m pip install -q torch==2.13.0 || echo "setup: torch==2.13.0 not installable; PyTorch cross-checks will be skipped" >&2
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      || echo "setup: could not install dataset-fashion-mnist; pass --data DIR to the CLI" >&2
  fi
fi
