#!/usr/bin/env bash
# One learn -> classify -> info sequence with the edgecl CLI, for the cross tests.
#
#   cross/run-cli.sh OUT_DIR IMAGES_DIR MODEL -- COMMAND...   (COMMAND: the edgecl binary, or qemu + it)
#
# Learns every class folder under IMAGES_DIR/learn/ into OUT_DIR/state.edgecl (tract runtime), classifies
# IMAGES_DIR/classify/* into OUT_DIR/classify.json and writes OUT_DIR/info.json. Extra backbone options
# go in $EDGECL_CLI_ARGS (default: --runtime tract).
set -euo pipefail
out=$1 images=$2 model=$3
shift 4
cmd=("$@")
read -r -a backbone <<< "${EDGECL_CLI_ARGS:---runtime tract}"
rm -rf "$out" && mkdir -p "$out"
state=$out/state.edgecl
for dir in "$images"/learn/*/; do
    class=$(basename "$dir")
    "${cmd[@]}" learn --quiet "${backbone[@]}" --model "$model" --state "$state" --class "$class" "$dir" \
        > "$out/learn-$class.txt"
done
# classify exits 1 when an image is unknown: that is an answer, not a failure.
rc=0
"${cmd[@]}" classify --quiet --json "${backbone[@]}" --state "$state" "$images"/classify/* \
    > "$out/classify.json" || rc=$?
[ "$rc" -le 1 ] || { echo "run-cli: classify failed (exit $rc)" >&2; exit "$rc"; }
"${cmd[@]}" info --json "${backbone[@]}" --state "$state" > "$out/info.json"
