#!/usr/bin/env bash
# distgen against the official PerturbDiff and scDFM code on a CUDA device, in one go (< 8 minutes).
#
# Runs benchmarks/vs_official.py with --device cuda, one row at a time (each row's table is kept even
# if a later row runs out of time), both sides in fp32 on the same pre-drawn batches, alternating
# processes, and prints every row's ratio (official / distgen). Not part of the test suite.
#
#   DISTGEN_PERTURBDIFF_REPO=/path/to/PerturbDiff DISTGEN_SCDFM_REPO=/path/to/scDFM benchmarks/gpu_vs_official.sh
#
# Needs: a CUDA torch, `pip install -e '.[parity]'` (geomloss, for the official PerturbDiff loss) and
# torchdiffeq (scDFM sampling); checkouts of github.com/DeepGraphLearning/PerturbDiff (tested at
# 63afe45) and github.com/AI4Science-WestlakeU/scDFM (2cf6bca). A side without its checkout is skipped.
# Environment: BUDGET_S (default 450: total seconds), ROUNDS (default 2), OUT (default
# ./gpu_vs_official), DEVICE (default cuda), ROWS (default: the rows below).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
BUDGET_S="${BUDGET_S:-450}"
ROUNDS="${ROUNDS:-2}"
OUT="${OUT:-gpu_vs_official}"
DEVICE="${DEVICE:-cuda}"
ROWS="${ROWS:-pd-official pd-reduced pd-sampling reduced paper sampling}"
mkdir -p "$OUT"

if [[ "$DEVICE" == cuda* ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_vs_official: no CUDA device visible to torch (set DEVICE=cpu to run on the CPU)" >&2
    exit 2
fi
official=()
[[ -n "${DISTGEN_PERTURBDIFF_REPO:-}" ]] && official+=(--perturbdiff "$DISTGEN_PERTURBDIFF_REPO")
[[ -n "${DISTGEN_SCDFM_REPO:-}" ]] && official+=(--scdfm "$DISTGEN_SCDFM_REPO")
[[ ${#official[@]} -eq 0 ]] && echo "gpu_vs_official: neither DISTGEN_PERTURBDIFF_REPO nor DISTGEN_SCDFM_REPO set: distgen's side only" >&2

start=$(date +%s)
for row in $ROWS; do
    left=$(( BUDGET_S - ($(date +%s) - start) ))
    if (( left < 30 )); then
        echo "gpu_vs_official: budget spent, row $row skipped" | tee -a "$OUT/skipped.txt"
        continue
    fi
    echo "== $row ($left s left)"
    timeout "$left" "$PY" benchmarks/vs_official.py --device "$DEVICE" --rows "$row" --rounds "$ROUNDS" --timeout "$left" \
        --json "$OUT/$row.json" "${official[@]}" > "$OUT/$row.log" 2>&1
    rc=$?
    (( rc == 124 )) && echo "gpu_vs_official: row $row ran out of time" | tee -a "$OUT/skipped.txt"
done

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print("| row | device | official s | distgen s | official / distgen | official / distgen peak CUDA memory |")
print("|---|---|---:|---:|---:|---:|")
for f in sorted(out.glob("*.json")):
    res = json.loads(f.read_text())
    for r in res["rows"]:
        o, d = r["sides"].get("official", {}), r["sides"].get("distgen", {})
        sec = lambda x: f"{x['seconds']:.4f}" if "seconds" in x else (x.get("error", "-")[:60] if x else "-")
        ratio = f"{o['seconds'] / d['seconds']:.2f}x" if "seconds" in o and "seconds" in d else "-"
        mem = f"{o['peak_cuda_gib'] / d['peak_cuda_gib']:.2f}x" if o.get("peak_cuda_gib") and d.get("peak_cuda_gib") else "-"
        print(f"| {r['label']} | {res['hardware'].split(';')[0]} | {sec(o)} | {sec(d)} | {ratio} | {mem} |")
EOF
