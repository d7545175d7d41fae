#!/usr/bin/env bash
# Wheels for an offline GPU host (Python 3.12, x86-64) that has JAX, PyTorch, flax, optax,
# orbax, numpy, pytest and xdist but not the packages below: charjax's remaining
# dependencies, httpx2 (with httpcore2 and truststore) for the serving tests, and Keras 3
# (with its two missing dependencies) for the Keras-on-JAX rows. Run where pip reaches a
# registry:
#
#   bash benchmarks/gpu_wheels.sh          # into .whl/ (git-ignored), ~3 MB
#
# benchmarks/gpu_check.sh installs .whl/ on the host before anything else.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PACKAGES=(
  ml-collections tensorboardX hershey-fonts starlette uvicorn python-multipart
  importlib_resources httpx2 httpcore2 truststore
  keras namex optree
)
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl "${PACKAGES[@]}"
ls -l .whl
