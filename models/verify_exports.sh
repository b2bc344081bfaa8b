#!/usr/bin/env bash
# Every strategy trains (briefly), exports ONNX + card, and passes `edgecl verify-model` on tract and
# ONNX Runtime; a task-conditioned strategy's files each pass, and its set passes
# edgecl_train.task_export.verify_task_set (STRATEGIES="pnn lvt" picks some). A code-path check, not a result: the MLP on the first 200 Fashion-MNIST training images
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
  bb=mlp; pc=200
  # piggyback masks the ImageNet EfficientNet-Lite0 (one file per task: 5 x 18.6 MB, 20 images a class)
  [ "$s" = piggyback ] && { bb=efficientnet_lite0; pc=20; extra=(-o resolution=64); }
  "$VENV/bin/python" -m edgecl_train run --strategy "$s" --dataset fashion-mnist --backbone $bb --train-per-class $pc \
    --epochs 1 --batch-size 32 --optimizer adam --lr 0.001 --quiet "${extra[@]}" --out "$out/$s.onnx" \
    > "$out/$s.train.log" 2>&1 || { echo "$s: training/export FAILED (see $out/$s.train.log)"; fail=1; continue; }
  # task-conditioned strategies (PNN, DEN, Piggyback, CPG, VCL, AGS-CL) export one file per task
  files=("$out/$s.onnx"); [ -f "$out/$s.task0.onnx" ] && files=("$out/$s".task*.onnx)
  for f in "${files[@]}"; do
    n=$(basename "$f" .onnx)
    if "$EDGECL" verify-model --require-ort "$f" > "$out/$n.verify.log" 2>&1; then
      echo "$n: verify-model ok ($(grep -c ': ok' "$out/$n.verify.log") runtimes)"
    else
      echo "$n: verify-model FAILED"; cat "$out/$n.verify.log"; fail=1
    fi
    if [ "$f" != "$out/$s.onnx" ]; then  # the set-level checks (CARD.md, task_conditioned)
      "$VENV/bin/python" -c "import sys; from edgecl_train.task_export import verify_task_set as v; p = v(sys.argv[1]); [print(x) for x in p]; sys.exit(1 if p else 0)" \
        "${f%.onnx}.json" || { echo "$n: task set FAILED"; fail=1; }
    fi
  done
done
exit $fail
