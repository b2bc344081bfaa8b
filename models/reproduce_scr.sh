#!/usr/bin/env bash
# Reproduce SCR and ER on Split CIFAR-10 (5 tasks x 2 classes, online, stream batch 10, reduced
# ResNet-18) with the official per-method configurations, one run after another on ONE CPU thread.
#
#   bash models/reproduce_scr.sh            # all runs, in priority order; logs in $LOGDIR (/tmp/edgecl-runs)
#   bash models/reproduce_scr.sh 3          # only the first 3 runs
#
# RESUME=1 skips a run whose models/results/<name>/metrics.json exists (to continue an interrupted sweep).
#
# Each run writes models/results/<name>/{metrics.json,accuracy.png}; the first one also exports the
# shipped backbone models/scr-rn18-cifar10.onnx (+ .json). Summarise with:
#   $VENV/bin/python -m edgecl_train summarize models/results/*/metrics.json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="$(bash models/venv.sh | tail -n1)"
LOGDIR="${LOGDIR:-/tmp/edgecl-runs}"
mkdir -p "$LOGDIR" models/results
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONPATH="$PWD/models/trainer/src${PYTHONPATH:+:$PYTHONPATH}"  # this clone's trainer
max="${1:-1000}"

runs=(
  "scr-m200-s0|--strategy scr --memory 200 --seed 0 --out models/scr-rn18-cifar10.onnx"
  "er-m1000-s0|--strategy er --memory 1000 --seed 0"
  "er-m1000-s1|--strategy er --memory 1000 --seed 1"
  "er-m1000-s2|--strategy er --memory 1000 --seed 2"
  "scr-m200-s1|--strategy scr --memory 200 --seed 1"
  "scr-m200-s2|--strategy scr --memory 200 --seed 2"
  "er-m200-s0|--strategy er --memory 200 --seed 0"
  "er-m200-s1|--strategy er --memory 200 --seed 1"
  "er-m200-s2|--strategy er --memory 200 --seed 2"
  "er-m500-s0|--strategy er --memory 500 --seed 0"
  "er-m500-s1|--strategy er --memory 500 --seed 1"
  "er-m500-s2|--strategy er --memory 500 --seed 2"
  "scr-m1000-s0|--strategy scr --memory 1000 --seed 0"
  "scr-m500-s0|--strategy scr --memory 500 --seed 0"
)
i=0
for r in "${runs[@]}"; do
  i=$((i + 1)); [ "$i" -le "$max" ] || break
  name="${r%%|*}"; args="${r#*|}"
  if [ "${RESUME:-0}" = 1 ] && [ -f "models/results/$name/metrics.json" ]; then echo "skip $name (models/results/$name exists)" >&2; continue; fi
  echo "$(date -u +%FT%TZ) start $name: python -m edgecl_train run $args --report-dir models/results/$name" >&2
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m edgecl_train run $args --threads 1 --report-dir "models/results/$name" \
    > "$LOGDIR/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) done  $name: $(tail -n1 "$LOGDIR/$name.log")" >&2
done
