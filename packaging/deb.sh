#!/usr/bin/env bash
# Builds the Debian package of edgecl for one architecture with dpkg-deb (Debian's own tool: nothing
# to compile). The binary is the one the build (or the cross build) made; the man page and the shell
# completions are generated from the clap definitions by a binary that runs here (the same definitions).
#
#   bash packaging/deb.sh ARCH BINARY HOST_BINARY OUT_DIR      ARCH: amd64 | arm64 | armhf
#
# Contents: /usr/bin/edgecl (stripped), the shipped models and cards in /usr/share/edgecl/models, the man
# page, bash/zsh/fish completions, the systemd unit (not enabled: set the camera in /etc/default/edgecl,
# then `systemctl enable --now edgecl`), and a postinst that makes the service's user.
set -euo pipefail
[ $# -eq 4 ] || { sed -n 2,12p "$0"; exit 2; }
arch=$1 bin=$2 host_bin=$3 out=$4
repo=$(cd "$(dirname "$0")/.." && pwd)
case $arch in
  amd64) strip=strip ;;
  arm64) strip=aarch64-linux-gnu-strip ;;
  armhf) strip=arm-linux-gnueabihf-strip ;;
  *) echo "deb.sh: unknown architecture $arch (amd64, arm64, armhf)" >&2; exit 2 ;;
esac
command -v "$strip" >/dev/null || { echo "deb.sh: $strip not found (binutils for $arch)" >&2; exit 2; }
version=$("$host_bin" --version | awk '{print $2}')
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/edgecl/models" "$root/usr/share/man/man1" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/lib/systemd/system" "$root/etc/default" \
  "$root/usr/share/doc/edgecl"
install -m 755 "$bin" "$root/usr/bin/edgecl"
"$strip" --strip-unneeded "$root/usr/bin/edgecl"
for onnx in "$repo"/models/*.onnx; do
  install -m 644 "$onnx" "${onnx%.onnx}.json" "$root/usr/share/edgecl/models/"
done
"$host_bin" manpage | gzip -9n > "$root/usr/share/man/man1/edgecl.1.gz"
"$host_bin" completions bash > "$root/usr/share/bash-completion/completions/edgecl"
"$host_bin" completions zsh > "$root/usr/share/zsh/vendor-completions/_edgecl"
"$host_bin" completions fish > "$root/usr/share/fish/vendor_completions.d/edgecl.fish"
# The service comes with a binary that has `edgecl serve` (the armhf build does not yet).
if grep -q 'edgecl serve: listening on' "$bin"; then
  install -m 644 "$repo/packaging/edgecl.service" "$root/lib/systemd/system/edgecl.service"
  install -m 644 "$repo/packaging/default" "$root/etc/default/edgecl"
  install -m 755 "$repo/packaging/postinst" "$repo/packaging/postrm" "$root/DEBIAN/"
  echo /etc/default/edgecl > "$root/DEBIAN/conffiles"
else
  rmdir "$root/lib/systemd/system" "$root/lib/systemd" "$root/lib" "$root/etc/default" "$root/etc"
  echo "deb.sh: $arch: this binary has no edgecl serve: no systemd unit" >&2
fi
cat > "$root/usr/share/doc/edgecl/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edgecl

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY
# GStreamer is linked only into a build with the camera feature.
depends="libc6"
[ -f "$root/DEBIAN/postinst" ] && depends="$depends, adduser"
if readelf -d "$bin" | grep -q 'NEEDED.*libgstreamer'; then
  depends="$depends, libgstreamer1.0-0, libgstreamer-plugins-base1.0-0, gstreamer1.0-plugins-good"
fi
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: edgecl
Version: $version
Architecture: $arch
Maintainer: edgecl developers <edgecl@localhost>
Installed-Size: $size
Depends: $depends
Suggests: gstreamer1.0-libcamera
Section: science
Priority: optional
Description: on-device class-incremental learning over a frozen ONNX backbone
 edgecl learns new image classes from a few camera captures on the device, keeps the old ones
 exactly, stays inside a fixed memory budget, and classifies with a nearest-class-mean head.
 This package has the edgecl command, the device service (edgecl serve, a systemd unit), the
 shipped EfficientNet-Lite0 backbone and its model card. ONNX Runtime is used when its library is
 found (pip's onnxruntime, JetPack's); otherwise the built-in tract runtime runs the model.
CONTROL
mkdir -p "$out"
deb="$out/edgecl_${version}_${arch}.deb"
# gzip: quick to build, and every dpkg reads it.
dpkg-deb --build --root-owner-group -Zgzip -z6 "$root" "$deb" >/dev/null
echo "$deb"
