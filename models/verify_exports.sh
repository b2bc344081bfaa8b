#!/usr/bin/env bash
# Every strategy trains (briefly), exports ONNX + card, and passes `edgecl verify-model` on tract and
# ONNX Runtime. A code-path check, not a result: the MLP on the first 200 Fashion-MNIST training images
# per class, one epoch per task, Adam lr 1e-3 (GDumb 5 epochs on its memory).
#
#   EDGECL=path/to/edgecl ORT_DYLIB_PATH=path/to/libonnxruntime.so bash models/verify_exports.sh [OUTDIR]
#
# OUTDIR (default /tmp/edgecl-exports) receives S.onnx, S.json, S.train.log per strategy S.
# STRATEGIES="der abd" checks only those. ABD / DeepInversion train their generator 3 iterations of 16.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="$(bash models/venv.sh | tail -n1)"
EDGECL="${EDGECL:-edgecl}"
out="${1:-/tmp/edgecl-exports}"
mkdir -p "$out"
export OMP_NUM_THREADS=1 PYTHONPATH="$PWD/models/trainer/src${PYTHONPATH:+:$PYTHONPATH}"
strategies=${STRATEGIES:-$("$VENV/bin/python" -c "from edgecl_train.strategies import STRATEGIES; print(' '.join(STRATEGIES))")}
fail=0
for s in $strategies; do
  extra=(); [ "$s" = gdumb ] && extra=(-o mem_epochs=5)
  case "$s" in abd|deepinversion) extra=(-o gen_iters=3 -o gen_batch=16) ;; der) extra=(--memory 200) ;; esac
  "$VENV/bin/python" -m edgecl_train run --strategy "$s" --dataset fashion-mnist --backbone mlp --train-per-class 200 \
    --epochs 1 --batch-size 32 --optimizer adam --lr 0.001 --quiet "${extra[@]}" --out "$out/$s.onnx" \
    > "$out/$s.train.log" 2>&1 || { echo "$s: training/export FAILED (see $out/$s.train.log)"; fail=1; continue; }
  if "$EDGECL" verify-model --require-ort "$out/$s.onnx" > "$out/$s.verify.log" 2>&1; then
    echo "$s: verify-model ok ($(grep -c ': ok' "$out/$s.verify.log") runtimes)"
  else
    echo "$s: verify-model FAILED"; cat "$out/$s.verify.log"; fail=1
  fi
done
exit $fail
