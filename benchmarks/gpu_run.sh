#!/usr/bin/env bash
# The one GPU benchmark run (a few minutes on one H100/H200-class GPU): convjax's compiled
# train step against PyTorch's in the same process, interleaved, in bfloat16 mixed precision
# (float32 parameters and optimizer; convjax: train.dtype=bfloat16, training/precision.py;
# PyTorch: torch.autocast), PyTorch channels-last eager and torch.compile.
#
#   bash benchmarks/gpu_run.sh [OUT_DIR]      (default benchmarks/results)
#
# 1. ResNet-50, 224x224x3, batch 256 (the issue's goals: >= 1.15x PyTorch's images/s and
#    >= 35% of the bf16 matmul rate measured in the same run, an 8192^3 matmul).
# 2. ResNet-18 at 64x64, batch 256 (a small-image net: launch overheads show), and the CIFAR
#    speed run's network (airbench94, experiments/airbench_cifar.py) at its batch, 1024.
# 3. ResNet-50 at batch 256 again, convjax alone, with and without `train.remat` (every block
#    rematerialised): the step time and XLA's temporary memory of each (models/remat.py).
# Each writes a JSON (benchmarks/train_step.py's format, `ratio` = convjax ms / best PyTorch ms)
# and the console table; the log is kept beside it.
#
# Needs a CUDA build of JAX and of PyTorch in the environment (`uv sync` installs the CPU
# wheels): e.g. `uv pip install -U "jax[cuda12]"` and PyTorch's CUDA wheel from
# download.pytorch.org. The script checks both first and stops with the missing one named.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"

"$PY" - <<'PY'
import sys
import jax
if jax.default_backend() != "gpu":
    sys.exit(f"JAX sees no GPU (backend {jax.default_backend()!r}): install jax[cuda12]")
try:
    import torch
except ImportError:
    sys.exit("PyTorch is not installed: install a CUDA build of torch")
if not torch.cuda.is_available():
    sys.exit(f"PyTorch {torch.__version__} sees no GPU: install a CUDA build of torch")
print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__}")
PY

# XLA's GPU autotuning results persist with the compilation cache (training/compile_cache.py).
run() {  # name, then launch.py bench arguments
  local name="$1"; shift
  "$PY" launch.py bench --dtype bfloat16 --peer-variants eager_cl,compile_cl \
    --steps 20 --rounds 3 --warmup 5 --json "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.log"
}
run train_step_gpu_resnet50_bf16 --models resnet50 --batch 256 --input 224x224x3
run train_step_gpu_resnet18_64_bf16 --models resnet18 --batch 256 --input 64x64x3
run train_step_gpu_airbench94_bf16 --models airbench94 --batch 1024 --input 32x32x3
run train_step_gpu_resnet50_bf16_remat --models resnet50 --batch 256 --input 224x224x3 \
  --peer none --remat
echo "results in $OUT"
