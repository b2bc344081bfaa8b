#!/usr/bin/env bash
# The firmware test, from a fresh clone: export the data set with the host build, build the firmware for
# thumbv7em-none-eabihf, run it on QEMU mps2-an386, check its state with the host build, report sizes.
#
#   firmware-tests/run.sh          (make firmware)
#
# Needs: the host build (cargo, $CARGO_TARGET_DIR as for `cargo test`), ONNX Runtime or tract for the
# export, Fashion-MNIST under $EDGECL_DATA (default ../shared/data), and cross/setup-debian.sh's packages
# (qemu-system-arm; Debian's rustc-web and rust-web-src unless rustup has the thumbv7em target).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
TARGET=thumbv7em-none-eabihf
FIRMWARE_TARGET_DIR=${FIRMWARE_TARGET_DIR:-$HOME/.cache/edgecl/target-firmware}
DATA=${EDGECL_FIRMWARE_DATA:-$HERE/data}
LOG=$FIRMWARE_TARGET_DIR/qemu.log
ELF=$FIRMWARE_TARGET_DIR/$TARGET/release/firmware-tests
# The host build's target dir (as `cargo test` used it); the firmware has its own.
# $HOST_FEATURES: the features `make test` built the host crate with, so this reuses that build.
host() { (cd "$REPO" && cargo run -q ${HOST_FEATURES:+--features "$HOST_FEATURES"} --example firmware_data -- "$@"); }
fw() { EDGECL_FIRMWARE_DATA=$DATA CARGO_TARGET_DIR=$FIRMWARE_TARGET_DIR "${CARGO[@]}" "$@"; }
t0=$(date +%s)

# 1. Data: real feature vectors from the host build (and the std build's accuracy and state).
host export "$DATA"
t1=$(date +%s)

# 2. The firmware.
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx $TARGET; then
    CARGO=(cargo); BUILD_STD=()
else
    CARGO=(env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo)
    BUILD_STD=(-Z build-std=core)
fi
cd "$HERE"
fw build --release "${BUILD_STD[@]}"
t2=$(date +%s)

# 3. Run on QEMU: the firmware's exit code is the test's result.
mkdir -p "$FIRMWARE_TARGET_DIR"
rc=0
fw run -q --release "${BUILD_STD[@]}" > "$LOG" 2>&1 || rc=$?
grep -v '^state-hex:' "$LOG" || true
[ "$rc" = 0 ] || { echo "firmware-tests: the firmware failed on QEMU (exit $rc); log: $LOG" >&2; exit 1; }
t3=$(date +%s)

# 4. The host build decodes the state the firmware wrote and compares it with its own.
host check "$DATA" "$LOG"
t4=$(date +%s)

size=$(command -v llvm-size || command -v llvm-size-22 || true)
if [ -n "$size" ]; then
    echo "firmware-tests: sizes (.text/.rodata in flash; .data, .bss and cortex-m-rt's .uninit in RAM):"
    "$size" -A "$ELF" | grep -E '^\.(vector_table|text|rodata|data|bss|uninit) '
    "$size" "$ELF"
fi
echo "firmware-tests: passed: export $((t1 - t0)) s, build $((t2 - t1)) s, QEMU $((t3 - t2)) s, check $((t4 - t3)) s"
