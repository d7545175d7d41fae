#!/usr/bin/env bash
# charjax on one GPU in at most 6 minutes, offline: the default run cold and warm, one
# epoch, the train-step tables against Keras-on-JAX and PyTorch, and the test suite on
# CUDA, each under its own time limit; one JSON and one markdown table at the end.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]            # on a GPU host
#   bash benchmarks/gpu_check.sh --cpu [OUT_DIR]      # the same at small sizes, any machine
#   bash benchmarks/gpu_check.sh --cpu --smoke DIR    # the quickest: no suite, tiny sizes
#
# OUT_DIR: the argument, else $OUT, else benchmarks/gpu_check/. It receives gpu_check.json,
# gpu_check.md and gpu_check.log. On a GPU host, a .whl/ folder in the repository root
# (wheels of the packages the host lacks, e.g. from benchmarks/gpu_wheels.sh) is installed
# first, then charjax itself (editable, no dependencies). PYTHON picks the interpreter.
set -u

# ---- knobs -----------------------------------------------------------------------------
# Extra --config.X=V flags for both default runs (e.g. a compile cache or steps per jitted
# call, once configs/default.py has such fields); any whose field configs/default.py lacks
# is left out with a line, so the check runs on older and newer trees alike.
DEFAULT_RUN_FLAGS=${DEFAULT_RUN_FLAGS:-}
# Extra epoch_time.py arguments, e.g. "--override steps_per_call=8" (skipped likewise).
EPOCH_FLAGS=${EPOCH_FLAGS:-}
# Whole-check deadline in seconds (empty: 360 on a GPU) and per-part caps, PART=SECONDS
# for default_cold, default_warm, epoch, steps, suite (see benchmarks/gpu_check.py).
DEADLINE_S=${DEADLINE_S:-}
CAPS=${CAPS:-}
# -----------------------------------------------------------------------------------------

started=$(date +%s.%N)
cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-python3}
mode=gpu
smoke=0
dir=""
for arg in "$@"; do
  case "$arg" in
    --cpu) mode=cpu ;;
    --smoke) smoke=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $arg" >&2; exit 2 ;;
    *) dir=$arg ;;
  esac
done
if [ "$smoke" = 1 ]; then
  [ "$mode" = cpu ] || { echo "gpu_check.sh: --smoke goes with --cpu" >&2; exit 2; }
  mode=smoke
fi
out=${dir:-${OUT:-benchmarks/gpu_check}}
mkdir -p "$out" || exit 1

if [ "$mode" = gpu ]; then
  if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    echo "installing .whl/ into /tmp/site, then charjax (editable, no dependencies)"
    "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . \
      || echo "gpu_check.sh: pip install -e . failed; going on with the tree as it is"
  fi
else
  export JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES=""
fi
# `python -m charjax` from this tree even where charjax is not installed
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if command -v nvidia-smi >/dev/null; then smi=$(nvidia-smi -L 2>&1); else smi="no nvidia-smi"; fi
echo "$smi"
# on a GPU, the devices JAX sees (one short process); on the CPU, only the version
host=$(XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" - "$smi" "$mode" <<'EOF'
import json, platform, sys
from importlib import metadata
info = {"nvidia_smi": sys.argv[1].strip(), "python": platform.python_version()}
try:
    info["jax"] = metadata.version("jax")
    if sys.argv[2] == "gpu":
        import jax
        info["devices"] = ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    else:
        info["devices"] = "cpu (JAX_PLATFORMS=cpu)"
except Exception as err:  # the report says what went wrong; the parts go on
    info["jax_error"] = f"{type(err).__name__}: {err}"
print(json.dumps(info))
EOF
)
echo "jax and devices: $host"

args=(--mode "$mode" --python "$PYTHON" --started "$started" --host "$host"
      "--default-run-flags=$DEFAULT_RUN_FLAGS" "--epoch-flags=$EPOCH_FLAGS")
[ -n "$DEADLINE_S" ] && args+=(--deadline-s "$DEADLINE_S")
for cap in $CAPS; do args+=(--cap "$cap"); done
exec "$PYTHON" benchmarks/gpu_check.py "$out" "${args[@]}"
