#!/usr/bin/env bash
# Create (or reuse) the Python venv for models/ OUTSIDE the clone and print its path on the last line.
#
#   VENV=$(bash models/venv.sh | tail -n1)
#
# Path: ${EDGECL_TRAIN_VENV:-$HOME/.cache/edgecl/train-venv-<first 12 hex of sha256(models/requirements.txt)>}
# so it is rebuilt only when the requirements change. Installs models/requirements.txt, then the trainer
# package (models/trainer, editable, no dependencies) so `$VENV/bin/python -m edgecl_train` works.
# All progress goes to stderr; stdout carries only the path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
hash="$(sha256sum "$req" | cut -c1-12)"
venv="${EDGECL_TRAIN_VENV:-$HOME/.cache/edgecl/train-venv-$hash}"
python="${PYTHON:-python3}"

if [ ! -f "$venv/.edgecl-ready" ] || ! cmp -s "$req" "$venv/.edgecl-ready"; then
    echo "venv.sh: building $venv from $req" >&2
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    cp "$req" "$venv/.edgecl-ready"
fi
# Cheap (no download): point the venv's edgecl_train at this clone's source.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    -e "$here/trainer" >&2
echo "$venv"
