#!/usr/bin/env bash
# GPU check in one go (issue #18): both presets at official size on a CUDA device, bf16 autocast,
# torch.compile off and on, MFU against the device's bf16 peak, and the evaluation suite on CUDA
# tensors, written as one markdown table (default ./gpu_check.md, raw numbers in gpu_check.json).
# Finishes in under 8 minutes (a budget skips what would start later).
#
#   benchmarks/gpu_check.sh                     # on a CUDA machine
#   benchmarks/gpu_check.sh --out /tmp/gpu.md   # elsewhere
#   benchmarks/gpu_check.sh --dry-run           # CPU, tiny shapes, seconds: checks the script itself (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
