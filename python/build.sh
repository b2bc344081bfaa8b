#!/usr/bin/env bash
# Builds the edgecl wheel for this machine, installs it into a fresh venv, and runs the pytest suite and
# the example there (issue 22 item 3: "pip install of the built wheel in a fresh venv runs the Python
# example and the pytest suite").
#
#   bash python/build.sh                  # from any directory
#
# Venvs live OUTSIDE the clone (PEP 668: nothing is installed system-wide):
#   tools  ${EDGECL_PY_VENV:-$HOME/.cache/edgecl/py-venv}      maturin, numpy, pytest (pinned below) and a
#          wheelhouse of numpy/pytest for the test venv; rebuilt only when the pins change
#   test   ${EDGECL_PY_TEST_VENV:-$HOME/.cache/edgecl/py-test-venv}  recreated empty on every run, then
#          `pip install` of the wheel (offline, from the wheelhouse)
# Rust: CARGO_TARGET_DIR (default $HOME/.cache/edgecl/target-py: its own, since pyo3's proc macros give
# syn other features and so every proc-macro user another hash than in the main build, which a shared
# directory would not reuse anyway), PROFILE=dev (default; dependencies are opt-level 3 in it) or release.
# The wheel goes to ${WHEEL_DIR:-$CARGO_TARGET_DIR/wheels}. The cross-use tests run the CLI at
# ${EDGECL_CLI:-<repo>/target/debug/edgecl} (make test builds it first); they are skipped, loudly, if it
# is missing unless EDGECL_REQUIRE_CLI=1, which makes a missing CLI a test failure. Each stage prints its
# time on stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgecl/target-py}"
profile="${PROFILE:-dev}"
tools="${EDGECL_PY_VENV:-$HOME/.cache/edgecl/py-venv}"
testvenv="${EDGECL_PY_TEST_VENV:-$HOME/.cache/edgecl/py-test-venv}"
wheel_dir="${WHEEL_DIR:-$CARGO_TARGET_DIR/wheels}"
python="${PYTHON:-python3}"

MATURIN_VERSION=1.16.0
# The trainer's pins (models/requirements.txt), so pip's cache already has them.
NUMPY_VERSION=2.4.6
PYTEST_VERSION=9.2.0
pins="maturin==$MATURIN_VERSION numpy==$NUMPY_VERSION pytest==$PYTEST_VERSION"

stage_start=$SECONDS
stage() {
    echo "build.sh: $1 took $((SECONDS - stage_start)) s" >&2
    stage_start=$SECONDS
}

# 1. The tools venv.
if [ ! -f "$tools/.edgecl-ready" ] || [ "$(cat "$tools/.edgecl-ready")" != "$pins" ]; then
    echo "build.sh: creating $tools ($pins)" >&2
    mkdir -p "$(dirname "$tools")"
    "$python" -m venv --clear "$tools" >&2
    "$tools/bin/python" -m pip install -q --disable-pip-version-check $pins >&2
    "$tools/bin/python" -m pip download -q --disable-pip-version-check -d "$tools/wheelhouse" \
        "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION" >&2
    echo "$pins" >"$tools/.edgecl-ready"
fi
stage "tools venv"

# 2. The wheel (abi3: one wheel for CPython >= 3.9).
mkdir -p "$wheel_dir"
rm -f "$wheel_dir"/edgecl-*.whl
profile_flag=(--profile "$profile")
[ "$profile" = release ] && profile_flag=(--release)
nice -n 5 "$tools/bin/maturin" build --quiet --manifest-path "$here/Cargo.toml" "${profile_flag[@]}" \
    --out "$wheel_dir" >&2
wheel="$(ls "$wheel_dir"/edgecl-*.whl)"
echo "build.sh: built $wheel ($(du -h "$wheel" | cut -f1))" >&2
stage "wheel build ($profile)"

# 3. A fresh venv with the wheel, installed the way users install it.
"$python" -m venv --clear "$testvenv" >&2
"$testvenv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
    --find-links "$tools/wheelhouse" "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION" "$wheel" >&2
stage "fresh venv + pip install"

# 4. The tests, from the repository root (not python/: its edgecl/ folder has no compiled module and
# must not shadow the installed package).
cli="${EDGECL_CLI:-$repo/target/debug/edgecl}"
[ -x "$cli" ] || echo "build.sh: warning: no CLI at $cli; the cross-use tests will be skipped" >&2
(cd "$repo" && EDGECL_CLI="$cli" "$testvenv/bin/python" -m pytest -q -rs -p no:cacheprovider "$here/tests")
stage "pytest"

# 5. The example, on its synthetic camera (no camera or display needed).
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && "$testvenv/bin/python" "$here/examples/camera_loop.py" --source synthetic --demo \
    --state "$scratch/demo.edgecl" --model "$repo/models/tiny/tiny.onnx" --runtime tract --frames 60 --min-accuracy 0.9)
stage "example"
echo "$wheel"
