#!/usr/bin/env bash
# A camera at 30 frames a second into `edgecl watch`: frames per second classified, capture-to-label
# latency (median, p99) and frames dropped, with the shipped backbone on this machine.
#
#   bash benches/camera.sh [SECONDS] [WxH] [FPS]        (default 20 s of 640x480 at 30 fps)
#
# The camera is examples/camera_feed.rs (an MJPEG stream on a fixed clock, from real CIFAR-10 test images
# scaled up to the frame size); the state knows three CIFAR-10 classes from 5 captures each. Uses the
# binaries of `cargo build` (profile: $PROFILE, default release), or those in $BIN_DIR (edgecl and
# examples/camera_feed) without building, and ONNX Runtime when it loads (make's venv).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
seconds=${1:-20} size=${2:-640x480} fps=${3:-30}
profile=${PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || true)
dir=${BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/$profile}
[ -n "${BIN_DIR:-}" ] || cargo build -q $flag --bin edgecl --example camera_feed
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$HOME"/.cache/edgecl/venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 cross/images.py "$work/img" --learn 5 --classify 4 >/dev/null
for class in "$work"/img/learn/*; do
  "$dir/edgecl" learn --state "$work/s.edgecl" --class "$(basename "$class")" "$class" --quiet >/dev/null
done
frames=$(python3 -c "print(int($seconds * $fps))")
echo "camera: $size MJPEG at $fps fps for $seconds s into edgecl watch ($profile build)"
"$dir/examples/camera_feed" --fps "$fps" --size "$size" --frames "$frames" "$work"/img/classify/* \
  | "$dir/edgecl" watch --state "$work/s.edgecl" --source stdin --quiet "${@:4}" > "$work/watch.jsonl"
