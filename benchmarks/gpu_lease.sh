#!/usr/bin/env bash
# Every GPU measurement the open issues wait for, in one device call (issues 18 and 21). A lent machine gives a
# session 15 minutes of device time, starts included, and one command 10 minutes: this script runs the parts in
# order of what is still unmeasured, under one wall-clock budget (default 540 s), each with its own time limit, and
# writes at most 8 files into $OUT (what the device tool brings back):
#
#   env.txt                  GPU, driver, torch and library versions
#   tests.txt                the CUDA halves of the host-sync tests (one device read per training step, both presets)
#   gpu_check.md/.json       both presets at official size, bf16, eager and torch.compile(mode=reduce-overhead)
#   eval_speed_cuda.md/.json issue 21 item 8's CUDA row: distgen on CUDA tensors beside cell-eval2's GPU path
#   gpu_profile.txt          where a PerturbDiff step's time goes at 4 and 256 sets (casts, launches, syncs)
#
# On the device machine, from the repository root, with the official checkouts and two shared datasets copied into
# .gpu/ (`.gpu/PerturbDiff`, `.gpu/scDFM`, `.gpu/data/papalexi2021_eccite_thp1`, `.gpu/data/kang2018_muscat_example`)
# and `.gpu` named in the call's carry:
#
#   bash benchmarks/gpu_lease.sh                    # OUT=$OUT; budget GPU_LEASE_BUDGET seconds (540)
#   bash benchmarks/gpu_lease.sh --dry-run          # CPU, seconds: the parts' own dry runs (checks this script)
#
# A part that fails or runs out of time is written as such and the next part still runs; the exit status is 0 when
# every part that ran finished, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-python}"
out="${OUT:-gpu_lease}"
budget="${GPU_LEASE_BUDGET:-540}"
data="${GPU_LEASE_DATA:-.gpu/data}"
dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "gpu_lease.sh: unknown argument ${1} (only --dry-run)" >&2; exit 2 ;;
esac
mkdir -p "$out"
start=$SECONDS
failed=0

left() { echo $(( budget - (SECONDS - start) )); }

# part NAME LIMIT COMMAND...: runs COMMAND with at most LIMIT seconds (less when the budget has less left)
part() {
  local name=$1 limit=$2; shift 2
  local rest; rest=$(left)
  if [ "$rest" -lt 20 ]; then
    echo "[$name] skipped: ${rest} s of the ${budget} s budget left" | tee -a "$out/env.txt"
    return
  fi
  [ "$limit" -gt "$rest" ] && limit=$rest
  echo "[$name] start at +$(( SECONDS - start )) s, limit ${limit} s" | tee -a "$out/env.txt"
  timeout --signal=INT --kill-after=15 "$limit" "$@"
  local rc=$?
  echo "[$name] exit ${rc} at +$(( SECONDS - start )) s" | tee -a "$out/env.txt"
  [ "$rc" -ne 0 ] && failed=1
}

{
  date -u
  git rev-parse --short HEAD 2>/dev/null || true
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not found"
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  for lib in numpy pandas anndata cell-eval2 cupy-cuda12x polars; do
    "$py" -c "import importlib.metadata as m; print('$lib', m.version('$lib'))" 2>/dev/null || echo "$lib: not installed"
  done
  nproc
} > "$out/env.txt" 2>&1

if [ "$dry" -eq 1 ]; then
  part gpu_check 120 "$py" benchmarks/gpu_check.py --dry-run --out "$out/gpu_check.md"
  part eval_speed_cuda 120 "$py" -m benchmarks.eval_speed_cuda --dry-run --work "$out/.work" --out "$out/eval_speed_cuda.md"
  rm -rf "$out/.work"
  exit "$failed"
fi

# addopts replaced: pyproject's asks for pytest-xdist (-n auto), which the device machine may not have
part tests 90 "$py" -m pytest -q -p no:cacheprovider -o addopts="-ra --import-mode=importlib" tests/train/test_host_syncs.py tests/backbones/test_pad_host_ids.py \
  > "$out/tests.txt" 2>&1
part gpu_check 210 "$py" benchmarks/gpu_check.py --out "$out/gpu_check.md" --budget 180 --compile-mode reduce-overhead
POLARS_MAX_THREADS=1 part eval_speed_cuda 170 "$py" -m benchmarks.eval_speed_cuda --shared-data "$data" --repeats 3 \
  --budget 150 --work /tmp/gpu_lease_eval --out "$out/eval_speed_cuda.md"
part gpu_profile 90 "$py" benchmarks/gpu_profile.py --sets 4 256 > "$out/gpu_profile.txt" 2>&1
exit "$failed"
