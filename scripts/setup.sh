#!/usr/bin/env bash
# Install distgen (CPU torch), its dev tools and the bundled plugins into the active Python
# environment, then run the main job (`distgen quickstart`) unless --no-quickstart is given.
# README.md's first command runs this inside a fresh virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
C=constraints/cpu.txt   # pins the CPU build of torch; without it pip pulls ~3 GB of CUDA wheels
python -m pip install -q --upgrade pip
python -m pip install -q -c "$C" -e ".[dev,celleval]"
for plugin in plugins/*/; do
  plugin=${plugin%/}
  if grep -q '^test = ' "$plugin/pyproject.toml"; then plugin="$plugin[test]"; fi   # a plugin's test extra (distgen-bayes: arviz)
  python -m pip install -q -c "$C" -e "$plugin"
done
if [ "${1:-}" != "--no-quickstart" ]; then
  distgen quickstart
fi
