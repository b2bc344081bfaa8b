# Sourced by the cross/ scripts. Picks the toolchain for a target and where builds go.
#
#   toolchain TARGET   sets CARGO (a command array) and BUILD_STD (extra cargo flags)
#
# A rustup toolchain with the target installed (`rustup target add TARGET`) is used as is; otherwise
# Debian's rustc-web (cross/setup-debian.sh): its arm64 standard library for aarch64, and build-std from
# rust-web-src for armv7 (Debian ships no armhf std of the same version).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Outside the clone, so repeated runs reuse builds; one per target and apart from the native one, because
# cargo locks a whole target dir per build (so aarch64 and armv7 can build at the same time).
AARCH64_TARGET_DIR=${AARCH64_TARGET_DIR:-$HOME/.cache/edgecl/target-cross}
ARMV7_TARGET_DIR=${ARMV7_TARGET_DIR:-$HOME/.cache/edgecl/target-armv7}
EDGECL_DATA=${EDGECL_DATA:-$REPO/../shared/data}

toolchain() {
    local target=$1
    BUILD_STD=()
    if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        CARGO=(cargo)
        return
    fi
    if [ ! -x /usr/bin/cargo ] || [ ! -x /usr/bin/rustc ]; then
        echo "no Rust toolchain for $target: run cross/setup-debian.sh (Debian) or 'rustup target add $target'" >&2
        return 1
    fi
    CARGO=(env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc /usr/bin/cargo)
    case $target in
        aarch64-unknown-linux-gnu)
            if [ ! -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ]; then
                echo "Debian's arm64 Rust standard library is missing: run cross/setup-debian.sh" >&2
                return 1
            fi ;;
        *)
            # No prebuilt std for this target from Debian: build it from source (rust-web-src). Only the
            # cross cargo sees RUSTC_BOOTSTRAP: build scripts that probe for nightly features rerun when
            # it changes, so exporting it would rebuild the native target dir too.
            CARGO=(env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo)
            BUILD_STD=(-Z build-std=std,panic_unwind) ;;
    esac
}

# Seconds since the epoch, for the timing lines every script prints.
now() { date +%s; }
