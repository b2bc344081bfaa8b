#!/usr/bin/env bash
# The aarch64 cross test (Jetson, Raspberry Pi 64-bit), run on x86_64 under qemu-user:
#   1. build the library's tests and the edgecl CLI for aarch64-unknown-linux-gnu (tract and ort, with the
#      CUDA and TensorRT providers compiled in), once: the same build serves every step below;
#   2. run the library's tests under qemu-aarch64;
#   3. learn -> classify -> info on real CIFAR-10 images with EfficientNet-Lite0 on tract, under QEMU and
#      natively, and compare: same labels and rankings, scores within $TOLERANCE;
#   4. classify the same images under QEMU with ONNX Runtime (the aarch64 onnxruntime wheel's library)
#      and compare again.
# Needs cross/setup-debian.sh's packages, $EDGECL_DATA (default ../shared/data), the native CLI
# ($NATIVE_EDGECL, default: built here with the native toolchain) and a venv with pip ($ORT_VENV, default
# ~/.cache/edgecl/venv, which `make` creates) to download the aarch64 wheel once.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO"
TARGET=aarch64-unknown-linux-gnu
TOLERANCE=${TOLERANCE:-1e-4}
ORT_VERSION=${ORT_VERSION:-1.32.0}
MODEL=$REPO/models/efficientnet-lite0.onnx
WORK=$AARCH64_TARGET_DIR/work-aarch64
toolchain $TARGET
t0=$(now)

# 1. One build serves the tests and the CLI: `--test cli` builds the binary with the test's
#    features (a plain `cargo build` would resolve features without the dev-dependencies and rebuild some
#    crates), and the GPU providers are in it (they are loaded only for --device cuda / tensorrt).
CROSS_BUILD=(--target $TARGET --features cuda,tensorrt)
CARGO_TARGET_DIR=$AARCH64_TARGET_DIR "${CARGO[@]}" test "${CROSS_BUILD[@]}" --no-run --lib --test cli
BIN=$AARCH64_TARGET_DIR/$TARGET/debug/edgecl
t1=$(now); echo "cross-aarch64: build $((t1 - t0)) s"

# 2. The library's unit tests, through the runner in .cargo/config.toml.
CARGO_TARGET_DIR=$AARCH64_TARGET_DIR "${CARGO[@]}" test "${CROSS_BUILD[@]}" --lib
t2=$(now); echo "cross-aarch64: library tests under qemu-aarch64 $((t2 - t1)) s"

# 3. The CLI on real images: emulated aarch64 against native x86_64.
if [ -z "${NATIVE_EDGECL:-}" ] || [ ! -x "$NATIVE_EDGECL" ]; then
    cargo test --no-run --test cli
    NATIVE_EDGECL=${CARGO_TARGET_DIR:-$REPO/target}/debug/edgecl
fi
rm -rf "$WORK" && mkdir -p "$WORK"
python3 cross/images.py "$WORK/images" --data "$EDGECL_DATA"
cross/run-cli.sh "$WORK/native" "$WORK/images" "$MODEL" -- "$NATIVE_EDGECL"
t3=$(now)
cross/run-cli.sh "$WORK/aarch64" "$WORK/images" "$MODEL" -- qemu-aarch64 -L / "$BIN"
t4=$(now); echo "cross-aarch64: CLI native $((t3 - t2)) s, under qemu-aarch64 $((t4 - t3)) s"
python3 cross/compare.py "$WORK/native/classify.json" "$WORK/aarch64/classify.json" "$TOLERANCE"
python3 - "$WORK/native/info.json" "$WORK/aarch64/info.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["state"] for p in sys.argv[1:3])
pick = lambda s: [(c["name"], c["captures"]) for c in s["classes"]]
if pick(a) != pick(b):
    sys.exit(f"info differs: {pick(a)} vs {pick(b)}")
print(f"info: same classes and capture counts {pick(a)}")
PY

# 4. ONNX Runtime on aarch64: the manylinux wheel's library, with an ARM /proc/cpuinfo (ONNX Runtime reads
#    the host's x86 one through qemu and crashes).
ORT_DIR=$HOME/.cache/edgecl/ort-aarch64-$ORT_VERSION
if [ ! -f "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
    mkdir -p "$ORT_DIR/wheel"
    "${ORT_VENV:-$HOME/.cache/edgecl/venv}/bin/python" -m pip download -q --disable-pip-version-check "onnxruntime==$ORT_VERSION" --no-deps \
        --only-binary=:all: --platform manylinux_2_28_aarch64 --python-version 3.11 -d "$ORT_DIR/wheel"
    python3 - "$ORT_DIR" "$ORT_VERSION" <<'PY'
import glob, sys, zipfile
out, version = sys.argv[1], sys.argv[2]
whl = glob.glob(f"{out}/wheel/onnxruntime-{version}-*.whl")[0]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(whl) as z, open(f"{out}/libonnxruntime.so.{version}", "wb") as f:
    f.write(z.read(name))
PY
fi
ROOT=$WORK/fake-root
mkdir -p "$ROOT/proc"
for d in bin lib usr etc; do ln -sfn "/$d" "$ROOT/$d"; done
cat > "$ROOT/proc/cpuinfo" <<'CPU'
processor	: 0
BogoMIPS	: 48.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

CPU
rc=0
qemu-aarch64 -L "$ROOT" "$BIN" classify --quiet --json --runtime ort --ort-lib "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" \
    --state "$WORK/aarch64/state.edgecl" "$WORK"/images/classify/* > "$WORK/aarch64-ort.json" || rc=$?
[ "$rc" -le 1 ] || { echo "cross-aarch64: ONNX Runtime classify failed (exit $rc)" >&2; exit 1; }
python3 - "$WORK/aarch64-ort.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runtime"]
if r["runtime"] != "ort":
    sys.exit(f"expected the ort runtime, got {r}")
print(f"runtime: {r}")
PY
python3 cross/compare.py "$WORK/native/classify.json" "$WORK/aarch64-ort.json" "$TOLERANCE"
t5=$(now); echo "cross-aarch64: ONNX Runtime under qemu-aarch64 $((t5 - t4)) s"

# 5. The Jetson GPU path (the same binary: the providers are compiled in). No GPU here, so it runs
#    against the CPU-only library and must refuse --device cuda with a clear error.
for device in cuda tensorrt; do
    rc=0
    qemu-aarch64 -L "$ROOT" "$BIN" classify --quiet --runtime ort --device $device \
        --ort-lib "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" --trt-cache "$WORK/trt-cache" \
        --state "$WORK/aarch64/state.edgecl" "$WORK"/images/classify/airplane-0.ppm \
        > "$WORK/$device.out" 2> "$WORK/$device.err" || rc=$?
    if [ "$rc" != 2 ] || ! grep -qi "execution provider" "$WORK/$device.err"; then
        echo "cross-aarch64: --device $device on a CPU-only library: expected exit 2 naming the provider, got $rc:" >&2
        cat "$WORK/$device.err" >&2
        exit 1
    fi
    echo "cross-aarch64: --device $device without a GPU library: $(head -c 300 "$WORK/$device.err")"
done
t6=$(now); echo "cross-aarch64: cuda,tensorrt provider errors $((t6 - t5)) s"
echo "cross-aarch64: passed in $((t6 - t0)) s"
