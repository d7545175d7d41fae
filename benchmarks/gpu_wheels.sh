#!/usr/bin/env bash
# Wheels for an offline GPU host (Python 3.12, x86-64) that has JAX, PyTorch, flax, optax,
# orbax, numpy, pytest and xdist but not the packages below: charjax's remaining
# dependencies (tensorflow-datasets with its own), httpx2 (with httpcore2 and truststore)
# for the serving tests, and Keras 3 (with its two missing dependencies) for the
# Keras-on-JAX rows. Run where pip reaches a registry:
#
#   bash benchmarks/gpu_wheels.sh          # into .whl/ (git-ignored), ~13 MB
#
# benchmarks/gpu_check.sh installs .whl/ on the host before anything else. Where
# tensorflow-datasets still fails to import there, its tests are left out of the suite
# and the report says so.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PACKAGES=(
  ml-collections tensorboardX hershey-fonts starlette uvicorn python-multipart
  importlib_resources httpx2 httpcore2 truststore
  keras namex optree
  tensorflow-datasets==4.9.10 array_record dm-tree immutabledict simple_parsing
  docstring-parser tensorflow-metadata termcolor toml
  # older generated code, which newer protobuf runtimes load too (the host's version is
  # not known here; 1.7x needs protobuf >= 6.33)
  "googleapis-common-protos==1.66.0"
)
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl "${PACKAGES[@]}"
# promise (for tensorflow-datasets) is published as source only: pure Python, built here
"$PYTHON" -m pip wheel -q --no-deps -w .whl promise==2.3
ls -l .whl
