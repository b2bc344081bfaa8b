#!/usr/bin/env bash
# Builds a release edgecl binary for a Jetson or Raspberry Pi:
#
#   cross/build.sh aarch64 [CARGO_ARGS...]   # Jetson Orin/Xavier, Raspberry Pi 4/5 with a 64-bit OS
#   cross/build.sh armv7   [CARGO_ARGS...]   # Raspberry Pi with a 32-bit OS (tract only)
#
# Prints the binary's path. Extra arguments go to cargo, e.g. `--features cuda,tensorrt` for a Jetson.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
case ${1:-} in
    aarch64) TARGET=aarch64-unknown-linux-gnu; FEATURES=(); DIR=$AARCH64_TARGET_DIR ;;
    # ONNX Runtime publishes no armv7 library: the 32-bit Pi runs tract.
    armv7) TARGET=armv7-unknown-linux-gnueabihf; FEATURES=(--no-default-features --features tract)
           DIR=$ARMV7_TARGET_DIR ;;
    *) echo "usage: cross/build.sh aarch64|armv7 [CARGO_ARGS...]" >&2; exit 2 ;;
esac
shift
toolchain $TARGET
t0=$(now)
CARGO_TARGET_DIR=$DIR "${CARGO[@]}" build --release "${BUILD_STD[@]}" --target $TARGET \
    "${FEATURES[@]}" --bin edgecl "$@"
echo "cross/build.sh: built in $(( $(now) - t0 )) s: $DIR/$TARGET/release/edgecl"
