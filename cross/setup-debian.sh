#!/usr/bin/env bash
# Installs what cross builds, QEMU runs and the firmware test need on Debian 12 (bookworm): the cross
# C toolchains (linkers and C libraries), QEMU, and -- unless rustup already has the targets -- Debian's
# Rust 1.96 (rustc-web) with its arm64 standard library and the standard library's source (for armv7 and
# the Cortex-M firmware). Idempotent: installs only what is missing. Needs root or sudo.
set -euo pipefail
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

has_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
rustup_has() { command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$1"; }

want=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
      qemu-user qemu-system-arm python3)
debian_rust=0
for t in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf thumbv7em-none-eabihf; do
    rustup_has "$t" || debian_rust=1
done
if [ "$debian_rust" = 1 ]; then
    # rust-web-llvm and lld-22: rust-lld (the Cortex-M linker) is a link into lld-22.
    want+=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22)
fi
missing=()
for p in "${want[@]}"; do has_pkg "$p" || missing+=("$p"); done
updated=0
if [ ${#missing[@]} -gt 0 ]; then
    echo "cross/setup-debian.sh: installing ${missing[*]}"
    $SUDO apt-get update -qq
    updated=1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ "$debian_rust" = 1 ] && ! has_pkg libstd-rust-web-dev:arm64; then
    # The arm64 standard library must be the same version as the x86_64 compiler. Only arm64 is added as
    # a foreign architecture: armv7 builds std from source instead.
    version=$(dpkg-query -W -f='${Version}' rustc-web)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $SUDO dpkg --add-architecture arm64
        updated=0
    fi
    [ "$updated" = 1 ] || $SUDO apt-get update -qq
    if ! apt-cache madison libstd-rust-web-dev:arm64 | grep -qF "$version"; then
        echo "cross/setup-debian.sh: libstd-rust-web-dev:arm64 $version (matching rustc-web) is not available;" \
             "use rustup: rustup target add aarch64-unknown-linux-gnu" >&2
        exit 1
    fi
    echo "cross/setup-debian.sh: installing libstd-rust-web-dev:arm64=$version"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "libstd-rust-web-dev:arm64=$version"
fi
echo "cross/setup-debian.sh: cross toolchains and QEMU are installed"
