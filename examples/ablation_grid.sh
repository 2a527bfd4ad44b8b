#!/usr/bin/env bash
# A three-variant ablation with seeds and statistics, from the command line.
#
#   bash examples/ablation_grid.sh                 # 3 couplings x 3 seeds, 400 steps (about 5 min, 2-core CPU)
#   bash examples/ablation_grid.sh --tiny          # 3 couplings x 2 seeds, 3 steps, 2 metrics (about a minute)
#   bash examples/ablation_grid.sh --out DIR       # default: ./ablation_sweep
#
# The grid, the seeds and the reference variant live in the `sweep:` section of ablation_grid.yaml.
# Run it again and finished runs are skipped. The same in Python:
#   distgen.sweep("examples/ablation_grid.yaml", out="ablation_sweep")
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG="$HERE/ablation_grid.yaml"
OUT=ablation_sweep
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tiny) CONFIG="$HERE/ablation_grid_tiny.yaml"; ARGS=(--jobs 2 --metrics mse pearson_delta); export OMP_NUM_THREADS=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "ablation_grid.sh: unknown argument $1 (use --tiny, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done

# every combination of the grid at every seed: train -> predict held-out combinations -> evaluate;
# then results.csv, summary.md (mean +/- sd, paired tests over seeds vs the reference) and summary.png
distgen sweep "$CONFIG" --out "$OUT" "${ARGS[@]}"
