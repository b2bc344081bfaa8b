#!/usr/bin/env python3
"""Writes real CIFAR-10 test images as PPM files for the cross tests' CLI runs.

    python3 cross/images.py OUT_DIR [--data DIR] [--classes airplane,automobile,ship] [--learn 5] [--classify 4]

From DIR/cifar10-partial/test.bin (default: $EDGECL_DATA, else ../shared/data beside the repository):
for each class, the first LEARN images go to OUT_DIR/learn/CLASS/ and the next CLASSIFY to
OUT_DIR/classify/ (named CLASS-N.ppm). Fails with a message naming the path when the data is missing.
"""
import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("EDGECL_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--classes", default="airplane,automobile,ship")
    ap.add_argument("--learn", type=int, default=5)
    ap.add_argument("--classify", type=int, default=4)
    a = ap.parse_args()
    root = a.data / "cifar10-partial"
    try:
        names = json.loads((root / "labels.json").read_text())["label_names"]
        records = (root / "test.bin").read_bytes()
    except OSError as e:
        sys.exit(f"cross/images.py: {e}: set EDGECL_DATA to the folder holding cifar10-partial/")
    if len(records) % 3073:
        sys.exit(f"cross/images.py: {root / 'test.bin'} is not whole 3073-byte CIFAR-10 records")
    wanted = a.classes.split(",")
    for w in wanted:
        if w not in names:
            sys.exit(f"cross/images.py: no class {w!r} in {names}")
    taken = {w: 0 for w in wanted}
    need = a.learn + a.classify
    for i in range(0, len(records), 3073):
        name = names[records[i]]
        if name not in taken or taken[name] >= need:
            continue
        px = records[i + 1:i + 3073]
        rgb = bytes(px[c * 1024 + p] for p in range(1024) for c in range(3))
        n = taken[name]
        if n < a.learn:
            path = a.out / "learn" / name / f"{n}.ppm"
        else:
            path = a.out / "classify" / f"{name}-{n - a.learn}.ppm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"P6\n32 32\n255\n" + rgb)
        taken[name] += 1
    short = {k: v for k, v in taken.items() if v < need}
    if short:
        sys.exit(f"cross/images.py: not enough test images for {short}")
    print(f"cross/images.py: {len(wanted)} classes x ({a.learn} learn + {a.classify} classify) images in {a.out}")


if __name__ == "__main__":
    main()
