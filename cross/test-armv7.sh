#!/usr/bin/env bash
# The armv7 cross test (Raspberry Pi, 32-bit OS), run on x86_64 under qemu-arm: builds the edgecl CLI for
# armv7-unknown-linux-gnueabihf with tract (the runtime for 32-bit ARM: ONNX Runtime ships no armv7
# build; the armhf package ships this binary, without the device service for now: `serve` changes the
# features of shared dependencies, which would rebuild all of them here, and CI has no room for that
# yet), then learn -> classify -> info on real CIFAR-10 images under QEMU and natively, compared as in
# test-aarch64.sh. $ARMV7_MODEL picks the backbone (default EfficientNet-Lite0).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
TARGET=armv7-unknown-linux-gnueabihf
TOLERANCE=${TOLERANCE:-1e-4}
MODEL=${ARMV7_MODEL:-$REPO/models/efficientnet-lite0.onnx}
WORK=$ARMV7_TARGET_DIR/work-armv7
toolchain $TARGET
t0=$(now)

CARGO_TARGET_DIR=$ARMV7_TARGET_DIR "${CARGO[@]}" build "${BUILD_STD[@]}" --target $TARGET \
    --no-default-features --features tract --bin edgecl
BIN=$ARMV7_TARGET_DIR/$TARGET/debug/edgecl
t1=$(now); echo "cross-armv7: build $((t1 - t0)) s"

if [ -z "${NATIVE_EDGECL:-}" ] || [ ! -x "$NATIVE_EDGECL" ]; then
    cargo test --no-run --test cli
    NATIVE_EDGECL=${CARGO_TARGET_DIR:-$REPO/target}/debug/edgecl
fi
rm -rf "$WORK" && mkdir -p "$WORK"
python3 cross/images.py "$WORK/images" --data "$EDGECL_DATA"
cross/run-cli.sh "$WORK/native" "$WORK/images" "$MODEL" -- "$NATIVE_EDGECL"
t2=$(now)
cross/run-cli.sh "$WORK/armv7" "$WORK/images" "$MODEL" -- qemu-arm -L /usr/arm-linux-gnueabihf "$BIN"
t3=$(now); echo "cross-armv7: CLI native $((t2 - t1)) s, under qemu-arm $((t3 - t2)) s"
python3 cross/compare.py "$WORK/native/classify.json" "$WORK/armv7/classify.json" "$TOLERANCE"
echo "cross-armv7: passed in $((t3 - t0)) s"
