#!/usr/bin/env bash
# Does decoding large JPEGs at the model's scale change accuracy? (issue 21 item 2)
#
#   bash benches/scaled_decode.sh [PER_CLASS]      # default 30 images per class
#
# Makes an image folder of real CIFAR-10 test images (the partial copy, ../shared/data or $EDGECL_DATA)
# enlarged to 2400x2048 photo-sized JPEGs (bicubic, quality 90), then runs the same `edgecl eval
# --folder` protocol (NCM, 5 steps of 2 classes, half of each class held out) twice: decoding every JPEG
# whole (EDGECL_JPEG_FULL_DECODE=1) and at the scale EfficientNet-Lite0 needs (1/8: 300x256). Prints
# both accuracies and the wall time of each. Needs the trainer venv (Pillow, numpy: bash models/venv.sh)
# and a built CLI ($EDGECL, default $CARGO_TARGET_DIR/debug/edgecl).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
per_class="${1:-30}"
data="${EDGECL_DATA:-../shared/data}"
edgecl="${EDGECL:-${CARGO_TARGET_DIR:-target}/debug/edgecl}"
venv="$(bash models/venv.sh | tail -1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$venv/bin/python" - "$data/cifar10-partial/test.bin" "$work/folder" "$per_class" <<'PY'
import sys, pathlib, numpy as np
from PIL import Image
raw = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, 3073)
out, k = pathlib.Path(sys.argv[2]), int(sys.argv[3])
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
taken = [0] * 10
for rec in raw:
    c = int(rec[0])
    if taken[c] >= k:
        continue
    img = Image.fromarray(rec[1:].reshape(3, 32, 32).transpose(1, 2, 0)).resize((2400, 2048), Image.BICUBIC)
    d = out / names[c]
    d.mkdir(parents=True, exist_ok=True)
    img.save(d / f"{taken[c]:04d}.jpg", quality=90)
    taken[c] += 1
print(f"{sum(taken)} images of 2400x2048 in {out}", file=sys.stderr)
PY

run() {
    local start=$SECONDS
    "$edgecl" eval --folder "$work/folder" --heads ncm --steps 5 --increment 2 --test-fraction 0.5 \
        --cache "$work/cache-$1" --out "$work/report-$1" --quiet --json >"$work/$1.json"
    local acc
    acc=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{100 * r['heads'][0]['final_accuracy']['mean']:.2f}%\")" "$work/$1.json")
    echo "$1 decode: NCM final accuracy $acc over $(find "$work/folder" -name '*.jpg' | wc -l) images, eval took $((SECONDS - start)) s"
}
EDGECL_JPEG_FULL_DECODE=1 run full
run scaled
