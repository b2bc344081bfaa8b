#!/usr/bin/env bash
# Builds the edgecl wheel, installs it into a fresh venv, and runs the pytest suite and the example there
# (issue 22 item 3: "pip install of the built wheel in a fresh venv runs the Python example and the pytest
# suite").
#
#   bash python/build.sh                  # from any directory: a wheel for this machine
#   TARGET=aarch64 bash python/build.sh   # a wheel for Jetson / Raspberry Pi 64-bit, tested under QEMU
#
# Venvs live OUTSIDE the clone (PEP 668: nothing is installed system-wide):
#   tools  ${EDGECL_PY_VENV:-$HOME/.cache/edgecl/py-venv}      maturin, numpy, pytest (pinned below) and a
#          wheelhouse of numpy/pytest for the test venv; rebuilt only when the pins change
#   test   ${EDGECL_PY_TEST_VENV:-$HOME/.cache/edgecl/py-test-venv[-aarch64]}  recreated empty on every
#          run, then `pip install` of the wheel (offline, from the wheelhouse)
# Rust: CARGO_TARGET_DIR (default $HOME/.cache/edgecl/target-py: its own, since some shared dependencies,
# tract among them, get other features here than in the main build: see the Makefile), PROFILE=dev
# (default; dependencies are opt-level 3 in it) or release.
# The wheel goes to ${WHEEL_DIR:-$CARGO_TARGET_DIR/wheels}. The cross-use tests run the CLI at
# ${EDGECL_CLI:-<repo>/target/debug/edgecl} (make test builds it first); they are skipped, loudly, if it
# is missing unless EDGECL_REQUIRE_CLI=1, which makes a missing CLI a test failure. Each stage prints its
# time on stderr.
#
# TARGET=aarch64 (see cross/README.md for the toolchain: rustup's aarch64 target, or Debian's rustc-web
# with its arm64 std, plus aarch64-linux-gnu-gcc and qemu-user): maturin builds for
# aarch64-unknown-linux-gnu (abi3 needs no target interpreter). The test venv's interpreter is Debian's
# arm64 CPython 3.11 (`apt-get download` of python3.11-minimal:arm64 and its libraries, unpacked once into
# ${EDGECL_PY_ARM64_ROOT:-$HOME/.cache/edgecl/py-arm64}, nothing installed); it runs under
# `qemu-aarch64 -L /`, and pip (run from its wheel) installs the aarch64 numpy, pytest and the wheel into
# it. The CLI the cross-use tests run stays this machine's: a state written by the aarch64 module is read
# by the x86_64 CLI and the other way round.
# Verified end to end on 2026-12-03 (python/README.md, "aarch64"): the wheel built, installed under
# qemu-aarch64, 50 tests passed and the example ran. The cold cross build adds about 1.8 GB to
# CARGO_TARGET_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgecl/target-py}"
profile="${PROFILE:-dev}"
tools="${EDGECL_PY_VENV:-$HOME/.cache/edgecl/py-venv}"
wheel_dir="${WHEEL_DIR:-$CARGO_TARGET_DIR/wheels}"
python="${PYTHON:-python3}"

case "${TARGET:-}" in
    "" | native) arch="$(uname -m)"; rust_target=""
        testvenv="${EDGECL_PY_TEST_VENV:-$HOME/.cache/edgecl/py-test-venv}" ;;
    aarch64 | aarch64-unknown-linux-gnu) arch=aarch64; rust_target=aarch64-unknown-linux-gnu
        testvenv="${EDGECL_PY_TEST_VENV:-$HOME/.cache/edgecl/py-test-venv-aarch64}" ;;
    *) echo "build.sh: TARGET must be empty (this machine) or aarch64, not ${TARGET}" >&2; exit 2 ;;
esac

MATURIN_VERSION=1.16.0
# The trainer's pins (models/requirements.txt), so pip's cache already has them.
NUMPY_VERSION=2.4.6
PYTEST_VERSION=9.2.0
PIP_VERSION=26.3
pins="maturin==$MATURIN_VERSION numpy==$NUMPY_VERSION pytest==$PYTEST_VERSION"

stage_start=$SECONDS
stage() {
    echo "build.sh: $1 took $((SECONDS - stage_start)) s" >&2
    stage_start=$SECONDS
}

# 1. The tools venv (and, for aarch64, the arm64 interpreter and an aarch64 wheelhouse).
if [ ! -f "$tools/.edgecl-ready" ] || [ "$(cat "$tools/.edgecl-ready")" != "$pins" ]; then
    echo "build.sh: creating $tools ($pins)" >&2
    mkdir -p "$(dirname "$tools")"
    "$python" -m venv --clear "$tools" >&2
    "$tools/bin/python" -m pip install -q --disable-pip-version-check $pins >&2
    "$tools/bin/python" -m pip download -q --disable-pip-version-check -d "$tools/wheelhouse" \
        "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION" >&2
    echo "$pins" >"$tools/.edgecl-ready"
fi
if [ "$arch" = aarch64 ] && [ "$(uname -m)" != aarch64 ]; then
    arm_root="${EDGECL_PY_ARM64_ROOT:-$HOME/.cache/edgecl/py-arm64}"
    arm_pins="$pins pip==$PIP_VERSION python3.11-minimal:arm64"
    if [ ! -f "$arm_root/.edgecl-ready" ] || [ "$(cat "$arm_root/.edgecl-ready")" != "$arm_pins" ]; then
        echo "build.sh: unpacking Debian's arm64 CPython into $arm_root" >&2
        command -v qemu-aarch64 >/dev/null || { echo "build.sh: TARGET=aarch64 needs qemu-aarch64 (qemu-user)" >&2; exit 1; }
        rm -rf "$arm_root" && mkdir -p "$arm_root/debs" "$arm_root/root"
        (cd "$arm_root/debs" && apt-get download python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
            libpython3.11-stdlib:arm64 libexpat1:arm64 zlib1g:arm64 libffi8:arm64 libbz2-1.0:arm64 \
            liblzma5:arm64 libssl3:arm64 >&2)
        for d in "$arm_root"/debs/*.deb; do dpkg -x "$d" "$arm_root/root"; done
        "$tools/bin/python" -m pip download -q --disable-pip-version-check --only-binary=:all: \
            --platform manylinux_2_36_aarch64 --platform manylinux_2_28_aarch64 \
            --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
            --python-version 3.11 --implementation cp --abi cp311 -d "$arm_root/wheelhouse" \
            "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION" "pip==$PIP_VERSION" >&2
        echo "$arm_pins" >"$arm_root/.edgecl-ready"
    fi
    arm_libs="$arm_root/root/lib/aarch64-linux-gnu:$arm_root/root/usr/lib/aarch64-linux-gnu"
    # The guest's environment only: qemu itself is an x86_64 program.
    run=(qemu-aarch64 -L / -E "LD_LIBRARY_PATH=$arm_libs")
    interpreter="$arm_root/root/usr/bin/python3.11"
    wheelhouse="$arm_root/wheelhouse"
else
    run=()
    interpreter="$python"
    wheelhouse="$tools/wheelhouse"
fi
stage "tools venv"

# 2. The wheel (abi3: one wheel for CPython >= 3.9).
mkdir -p "$wheel_dir"
rm -f "$wheel_dir"/edgecl-*_"$arch".whl
profile_flag=(--profile "$profile")
[ "$profile" = release ] && profile_flag=(--release)
target_flag=()
build_env=()
if [ -n "$rust_target" ]; then
    target_flag=(--target "$rust_target")
    # rustup's target if it has it, else Debian's rustc-web with its arm64 std (cross/env.sh does the same).
    if ! { command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$rust_target"; }; then
        [ -d /usr/lib/rustlib/"$rust_target" ] || { echo "build.sh: no Rust std for $rust_target: see cross/README.md" >&2; exit 1; }
        build_env=(env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc)
    fi
fi
# From the repository root, so that cargo reads .cargo/config.toml (the cross linker).
(cd "$repo" && nice -n 5 "${build_env[@]}" "$tools/bin/maturin" build --quiet --manifest-path "$here/Cargo.toml" \
    "${profile_flag[@]}" "${target_flag[@]}" --out "$wheel_dir" >&2)
wheel="$(ls "$wheel_dir"/edgecl-*_"$arch".whl)"
echo "build.sh: built $wheel ($(du -h "$wheel" | cut -f1))" >&2
stage "wheel build ($profile${rust_target:+, $rust_target})"

# 3. A fresh venv with the wheel, installed the way users install it.
if [ ${#run[@]} -eq 0 ]; then
    "$interpreter" -m venv --clear "$testvenv" >&2
    "$testvenv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
        --find-links "$wheelhouse" "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION" "$wheel" >&2
else
    # Debian's python3.11-minimal has no ensurepip: pip runs from its wheel, inside the emulated venv.
    "${run[@]}" "$interpreter" -m venv --clear --without-pip "$testvenv" >&2
    "${run[@]}" "$testvenv/bin/python" "$(ls "$wheelhouse"/pip-"$PIP_VERSION"-*.whl)/pip" install -q \
        --disable-pip-version-check --no-index --find-links "$wheelhouse" \
        "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION" "$wheel" >&2
    "${run[@]}" "$testvenv/bin/python" -c 'import platform; assert platform.machine() == "aarch64", platform.machine()'
fi
stage "fresh venv + pip install"

# 4. The tests, from the repository root (not python/: its edgecl/ folder has no compiled module and
# must not shadow the installed package).
cli="${EDGECL_CLI:-$repo/target/debug/edgecl}"
[ -x "$cli" ] || echo "build.sh: warning: no CLI at $cli; the cross-use tests will be skipped" >&2
(cd "$repo" && EDGECL_CLI="$cli" "${run[@]}" "$testvenv/bin/python" -m pytest -q -rs -p no:cacheprovider "$here/tests")
stage "pytest"

# 5. The example, on its synthetic camera (no camera or display needed).
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && "${run[@]}" "$testvenv/bin/python" "$here/examples/camera_loop.py" --source synthetic --demo \
    --state "$scratch/demo.edgecl" --model "$repo/models/tiny/tiny.onnx" --runtime tract --frames 60 --min-accuracy 0.9)
stage "example"
echo "$wheel"
